//! The EventBridge transport (`transport = "eventbridge"` streams) through the CLI: against a
//! stub that speaks PutEvents (AWS JSON 1.1) and records every call (entries, per-entry
//! failures, throttling), and end to end into the sandbox's event bus, whose functions
//! complete the events the ledger then balances by the ids in their details.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use support::cli::{self, shakedown};

/// One PutEvents entry as the stub saw it.
#[derive(Debug, Clone)]
struct Entry {
    bus: String,
    source: String,
    detail_type: String,
    detail: Value,
}

#[derive(Clone)]
struct Stub {
    calls: Arc<Mutex<Vec<Vec<Entry>>>>,
    addr: SocketAddr,
    /// Entries whose detail's seq is a multiple of this fail; 0: none.
    fail_every: u64,
    /// Every n-th call is throttled as a whole; 0: none.
    throttle_every: usize,
}

async fn handle(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let json_reply = |status: StatusCode, v: Value| {
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
            .into_response()
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"__type": "UnknownOperationException", "message": target}),
        );
    }
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = {
        let mut calls = stub.calls.lock();
        calls.push(Vec::new());
        calls.len()
    };
    if stub.throttle_every > 0 && call.is_multiple_of(stub.throttle_every) {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        );
    }
    let mut results = Vec::new();
    let mut failed = 0;
    let mut seen = Vec::new();
    for e in input["Entries"].as_array().cloned().unwrap_or_default() {
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        let detail: Value = serde_json::from_str(&text("Detail")).unwrap_or(Value::Null);
        let seq = detail["seq"].as_u64().unwrap_or(u64::MAX);
        if stub.fail_every > 0 && seq.is_multiple_of(stub.fail_every) {
            failed += 1;
            results.push(json!({"ErrorCode": "InternalFailure", "ErrorMessage": "no"}));
        } else {
            results.push(json!({"EventId": format!("e-{seq}")}));
        }
        seen.push(Entry {
            bus: text("EventBusName"),
            source: text("Source"),
            detail_type: text("DetailType"),
            detail,
        });
    }
    stub.calls.lock()[call - 1] = seen;
    json_reply(
        StatusCode::OK,
        json!({"FailedEntryCount": failed, "Entries": results}),
    )
}

async fn start_stub(fail_every: u64, throttle_every: usize) -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub = Stub {
        calls: Arc::default(),
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

const PROFILE: &str = r#"name = "eb"
seed = 5
[[stream]]
name = "orders"
kind = "event"
transport = "eventbridge"
bus = "shop"
source = "shop.checkout"
body = { template = '{"seq":{seq},"id":"{id}","total":{rand_int:1:99}}' }
arrival = "poisson"
stages = [ { for = "3s", rate = "300/s" } ]
"#;

/// `shakedown load` with the EventBridge endpoint at the stub; returns run.json.
async fn load(stub: &Stub, dir: &std::path::Path) -> Value {
    let profile = dir.join("eb.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let mut command = shakedown();
    command
        .args(["load", "-q", "--run-id", "r", "--region", "us-east-1"])
        .arg("--results")
        .arg(dir.join("res"))
        .arg(&profile)
        .env(
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            format!("http://{}", stub.addr),
        );
    let out = cli::output(command).await;
    let text = cli::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("res/r/run.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_to_the_bus_in_batches_with_their_ids_in_the_detail() {
    let stub = start_stub(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let meta = load(&stub, dir.path()).await;
    let calls = stub.calls.lock();
    let entries: Vec<&Entry> = calls.iter().flatten().collect();
    let run_tag = meta["run_tag"].as_str().unwrap();
    for e in &entries {
        assert_eq!(
            (e.bus.as_str(), e.source.as_str(), e.detail_type.as_str()),
            ("shop", "shop.checkout", "orders"),
            "the detail type defaults to the stream's name"
        );
        let seq = e.detail["seq"].as_u64().unwrap();
        assert_eq!(e.detail["id"], format!("{run_tag}-0-{seq}"));
    }
    let mut seqs: Vec<u64> = entries
        .iter()
        .map(|e| e.detail["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), entries.len(), "an event was sent twice");
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| (1..=10).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "{sizes:?}");
    let summary = &meta["summary"][0];
    assert_eq!(summary["ok"].as_u64().unwrap(), entries.len() as u64);
    assert_eq!(meta["profile"]["streams"][0]["transport"], "eventbridge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_entries_are_rejected_and_a_throttled_call_counts_each_event() {
    let stub = start_stub(5, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let meta = load(&stub, dir.path()).await;
    let calls = stub.calls.lock();
    let delivered: Vec<u64> = calls
        .iter()
        .flatten()
        .map(|e| e.detail["seq"].as_u64().unwrap())
        .collect();
    let rejected = delivered.iter().filter(|s| *s % 5 == 0).count() as u64;
    let summary = &meta["summary"][0];
    let errors = &summary["errors"];
    assert_eq!(
        errors["rejected"].as_u64().unwrap_or(0),
        rejected,
        "{summary}"
    );
    assert!(errors["throttled"].as_u64().unwrap_or(0) >= 1, "{summary}");
    assert_eq!(
        summary["ok"].as_u64().unwrap(),
        delivered.len() as u64 - rejected,
        "{summary}"
    );
}

/// `shakedown run` of `exp` into `<dir>/res/r`; the output and its text.
async fn run(dir: &std::path::Path, exp: &std::path::Path) -> (std::process::Output, String) {
    let mut command = shakedown();
    command
        .args(["run", "-q", "--run-id", "r", "--results"])
        .arg(dir.join("res"))
        .arg(exp);
    let out = cli::output(command).await;
    let text = cli::text(&out);
    (out, text)
}

/// Into the sandbox's bus (event-driven): the events' functions complete them, and the
/// ledger finds every accepted id among the completions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_put_on_the_sandbox_bus_are_completed_and_balanced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        PROFILE
            .replace("bus = \"shop\"\n", "")
            .replace("300/s", "50/s"),
    )
    .unwrap();
    let exp = dir.path().join("x.toml");
    std::fs::write(
        &exp,
        "name = \"eb\"\nprofile = \"p.toml\"\n[target.sandbox]\narch = \"event-driven\"\n\
         [[promise]]\ntype = \"no-loss\"\n[cooldown]\nmax = \"20s\"\n",
    )
    .unwrap();
    let (out, text) = run(dir.path(), &exp).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let ledger: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("res/r/ledger.json")).unwrap(),
    )
    .unwrap();
    let accepted = ledger["accepted"].as_u64().unwrap();
    assert!(accepted >= 100, "{ledger}");
    assert_eq!(ledger["completed"].as_u64().unwrap(), accepted, "{ledger}");
    assert!(text.contains("no-loss"), "{text}");
}

/// Against moto: events to an existing bus are accepted; to a bus that does not exist the
/// whole call fails, and every event of it counts as a 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_accepts_events_to_its_bus_and_refuses_a_missing_one() {
    let moto = support::moto::Moto::start().await;
    let clients = shakedown::aws::aws_clients(&support::moto::fixtures::target(
        &moto.endpoint,
        "us-east-1",
    ))
    .await
    .unwrap();
    clients
        .eventbridge
        .as_ref()
        .expect("a local target with endpoint_url has EventBridge")
        .create_event_bus()
        .name("shop")
        .send()
        .await
        .unwrap();
    let run = |bus: &str| {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("eb.toml");
        std::fs::write(
            &profile,
            PROFILE
                .replace("bus = \"shop\"", &format!("bus = \"{bus}\""))
                .replace("300/s", "30/s"),
        )
        .unwrap();
        let mut command = shakedown();
        command
            .args(["load", "-q", "--run-id", "r", "--region", "us-east-1"])
            .arg("--results")
            .arg(dir.path().join("res"))
            .arg(&profile)
            .env("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.endpoint);
        (dir, command)
    };
    for (bus, accepted) in [("shop", true), ("nope", false)] {
        let (dir, command) = run(bus);
        let out = cli::output(command).await;
        assert_eq!(out.status.code(), Some(0), "{}", cli::text(&out));
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("res/r/run.json")).unwrap(),
        )
        .unwrap();
        let summary = &meta["summary"][0];
        let sent = summary["sent"].as_u64().unwrap();
        assert!(sent >= 60, "{summary}");
        if accepted {
            assert_eq!(summary["ok"].as_u64().unwrap(), sent, "{summary}");
        } else {
            assert_eq!(summary["ok"].as_u64().unwrap(), 0, "{summary}");
            assert_eq!(
                summary["errors"]["4xx"].as_u64().unwrap(),
                sent,
                "{summary}"
            );
        }
    }
}

/// A sandbox without an event bus is refused before any traffic, with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_without_a_bus_refuses_eventbridge_streams_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), PROFILE.replace("300/s", "5/s")).unwrap();
    let exp = dir.path().join("x.toml");
    std::fs::write(
        &exp,
        "name = \"eb\"\nprofile = \"p.toml\"\n[target.sandbox]\narch = \"queued\"\n",
    )
    .unwrap();
    let (out, text) = run(dir.path(), &exp).await;
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("stream `orders` puts events on an EventBridge bus, and the sandbox (arch queued) runs none: use arch \"event-driven\""),
        "{text}"
    );
}
