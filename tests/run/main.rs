//! `shakedown run` from the CLI against the real sandbox: what the run writes, how it ends
//! (SIGTERM, a stop condition, a refused fault) and `analyze` with other thresholds. Runs
//! against a sandbox started as a separate system and the memory sweep are trials of the
//! matrix's harness (`tests/matrix/foreign.rs`, `tests/matrix/sweep.rs`), which runs them
//! among its rows.
//! Each run has its own results directory and its sandbox on free ports; up to [`RUN_JOBS`]
//! tests run at once (default 3: a sandboxed run mostly waits on the sandbox's clock; libtest's
//! threads, one per core, bound it too).

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::cli::{shakedown, text};
use support::slots::{self, Slot, Slots};
use support::wait::eventually_blocking;

/// Environment variable: how many of these tests run a sandbox at once (default 3).
const RUN_JOBS: &str = "SHAKEDOWN_RUN_JOBS";

static SLOTS: Slots = Slots::new(|| slots::from_env(RUN_JOBS, 3));

/// A slot for one test's runs: more at once would starve the sandboxes' instances on 2
/// cores (timing verdicts then turn not evaluable).
pub(crate) fn slot() -> Slot<'static> {
    SLOTS.take(1)
}

/// Runs the CLI to the end: `words`, then `paths`.
fn cli(words: &[&str], paths: &[&Path]) -> Output {
    shakedown().args(words).args(paths).output().unwrap()
}

/// An experiment file in `dir` using the quick demo profile.
fn experiment(dir: &Path, body: &str) -> PathBuf {
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/demo-quick.toml");
    let path = dir.join("exp.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"t\"\nseed = 1\nprofile = \"{}\"\n[target.sandbox]\narch = \"queued\"\n{body}",
            profile.display()
        ),
    )
    .unwrap();
    path
}

/// Every web instance stalled (SIGSTOP through the sandbox's EC2 API) at `at` for `for`.
fn stall_web(at: &str, duration: &str) -> String {
    format!(
        r#"
[[fault]]
name = "stall-web"
type = "stall-consumers"
at = "{at}"
duration = "{duration}"
instances = {{ tags = {{ tier = "web" }} }}
percent = 100
[guardrails]
require_tag = "chaos=allowed"
max_instances = 2
"#
    )
}

/// Starts `shakedown run` on `exp` (run id `run_id` under `results`) and returns once its
/// journal shows a fault applied.
fn spawn_until_applied(exp: &Path, results: &Path, run_id: &str) -> std::process::Child {
    let child = shakedown()
        .args(["run", "-q", "--run-id", run_id, "--results"])
        .arg(results)
        .arg(exp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually_blocking("the fault applied", Duration::from_secs(60), || {
        std::fs::read_to_string(results.join(run_id).join("journal.jsonl"))
            .unwrap_or_default()
            .contains("\"applied\"")
    });
    child
}

const KILL_WEB: &str = r#"
[[fault]]
name = "kill-web"
type = "terminate-instances"
at = "6s"
instances = { tags = { tier = "web" } }
count = 1
[guardrails]
require_tag = "chaos=allowed"
max_instances = 2
"#;

fn journal_events(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_run_writes_every_file_and_analyze_recomputes_with_other_thresholds() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        &format!(
            "{KILL_WEB}\n[[probe]]\nname = \"web\"\nkind = \"ec2\"\ninstances = {{ tags = {{ tier = \"web\" }} }}\n\
             [[promise]]\ntype = \"failover\"\nfault = \"kill-web\"\nwithin = \"8s\"\nhold = \"2s\"\nbaseline = \"6s\"\n\
             [[promise]]\nname = \"fast\"\ntype = \"threshold\"\nchecks = [\"p99 < 10s\"]\n\
             [cooldown]\nmax = \"2s\"\n"
        ),
    );
    let results = dir.path().join("results");
    let out = cli(
        &["run", "-q", "--run-id", "r", "--results"],
        &[&results, &exp],
    );
    let run = results.join("r");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for f in [
        "experiment.toml",
        "run.json",
        "timeline.csv",
        "latency.hlog",
        "probes.csv",
        "journal.jsonl",
        "accepted.jsonl",
        "completions.jsonl",
        "ledger.json",
        "activities.jsonl",
        "verdict.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing: {}", text(&out));
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "run");
    assert_eq!(meta["status"], "completed");
    assert_eq!(
        journal_events(&run),
        ["run-started", "intent", "irreversible", "run-ended"]
    );
    // The probe saw the web tier (2 instances) on the run's clock.
    let probes = std::fs::read_to_string(run.join("probes.csv")).unwrap();
    assert!(probes.starts_with("second,web\n0,"), "{probes}");
    assert!(probes.lines().count() > 20, "{probes}");
    assert!(text(&out).contains("failover:kill-web"), "{}", text(&out));

    // Tighter thresholds after the fact: `fast` now fails, the file's copy is untouched.
    // (Without harness.csv, as for runs from before it existed: a second of saturated CPU
    // on a busy test machine would make this fail not evaluable, which is not under test.)
    std::fs::remove_file(run.join("harness.csv")).unwrap();
    let tighter = dir.path().join("tighter.toml");
    std::fs::write(
        &tighter,
        "[[promise]]\nname = \"fast\"\ntype = \"threshold\"\nchecks = [\"p99 < 1us\"]\n",
    )
    .unwrap();
    let again = cli(
        &["analyze", "--experiment", tighter.to_str().unwrap()],
        &[&run],
    );
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(v["verdicts"][0]["status"], "fail");
    assert_eq!(v["overall"], "fail");
}

#[test]
fn sigterm_mid_fault_undoes_flushes_and_analyzes() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        &(stall_web("5s", "30s") + "[[promise]]\ntype = \"no-loss\"\n"),
    );
    let results = dir.path().join("results");
    let child = spawn_until_applied(&exp, &results, "r");
    let run = results.join("r");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        journal_events(&run),
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "interrupted");
    assert!(run.join("verdict.json").is_file(), "{}", text(&out));
    assert!(
        text(&out).contains("faults: interrupted: 1 applied, 1 undone and verified"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_stop_condition_aborts_the_load_and_undoes() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    // Every web instance stalled: the balancer answers 5xx, the error rate crosses 50%.
    let exp = experiment(
        dir.path(),
        &(stall_web("4s", "15s")
            + "stop = [ { metric = \"error_rate\", above = 0.5 } ]\n[[promise]]\ntype = \"no-loss\"\n"),
    );
    let results = dir.path().join("results");
    let started = Instant::now();
    let out = cli(
        &["run", "-q", "--run-id", "r", "--results"],
        &[&results, &exp],
    );
    let t = text(&out);
    // Exit 1 from the stop condition itself: no-loss passes (what was accepted before the
    // abort was all processed), as it should (it used to fail on a misread queue).
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("stop condition: error_rate"), "{t}");
    assert!(t.contains("load stopped"), "{t}");
    // Well before the 25 s profile and the 15 s stall would have ended.
    assert!(started.elapsed() < Duration::from_secs(20), "{t}");
    assert_eq!(
        journal_events(&results.join("r")),
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
}

#[test]
fn a_fault_over_its_cap_is_refused_before_anything_runs() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        &KILL_WEB.replace("max_instances = 2", "max_instances = 1"),
    );
    let results = dir.path().join("results");
    let out = cli(&["run", "-q", "--results"], &[&results, &exp]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("refused, nothing was touched"), "{t}");
    assert!(t.contains("more than max_instances = 1"), "{t}");
    // No load ran and no run directory was left.
    assert!(!t.contains("stream "), "{t}");
    let left: Vec<_> = std::fs::read_dir(&results)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n.to_string_lossy().ends_with(".lock")),
        "{left:?}"
    );
}

#[test]
fn after_kill_9_on_the_sandbox_the_next_run_refuses_until_recover() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        &(stall_web("3s", "30s") + "[[promise]]\ntype = \"no-loss\"\n[cooldown]\nmax = \"1s\"\n"),
    );
    let results = dir.path().join("results");
    let mut child = spawn_until_applied(&exp, &results, "dead");
    child.kill().unwrap(); // SIGKILL: no undo, the journal says what is applied
    child.wait().unwrap();

    let refused = cli(&["run", "-q", "--results"], &[&results, &exp]);
    let t = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{t}");
    assert!(t.contains("shakedown recover"), "{t}");

    // The sandbox died with its run (its processes too): recover closes the journal.
    let recover = cli(&["recover", "--all", "--results"], &[&results]);
    let t = text(&recover);
    assert_eq!(recover.status.code(), Some(0), "{t}");
    assert!(t.contains("ended with the sandbox"), "{t}");
    let again = cli(&["recover", "--all", "--results"], &[&results]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again).contains("nothing to undo"), "{}", text(&again));
    assert_eq!(
        journal_events(&results.join("dead")),
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
}

#[test]
fn events_sent_straight_into_the_queue_are_accounted_end_to_end() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("jobs.toml");
    std::fs::write(
        &profile,
        r#"name = "jobs"
seed = 3
[[stream]]
name = "jobs"
kind = "event"
transport = "sqs"
queue = "jobs"
body = { template = '{"id":"{id}","size":1000,"received_ms":{now_ms},"kind":"event"}' }
arrival = "poisson"
stages = [ { for = "4s", rate = "200/s" } ]
"#,
    )
    .unwrap();
    let (ledger, _) = run_for_no_loss(dir.path(), "jobs.toml", "");
    let accepted = ledger["accepted"].as_u64().unwrap();
    assert!(accepted > 600, "{ledger}");
    assert_eq!(ledger["completed"], accepted, "{ledger}");
    assert_eq!(ledger["lost"], 0);
}

/// Reads next to writes: the reads' 2xx answers complete nothing (no system reports a
/// read), so they stay out of the ledger and `no-loss` passes on a healthy system. (They
/// used to be accepted like writes and then counted lost: a false fail.)
#[test]
fn reads_next_to_writes_are_not_counted_as_lost_messages() {
    let _slot = slot();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        r#"name = "reads-and-writes"
seed = 7
[[stream]]
name = "uploads"
kind = "upload"
size = { dist = "fixed", size = "4KiB" }
stages = [ { for = "4s", rate = "20/s" } ]
[[stream]]
name = "health"
kind = "event"
request = { method = "GET", path = "/health" }
stages = [ { for = "4s", rate = "20/s" } ]
"#,
    )
    .unwrap();
    let (ledger, run) = run_for_no_loss(dir.path(), "p.toml", "arch = \"queued\"\n");
    let ok = |name: &str| {
        run["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == name)
            .unwrap_or_else(|| panic!("{name} in {run}"))["ok"]
            .as_u64()
            .unwrap()
    };
    assert!(ok("health") > 60, "{run}");
    assert_eq!(
        ledger["accepted"].as_u64().unwrap(),
        ok("uploads"),
        "{ledger}"
    );
    assert_eq!(ledger["lost"], 0, "{ledger}");
}

/// Runs `profile` (a file in `dir`) on the sandbox (`[target.sandbox]` plus `sandbox`) with a
/// `no-loss` promise and a cool-down until the queue is empty; asserts the run passed and
/// returns its `ledger.json` and `run.json`.
fn run_for_no_loss(
    dir: &Path,
    profile: &str,
    sandbox: &str,
) -> (serde_json::Value, serde_json::Value) {
    let exp = dir.join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"q\"\nprofile = \"{profile}\"\n[target.sandbox]\n{sandbox}[[probe]]\nname = \"backlog\"\nkind = \"sqs\"\nqueue = \"jobs\"\nmetric = \"visible\"\n[[promise]]\ntype = \"no-loss\"\n[cooldown]\nmax = \"30s\"\nuntil = [\"backlog <= 0\"]\n"
        ),
    )
    .unwrap();
    let results = dir.join("results");
    let out = cli(
        &["run", "-q", "--run-id", "r", "--results"],
        &[&results, &exp],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(results.join("r").join(file)).unwrap())
            .unwrap()
    };
    (read("ledger.json"), read("run.json"))
}
