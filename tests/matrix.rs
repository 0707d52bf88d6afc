//! The analyzer must discriminate: short experiments (`shakedown run` from the CLI, the
//! real sandbox) on the reference architecture and on each broken variant. A promise that
//! passes on a broken variant is a bug in the analyzer (or in the variant); so is a promise
//! that fails where nothing broke it. So every row checks both: the promise the flaw breaks
//! fails, and the promises it leaves alone still pass (a variant that broke everything, or
//! an analyzer that failed everything, would not get through).
//!
//! | sandbox variant | failover | buffering | no-loss | scale-out | scale-in |
//! |---|---|---|---|---|---|
//! | queued | pass | pass | pass | pass | pass |
//! | queued, processing stall (control) | pass | pass | | | |
//! | tiered (no queue) | pass | not evaluable or fail | pass | | |
//! | monolith, processing stall | fail | fail | | | |
//! | no-health-checks | **fail** | fail (the dead instance still fails uploads during the stall) | pass | pass | pass |
//! | fixed-fleet | pass | pass | pass | | **fail** |
//! | fixed-fleet, sustained load | | | pass | **fail** | |
//! | ack-before-process, workers killed mid-job | | | **fail** (queued: pass) | | |
//! | lossy-queue | pass | **fail** (the queue does not absorb) | **fail** | pass | pass |
//! | queued, sustained load (control) | | | pass | pass | |
//! | capped-fleet, sustained load | | | pass | **fail** | |
//! | slow-scaler | pass | pass | pass | **fail** | pass |
//! | flapping | pass | pass | pass | pass | |
//! | queued, bursty load (control) | | | pass | | pass |
//! | flapping, bursty load | | | pass | | **fail** |
//!
//! Each run takes 20-80 s. Runs go at most [`MATRIX_JOBS`] at a time (default 1: about
//! 9 minutes for the whole matrix on a 2-core machine; two at a time starved each other's
//! harness on 2 cores, which turns the expected fails into not evaluable): each starts a
//! sandbox of several processes and the verdicts depend on timing; set it to 2 only on a
//! machine with cores to spare.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use support::cli::{shakedown, text};

/// Environment variable: how many matrix runs may go at once (default 1).
const MATRIX_JOBS: &str = "SHAKEDOWN_MATRIX_JOBS";

/// Runs in progress, and its condition variable.
static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A slot among the [`MATRIX_JOBS`] allowed; released on drop (also on a panic).
struct Slot;

impl Slot {
    fn take() -> Slot {
        let jobs: usize = std::env::var(MATRIX_JOBS)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        let (lock, cvar) = &RUNNING;
        let mut running = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= jobs {
            running = cvar.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (lock, cvar) = &RUNNING;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        cvar.notify_one();
    }
}

/// Runs `experiment` with `--arch arch`; returns the status of each promise by type
/// (`pass`, `fail`, `not-evaluable`) and the whole output for messages.
fn run(experiment: &str, arch: &str) -> (BTreeMap<String, String>, String) {
    let slot = Slot::take();
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = shakedown()
        .args([
            "run", experiment, "--arch", arch, "--quiet", "--run-id", "m",
        ])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    drop(slot);
    eprintln!(
        "matrix: {experiment} --arch {arch}: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let text = text(&out);
    let verdict = results.path().join("m/verdict.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&verdict).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
    .unwrap();
    let mut statuses = BTreeMap::new();
    for p in v["verdicts"].as_array().unwrap() {
        let status = p["status"].as_str().unwrap();
        let starved = status == "not-evaluable"
            && p["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("harness starved"));
        statuses.insert(
            p["type"].as_str().unwrap().to_owned(),
            if starved {
                STARVED.to_owned()
            } else {
                status.to_owned()
            },
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
    let again = shakedown()
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

/// Checks every promise's status at once, so that one failing run reports all that is
/// wrong with it, not only the first.
fn expect(statuses: &BTreeMap<String, String>, text: &str, wanted: &[(&str, &[&str])]) {
    let mut wrong = Vec::new();
    for (promise, allowed) in wanted {
        match statuses.get(*promise) {
            None => wrong.push(format!("no {promise} verdict")),
            // A timing fail on a starved harness is reported as not evaluable, by design:
            // the run could not judge it. The row still proves the flaw is not passed.
            Some(got) if got == STARVED && allowed.contains(&"fail") => {
                eprintln!("matrix: {promise} not judged (harness starved); expected fail");
            }
            Some(got) if got == STARVED && allowed.contains(&"not-evaluable") => {}
            Some(got) if !allowed.contains(&got.as_str()) => {
                wrong.push(format!("{promise}: {got}, expected one of {allowed:?}"))
            }
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}\n{text}", wrong.join("\n"));
}

/// The status kept for a verdict that is not evaluable because the harness was starved.
const STARVED: &str = "not-evaluable (harness starved)";

const QUICK: &str = "chaos/demo-quick.toml";
const PROCESSING_STALL: &str = "tests/experiments/processing-stall.toml";
const KILL_WORKER_MID_JOB: &str = "tests/experiments/kill-worker-mid-job.toml";
const SUSTAINED: &str = "tests/experiments/sustained-load.toml";
const BURSTY: &str = "tests/experiments/bursty-load.toml";

const PASS: &[&str] = &["pass"];
const FAIL: &[&str] = &["fail"];

#[test]
fn queued_keeps_every_promise() {
    let (s, text) = run(QUICK, "queued");
    expect(
        &s,
        &text,
        &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", PASS),
            ("scale-in", PASS),
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
            ("failover", PASS),
            ("buffering", &["not-evaluable", "fail"]),
            ("no-loss", PASS),
        ],
    );
}

#[test]
fn monolith_fails_under_a_processing_stall() {
    let (s, text) = run(PROCESSING_STALL, "monolith");
    expect(&s, &text, &[("failover", FAIL), ("buffering", FAIL)]);
}

/// The control for the monolith row: the same stall on the queued architecture (where it
/// stalls the web tier's processes for 6 s, as in the monolith) must not fail failover and
/// buffering by itself, or the monolith row proves nothing about the monolith.
#[test]
fn queued_passes_the_processing_stall_the_monolith_fails() {
    let (s, text) = run(PROCESSING_STALL, "queued");
    expect(&s, &text, &[("failover", PASS), ("buffering", PASS)]);
}

/// The dead web instance stays in rotation to the end of the run, so a third of the uploads
/// keep failing through the workers' stall too: buffering's first leg (producers keep
/// succeeding) fails for the same flaw, rightly.
#[test]
fn without_health_checks_failover_fails() {
    let (s, text) = run(QUICK, "no-health-checks");
    expect(
        &s,
        &text,
        &[
            ("failover", FAIL),
            ("buffering", FAIL),
            ("no-loss", PASS),
            ("scale-out", PASS),
            ("scale-in", PASS),
        ],
    );
}

/// The quick demo's burst is short enough for one worker to drain in about the time its
/// scale-out promise allows, so scale-out is judged on the sustained load (next test).
#[test]
fn a_fixed_fleet_buffers_and_loses_nothing_but_does_not_scale() {
    let (s, text) = run(QUICK, "fixed-fleet");
    expect(
        &s,
        &text,
        &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-in", FAIL),
        ],
    );
}

#[test]
fn a_fixed_fleet_does_not_scale_out_to_a_sustained_load() {
    let (s, text) = run(SUSTAINED, "fixed-fleet");
    expect(&s, &text, &[("no-loss", PASS), ("scale-out", FAIL)]);
}

#[test]
fn acknowledging_before_processing_loses_the_jobs_of_a_killed_worker() {
    let (s, text) = run(KILL_WORKER_MID_JOB, "queued");
    expect(&s, &text, &[("no-loss", PASS)]);
    let (s, text) = run(KILL_WORKER_MID_JOB, "ack-before-process");
    expect(&s, &text, &[("no-loss", FAIL)]);
}

/// A queue that drops what does not fit loses messages, and (capped at 100 messages) does
/// not absorb the stall's backlog either: buffering's depth leg fails too.
#[test]
fn a_lossy_queue_loses_messages() {
    let (s, text) = run(QUICK, "lossy-queue");
    expect(
        &s,
        &text,
        &[
            ("failover", PASS),
            ("buffering", FAIL),
            ("no-loss", FAIL),
            ("scale-out", PASS),
            ("scale-in", PASS),
        ],
    );
}

/// One worker at most, under a load that needs three for 20 s: the backlog grows for the
/// whole stage and no breach is answered. (demo-quick's burst is too short to tell: one
/// worker drains it in about the time its promise allows.)
#[test]
fn a_capped_fleet_does_not_scale_out_to_the_backlog() {
    let (s, text) = run(SUSTAINED, "capped-fleet");
    expect(&s, &text, &[("no-loss", PASS), ("scale-out", FAIL)]);
}

/// The control: the same load on the queued fleet, which grows to it within seconds.
#[test]
fn queued_scales_out_to_a_sustained_load() {
    let (s, text) = run(SUSTAINED, "queued");
    expect(&s, &text, &[("no-loss", PASS), ("scale-out", PASS)]);
}

/// Workers that boot for 45 s, where the experiment allows 25 s for scale-out.
#[test]
fn a_slow_scaler_does_not_scale_out_in_time() {
    let (s, text) = run(QUICK, "slow-scaler");
    expect(
        &s,
        &text,
        &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", FAIL),
            ("scale-in", PASS),
        ],
    );
}

/// No cooldowns: the fleet follows every burst and gap of the load (about 15 direction
/// changes a minute, where the queued control makes 3). The quick demo's four phases are
/// too few to tell them apart with margin, so there only the other promises are checked.
#[test]
fn a_fleet_without_cooldowns_flaps() {
    let (s, text) = run(BURSTY, "flapping");
    expect(&s, &text, &[("no-loss", PASS), ("scale-in", FAIL)]);
    let (s, text) = run(QUICK, "flapping");
    expect(
        &s,
        &text,
        &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", PASS),
        ],
    );
}

/// The control: the same bursts on the queued fleet, whose cooldowns ride through the gaps.
#[test]
fn queued_rides_through_bursts_without_flapping() {
    let (s, text) = run(BURSTY, "queued");
    expect(&s, &text, &[("no-loss", PASS), ("scale-in", PASS)]);
}

#[test]
fn the_matrix_experiments_exist() {
    for f in [
        QUICK,
        PROCESSING_STALL,
        KILL_WORKER_MID_JOB,
        SUSTAINED,
        BURSTY,
    ] {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(f).is_file(),
            "{f}"
        );
    }
}
