//! Throughput of an SQS endpoint through aws-sdk-sqs: SendMessage/s, then
//! ReceiveMessage(+DeleteMessage per message)/s, then GetQueueAttributes/s, each with
//! `concurrency` workers.
//!
//! ```text
//! cargo run --release --example sqs_bench -- <endpoint-url | --embedded> [messages] [concurrency] [--backlog N]
//! ```
//!
//! `--embedded` starts shakedown's own endpoint in-process on 127.0.0.1. `--backlog N`
//! first loads N extra messages with SendMessageBatch (untimed), so every timed call runs
//! against a queue N messages deep; the receive phase then drains `messages` of them. The
//! last line of output is machine-readable:
//! `RESULT target=... backlog=... send_per_s=... receive_delete_per_s=... attributes_per_s=...`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use shakedown::sandbox::sqs::{SqsConfig, SqsService};

/// A receive phase that has not drained the queue by then gives up.
const PHASE_DEADLINE: Duration = Duration::from_secs(300);

const USAGE: &str =
    "usage: sqs_bench <endpoint-url | --embedded> [messages] [concurrency] [--backlog N]";

struct Args {
    endpoint: Option<String>,
    messages: u64,
    concurrency: u64,
    backlog: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let mut backlog = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--backlog" {
            let value = args.next().context(USAGE)?;
            backlog = value
                .parse()
                .with_context(|| format!("--backlog {value}: not a count; {USAGE}"))?;
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let target = positional.next().context(USAGE)?;
    let messages = positional.next().map_or(Ok(500), |n| n.parse())?;
    let concurrency = positional.next().map_or(Ok(8), |n| n.parse())?;
    if messages == 0 || concurrency == 0 {
        bail!("messages and concurrency must be positive");
    }
    let endpoint = (target != "--embedded").then_some(target);
    Ok(Args {
        endpoint,
        messages,
        concurrency,
        backlog,
    })
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

async fn embedded() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let service = SqsService::new(SqsConfig::default());
    tokio::spawn(service.serve(listener, std::future::pending()));
    Ok(endpoint)
}

/// Loads `total` messages with SendMessageBatch (10 per call), `concurrency` calls at a time.
async fn preload(client: &Client, url: &str, total: u64, concurrency: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
            tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(10, Ordering::Relaxed);
                    if first >= total {
                        return anyhow::Ok(());
                    }
                    let mut batch = client.send_message_batch().queue_url(&url);
                    for n in first..(first + 10).min(total) {
                        let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(format!("m{n}"))
                            .message_body("{\"job\":\"backlog\",\"size\":1024}")
                            .build()?;
                        batch = batch.entries(entry);
                    }
                    let output = batch.send().await?;
                    if !output.failed().is_empty() {
                        bail!("SendMessageBatch failed: {:?}", output.failed());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// Calls GetQueueAttributes (all attributes, which counts every message state) `total`
/// times with `concurrency` workers; returns the elapsed time.
async fn attributes_phase(
    client: &Client,
    url: &str,
    total: u64,
    concurrency: u64,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    client
                        .get_queue_attributes()
                        .queue_url(&url)
                        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                        .send()
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(started.elapsed())
}

/// Sends `total` messages with `concurrency` workers; returns the elapsed time.
async fn send_phase(
    client: &Client,
    url: &str,
    total: u64,
    concurrency: u64,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    client
                        .send_message()
                        .queue_url(&url)
                        .message_body("{\"job\":\"benchmark\",\"size\":1024}")
                        .send()
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(started.elapsed())
}

/// Receives (up to 10 at a time) and deletes each message until `total` are deleted; the
/// time is taken when the last delete completes, not when idle long polls return.
async fn receive_phase(
    client: &Client,
    url: &str,
    total: u64,
    concurrency: u64,
) -> anyhow::Result<Duration> {
    let deleted = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(parking_lot::Mutex::new(None::<Duration>));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            let (deleted, finished) = (deleted.clone(), finished.clone());
            tokio::spawn(async move {
                while deleted.load(Ordering::Relaxed) < total {
                    if started.elapsed() > PHASE_DEADLINE {
                        bail!("receive phase exceeded {PHASE_DEADLINE:?}");
                    }
                    let output = client
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await?;
                    for message in output.messages() {
                        let handle = message.receipt_handle().context("receipt handle")?;
                        client
                            .delete_message()
                            .queue_url(&url)
                            .receipt_handle(handle)
                            .send()
                            .await?;
                        if deleted.fetch_add(1, Ordering::Relaxed) + 1 == total {
                            *finished.lock() = Some(started.elapsed());
                        }
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let finished = *finished.lock();
    finished.context("every message deleted")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (label, endpoint) = match &args.endpoint {
        Some(endpoint) => (endpoint.clone(), endpoint.clone()),
        None => ("embedded".to_owned(), embedded().await?),
    };
    let client = client(&endpoint);
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let queue = format!("bench-{}-{stamp}", std::process::id());
    let url = client
        .create_queue()
        .queue_name(&queue)
        .send()
        .await?
        .queue_url
        .context("queue url")?;

    if args.backlog > 0 {
        let started = Instant::now();
        preload(&client, &url, args.backlog, args.concurrency).await?;
        println!(
            "{label}: backlog of {} messages loaded in {:.2?}",
            args.backlog,
            started.elapsed()
        );
    }
    let send = send_phase(&client, &url, args.messages, args.concurrency).await?;
    let receive = receive_phase(&client, &url, args.messages, args.concurrency).await?;
    let attributes = attributes_phase(&client, &url, args.messages, args.concurrency).await?;
    client.delete_queue().queue_url(&url).send().await?;

    let per_second = |elapsed: Duration| args.messages as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {} messages over a backlog of {}, concurrency {}: send {:.0}/s ({:.2?}), \
         receive+delete {:.0}/s ({:.2?}), get-attributes {:.0}/s ({:.2?})",
        args.messages,
        args.backlog,
        args.concurrency,
        per_second(send),
        send,
        per_second(receive),
        receive,
        per_second(attributes),
        attributes
    );
    println!(
        "RESULT target={label} backlog={} messages={} concurrency={} send_per_s={:.1} \
         receive_delete_per_s={:.1} attributes_per_s={:.1}",
        args.backlog,
        args.messages,
        args.concurrency,
        per_second(send),
        per_second(receive),
        per_second(attributes)
    );
    Ok(())
}
