//! The message ledger: completion sources against an in-test server shaped like the
//! sandbox completion feed and the embedded SQS endpoint, the summary (lost, duplicates,
//! end-to-end latency on a synthetic schedule), memory of a million accepted ids, and the
//! files round-tripping. Nothing here talks to anything but 127.0.0.1.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::json;
use shakedown::aws::{AwsTarget, QueueRef, aws_clients};
use shakedown::config::profile;
use shakedown::ledger::ids::{AcceptedIds, IdFormat};
use shakedown::ledger::source::{
    CompletionSource, CompletionSourceSpec, FeedSpec, SqsDoneSpec, drain_dlq, run_completions,
};
use shakedown::ledger::summary::{
    CompletionRecord, IntendedTimes, Outcome, SummaryInput, summarize,
};
use shakedown::ledger::writer::{
    load_accepted, read_completions, read_summary, run_accepted_spill, write_summary,
};
use shakedown::sandbox::sqs::{QueueSettings, SqsConfig, SqsService};
use shakedown::schedule::{Schedule, Segment, derive_seed};
use tokio_util::sync::CancellationToken;

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

/// Records served as the sandbox feed serves them: `seq` from 1, pages of at most 10.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<Vec<serde_json::Value>>>);

impl Feed {
    fn push(&self, job_id: &str, done_ms: u64) {
        let mut all = self.0.lock();
        let seq = all.len() as u64 + 1;
        all.push(json!({
            "seq": seq, "job_id": job_id, "message_id": "", "receive_count": 1,
            "received_ms": done_ms - 5, "started_ms": done_ms - 3, "done_ms": done_ms,
            "worker": "i-0123"
        }));
    }
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn completions(State(feed): State<Feed>, Query(q): Query<Page>) -> (HeaderMap, String) {
    let all = feed.0.lock();
    let limit = q.limit.unwrap_or(1000).min(10);
    let mut body = String::new();
    for r in all
        .iter()
        .filter(|r| r["seq"].as_u64().unwrap() > q.after)
        .take(limit)
    {
        body.push_str(&r.to_string());
        body.push('\n');
    }
    let mut headers = HeaderMap::new();
    headers.insert("x-shakedown-next-seq", (all.len() as u64 + 1).into());
    headers.insert("x-shakedown-dropped", 0u64.into());
    (headers, body)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_source_pages_and_the_summary_finds_a_lost_id_and_a_duplicate() {
    let feed = Feed::default();
    let app = axum::Router::new()
        .route("/completions", get(completions))
        .with_state(feed.clone());
    let (l, url) = listener().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(l, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });

    let ids = IdFormat::new("feedrun");
    let accepted = AcceptedIds::new(1);
    for seq in 0..30 {
        accepted.accept_at(0, seq, 1_000).unwrap();
    }
    // 25 records before the poller starts (three pages of at most 10), the rest during.
    for seq in 0..25 {
        feed.push(&ids.format(0, seq), 2_000);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("completions.jsonl");
    let spec: CompletionSourceSpec =
        toml::from_str(&format!("kind = \"sandbox-feed\"\nurl = \"{url}\"\n")).unwrap();
    assert_eq!(
        spec,
        CompletionSourceSpec::SandboxFeed(FeedSpec { url: url.clone() })
    );
    let source = CompletionSource::new(
        &spec,
        None,
        &shakedown::tls::client_builder().build().unwrap(),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let poller = tokio::spawn(run_completions(
        source,
        path.clone(),
        Duration::from_millis(100),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 25..30 {
        if seq != 27 {
            feed.push(&ids.format(0, seq), 2_000);
        }
    }
    feed.push(&ids.format(0, 3), 2_500); // redelivered and done twice
    feed.push("someone-else-0-1", 2_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let stats = tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (stats.records, stats.errors, stats.missed),
        (31, 0, 0),
        "{stats:?}"
    );

    let records = read_completions(&path).unwrap();
    assert_eq!(records.len(), 31);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == Outcome::Completed && r.receive_count == 1)
    );
    let names = names(1);
    let input = SummaryInput {
        accepted: &accepted,
        ids: &ids,
        stream_names: &names,
        still_queued: Some(0),
        queued_ids: None,
    };
    let (summary, _) = summarize(input, records, None);
    assert_eq!(
        (
            summary.accepted,
            summary.completed,
            summary.missing,
            summary.lost
        ),
        (30, 29, 1, 1)
    );
    assert_eq!(summary.missing_sample, ["feedrun-0-27"]);
    assert_eq!((summary.duplicates, summary.duplicate_completions), (1, 1));
    assert_eq!(summary.duplicate_sample, ["feedrun-0-3"]);
    assert_eq!(summary.foreign_sample, ["someone-else-0-1"]);
    assert_eq!(summary.latency.origin, None);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_done_queue_and_dlq_drain_classify_messages_and_empty_the_queues() {
    let sqs = SqsService::new(SqsConfig::default());
    let done = sqs.create_queue("done", QueueSettings::default()).unwrap();
    let dlq = sqs.create_queue("dlq", QueueSettings::default()).unwrap();
    let (l, url) = listener().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(sqs.clone().serve(l, async move { s.cancelled().await }));
    let client = aws_clients(&AwsTarget::local(&url)).await.unwrap().sqs;
    for seq in 0..15u64 {
        let body =
            json!({ "id": format!("r-0-{seq}"), "done_ms": 5_000 + seq, "receive_count": 2 });
        client
            .send_message()
            .queue_url(&done)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    client
        .send_message()
        .queue_url(&done)
        .message_body("not json")
        .send()
        .await
        .unwrap();
    for seq in 15..18u64 {
        let body =
            json!({ "id": format!("r-0-{seq}"), "size": 10, "received_ms": 1, "kind": "upload" });
        client
            .send_message()
            .queue_url(&dlq)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }

    let spec = CompletionSourceSpec::Sqs(SqsDoneSpec {
        queue: QueueRef::Plain("done".into()),
        id_pointer: "/id".into(),
        done_pointer: Some("/done_ms".into()),
    });
    assert!(
        CompletionSource::new(
            &spec,
            None,
            &shakedown::tls::client_builder().build().unwrap()
        )
        .is_err(),
        "an SQS source needs a client"
    );
    let source = CompletionSource::new(
        &spec,
        Some(&client),
        &shakedown::tls::client_builder().build().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("completions.jsonl");
    let cancel = CancellationToken::new();
    cancel.cancel(); // one poll (until a receive comes back empty), then return
    let stats = run_completions(source, path.clone(), Duration::from_millis(100), cancel)
        .await
        .unwrap();
    assert_eq!((stats.records, stats.unreadable), (15, 1), "{stats:?}");
    let mut records = read_completions(&path).unwrap();
    records.sort_by_key(|r| r.done_ms);
    assert_eq!(
        records[0],
        CompletionRecord {
            id: "r-0-0".into(),
            done_ms: 5_000,
            outcome: Outcome::Completed,
            receive_count: 2
        }
    );

    let (dead, dstats) = drain_dlq(
        &client,
        &QueueRef::Plain(dlq.clone()),
        "/id",
        1_000,
        Instant::now() + Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(dstats.records, 3);
    assert!(dead.iter().all(|r| r.outcome == Outcome::DeadLettered
        && r.receive_count == 1
        && r.done_ms > 1_600_000_000_000));
    let mut dead_ids: Vec<_> = dead.iter().map(|r| r.id.as_str()).collect();
    dead_ids.sort();
    assert_eq!(dead_ids, ["r-0-15", "r-0-16", "r-0-17"]);
    for q in ["done", "dlq"] {
        let st = sqs.stats(q).unwrap();
        assert_eq!((st.visible, st.in_flight), (0, 0), "queue {q} emptied");
    }

    let ids = IdFormat::new("r");
    let accepted = AcceptedIds::new(1);
    for seq in 0..20 {
        accepted.accept_at(0, seq, 1_000).unwrap();
    }
    records.extend(dead);
    let names = names(1);
    let input = SummaryInput {
        accepted: &accepted,
        ids: &ids,
        stream_names: &names,
        still_queued: Some(2),
        queued_ids: None,
    };
    let (s, _) = summarize(input, records, None);
    assert_eq!(
        (s.completed, s.dead_lettered, s.missing, s.lost),
        (15, 3, 2, 0)
    );
    stop.cancel();
}

const PROFILE: &str = r#"
name = "synthetic"
[[stream]]
name = "steady"
kind = "upload"
request = { method = "PUT", path = "/upload/{id}" }
size = { dist = "fixed", size = "1KiB" }
arrival = "uniform"
stages = [ { for = "10s", rate = "100/s" } ]
[[stream]]
name = "bursty"
kind = "upload"
request = { method = "PUT", path = "/upload/{id}" }
size = { dist = "fixed", size = "1KiB" }
arrival = "poisson"
stages = [ { for = "20s", from = "10/s", to = "400/s" } ]
"#;

#[test]
fn e2e_latency_is_measured_from_the_intended_send_time() {
    let profile = profile::parse(PROFILE, Path::new("synthetic.toml")).unwrap();
    let seed = 7;
    let start_ms = 1_700_000_000_000;
    let ids = IdFormat::new("lat");
    let accepted = AcceptedIds::new(2);
    let mut records = Vec::new();
    // Uniform at 100/s: arrival k is intended at (k + 0.5) * 10 ms; every job takes 250 ms
    // from its intended time, whatever time it was accepted.
    for seq in 0..1000u64 {
        accepted.accept_at(0, seq, start_ms + 999_999).unwrap();
        let intended = start_ms + (seq * 10 + 5);
        records.push(CompletionRecord {
            id: ids.format(0, seq),
            done_ms: intended + 250,
            outcome: Outcome::Completed,
            receive_count: 1,
        });
    }
    let mut times = IntendedTimes::new(&profile, seed, start_ms);
    let stream = &profile.streams[0];
    let (s, h) = summarize(
        SummaryInput {
            accepted: &accepted,
            ids: &ids,
            stream_names: std::slice::from_ref(&stream.name),
            still_queued: None,
            queued_ids: None,
        },
        records,
        Some(&mut times),
    );
    assert_eq!(s.latency.origin.as_deref(), Some("intended"));
    assert_eq!(s.latency.count, 1000);
    assert!(
        (249..=251).contains(&h.min()) && (249..=251).contains(&h.max()),
        "{}..{}",
        h.min(),
        h.max()
    );
    assert_eq!(s.latency.negative, 0);

    // Poisson stream, looked up in scrambled order across checkpoint blocks: the same times
    // as walking the driver's schedule.
    let bursty = &profile.streams[1];
    let expected: Vec<Duration> = Schedule::new(
        &bursty.stages,
        bursty.arrival,
        derive_seed(seed, &[1]),
        Segment::ALL,
    )
    .map(|a| a.at)
    .collect();
    assert!(expected.len() > 3000, "{}", expected.len());
    let mut times = IntendedTimes::new(&profile, seed, start_ms);
    let n = expected.len() as u64;
    for i in 0..n {
        let seq = (i * 2_654_435_761) % n;
        assert_eq!(
            times.offset(1, seq),
            Some(expected[seq as usize]),
            "seq {seq}"
        );
    }
    assert_eq!(times.offset(1, n), None, "past the end of the schedule");
    assert_eq!(times.offset(2, 0), None, "no such stream");
}

#[test]
fn a_million_accepted_ids_take_under_1_6_bits_each() {
    let accepted = AcceptedIds::new(1);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let accepted = &accepted;
            scope.spawn(move || {
                for i in 0..250_000u64 {
                    accepted.accept_at(0, i * 4 + t, 0).unwrap();
                }
            });
        }
    });
    assert_eq!(accepted.len(), 1_000_000);
    let bytes = accepted.allocated_bytes();
    // 1M bits = 125 000 bytes of chunks, plus fixed directories.
    assert!(bytes < 200_000, "{bytes} bytes for 1M ids");

    // The summary over them stays bitsets too: a million completions, one lost.
    let ids = IdFormat::new("m");
    let records = (0..1_000_000u64)
        .filter(|&s| s != 123_456)
        .map(|seq| CompletionRecord {
            id: ids.format(0, seq),
            done_ms: 1,
            outcome: Outcome::Completed,
            receive_count: 1,
        });
    let names = names(1);
    let (s, _) = summarize(
        SummaryInput {
            accepted: &accepted,
            ids: &ids,
            stream_names: &names,
            still_queued: Some(0),
            queued_ids: None,
        },
        records,
        None,
    );
    assert_eq!((s.completed, s.lost), (999_999, 1));
    assert_eq!(s.missing_sample, ["m-0-123456"]);
}

// Paused time: the spill task's one-second tick comes at once, and always before the
// test's 1.1 s sleep ends.
#[tokio::test(start_paused = true)]
async fn files_round_trip_to_the_same_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ids = IdFormat::new("rt");
    let names = names(2);
    let accepted = Arc::new(AcceptedIds::with_spill(2));
    let cancel = CancellationToken::new();
    let accepted_path = dir.path().join("accepted.jsonl");
    let spill = tokio::spawn(run_accepted_spill(
        accepted.clone(),
        accepted_path.clone(),
        ids.clone(),
        names.clone(),
        cancel.clone(),
    ));
    let mut records = Vec::new();
    for seq in 0..500u64 {
        let stream = (seq % 2) as usize;
        accepted.accept_at(stream, seq, 10_000 + seq).unwrap();
        if seq % 7 != 0 {
            records.push(CompletionRecord {
                id: ids.format(stream, seq),
                done_ms: 10_100 + seq,
                outcome: Outcome::Completed,
                receive_count: 1,
            });
        }
        if seq == 250 {
            tokio::time::sleep(Duration::from_millis(1100)).await; // let one spill happen
        }
    }
    cancel.cancel();
    assert_eq!(spill.await.unwrap().unwrap(), 500);
    let first = std::fs::read_to_string(&accepted_path).unwrap();
    let line: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(
        line,
        json!({ "id": "rt-0-0", "stream": "s0", "t_ms": 10_000 })
    );

    let completions_path = dir.path().join("completions.jsonl");
    let mut w = shakedown::results::jsonl::JsonLinesWriter::append(&completions_path).unwrap();
    w.write_all(&records).unwrap();

    let live_input = SummaryInput {
        accepted: &accepted,
        ids: &ids,
        stream_names: &names,
        still_queued: Some(3),
        queued_ids: None,
    };
    let (_, times) = load_accepted(&accepted_path, &ids, 2).unwrap();
    let mut live_times = times.clone();
    let (live, _) = summarize(live_input, records, Some(&mut live_times));
    assert_eq!(live.latency.p99_ms, Some(100));
    let ledger_path = dir.path().join("ledger.json");
    write_summary(&ledger_path, &live).unwrap();
    assert_eq!(read_summary(&ledger_path).unwrap(), live);

    // Offline: only the files.
    let (offline_accepted, mut offline_times) = load_accepted(&accepted_path, &ids, 2).unwrap();
    let offline_records = read_completions(&completions_path).unwrap();
    let input = SummaryInput {
        accepted: &offline_accepted,
        ids: &ids,
        stream_names: &names,
        still_queued: Some(3),
        queued_ids: None,
    };
    let (offline, _) = summarize(input, offline_records, Some(&mut offline_times));
    assert_eq!(offline, live);
    assert_eq!(offline.missing, 72);
    assert_eq!(offline.lost, 69);
}
