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
//! | queued, workers killed mid-job (control) | | | pass | | |
//! | ack-before-process, workers killed mid-job | | | **fail** | | |
//! | lossy-queue | pass | **fail** (the queue does not absorb) | **fail** | pass | pass |
//! | queued, sustained load (control) | | | pass | pass | |
//! | capped-fleet, sustained load | | | pass | **fail** | |
//! | slow-scaler | pass | pass | pass | **fail** | pass |
//! | flapping | pass | pass | pass | pass | |
//! | queued, bursty load (control) | | | pass | | pass |
//! | flapping, bursty load | | | pass | | **fail** |
//!
//! The serverless rows (chaos/serverless*.toml: event-driven, a function consumer):
//!
//! | config | no-loss | threshold (e2e) | function | idle | cost |
//! |---|---|---|---|---|---|
//! | serverless | pass | pass | pass | pass | pass |
//! | provisioned concurrency (warm slots billing) | pass | pass | pass | **fail** | pass |
//! | reserved concurrency under the burst | pass | fail (retried throttles are late) | **fail** (throttles) | pass | pass |
//! The microservices rows (`chaos/microservices.toml`: `process` slow, then `store` slow;
//! `isolation` is the promise on the first fault, `isolation#2` on the second):
//!
//! | sandbox variant | isolation (slow process) | isolation#2 (slow store) | independent-scaling | no-loss |
//! |---|---|---|---|---|
//! | microservices | pass (or not evaluable: machine saturated, or a few slow requests within chance) | pass (same) | pass | pass |
//! | distributed-monolith | **fail** (uploads wait on process) | **fail** (spooled uploads wait on process writing to the slow store) | fail or pass (upload's in-flight requests grow with process's latency: the same coupling) | pass |
//! | shared-fleet | pass or fail (~18 processes on 2 cores slow each other; or not judged) | pass or fail (same) | **fail** (every group follows process's backlog) | pass |
//! | no-timeouts | pass (or not evaluable, as the reference row) | **fail** (manage waits on store) | pass | pass |
//!
//! Two more rows (module [`foreign`]) run experiments against a sandbox started as a system
//! of its own (`shakedown sandbox`), reached only through `[target]`: the queue-worker
//! promises without the sandbox's hooks, and `chaos/microservices.toml` with its faults as
//! `command` faults and its services found by their tags. One more (module [`sweep`]) runs
//! `chaos/serverless-sweep.toml`: a run per memory size, 128 MB too slow, 512 MB the cheapest
//! that meets the latency promise.
//!
//! Each run takes 20-120 s of real time, mostly waiting (the sandbox scales on its own
//! clock), so this is its own test harness (`harness = false`, libtest's command line via
//! `libtest-mimic`): rows run by weight within [`MATRIX_JOBS`] slots (default 5: five
//! queue-worker or serverless runs at once; a microservices run, ~18 processes, weighs
//! two), longest first, started at least 2 s apart ([`support::slots`]). That many fit on 2
//! cores (a quarter to a half of the machine's CPU) because the test build optimises the
//! dependencies (`[profile.dev.package."*"]` in Cargo.toml); with them unoptimised, even
//! two at once saturated the machine at times. Should the machine saturate anyway (six at
//! once, not staggered, did for a few seconds in one of two runs), the instances (niced)
//! starve, a healthy row's failover can fail for the machine's sake, and the analyzer
//! reports those timing verdicts not evaluable ("harness starved": the machine's CPU was
//! saturated). A row expecting a pass then runs once more with every slot to itself, as the
//! analyzer advises (a quieter machine); its second verdicts stand. A row expecting a fail
//! accepts that not evaluable (it says so on stderr): starvation only ever turns a fail
//! into not evaluable, so a pass on a broken variant is still caught.

mod support;

/// Runs against a sandbox started as a system of its own, reached only through `[target]`.
#[path = "matrix/foreign.rs"]
mod foreign;

/// A memory sweep from the CLI: one run per size, the cheapest size meeting the promise.
#[path = "matrix/sweep.rs"]
mod sweep;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::cli::{shakedown, text};
use support::slots::{self, Slots};

/// Environment variable: how many slots the matrix runs share (default 5; a queue-worker
/// or serverless run takes one, a microservices run two), unless `--test-threads` is given.
const MATRIX_JOBS: &str = "SHAKEDOWN_MATRIX_JOBS";

/// The number of slots unless [`MATRIX_JOBS`] or `--test-threads` says otherwise.
const DEFAULT_JOBS: usize = 5;

/// The number of slots, set once by `main`.
static JOBS: AtomicUsize = AtomicUsize::new(DEFAULT_JOBS);

/// The slots every run of this binary takes before it starts.
static SLOTS: Slots = Slots::new(|| JOBS.load(Ordering::Relaxed));

/// The slots a run of `experiment` takes: two for the microservices sandbox (five services,
/// ~18 processes), one for the others.
fn weight(experiment: &str) -> usize {
    if experiment == MICROSERVICES { 2 } else { 1 }
}

/// Runs `experiment` with `--arch arch`; returns the status of each promise by type
/// (`pass`, `fail`, `not-evaluable`) and the whole output for messages.
fn run(experiment: &str, arch: &str, weight: usize) -> (BTreeMap<String, String>, String) {
    let results = tempfile::tempdir().unwrap();
    let slot = SLOTS.take(weight);
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
        // A type's second promise is `type#2`, its third `type#3`, in file order.
        let kind = p["type"].as_str().unwrap();
        let key = (1..)
            .map(|n| {
                if n == 1 {
                    kind.to_owned()
                } else {
                    format!("{kind}#{n}")
                }
            })
            .find(|k| !statuses.contains_key(k))
            .unwrap();
        let status = p["status"].as_str().unwrap();
        let summary = p["summary"].as_str().unwrap_or_default();
        let status = match status {
            "not-evaluable" if summary.starts_with("harness starved") => STARVED,
            "not-evaluable" if summary.contains("but not significantly more than") => UNDECIDED,
            other => other,
        };
        statuses.insert(key, status.to_owned());
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
            Some(got) if !accepts(allowed, got) => {
                wrong.push(format!("{promise}: {got}, expected one of {allowed:?}"))
            }
            Some(got) if got == STARVED && allowed.contains(&"fail") => {
                eprintln!("matrix: {promise} not judged (harness starved); expected fail");
            }
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}\n{text}", wrong.join("\n"));
}

/// Whether a promise allowed `allowed` may have the status `got`. A timing fail on a starved
/// harness is reported as not evaluable, by design: the run could not judge it. So a
/// starved status is accepted where a fail (or a plain not evaluable) is: the row still
/// proves the flaw is not passed.
fn accepts(allowed: &[&str], got: &str) -> bool {
    allowed.contains(&got)
        || (got == STARVED && (allowed.contains(&"fail") || allowed.contains(&"not-evaluable")))
}

/// The promises a row wants judged (a pass) that a starved harness left not evaluable: the
/// run proves nothing about them either way.
fn starved_where_judged(
    statuses: &BTreeMap<String, String>,
    wanted: &[(&str, &[&str])],
) -> Vec<String> {
    wanted
        .iter()
        .filter(|(promise, allowed)| {
            statuses.get(*promise).is_some_and(|got| got == STARVED) && !accepts(allowed, STARVED)
        })
        .map(|(promise, _)| promise.to_string())
        .collect()
}

/// The status kept for a verdict that is not evaluable because the harness was starved.
const STARVED: &str = "not-evaluable (harness starved)";
/// The status kept for a verdict that is not evaluable because a share (slow responses,
/// errors) was over its limit by less than the window's chance (`analyze::stats`).
const UNDECIDED: &str = "not-evaluable (within chance)";

const QUICK: &str = "chaos/demo-quick.toml";
const PROCESSING_STALL: &str = "tests/experiments/processing-stall.toml";
const KILL_WORKER_MID_JOB: &str = "tests/experiments/kill-worker-mid-job.toml";
const SUSTAINED: &str = "tests/experiments/sustained-load.toml";
const BURSTY: &str = "tests/experiments/bursty-load.toml";
const SERVERLESS: &str = "chaos/serverless.toml";
const SERVERLESS_PROVISIONED: &str = "chaos/serverless-provisioned.toml";
const SERVERLESS_UNDER_RESERVED: &str = "chaos/serverless-under-reserved.toml";
const MICROSERVICES: &str = "chaos/microservices.toml";

const PASS: &[&str] = &["pass"];
/// A pass, or not evaluable because the machine was saturated or because a few slow
/// requests put the p99 over its limit by less than chance allows (a healthy service's
/// timeouts firing as a fault starts, on a busy machine).
const PASS_OR_UNDECIDED: &[&str] = &["pass", STARVED, UNDECIDED];
const FAIL: &[&str] = &["fail"];
/// Any judged verdict, or one not judged because the machine was saturated or the breach
/// was within chance (a plain not-evaluable, e.g. missing data, is still rejected): for a
/// promise a variant may breach as a knock-on of its flaw on a small machine.
const ANY_JUDGED_OR_UNDECIDED: &[&str] = &["pass", "fail", STARVED, UNDECIDED];

/// One row of the matrix: an experiment on an architecture, and what each promise must say.
struct Row {
    name: &'static str,
    experiment: &'static str,
    arch: &'static str,
    want: &'static [(&'static str, &'static [&'static str])],
}

/// The rows, longest first (so the last to start are the short ones); the two bursty rows
/// (one slot each) among the microservices rows (two each), so that the first slots are
/// all taken.
const ROWS: &[Row] = &[
    // Microservices: each service keeps its SLO while another is slow, and only process
    // scales on its backlog.
    Row {
        name: "microservices_are_isolated_and_scale_independently",
        experiment: MICROSERVICES,
        arch: "microservices",
        // Next to two other rows on 2 cores, this row's 4+ groups can saturate the machine
        // (seen in a full matrix run): the analyzer then refuses to judge, which is not a
        // pass but not a false fail either. And manage's 100 ms timeout on store fires for
        // the few listings in flight as slow-store starts: on a busy machine 5-10 of ~500
        // listings, a p99 over its limit by chance (CI, 2026-12-03, failed before
        // `analyze::stats`). Alone, it passes.
        want: &[
            ("isolation", PASS_OR_UNDECIDED),
            ("isolation#2", PASS_OR_UNDECIDED),
            ("independent-scaling", PASS),
            ("no-loss", PASS),
        ],
    },
    Row {
        name: "a_distributed_monolith_is_not_isolated",
        experiment: MICROSERVICES,
        arch: "distributed-monolith",
        want: &[
            ("isolation", FAIL),
            ("isolation#2", FAIL),
            // upload's requests in flight grow with process's latency, and upload scales on
            // them: the coupling may show here too.
            ("independent-scaling", &["fail", "pass"]),
            ("no-loss", PASS),
        ],
    },
    // The control for the next row: the same bursts on the queued fleet, whose cooldowns
    // ride through the gaps.
    Row {
        name: "queued_rides_through_bursts_without_flapping",
        experiment: BURSTY,
        arch: "queued",
        want: &[("no-loss", PASS), ("scale-in", PASS)],
    },
    // No cooldowns: the fleet follows every burst and gap of the load (about 15 direction
    // changes a minute, where the queued control makes 3).
    Row {
        name: "a_fleet_without_cooldowns_flaps_under_bursts",
        experiment: BURSTY,
        arch: "flapping",
        want: &[("no-loss", PASS), ("scale-in", FAIL)],
    },
    Row {
        name: "a_shared_fleet_does_not_scale_independently",
        experiment: MICROSERVICES,
        arch: "shared-fleet",
        // Every group scaled out at once is ~18 processes sharing the test machine's 2
        // cores. With other rows running, the harness starves too and the analyzer says
        // not evaluable. Alone on a quiet machine (2026-12-03), the over-scaled services
        // really slow each other (upload p99 83 ms against a 60 ms limit during
        // slow-process; manage 28% errors during slow-store): an isolation breach the
        // shared fleet causes on shared hardware, so a fail is a true verdict here too.
        // This row's discriminating promise is independent-scaling.
        want: &[
            ("isolation", ANY_JUDGED_OR_UNDECIDED),
            ("isolation#2", ANY_JUDGED_OR_UNDECIDED),
            ("independent-scaling", FAIL),
            ("no-loss", PASS),
        ],
    },
    Row {
        name: "manage_without_timeouts_is_not_isolated_from_a_slow_store",
        experiment: MICROSERVICES,
        arch: "no-timeouts",
        // Its first fault finds it as healthy as the reference row, and as busy: the same
        // few slow listings within chance can leave that promise not evaluable (CI,
        // 2026-12-04: 5 of 464 slow, all in one second).
        want: &[
            ("isolation", PASS_OR_UNDECIDED),
            ("isolation#2", FAIL),
            ("independent-scaling", PASS),
            ("no-loss", PASS),
        ],
    },
    // The quick demo's burst is short enough for one worker to drain in about the time its
    // scale-out promise allows, so scale-out is judged on the sustained load.
    Row {
        name: "a_fixed_fleet_buffers_and_loses_nothing_but_does_not_scale_in",
        experiment: QUICK,
        arch: "fixed-fleet",
        want: &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-in", FAIL),
        ],
    },
    // Workers that boot for 45 s, where the experiment allows 25 s for scale-out.
    Row {
        name: "a_slow_scaler_does_not_scale_out_in_time",
        experiment: QUICK,
        arch: "slow-scaler",
        want: &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", FAIL),
            ("scale-in", PASS),
        ],
    },
    // The quick demo's four phases are too few to tell flapping from the control with
    // margin, so here only the other promises are checked.
    Row {
        name: "a_fleet_without_cooldowns_keeps_the_other_promises",
        experiment: QUICK,
        arch: "flapping",
        want: &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", PASS),
        ],
    },
    Row {
        name: "a_fixed_fleet_does_not_scale_out_to_a_sustained_load",
        experiment: SUSTAINED,
        arch: "fixed-fleet",
        want: &[("no-loss", PASS), ("scale-out", FAIL)],
    },
    // One worker at most, under a load that needs three for 20 s: the backlog grows for the
    // whole stage and no breach is answered.
    Row {
        name: "a_capped_fleet_does_not_scale_out_to_the_backlog",
        experiment: SUSTAINED,
        arch: "capped-fleet",
        want: &[("no-loss", PASS), ("scale-out", FAIL)],
    },
    // Serverless: the function fleet scales to zero and stops billing after the load.
    Row {
        name: "serverless_keeps_every_promise_and_is_idle_at_zero",
        experiment: SERVERLESS,
        arch: "event-driven",
        want: &[
            ("no-loss", PASS),
            ("threshold", PASS),
            ("function", PASS),
            ("idle", PASS),
            ("cost", PASS),
        ],
    },
    // Ten provisioned slots bill every second, events or not: only idle catches it (the
    // run stays under its budget, and provisioned slots only make cold starts rarer).
    Row {
        name: "provisioned_concurrency_keeps_billing_at_idle",
        experiment: SERVERLESS_PROVISIONED,
        arch: "event-driven",
        want: &[
            ("no-loss", PASS),
            ("threshold", PASS),
            ("function", PASS),
            ("idle", FAIL),
            ("cost", PASS),
        ],
    },
    // Reserved concurrency under what the burst needs: throttled attempts, retried until
    // handled; the function promise's throttle check fails (and end-to-end latency with
    // it, rightly: not checked here), nothing is lost or left billing.
    Row {
        name: "reserved_concurrency_under_the_burst_throttles",
        experiment: SERVERLESS_UNDER_RESERVED,
        arch: "event-driven",
        want: &[
            ("no-loss", PASS),
            ("function", FAIL),
            ("idle", PASS),
            ("cost", PASS),
        ],
    },
    Row {
        name: "queued_keeps_every_promise",
        experiment: QUICK,
        arch: "queued",
        want: &[
            ("failover", PASS),
            ("buffering", PASS),
            ("no-loss", PASS),
            ("scale-out", PASS),
            ("scale-in", PASS),
        ],
    },
    // A queue that drops what does not fit loses messages, and (capped at 100 messages)
    // does not absorb the stall's backlog either: buffering's depth leg fails too.
    Row {
        name: "a_lossy_queue_loses_messages",
        experiment: QUICK,
        arch: "lossy-queue",
        want: &[
            ("failover", PASS),
            ("buffering", FAIL),
            ("no-loss", FAIL),
            ("scale-out", PASS),
            ("scale-in", PASS),
        ],
    },
    // The dead web instance stays in rotation to the end of the run, so a third of the
    // uploads keep failing through the workers' stall too: buffering's first leg (producers
    // keep succeeding) fails for the same flaw, rightly.
    Row {
        name: "without_health_checks_failover_fails",
        experiment: QUICK,
        arch: "no-health-checks",
        want: &[
            ("failover", FAIL),
            ("buffering", FAIL),
            ("no-loss", PASS),
            ("scale-out", PASS),
            ("scale-in", PASS),
        ],
    },
    // The control for the monolith row: the same stall on the queued architecture (where
    // it stalls the web tier's processes for 6 s, as in the monolith) must not fail
    // failover and buffering by itself, or the monolith row proves nothing.
    Row {
        name: "queued_passes_the_processing_stall_the_monolith_fails",
        experiment: PROCESSING_STALL,
        arch: "queued",
        want: &[("failover", PASS), ("buffering", PASS)],
    },
    // The control: the sustained load on the queued fleet, which grows to it within seconds.
    Row {
        name: "queued_scales_out_to_a_sustained_load",
        experiment: SUSTAINED,
        arch: "queued",
        want: &[("no-loss", PASS), ("scale-out", PASS)],
    },
    Row {
        name: "monolith_fails_under_a_processing_stall",
        experiment: PROCESSING_STALL,
        arch: "monolith",
        want: &[("failover", FAIL), ("buffering", FAIL)],
    },
    Row {
        name: "tiered_fails_over_but_cannot_buffer",
        experiment: QUICK,
        arch: "tiered",
        want: &[
            ("failover", PASS),
            ("buffering", &["not-evaluable", "fail"]),
            ("no-loss", PASS),
        ],
    },
    // The control for the next row: a worker killed mid-job on the queued fleet, whose
    // unacknowledged jobs come back.
    Row {
        name: "a_killed_worker_loses_nothing_when_jobs_are_acknowledged_after_processing",
        experiment: KILL_WORKER_MID_JOB,
        arch: "queued",
        want: &[("no-loss", PASS)],
    },
    Row {
        name: "acknowledging_before_processing_loses_the_jobs_of_a_killed_worker",
        experiment: KILL_WORKER_MID_JOB,
        arch: "ack-before-process",
        want: &[("no-loss", FAIL)],
    },
];

fn main() {
    let mut args = Arguments::from_args();
    // A thread per slot: a run waits in `SLOTS.take` for its weight, so a thread may wait
    // with its row while lighter rows behind it go.
    let jobs = args
        .test_threads
        .unwrap_or_else(|| slots::from_env(MATRIX_JOBS, DEFAULT_JOBS));
    JOBS.store(jobs, Ordering::Relaxed);
    args.test_threads = Some(SLOTS.capacity());
    let mut trials = vec![Trial::test("the_matrix_experiments_exist", || {
        for f in [
            QUICK,
            PROCESSING_STALL,
            KILL_WORKER_MID_JOB,
            SUSTAINED,
            BURSTY,
            SERVERLESS,
            SERVERLESS_PROVISIONED,
            SERVERLESS_UNDER_RESERVED,
            MICROSERVICES,
        ] {
            if !Path::new(env!("CARGO_MANIFEST_DIR")).join(f).is_file() {
                return Err(Failed::from(format!("{f} is missing")));
            }
        }
        Ok(())
    })];
    let mut rows: Vec<Trial> = ROWS
        .iter()
        .map(|row| {
            Trial::test(row.name, move || {
                let (mut s, mut text) = run(row.experiment, row.arch, weight(row.experiment));
                let starved = starved_where_judged(&s, row.want);
                if !starved.is_empty() {
                    // What the analyzer asks for: the run again on a quieter machine (all the
                    // slots: it goes alone), once.
                    eprintln!(
                        "matrix: {}: {} not judged (harness starved): running it again alone",
                        row.name,
                        starved.join(", ")
                    );
                    (s, text) = run(row.experiment, row.arch, SLOTS.capacity());
                }
                expect(&s, &text, row.want);
                Ok(())
            })
        })
        .collect();
    // A run of a module of its own, a test that panics on what is wrong.
    let whole = |name: String, test: fn()| {
        Trial::test(name, move || {
            test();
            Ok(())
        })
    };
    // Longest first: the foreign microservices run (as long) after the microservices rows.
    let after = ROWS
        .iter()
        .rposition(|row| row.experiment == MICROSERVICES)
        .map_or(0, |i| i + 1);
    let rest = rows.split_off(after);
    trials.extend(rows);
    trials.push(whole(
        "foreign::the_microservices_experiment_judges_a_foreign_system_found_by_its_tags".into(),
        foreign::the_microservices_experiment_judges_a_foreign_system_found_by_its_tags,
    ));
    trials.push(whole(
        "sweep::a_memory_sweep_marks_the_cheapest_size_that_meets_the_latency_promise".into(),
        sweep::a_memory_sweep_marks_the_cheapest_size_that_meets_the_latency_promise,
    ));
    trials.extend(rest);
    trials.push(whole(
        "foreign::a_foreign_queue_worker_system_is_judged_without_the_sandbox_hooks".into(),
        foreign::a_foreign_queue_worker_system_is_judged_without_the_sandbox_hooks,
    ));
    libtest_mimic::run(&args, trials).exit();
}
