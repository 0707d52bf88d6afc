//! The real binary as a process: signals, exit codes, memory.

mod support;

use std::process::Stdio;
use std::time::Duration;

use shakedown::results::{RunMeta, RunStatus};
use support::cli::shakedown;
use support::target::{self, Behaviour};
use support::wait::wait_exit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_sending_flushes_results_and_exits_2() {
    let (addr, _) = target::http_server(Behaviour::Ok).await;
    let results = tempfile::tempdir().unwrap();
    let mut child = shakedown()
        .args([
            "load",
            "--quiet",
            "--run-id",
            "t",
            "--rate",
            "100/s",
            "--duration",
            "60s",
        ])
        .arg("--target")
        .arg(format!("http://{addr}"))
        .arg("--results")
        .arg(results.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(2), "an interrupted load exits 2");

    let dir = results.path().join("t");
    let meta: RunMeta =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta.status, RunStatus::Interrupted);
    let s = &meta.summary[0];
    assert!(
        (200..=300).contains(&s.sent),
        "sent {} in ~2.5 s at 100/s",
        s.sent
    );
    assert_eq!(
        s.ok, s.sent,
        "in-flight requests finished during the grace period"
    );
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let sent: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        sent, s.sent,
        "the timeline holds every second up to the stop"
    );
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let out = shakedown()
        .args(["load", "--target", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing to send"), "{stderr}");

    let out = shakedown()
        .args([
            "load",
            "--target",
            "ftp://x",
            "--rate",
            "1/s",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://"));
}

/// Bodies are streamed from one shared buffer: 20 concurrent 16 MiB uploads
/// (640 MiB in all) must not cost anything like 20 x 16 MiB of memory.
/// (The full-scale figure, 50 x 100 MiB, is in BENCHMARKS.md: bench/load.sh.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_memory_does_not_grow_with_body_size_times_concurrency() {
    let (addr, seen) = target::http_server(Behaviour::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("big.toml");
    std::fs::write(
        &profile,
        r#"name = "big"
[[stream]]
name = "videos"
kind = "upload"
size = { dist = "fixed", size = "16MiB" }
stages = [ { for = "10s", rate = "4/s" } ]
"#,
    )
    .unwrap();
    let mut child = shakedown()
        .args([
            "load",
            "--quiet",
            "--run-id",
            "t",
            "--concurrency",
            "20",
            "--requests",
            "40",
        ])
        .arg(&profile)
        .arg("--target")
        .arg(format!("http://{addr}"))
        .arg("--results")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(60)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        seen.body_bytes.load(std::sync::atomic::Ordering::Relaxed),
        40 * 16 * 1024 * 1024
    );
    // The process's own high-water mark (VmHWM), recorded in run.json: unlike
    // the rusage of a child, it cannot include memory of the forking test process.
    let meta: RunMeta =
        serde_json::from_slice(&std::fs::read(dir.path().join("t/run.json")).unwrap()).unwrap();
    let rss_kib = meta.peak_rss_kib.expect("peak RSS recorded") as i64;
    let rss_mib = rss_kib / 1024;
    eprintln!("peak RSS for 20 x 16 MiB concurrent uploads: {rss_mib} MiB");
    assert!(
        rss_mib < 120,
        "peak RSS {rss_mib} MiB: bodies are being buffered"
    );
}

#[test]
fn validate_reports_every_error_with_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[[stream]]\nname = \"a\"\nkind = \"uplaod\"\nstages = [ { for = \"0s\", rate = \"fast\" } ]\n").unwrap();
    let out = shakedown().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.toml:4:8",
        "did you mean `upload`",
        "bad.toml:5:20",
        "bad.toml:5:33",
        "like `400/s`",
        "3 errors in",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    // Commands that read a profile print the same diagnostics, each `error:` once.
    let out = shakedown()
        .args(["load", "--target", "http://127.0.0.1:9"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:4:8"), "{stderr}");
    assert!(!stderr.contains("error: error"), "{stderr}");
    assert_eq!(stderr.matches("error: ").count(), 3, "{stderr}");

    let out = shakedown()
        .args(["validate", "profiles/uploads.toml", "profiles/events.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("ok: ").count(),
        2
    );
}

/// `load --sandbox`: the embedded sandbox is started, loaded through its
/// balancer (uploads are queued: 202) and stopped again, in one command.
#[test]
fn load_against_the_embedded_sandbox_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("tiny.toml");
    std::fs::write(
        &profile,
        "name = \"tiny\"\n[[stream]]\nname = \"photos\"\nkind = \"upload\"\nsize = { dist = \"fixed\", size = \"16KiB\" }\nstages = [ { for = \"2s\", rate = \"25/s\" } ]\n",
    )
    .unwrap();
    let mut child = shakedown()
        .args(["load", "--quiet", "--run-id", "t"])
        .arg(&profile)
        .arg("--sandbox")
        .arg("--results")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("sandbox up (arch queued)"), "{out}");
    assert!(out.contains("sandbox scaling activity"), "{out}");
    let meta: RunMeta =
        serde_json::from_slice(&std::fs::read(dir.path().join("t/run.json")).unwrap()).unwrap();
    assert_eq!((meta.summary[0].sent, meta.summary[0].ok), (50, 50));
}
