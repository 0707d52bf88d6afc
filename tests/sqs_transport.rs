//! The SQS transport (`transport = "sqs"` streams) through the CLI: against a stub that
//! speaks SQS's JSON protocol and records every SendMessageBatch (batch sizes, arrival
//! times, partial failures, throttling), and end to end into the sandbox's queue.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use shakedown::clock::now_ms;
use support::cli::{self, shakedown};

/// What the stub saw: per batch, the receive time (ms since the epoch) and each entry's
/// `seq` (from the body) and `shakedown-id` attribute.
#[derive(Default)]
struct Seen {
    batches: Vec<(u64, Vec<(u64, String)>)>,
    calls: u64,
}

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Seen>>,
    addr: SocketAddr,
    /// Entries whose seq is a multiple of this fail (partial failure); 0: none.
    fail_every: u64,
    /// Every n-th call is throttled; 0: none.
    throttle_every: u64,
}

async fn handle(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = |v: Value| {
        (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.0")],
            v.to_string(),
        )
            .into_response()
    };
    match target {
        "AmazonSQS.GetQueueUrl" => reply(json!({
            "QueueUrl": format!("http://{}/000000000000/{}", stub.addr, input["QueueName"].as_str().unwrap_or("q"))
        })),
        "AmazonSQS.SendMessageBatch" => {
            let t = now_ms();
            let call = {
                let mut seen = stub.seen.lock();
                seen.calls += 1;
                seen.calls
            };
            if stub.throttle_every > 0 && call.is_multiple_of(stub.throttle_every) {
                return (
                    StatusCode::BAD_REQUEST,
                    [
                        ("content-type", "application/x-amz-json-1.0"),
                        ("x-amzn-query-error", "RequestThrottled;Sender"),
                    ],
                    json!({"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Request is throttled."}).to_string(),
                )
                    .into_response();
            }
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            let mut entries = Vec::new();
            for e in input["Entries"].as_array().cloned().unwrap_or_default() {
                let body = e["MessageBody"].as_str().unwrap_or_default().to_owned();
                let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let seq = parsed["seq"].as_u64().unwrap_or(u64::MAX);
                let id = e["MessageAttributes"]["shakedown-id"]["StringValue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if stub.fail_every > 0 && seq.is_multiple_of(stub.fail_every) {
                    failed.push(json!({"Id": e["Id"], "SenderFault": true, "Code": "InvalidMessageContents", "Message": "no"}));
                } else {
                    ok.push(json!({
                        "Id": e["Id"],
                        "MessageId": format!("m-{seq}"),
                        "MD5OfMessageBody": shakedown::sandbox::sqs::digest::md5_hex(body.as_bytes()),
                    }));
                }
                entries.push((seq, id));
            }
            stub.seen.lock().batches.push((t, entries));
            reply(json!({"Successful": ok, "Failed": failed}))
        }
        other => (StatusCode::BAD_REQUEST, format!("unexpected {other}")).into_response(),
    }
}

async fn start_stub(fail_every: u64, throttle_every: u64) -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub = Stub {
        seen: Arc::default(),
        addr: listener.local_addr().unwrap(),
        fail_every,
        throttle_every,
    };
    let app = Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(stub.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    stub
}

fn profile(dir: &std::path::Path, rate: &str, secs: u32) -> std::path::PathBuf {
    let p = dir.join("sqs.toml");
    std::fs::write(
        &p,
        format!(
            r#"name = "sqs"
seed = 5
[[stream]]
name = "orders"
kind = "event"
transport = "sqs"
queue = "orders"
body = {{ template = '{{"seq":{{seq}},"id":"{{id}}"}}' }}
arrival = "poisson"
stages = [ {{ for = "{secs}s", rate = "{rate}" }} ]
"#
        ),
    )
    .unwrap();
    p
}

/// Runs `shakedown load` against the stub; returns run.json.
async fn load(stub: &Stub, profile: &std::path::Path, results: &std::path::Path) -> Value {
    let endpoint = format!("http://{}", stub.addr);
    let (profile, dir) = (profile.to_owned(), results.to_owned());
    let mut command = shakedown();
    command
        .args([
            "load",
            "-q",
            "--run-id",
            "r",
            "--region",
            "us-east-1",
            "--sqs-endpoint",
        ])
        .arg(&endpoint)
        .arg("--results")
        .arg(&dir)
        .arg(&profile);
    let out = cli::output(command).await;
    let text = cli::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    serde_json::from_str(&std::fs::read_to_string(results.join("r/run.json")).unwrap()).unwrap()
}

fn errors(meta: &Value) -> BTreeMap<String, u64> {
    meta["summary"][0]["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_follow_the_schedule_in_batches_of_at_most_ten() {
    let stub = start_stub(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let meta = load(
        &stub,
        &profile(dir.path(), "800/s", 3),
        &dir.path().join("res"),
    )
    .await;
    let seen = stub.seen.lock();
    let all: Vec<u64> = seen
        .batches
        .iter()
        .flat_map(|(_, e)| e.iter().map(|(s, _)| *s))
        .collect();
    // Every scheduled message once, each with its id attribute.
    let scheduled = meta["profile"]["streams"][0]["scheduled"].as_f64().unwrap();
    assert!(
        (all.len() as f64 - scheduled).abs() <= 1.0 + scheduled * 0.1,
        "{} vs {scheduled}",
        all.len()
    );
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "a message was sent twice");
    let run_tag = meta["run_tag"].as_str().unwrap();
    for (_, entries) in &seen.batches {
        for (seq, id) in entries {
            assert_eq!(id, &format!("{run_tag}-0-{seq}"));
        }
    }
    // Batches: never more than 10, and at 800/s some carry several messages.
    let sizes: Vec<usize> = seen.batches.iter().map(|(_, e)| e.len()).collect();
    assert!(sizes.iter().all(|&n| (1..=10).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "{sizes:?}");
    // Never before its intended time: recompute the schedule from profile + seed.
    let started: chrono::DateTime<chrono::Utc> =
        meta["started_at"].as_str().unwrap().parse().unwrap();
    let start_ms = started.timestamp_millis() as u64;
    let stages = vec![shakedown::config::profile::Stage {
        duration: Duration::from_secs(3),
        from: 800.0,
        to: 800.0,
    }];
    let seed = shakedown::schedule::derive_seed(meta["seed"].as_u64().unwrap(), &[0]);
    let intended: BTreeMap<u64, u64> = shakedown::schedule::Schedule::new(
        &stages,
        shakedown::config::profile::Arrival::Poisson,
        seed,
        shakedown::schedule::Segment::ALL,
    )
    .map(|a| (a.seq, a.at.as_millis() as u64))
    .collect();
    for (t, entries) in &seen.batches {
        for (seq, _) in entries {
            // run.json's start is taken a moment before the run's clock starts: 5 ms slack.
            assert!(
                *t + 5 >= start_ms + intended[seq],
                "message {seq} arrived at +{} ms, due at +{} ms",
                t - start_ms,
                intended[seq]
            );
        }
    }
    assert_eq!(meta["summary"][0]["ok"].as_u64().unwrap(), all.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batch_failures_are_rejected_and_throttling_is_throttled() {
    let stub = start_stub(5, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let meta = load(
        &stub,
        &profile(dir.path(), "200/s", 3),
        &dir.path().join("res"),
    )
    .await;
    let seen = stub.seen.lock();
    let delivered: Vec<u64> = seen
        .batches
        .iter()
        .flat_map(|(_, e)| e.iter().map(|(s, _)| *s))
        .collect();
    let rejected = delivered.iter().filter(|s| s.is_multiple_of(5)).count() as u64;
    let errs = errors(&meta);
    assert_eq!(
        errs.get("rejected").copied().unwrap_or(0),
        rejected,
        "{errs:?}"
    );
    assert!(errs.get("throttled").copied().unwrap_or(0) > 0, "{errs:?}");
    let sent = meta["summary"][0]["sent"].as_u64().unwrap();
    let ok = meta["summary"][0]["ok"].as_u64().unwrap();
    assert_eq!(ok, delivered.len() as u64 - rejected);
    assert_eq!(
        ok + errs.values().sum::<u64>(),
        sent,
        "every message sent has one outcome: {meta}"
    );
}

#[test]
fn an_unknown_queue_is_an_error_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), "10/s", 1);
    // Nothing listens on port 9: the queue cannot be resolved.
    let out = shakedown()
        .args([
            "load",
            "-q",
            "--region",
            "us-east-1",
            "--sqs-endpoint",
            "http://127.0.0.1:9",
        ])
        .arg("--results")
        .arg(dir.path().join("res"))
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("stream `orders`: queue `orders`"), "{err}");
    assert!(!dir.path().join("res").exists());
}
