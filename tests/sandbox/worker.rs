//! A worker in-process against our SQS endpoint and a completion feed: how it stops.

use std::time::Duration;

use shakedown::sandbox::config::{Ack, ProcessingTime};
use shakedown::sandbox::feed::Feed;
use shakedown::sandbox::instance::worker::{self, Job};
use shakedown::sandbox::instance::{ChildConfig, RoleConfig};
use shakedown::sandbox::sqs::{QueueSettings, SqsConfig, SqsService};
use tokio_util::sync::CancellationToken;

async fn serve_feed(feed: &Feed) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let router = feed.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// SIGTERM during a long poll: the worker must not walk away from the receive. A message the
/// queue hands out on a request nobody reads any more stays in flight, invisible, for the
/// whole visibility timeout (30 s here): a scale-in then leaves a backlog of one that holds
/// a worker up for 30 s, and the job's end-to-end time grows by as much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_long_poll_finishes_what_the_poll_returns() {
    let service = SqsService::new(SqsConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    tokio::spawn(
        service
            .clone()
            .serve(listener, stop.clone().cancelled_owned()),
    );
    let queue_url = service
        .create_queue("jobs", QueueSettings::default())
        .expect("queue");
    let feed = Feed::new(100);
    let feed_url = serve_feed(&feed).await;

    let config = ChildConfig {
        instance_id: "i-0123456789abcdef0".into(),
        sqs_endpoint: endpoint.clone(),
        region: "us-east-1".into(),
        queue_url: queue_url.clone(),
        feed_url,
        processing: ProcessingTime {
            base: Duration::from_millis(50),
            per_mib: Duration::ZERO,
        },
        jitter: 0.0,
        role: RoleConfig::Worker {
            concurrency: 4,
            wait_time_seconds: 3,
            ack: Ack::AfterProcess,
            boot_ms: 0,
        },
    };
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(worker::run(
        config,
        move |_| {
            let _ = ready_tx.send(());
        },
        shutdown.clone(),
    ));
    ready_rx.await.expect("worker ready");
    // The first receive is now waiting on an empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = Job {
        id: "u-1".into(),
        size: 10,
        received_ms: 0,
        kind: "upload".into(),
    };
    crate::support::aws::sqs(&endpoint)
        .send_message()
        .queue_url(&queue_url)
        .message_body(serde_json::to_string(&job).expect("json"))
        .send()
        .await
        .expect("send");

    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops within its long-poll wait")
        .expect("join")
        .expect("worker ran");
    // Whatever the pending poll took was processed and deleted; nothing is left in flight.
    let stats = service.stats("jobs").expect("queue");
    assert_eq!(
        (stats.in_flight, stats.visible),
        (0, 0),
        "the job must be processed, not stranded in flight: {stats:?}"
    );
    let done: Vec<String> = feed
        .completions_since(0)
        .into_iter()
        .map(|c| c.completion.job_id)
        .collect();
    assert_eq!(done, ["u-1"]);
    stop.cancel();
}
