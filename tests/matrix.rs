//! The analyzer must discriminate: short experiments (`shakedown run` from the CLI, the
//! real sandbox) on the reference architecture and on each broken variant. A promise that
//! passes on a broken variant is a bug in the analyzer (or in the variant).
//!
//! | sandbox variant | failover | buffering | no-loss | scale-out | scale-in |
//! |---|---|---|---|---|---|
//! | queued | pass | pass | pass | pass | pass |
//! | tiered (no queue) | pass | not evaluable or fail | - | - | - |
//! | monolith | fail under a processing stall | fail | - | - | - |
//! | no-health-checks | fail | - | - | - | - |
//! | fixed-fleet | - | pass | pass | fail | fail |
//! | ack-before-process | - | - | fail when a worker is killed mid-job | - | - |
//! | lossy-queue | - | - | fail | - | - |
//!
//! Each run takes 15-45 s; the runs are serialized (a lock), as each starts a sandbox of
//! several processes and the verdicts depend on timing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `experiment` with `--arch arch`; returns the status of each promise by type
/// (`pass`, `fail`, `not-evaluable`) and the whole output for messages.
fn run(experiment: &str, arch: &str) -> (BTreeMap<String, String>, String) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "run", experiment, "--arch", arch, "--quiet", "--run-id", "m",
        ])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = results.path().join("m/verdict.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&verdict).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
    .unwrap();
    let mut statuses = BTreeMap::new();
    for p in v["verdicts"].as_array().unwrap() {
        statuses.insert(
            p["type"].as_str().unwrap().to_owned(),
            p["status"].as_str().unwrap().to_owned(),
        );
    }
    // The exit code agrees with the verdicts.
    let expected = if statuses.values().all(|s| s == "pass") {
        0
    } else {
        1
    };
    assert_eq!(out.status.code(), Some(expected), "{text}");
    // The files are enough to recompute the same verdicts offline.
    let again = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(["analyze"])
        .arg(results.path().join("m"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(expected));
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&verdict).unwrap()).unwrap();
    assert_eq!(
        v["verdicts"], v2["verdicts"],
        "analyze recomputed other verdicts"
    );
    (statuses, text)
}

fn expect(statuses: &BTreeMap<String, String>, text: &str, wanted: &[(&str, &[&str])]) {
    for (promise, allowed) in wanted {
        let got = statuses
            .get(*promise)
            .unwrap_or_else(|| panic!("no {promise} verdict:\n{text}"));
        assert!(
            allowed.contains(&got.as_str()),
            "{promise}: {got}, expected one of {allowed:?}\n{text}"
        );
    }
}

const QUICK: &str = "chaos/demo-quick.toml";

#[test]
fn queued_keeps_every_promise() {
    let (s, text) = run(QUICK, "queued");
    expect(
        &s,
        &text,
        &[
            ("failover", &["pass"]),
            ("buffering", &["pass"]),
            ("no-loss", &["pass"]),
            ("scale-out", &["pass"]),
            ("scale-in", &["pass"]),
        ],
    );
}

#[test]
fn tiered_fails_over_but_cannot_buffer() {
    let (s, text) = run(QUICK, "tiered");
    expect(
        &s,
        &text,
        &[
            ("failover", &["pass"]),
            ("buffering", &["not-evaluable", "fail"]),
        ],
    );
}

#[test]
fn monolith_fails_under_a_processing_stall() {
    let (s, text) = run("tests/experiments/processing-stall.toml", "monolith");
    expect(
        &s,
        &text,
        &[("failover", &["fail"]), ("buffering", &["fail"])],
    );
}

#[test]
fn without_health_checks_failover_fails() {
    let (s, text) = run(QUICK, "no-health-checks");
    expect(&s, &text, &[("failover", &["fail"])]);
}

#[test]
fn a_fixed_fleet_buffers_and_loses_nothing_but_does_not_scale() {
    let (s, text) = run(QUICK, "fixed-fleet");
    expect(
        &s,
        &text,
        &[
            ("buffering", &["pass"]),
            ("no-loss", &["pass"]),
            ("scale-out", &["fail"]),
            ("scale-in", &["fail"]),
        ],
    );
}

#[test]
fn acknowledging_before_processing_loses_the_jobs_of_a_killed_worker() {
    let exp = "tests/experiments/kill-worker-mid-job.toml";
    let (s, text) = run(exp, "queued");
    expect(&s, &text, &[("no-loss", &["pass"])]);
    let (s, text) = run(exp, "ack-before-process");
    expect(&s, &text, &[("no-loss", &["fail"])]);
}

#[test]
fn a_lossy_queue_loses_messages() {
    let (s, text) = run(QUICK, "lossy-queue");
    expect(&s, &text, &[("no-loss", &["fail"])]);
}

#[test]
fn the_matrix_experiments_exist() {
    for f in [
        QUICK,
        "tests/experiments/processing-stall.toml",
        "tests/experiments/kill-worker-mid-job.toml",
    ] {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(f).is_file(),
            "{f}"
        );
    }
}
