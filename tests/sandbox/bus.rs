//! The sandbox event bus end to end: HTTP in, deliveries to functions and (through a local
//! `moto_server`, when it is on PATH) to SQS queues, accounting out.
//!
//! Nothing here talks to anything but 127.0.0.1.

use crate::support::moto::Moto;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shakedown::sandbox::bus::{
    Bus, BusConfig, BusStats, Completion, Event, FunctionSpec, PublishError, RetryPolicy, Rule,
    Target,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A bus served on a free port, with its completion feed.
struct Running {
    bus: Arc<Bus>,
    base: String,
    completions: mpsc::UnboundedReceiver<Completion>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn start(config: BusConfig) -> Running {
    let (tx, completions) = mpsc::unbounded_channel();
    let bus = Bus::new(
        config,
        Arc::new(move |c| {
            let _ = tx.send(c);
        }),
    )
    .expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let bus = bus.clone();
        async move {
            bus.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    Running {
        bus,
        base,
        completions,
        stop: Some(stop),
        server,
    }
}

impl Running {
    /// Stops the server and waits for `serve` to return (it drains first).
    async fn stop(&mut self) -> Duration {
        let t = Instant::now();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("serve returns after shutdown")
            .expect("server task")
            .expect("serve ok");
        t.elapsed()
    }

    async fn idle(&self) {
        assert!(
            self.bus.wait_idle(Duration::from_secs(15)).await,
            "deliveries still in flight: {:?}",
            self.bus.stats()
        );
    }

    fn drain_completions(&mut self) -> Vec<Completion> {
        let mut out = Vec::new();
        while let Ok(c) = self.completions.try_recv() {
            out.push(c);
        }
        out
    }
}

fn http() -> reqwest::Client {
    shakedown::tls::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs a plain event; returns its id.
async fn post_event(base: &str, id: &str, source: &str, detail_type: &str) -> String {
    let r = http()
        .post(format!("{base}/events"))
        .header("x-shakedown-id", id)
        .json(&json!({"source": source, "detail-type": detail_type, "detail": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "POST /events {id}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], id);
    id.to_string()
}

fn function(name: &str, base_ms: u64) -> FunctionSpec {
    FunctionSpec::new(name, Duration::from_millis(base_ms))
}

fn rule(name: &str, source: &[&str], dt: &[&str], targets: Vec<Target>) -> Rule {
    Rule {
        name: name.into(),
        source: source.iter().map(|s| s.to_string()).collect(),
        detail_type: dt.iter().map(|s| s.to_string()).collect(),
        targets,
    }
}

fn to_fn(name: &str) -> Target {
    Target::Function { name: name.into() }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        max_event_age: Duration::from_secs(20),
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rules_route_by_source_and_detail_type() {
    let mut run = start(BusConfig {
        rules: vec![
            rule("placed", &["shop"], &["Placed"], vec![to_fn("billing")]),
            rule("shop-all", &["shop"], &[], vec![to_fn("audit")]),
            rule("refunds", &[], &["Refund"], vec![to_fn("refunder")]),
        ],
        functions: vec![
            function("billing", 5),
            function("audit", 5),
            function("refunder", 5),
        ],
        ..BusConfig::default()
    })
    .await;
    let base = run.base.clone();
    post_event(&base, "e1", "shop", "Placed").await;
    post_event(&base, "e2", "shop", "Cancelled").await;
    post_event(&base, "e3", "bank", "Refund").await;
    post_event(&base, "e4", "bank", "Placed").await;
    post_event(&base, "e5", "shop", "Refund").await;
    run.idle().await;

    let got: BTreeSet<(String, String)> = run
        .drain_completions()
        .into_iter()
        .map(|c| {
            assert!(c.ok && c.attempt == 1 && c.done_ms >= c.started_ms, "{c:?}");
            (c.event_id, c.function)
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("e1", "billing"),
        ("e1", "audit"),
        ("e2", "audit"),
        ("e3", "refunder"),
        ("e5", "audit"),
        ("e5", "refunder"),
    ]
    .iter()
    .map(|(e, f)| (e.to_string(), f.to_string()))
    .collect();
    assert_eq!(got, want);

    let s = run.bus.stats();
    assert_eq!((s.accepted, s.unmatched, s.rejected), (5, 1, 0));
    assert_eq!((s.delivered, s.failed_deliveries, s.in_flight), (6, 0, 0));
    let per_rule: BTreeMap<&str, (u64, u64, u64)> = s
        .rules
        .iter()
        .map(|(k, r)| (k.as_str(), (r.matched, r.delivered, r.failed)))
        .collect();
    assert_eq!(per_rule["placed"], (1, 1, 0));
    assert_eq!(per_rule["shop-all"], (3, 3, 0));
    assert_eq!(per_rule["refunds"], (2, 2, 0));
    assert_eq!(s.functions["audit"].invocations, 3);
    assert_eq!(s.functions["billing"].invocations, 1);
    run.stop().await;
}

#[tokio::test]
async fn malformed_events_are_refused_and_counted() {
    let mut run = start(BusConfig::default()).await;
    let client = http();
    for body in [
        "not json",
        r#"{"detail-type":"T"}"#,
        r#"{"Source":"s","DetailType":"T","Detail":"{oops"}"#,
    ] {
        let r = client
            .post(format!("{}/events", run.base))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    // Accepted but matching no rule (there are none): counted as unmatched, id generated.
    let r = client
        .post(format!("{}/events", run.base))
        .body(r#"{"source":"s","detail-type":"T"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"].as_str().unwrap().len(), 36);
    assert_eq!(v["deliveries"], 0);
    let s = run.bus.stats();
    assert_eq!((s.accepted, s.rejected, s.unmatched), (1, 3, 1));
    run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Functions: concurrency, throttles, cold starts, billing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn function_accounting_under_a_burst() {
    const N: usize = 20;
    const MEMORY: u32 = 256;
    let mut spec = function("resize", 30);
    spec.memory_mb = MEMORY;
    spec.reserved_concurrency = Some(2);
    spec.cold_start = Duration::from_millis(20);
    let mut run = start(BusConfig {
        rules: vec![rule("images", &["uploads"], &[], vec![to_fn("resize")])],
        functions: vec![spec],
        retry: fast_retries(),
        ..BusConfig::default()
    })
    .await;
    // The burst: N concurrent producers.
    let posts: Vec<_> = (0..N)
        .map(|i| {
            let base = run.base.clone();
            tokio::spawn(
                async move { post_event(&base, &format!("img-{i}"), "uploads", "Put").await },
            )
        })
        .collect();
    for p in posts {
        p.await.unwrap();
    }
    run.idle().await;

    let s = run.bus.stats();
    let f = &s.functions["resize"];
    assert_eq!(f.invocations, N as u64, "{f:?}");
    assert_eq!((f.succeeded, f.errors, f.aborted), (N as u64, 0, 0));
    assert_eq!(f.max_concurrent, 2, "{f:?}");
    assert!(
        f.throttles > 0,
        "a burst of {N} over 2 slots must throttle: {f:?}"
    );
    // Two slots were ever needed, and they stayed warm (keep_warm 5m).
    assert_eq!((f.cold_starts, f.warm_starts), (2, N as u64 - 2));
    assert_eq!((f.concurrent, f.warm_slots, f.expired_slots), (0, 2, 0));
    assert!(f.init_ms >= 2 * 20, "{f:?}");
    let expected = N as f64 * 0.030 * f64::from(MEMORY) / 1024.0;
    assert!(
        (f.gb_seconds - expected).abs() <= 0.10 * expected,
        "GB-s {} vs expected {expected}",
        f.gb_seconds
    );
    // No jitter: each invocation bills exactly its modelled 30 ms.
    assert_eq!(f.billed_ms, N as u64 * 30, "{f:?}");
    assert_eq!(s.rules["images"].delivered, N as u64);
    assert_eq!(s.retries, 0, "throttles are not failed attempts");

    // One completion per invocation, exactly two of them cold, and never more than two
    // handlers overlapping in time.
    let completions = run.drain_completions();
    assert_eq!(completions.len(), N);
    assert_eq!(completions.iter().filter(|c| c.cold).count(), 2);
    let ids: BTreeSet<_> = completions.iter().map(|c| c.event_id.clone()).collect();
    assert_eq!(ids.len(), N);
    for p in &completions {
        let overlapping = completions
            .iter()
            .filter(|c| c.started_ms <= p.started_ms && p.started_ms < c.done_ms)
            .count();
        assert!(
            overlapping <= 2,
            "{overlapping} handlers running at {}",
            p.started_ms
        );
    }

    // The same numbers over HTTP.
    let over_http: Value = http()
        .get(format!("{}/stats", run.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fs = &over_http["functions"]["resize"];
    assert_eq!(fs["invocations"], N);
    assert_eq!(fs["max_concurrent"], 2);
    assert_eq!(fs["throttles"], f.throttles);
    assert_eq!(fs["billed_ms"], f.billed_ms);
    assert_eq!(over_http["rules"]["images"]["matched"], N);
    run.stop().await;
}

#[tokio::test]
async fn idle_slots_expire_and_the_next_invocation_is_cold() {
    let mut spec = function("tick", 5);
    spec.keep_warm = Duration::from_millis(80);
    spec.cold_start = Duration::from_millis(10);
    let mut run = start(BusConfig {
        rules: vec![rule("all", &[], &[], vec![to_fn("tick")])],
        functions: vec![spec],
        ..BusConfig::default()
    })
    .await;
    let base = run.base.clone();
    post_event(&base, "a", "s", "T").await;
    run.idle().await;
    post_event(&base, "b", "s", "T").await; // right after: warm
    run.idle().await;
    assert_eq!(run.bus.stats().functions["tick"].warm_slots, 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Nothing held while idle.
    let f = &run.bus.stats().functions["tick"];
    assert_eq!((f.warm_slots, f.concurrent), (0, 0));
    post_event(&base, "c", "s", "T").await;
    run.idle().await;
    let f = &run.bus.stats().functions["tick"];
    assert_eq!((f.invocations, f.cold_starts, f.expired_slots), (3, 2, 1));
    let cold: Vec<_> = run
        .drain_completions()
        .into_iter()
        .map(|c| (c.event_id, c.cold))
        .collect();
    assert_eq!(
        cold,
        vec![("a".into(), true), ("b".into(), false), ("c".into(), true)]
    );
    run.stop().await;
}

#[tokio::test]
async fn failing_function_is_retried_then_counted_failed() {
    let mut spec = function("flaky", 2);
    spec.error_rate = 1.0;
    let mut run = start(BusConfig {
        rules: vec![rule("r", &[], &[], vec![to_fn("flaky")])],
        functions: vec![spec],
        retry: fast_retries(),
        ..BusConfig::default()
    })
    .await;
    post_event(&run.base.clone(), "x", "s", "T").await;
    run.idle().await;
    let s = run.bus.stats();
    let f = &s.functions["flaky"];
    assert_eq!((f.invocations, f.errors, f.succeeded), (3, 3, 0));
    assert_eq!(s.retries, 2);
    assert_eq!((s.rules["r"].delivered, s.rules["r"].failed), (0, 1));
    assert_eq!(s.failed_deliveries, 1);
    let attempts: Vec<_> = run
        .drain_completions()
        .into_iter()
        .map(|c| (c.ok, c.attempt))
        .collect();
    assert_eq!(attempts, vec![(false, 1), (false, 2), (false, 3)]);
    run.stop().await;
}

#[tokio::test]
async fn disabled_function_fails_deliveries_once_the_event_is_too_old() {
    let mut spec = function("off", 1);
    spec.reserved_concurrency = Some(0);
    let mut run = start(BusConfig {
        rules: vec![rule("r", &[], &[], vec![to_fn("off")])],
        functions: vec![spec],
        retry: RetryPolicy {
            max_event_age: Duration::from_millis(300),
            ..fast_retries()
        },
        ..BusConfig::default()
    })
    .await;
    post_event(&run.base.clone(), "x", "s", "T").await;
    run.idle().await;
    let s = run.bus.stats();
    let f = &s.functions["off"];
    assert_eq!(f.invocations, 0);
    assert!(f.throttles >= 2, "{f:?}");
    assert_eq!(s.rules["r"].failed, 1);
    assert!(run.drain_completions().is_empty());
    run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_finishes_in_flight_invocations() {
    let mut run = start(BusConfig {
        rules: vec![rule("r", &[], &[], vec![to_fn("slow")])],
        functions: vec![function("slow", 200)],
        ..BusConfig::default()
    })
    .await;
    let base = run.base.clone();
    for i in 0..3 {
        post_event(&base, &format!("s{i}"), "s", "T").await;
    }
    run.stop().await;
    let s = run.bus.stats();
    assert_eq!(
        (s.functions["slow"].succeeded, s.abandoned, s.in_flight),
        (3, 0, 0)
    );
    assert_eq!(run.drain_completions().len(), 3);
    // Stopped means stopped: the port no longer answers and publishing is refused.
    assert!(http().get(format!("{base}/stats")).send().await.is_err());
    let late = Event::parse(
        br#"{"source":"s","detail-type":"T"}"#,
        None,
        chrono::Utc::now(),
    )
    .unwrap();
    assert_eq!(run.bus.publish(late), Err(PublishError::Closed));
}

#[tokio::test]
async fn shutdown_abandons_what_outlives_the_drain_deadline() {
    let mut run = start(BusConfig {
        rules: vec![rule("r", &[], &[], vec![to_fn("glacial")])],
        functions: vec![function("glacial", 5_000)],
        drain_timeout: Duration::from_millis(100),
        ..BusConfig::default()
    })
    .await;
    post_event(&run.base.clone(), "g", "s", "T").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let took = run.stop().await;
    assert!(
        took < Duration::from_secs(2),
        "drain deadline not honoured: {took:?}"
    );
    let s = run.bus.stats();
    let f = &s.functions["glacial"];
    assert_eq!(
        (s.abandoned, f.aborted, f.concurrent, f.succeeded),
        (1, 1, 0, 0)
    );
    assert!(run.drain_completions().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The EventBridge JSON protocol
// ---------------------------------------------------------------------------------------------

async fn put_events(base: &str, target: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/"))
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/x-amz-json-1.1",
        "AWS JSON content type"
    );
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn put_events_speaks_the_eventbridge_shape() {
    let mut run = start(BusConfig {
        rules: vec![rule("orders", &["shop"], &["Placed"], vec![to_fn("f")])],
        functions: vec![function("f", 1)],
        ..BusConfig::default()
    })
    .await;
    let base = run.base.clone();
    let (status, body) = put_events(
        &base,
        "AWSEvents.PutEvents",
        json!({"Entries": [
            {"Source": "shop", "DetailType": "Placed", "Detail": "{\"order\":7}"},
            {"Source": "shop", "DetailType": "Placed", "Detail": "{broken"},
            {"Source": "bank", "DetailType": "Placed", "Detail": "{}"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["FailedEntryCount"], 1);
    let entries = body["Entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let first = entries[0]["EventId"].as_str().unwrap().to_string();
    assert!(entries[0].get("ErrorCode").is_none());
    assert_eq!(entries[1]["ErrorCode"], "MalformedDetail");
    assert!(entries[1]["ErrorMessage"].is_string());
    assert!(entries[2]["EventId"].is_string());
    run.idle().await;
    let done = run.drain_completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].event_id, first);
    let s = run.bus.stats();
    assert_eq!((s.accepted, s.rejected, s.unmatched), (2, 1, 1));

    let (status, body) = put_events(&base, "AWSEvents.ListRules", json!({})).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"Source": "s", "DetailType": "T", "Detail": "{}"}))
        .collect();
    let (status, body) = put_events(&base, "AWSEvents.PutEvents", json!({"Entries": eleven})).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Queues, through moto_server
// ---------------------------------------------------------------------------------------------

/// Every message body on the queue (received and deleted), waiting until `want` arrived or
/// a few empty polls in a row.
async fn drain_queue(c: &aws_sdk_sqs::Client, url: &str, want: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    let mut empty = 0;
    for _ in 0..20 {
        let r = c
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(if bodies.len() >= want { 0 } else { 1 })
            .send()
            .await
            .expect("receive");
        let msgs = r.messages();
        if msgs.is_empty() {
            empty += 1;
            if bodies.len() >= want || empty >= 3 {
                break;
            }
            continue;
        }
        for m in msgs {
            bodies.push(serde_json::from_str(m.body().unwrap()).expect("JSON body"));
            c.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
    bodies
}

#[tokio::test]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn queue_targets_receive_matching_events_via_sqs() {
    let moto = Moto::start().await;
    let client = crate::support::aws::sqs(&moto.endpoint);
    let mut urls = BTreeMap::new();
    for name in ["jobs", "audit"] {
        let r = client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue");
        urls.insert(name, r.queue_url().unwrap().to_string());
    }
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let mut run = start(BusConfig {
        rules: vec![
            rule(
                "jobs",
                &["uploads"],
                &["Put"],
                vec![Target::Queue {
                    queue_url: urls["jobs"].clone(),
                }],
            ),
            rule(
                "audit",
                &[],
                &["Delete"],
                vec![Target::Queue {
                    queue_url: urls["audit"].clone(),
                }],
            ),
            rule(
                "broken",
                &["broken"],
                &[],
                vec![Target::Queue { queue_url: missing }],
            ),
        ],
        sqs_endpoint: Some(moto.endpoint.clone()),
        retry: fast_retries(),
        ..BusConfig::default()
    })
    .await;
    let base = run.base.clone();
    for i in 0..3 {
        post_event(&base, &format!("put-{i}"), "uploads", "Put").await;
    }
    post_event(&base, "del-0", "uploads", "Delete").await;
    post_event(&base, "other", "cron", "Tick").await;
    post_event(&base, "lost", "broken", "X").await;
    run.idle().await;

    let jobs = drain_queue(&client, &urls["jobs"], 3).await;
    let ids: BTreeSet<&str> = jobs.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["put-0", "put-1", "put-2"]));
    let one = &jobs[0];
    assert_eq!(one["source"], "uploads");
    assert_eq!(one["detail-type"], "Put");
    assert_eq!(one["detail"], json!({"n": 1}));
    assert_eq!(one["version"], "0");
    let audit = drain_queue(&client, &urls["audit"], 1).await;
    let ids: Vec<&str> = audit.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["del-0"]);

    let s: BusStats = run.bus.stats();
    assert_eq!((s.rules["jobs"].matched, s.rules["jobs"].delivered), (3, 3));
    assert_eq!(
        (s.rules["audit"].matched, s.rules["audit"].delivered),
        (1, 1)
    );
    assert_eq!(
        (s.rules["broken"].delivered, s.rules["broken"].failed),
        (0, 1)
    );
    assert_eq!((s.unmatched, s.failed_deliveries, s.retries), (1, 1, 2));
    run.stop().await;
    drop(moto);
}
