//! A system shakedown did not start: the sandbox run as its own process (`shakedown sandbox`)
//! and targeted through `[target]` like any existing system, so the run has none of the
//! sandbox's in-process hooks: no activity log (scale-in judges flapping from the instance
//! probe), no id listing (no-loss balances by counts), completions from an HTTP feed.
//! Everything on 127.0.0.1.
//!
//! Rows of the matrix's harness (`tests/matrix.rs`): whole runs that mostly wait on the
//! sandbox's clock, so they share its few-at-a-time scheduling instead of running one
//! after another in a binary of their own.

use std::path::Path;

use crate::support::cli::{SandboxProcess, shakedown};

/// The `[target]` tables that reach `sandbox` as a foreign system: its balancer, its queue,
/// its SQS and EC2 endpoints as the AWS API, its completion feed.
fn target(sandbox: &SandboxProcess) -> String {
    let s = |k: &str| sandbox.endpoint(k);
    format!(
        r#"[target]
http = "{web}"
queue = "{queue}"
dlq = "{dlq}"
[target.aws]
region = "us-east-1"
sqs_endpoint_url = "{sqs}"
ec2_endpoint_url = "{ec2}"
access_key_id = "foreign"
secret_access_key = "foreign"
[[target.completions]]
kind = "sandbox-feed"
url = "{feed}"
"#,
        web = s("web_url"),
        queue = s("queue_url"),
        dlq = s("dlq_url"),
        sqs = s("sqs_endpoint"),
        ec2 = s("ec2_endpoint"),
        feed = s("feed_url"),
    )
}

/// Runs experiment `exp` (results under `dir/results`), then stops the sandbox: the run's
/// output, its directory, and its stdout + stderr for messages.
fn run(
    dir: &Path,
    exp: &Path,
    sandbox: SandboxProcess,
) -> (std::process::Output, std::path::PathBuf, String) {
    let out = shakedown()
        .args(["run", "--results"])
        .arg(dir.join("results"))
        .arg(exp)
        .output()
        .unwrap();
    drop(sandbox);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (out, run, text)
}

/// The run's `verdict.json`.
fn verdicts(run: &Path, text: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub fn a_foreign_queue_worker_system_is_judged_without_the_sandbox_hooks() {
    let _slot = crate::SLOTS.take(1);
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(
        dir.path(),
        "arch = \"queued\"\n[workers]\nconcurrency = 2\nscale_in_cooldown = \"3s\"\n",
    );
    let s = |k: &str| sandbox.endpoint(k);
    std::fs::write(
        dir.path().join("p.toml"),
        "name = \"p\"\nseed = 3\ntimeout = \"5s\"\n[[stream]]\nname = \"up\"\nkind = \"upload\"\nrequest = { method = \"PUT\", path = \"/upload/{id}\" }\nsize = { dist = \"fixed\", size = \"20KiB\" }\nstages = [ { for = \"4s\", rate = \"20/s\" }, { for = \"4s\", rate = \"120/s\" }, { for = \"2s\", rate = \"0/s\" } ]\n",
    )
    .unwrap();
    let exp = dir.path().join("foreign.toml");
    std::fs::write(
        &exp,
        format!(
            r#"name = "foreign"
profile = "p.toml"
{target}[[probe]]
name = "backlog"
kind = "sqs"
queue = "{queue}"
metric = "visible"
[[probe]]
name = "in_flight"
kind = "sqs"
queue = "{queue}"
metric = "in_flight"
[[probe]]
name = "workers"
kind = "ec2"
instances = {{ asg = "workers" }}
state = "running"
[[promise]]
type = "no-loss"
[[promise]]
type = "scale-out"
instances = "workers"
depth = "backlog"
target = 20
max = 8
within = "20s"
[[promise]]
type = "scale-in"
instances = "workers"
depth = "backlog"
min = 0
within = "30s"
max_direction_changes = 4
flap_window = "1m"
[cooldown]
max = "45s"
until = ["backlog <= 0", "in_flight <= 0", "workers <= 0"]
hold = "1s"
"#,
            target = target(&sandbox),
            queue = s("queue_url"),
        ),
    )
    .unwrap();
    let (out, run, t) = run(dir.path(), &exp, sandbox);
    assert!(
        !run.join("activities.jsonl").exists(),
        "no activity source: {t}"
    );
    let verdict = verdicts(&run, &t);
    let by_type = |ty: &str| {
        verdict["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["type"] == ty)
            .unwrap()
            .clone()
    };
    let no_loss = by_type("no-loss");
    assert_eq!(no_loss["status"], "pass", "{no_loss}\n{t}");
    assert!(
        no_loss["figures"].get("still_queued_listed").is_none(),
        "counts only: {no_loss}"
    );
    let scale_in = by_type("scale-in");
    assert_eq!(scale_in["status"], "pass", "{scale_in}\n{t}");
    assert_eq!(
        scale_in["figures"]["activities_source"], "probe `workers` (running count)",
        "{scale_in}"
    );
    let scale_out = by_type("scale-out");
    assert_eq!(scale_out["status"], "pass", "{scale_out}\n{t}");
    assert_eq!(out.status.code(), Some(0), "{t}");
}

/// `chaos/microservices.toml` itself, with only what is AWS-specific changed: the
/// `[target.sandbox]` table becomes a `[target]` (the sandbox run as its own process plays
/// the system, its EC2 endpoint the AWS API), and the two `service-latency` faults, which
/// need shakedown's own sandbox, become `command` faults (on AWS: `fis` templates) that set
/// the same delays through the system's control endpoint. Services are found by their
/// `service=<name>` tags through DescribeInstances, as on AWS.
pub fn the_microservices_experiment_judges_a_foreign_system_found_by_its_tags() {
    let _slot = crate::SLOTS.take(crate::weight(crate::MICROSERVICES));
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(
        dir.path(),
        "arch = \"microservices\"\n[workers]\nconcurrency = 2\nscale_in_cooldown = \"5s\"\n",
    );
    let s = |k: &str| sandbox.endpoint(k);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = std::fs::read_to_string(root.join("chaos/microservices.toml")).unwrap();
    let target = target(&sandbox);
    let fault = |service: &str, delay: &str, ms: u32| {
        let set = |ms: u32| {
            format!(
                "curl -fsS -X POST -H 'content-type: application/json' -d '{{\"delay_ms\":{ms}}}' {}/services/{service}/latency",
                s("control_url")
            )
        };
        (
            format!("service = \"{service}\"\ndelay = \"{delay}\"\n"),
            format!(
                "apply = \"{}\"\nundo = \"{}\"\n",
                set(ms).replace('"', "\\\""),
                set(0).replace('"', "\\\"")
            ),
        )
    };
    let mut text = original
        .replace(
            "[target.sandbox]\narch = \"microservices\"\nworkers = { concurrency = 2, scale_in_cooldown = \"5s\" }\n",
            &target,
        )
        .replace("type = \"service-latency\"\nat", "type = \"command\"\nat")
        .replace(
            "profile = \"../profiles/microservices.toml\"",
            &format!(
                "profile = \"{}\"",
                root.join("profiles/microservices.toml").display()
            ),
        );
    for (service, d, ms) in [("process", "2s", 2000), ("store", "1s", 1000)] {
        let (old, new) = fault(service, d, ms);
        assert!(text.contains(&old), "{old} in chaos/microservices.toml");
        text = text.replace(&old, &new);
    }
    assert!(
        text.contains("\n[target]\n") && !text.contains("\n[target.sandbox]"),
        "{text}"
    );
    let exp = dir.path().join("microservices.toml");
    std::fs::write(&exp, &text).unwrap();
    let (out, run, t) = run(dir.path(), &exp, sandbox);
    let verdict = verdicts(&run, &t);
    let verdicts = verdict["verdicts"].as_array().unwrap();
    let named = |name: &str| {
        verdicts
            .iter()
            .find(|v| v["promise"] == name)
            .unwrap_or_else(|| panic!("no verdict {name}: {t}"))
            .clone()
    };
    // Isolation is judged over the command faults' windows; a healthy system passes, or is
    // not judged (a saturated machine, or a few slow listings within chance): never a fail.
    for name in ["isolation:slow-process", "isolation:slow-store"] {
        let v = named(name);
        let summary = v["summary"].as_str().unwrap_or_default();
        let ok = v["status"] == "pass"
            || (v["status"] == "not-evaluable"
                && (summary.starts_with("harness starved")
                    || summary.contains("but not significantly more than")));
        assert!(ok, "{v}\n{t}");
        let at = if name.ends_with("process") {
            15.0
        } else {
            45.0
        };
        let start = v["figures"]["fault_start_s"].as_f64().unwrap();
        assert!((at..at + 2.0).contains(&start), "{v}");
    }
    // The tag probes saw process scale out alone.
    let scaling = named("independent-scaling:process_instances");
    assert_eq!(scaling["status"], "pass", "{scaling}\n{t}");
    assert!(
        scaling["figures"]["scaling_max"].as_f64().unwrap() >= 4.0,
        "{scaling}"
    );
    let no_loss = named("no-loss");
    assert_eq!(no_loss["status"], "pass", "{no_loss}\n{t}");
    // 0 with every promise passed, 1 with one not evaluable: never an error of the run.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{t}");
}
