//! The `load` command end to end, in-process through the real CLI parser,
//! against local targets that misbehave on purpose.

mod support;

#[path = "load/https.rs"]
mod https;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use clap::Parser;
use shakedown::cli::{Cli, Command};
use shakedown::cmd::Outcome;
use shakedown::metrics::StreamSummary;
use shakedown::results::{RunMeta, RunStatus};
use support::target::{self, Behaviour};

/// Runs `shakedown load <args> --quiet` into a fresh results dir; returns
/// the outcome, run.json and the run directory.
async fn load(args: &[&str]) -> (Outcome, RunMeta, PathBuf, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let mut argv = vec!["shakedown", "load", "--quiet", "--run-id", "t", "--results"];
    let root = results.path().to_str().unwrap().to_string();
    argv.push(&root);
    argv.extend_from_slice(args);
    let Command::Load(load_args) = Cli::try_parse_from(&argv).unwrap().command else {
        unreachable!()
    };
    let outcome = shakedown::cmd::load::load(*load_args, vec![])
        .await
        .expect("load runs");
    let dir = results.path().join("t");
    let meta = read_meta(&dir);
    (outcome, meta, dir, results)
}

fn read_meta(dir: &Path) -> RunMeta {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

fn only(meta: &RunMeta) -> &StreamSummary {
    assert_eq!(meta.summary.len(), 1);
    &meta.summary[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_is_classified_refused() {
    let addr = target::refused_addr().await;
    let url = format!("http://{addr}");
    let (outcome, meta, ..) = load(&["--target", &url, "--rate", "20/s", "--duration", "1s"]).await;
    assert_eq!(outcome, Outcome::Ok);
    let s = only(&meta);
    assert_eq!(s.sent, 20);
    assert_eq!(s.errors.get("refused"), Some(&20), "{:?}", s.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_is_classified_reset() {
    let addr = target::resetting_server().await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&["--target", &url, "--rate", "20/s", "--duration", "1s"]).await;
    let s = only(&meta);
    assert_eq!(s.errors.get("reset"), Some(&20), "{:?}", s.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_server_times_out() {
    let addr = target::hanging_server().await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&[
        "--target",
        &url,
        "--rate",
        "10/s",
        "--duration",
        "1s",
        "--timeout",
        "300ms",
    ])
    .await;
    let s = only(&meta);
    assert_eq!(s.errors.get("timeout"), Some(&10), "{:?}", s.errors);
    assert_eq!(s.ok, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_503_is_classified_5xx_with_latency() {
    let (addr, seen) = target::http_server(Behaviour::Unavailable).await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&["--target", &url, "--rate", "50/s", "--duration", "1s"]).await;
    let s = only(&meta);
    assert_eq!(s.errors.get("5xx"), Some(&50), "{:?}", s.errors);
    assert_eq!(
        s.latency_ms.count, 50,
        "responses with an error status still have a latency"
    );
    assert_eq!(
        seen.with_id_header.load(Ordering::Relaxed),
        50,
        "every request carries its id"
    );
}

/// One connection, a server that stalls 1 s every 2 s: requests queue behind
/// the stall. Latency from the intended time must show the stall; service
/// time must not (only the one request held by the server saw it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinated_omission_is_corrected() {
    let (addr, _) = target::http_server(Behaviour::Stalls {
        every: Duration::from_secs(2),
        stall: Duration::from_secs(1),
    })
    .await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&[
        "--target",
        &url,
        "--rate",
        "100/s",
        "--duration",
        "5s",
        "--max-in-flight",
        "1",
        "--max-lateness",
        "10s",
    ])
    .await;
    let s = only(&meta);
    assert_eq!(s.dropped, 0);
    assert!(
        s.latency_ms.p99 >= 900.0,
        "corrected p99 {} ms should show the 1 s stall",
        s.latency_ms.p99
    );
    assert!(
        s.service_time_ms.p99 < 500.0,
        "uncorrected p99 {} ms should not",
        s.service_time_ms.p99
    );
    assert!(
        s.late >= 50,
        "sends queued behind the stall count as late: {}",
        s.late
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_that_cannot_start_in_time_are_dropped_and_counted() {
    let (addr, _) = target::http_server(Behaviour::Stalls {
        every: Duration::from_millis(500),
        stall: Duration::from_secs(1),
    })
    .await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&[
        "--target",
        &url,
        "--rate",
        "100/s",
        "--duration",
        "2s",
        "--max-in-flight",
        "1",
        "--max-lateness",
        "200ms",
    ])
    .await;
    let s = only(&meta);
    assert!(s.dropped > 20, "dropped {}", s.dropped);
    assert_eq!(s.intended, 200);
    assert_eq!(
        s.sent + s.dropped,
        s.intended,
        "every arrival is sent or counted dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_sends_exactly_the_requested_count() {
    let (addr, seen) = target::http_server(Behaviour::Ok).await;
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&["--target", &url, "--concurrency", "4", "--requests", "500"]).await;
    let s = only(&meta);
    assert_eq!((s.sent, s.ok), (500, 500));
    assert_eq!(seen.requests.load(Ordering::Relaxed), 500);
    assert_eq!(meta.mode.model, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_files_are_complete_and_agree_after_a_normal_end() {
    let (addr, _) = target::http_server(Behaviour::Ok).await;
    let url = format!("http://{addr}");
    let (_, meta, dir, _keep) =
        load(&["--target", &url, "--rate", "200/s", "--duration", "3s"]).await;
    assert_eq!(meta.status, RunStatus::Completed);
    assert!(meta.ended_at.is_some());
    let s = only(&meta);
    assert_eq!((s.intended, s.sent, s.ok), (600, 600, 600));

    // timeline.csv: contiguous seconds, the same totals as run.json.
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 3, "{} rows", rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), header.len());
        assert_eq!(r[col("second")].parse::<usize>().unwrap(), i);
    }
    let sum = |name: &str| {
        rows.iter()
            .map(|r| r[col(name)].parse::<u64>().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("sent"), 600);
    assert_eq!(sum("ok"), 600);
    assert_eq!(sum("intended"), 600);

    // latency.hlog: readable by an HdrHistogram log reader, same count.
    let log = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut deserializer = hdrhistogram::serialization::Deserializer::new();
    let mut count = 0;
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = item.unwrap()
            && h.tag().map(|t| t.as_str()) == Some("get")
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .unwrap();
            let hist: hdrhistogram::Histogram<u64> =
                deserializer.deserialize(&mut bytes.as_slice()).unwrap();
            count += hist.len();
        }
    }
    assert_eq!(count, 600);
}

/// A shipped profile end to end: both streams, generated bodies, ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_with_uploads_and_events_sends_both_streams() {
    let (addr, seen) = target::http_server(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("mix.toml");
    std::fs::write(
        &profile,
        r#"name = "mix"
seed = 7
[[stream]]
name = "photos"
kind = "upload"
size = { dist = "fixed", size = "64KiB" }
stages = [ { for = "2s", rate = "20/s" } ]
[[stream]]
name = "clicks"
kind = "event"
arrival = "poisson"
body = { template = '{"id":"{id}","n":{rand_int:1:9}}' }
stages = [ { for = "1s", to = "100/s" }, { for = "1s", rate = "100/s" } ]
"#,
    )
    .unwrap();
    let url = format!("http://{addr}");
    let (_, meta, ..) = load(&[profile.to_str().unwrap(), "--target", &url]).await;
    assert_eq!(meta.seed, 7, "the profile's seed is used and recorded");
    let photos = meta.summary.iter().find(|s| s.stream == "photos").unwrap();
    let clicks = meta.summary.iter().find(|s| s.stream == "clicks").unwrap();
    assert_eq!(photos.ok, 40);
    assert_eq!(photos.bytes_sent, 40 * 64 * 1024);
    assert!(
        (120..=180).contains(&clicks.ok),
        "poisson around 150: {}",
        clicks.ok
    );
    let total = photos.ok + clicks.ok;
    assert_eq!(seen.requests.load(Ordering::Relaxed), total);
    assert_eq!(seen.with_id_header.load(Ordering::Relaxed), total);
}
