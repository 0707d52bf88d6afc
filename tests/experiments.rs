//! Experiment files: every shipped one validates, the documented example parses, the CLI
//! reports errors with their place, and the AWS examples' dry runs resolve against an
//! independent implementation (moto_server) while changing nothing.

#[path = "support/moto.rs"]
mod moto;

use moto::fixtures;

use std::path::Path;
use std::process::Command;

use shakedown::aws::aws_clients;
use shakedown::experiment::{self, TargetSpec};

fn shakedown() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shakedown"));
    c.env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn every_shipped_experiment_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let e = experiment::load(&path).unwrap_or_else(|d| panic!("{}:\n{d}", path.display()));
            assert!(!e.promises.is_empty(), "{}: no promises", path.display());
            n += 1;
        }
    }
    assert!(n >= 8, "expected the shipped experiments, found {n}");
}

#[test]
fn the_demo_built_into_the_binary_is_the_one_on_disk() {
    for (path, text) in shakedown::cmd::demo::FILES.0 {
        let on_disk =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
        assert_eq!(&on_disk, text, "{path}");
    }
}

#[test]
fn the_documented_example_parses() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiments.md"))
            .unwrap();
    let start = doc.find("```toml\nname = ").expect("the complete example") + 8;
    let end = start + doc[start..].find("```").unwrap();
    // As if it were chaos/example.toml, so that its profile path resolves.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/example.toml");
    let e = experiment::parse(&doc[start..end], &path, &experiment::Disk)
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(e.name, "uploads-under-fire");
    assert_eq!(e.plan.occurrences.len(), 2);
    // stages[1] of profiles/demo.toml starts at 30 s.
    assert_eq!(e.plan.occurrences[0].start.as_secs(), 35);
    assert_eq!(e.promises.len(), 3);
    match e.target {
        TargetSpec::Sandbox(s) => {
            assert_eq!(s.config.workers.scale_in_cooldown.as_secs(), 10);
        }
        TargetSpec::System(_) => panic!("a sandbox target"),
    }
}

#[test]
fn validate_and_run_report_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"bad\"\nprofile = \"{}\"\n[target.sandbox]\narch = \"queud\"\n[[promise]]\ntype = \"no-loss\"\nalow_duplicates = true\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("profiles/demo.toml")
                .display()
        ),
    )
    .unwrap();
    for args in [vec!["validate"], vec!["run"]] {
        let out = shakedown().args(&args).arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("bad.toml:4:"), "{args:?}: {err}");
        assert!(err.contains("unknown variant `queud`"), "{args:?}: {err}");
        assert!(
            err.contains("unknown field `alow_duplicates`"),
            "{args:?}: {err}"
        );
        assert!(err.contains("allow_duplicates"), "a hint: {err}");
    }
    // Nothing was started, nothing written.
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/bad")
            .exists()
    );
}

/// The AWS examples resolve against moto (`--endpoint-url`), print their plans and change
/// nothing: no queue policy appears, every instance is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn aws_examples_dry_run_against_moto_and_change_nothing() {
    let moto = moto::Moto::start().await;
    let target = fixtures::target(&moto.endpoint, "eu-west-1");
    let c = aws_clients(&target).await.unwrap();
    fixtures::queues(&c, &["jobs", "jobs-dlq", "jobs-done"]).await;
    // The web tier's target group, the workers' Auto Scaling group (empty: the workers
    // below are tagged by hand).
    let vpc = fixtures::vpc(&c).await;
    fixtures::target_group(&c, &vpc, "web").await;
    fixtures::auto_scaling_group(&c, "workers", (0, 0, 4), "eu-west-1a").await;
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    c.ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(3)
        .max_count(3)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("tier").value("web").build())
                .tags(
                    Tag::builder()
                        .key("aws:autoscaling:groupName")
                        .value("workers")
                        .build(),
                )
                .tags(Tag::builder().key("chaos").value("allowed").build())
                .build(),
        )
        .send()
        .await
        .unwrap();

    let endpoint = moto.endpoint.clone();
    let (qw, web) = tokio::task::spawn_blocking(move || {
        let run = |file: &str| {
            shakedown()
                .args(["run", file, "--dry-run", "--endpoint-url", &endpoint])
                .output()
                .unwrap()
        };
        (
            run("chaos/aws-queue-worker.toml"),
            run("chaos/aws-web-tier.toml"),
        )
    })
    .await
    .unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(qw.status.code(), Some(0), "{}", text(&qw));
    let out = text(&qw);
    assert!(out.contains("dry run: nothing will be changed"), "{out}");
    assert!(
        out.contains("stall-workers#0 [stall-consumers] at 40s for 30s"),
        "{out}"
    );
    assert!(
        out.contains("Deny sqs:ReceiveMessage to arn:aws:iam::123456789012:role/workers"),
        "{out}"
    );
    assert!(out.contains("kill-worker#0 [terminate-instances]"), "{out}");
    assert!(
        out.contains("probe workers_desired: every 1s, now 0"),
        "{out}"
    );
    // CloudWatch is read (GetMetricData allowed); the queue has published nothing yet.
    assert!(
        out.contains("probe oldest_age: every 60s, no value yet: CloudWatch has no datapoint"),
        "{out}"
    );
    assert_eq!(web.status.code(), Some(0), "{}", text(&web));
    let out = text(&web);
    assert!(
        out.contains("stop-web#0 [stop-instances] at 25s for 20s"),
        "{out}"
    );
    assert!(out.contains("undo: StartInstances"), "{out}");
    assert!(out.contains("probe alb_healthy: every 1s, now 0"), "{out}");
    // No 5XX minute published: zero, as `missing = "zero"` says.
    assert!(
        out.contains("probe alb_target_5xx: every 60s, now 0"),
        "{out}"
    );

    // Read the state back: nothing changed.
    let url = c
        .sqs
        .get_queue_url()
        .queue_name("jobs")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes.unwrap_or_default();
    assert!(
        !attrs.contains_key(&aws_sdk_sqs::types::QueueAttributeName::Policy),
        "{attrs:?}"
    );
    let running = c
        .ec2
        .describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            i.state().and_then(|s| s.name())
                == Some(&aws_sdk_ec2::types::InstanceStateName::Running)
        })
        .count();
    assert_eq!(running, 3);
}

#[test]
fn the_probe_and_completion_examples_of_the_docs_parse_in_an_experiment() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/probes.md"))
        .unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("[[probe]]") || b.starts_with("[[target.completions]]"))
        .collect();
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/example.toml");
    // The completions block needs an existing-system target; probes go after it.
    let (completions, probes): (Vec<&str>, Vec<&str>) = blocks
        .iter()
        .partition(|b| b.starts_with("[[target.completions]]"));
    let text = format!(
        "name = \"docs\"\nprofile = \"../profiles/demo.toml\"\n[target]\nhttp = \"http://127.0.0.1:1\"\n{}\n{}",
        completions.concat(),
        probes.join("\n")
    );
    let e = experiment::parse(&text, &path, &experiment::Disk).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(e.probes.len(), 11);
    let gb = e.probes.iter().find(|p| p.name == "fn_gb_seconds").unwrap();
    match &gb.kind {
        shakedown::probe::spec::ProbeKind::CloudWatch(c) => {
            assert!(c.cumulative);
            assert_eq!(c.scale, 0.0005);
        }
        other => panic!("{other:?}"),
    }
    match e.target {
        TargetSpec::System(t) => assert_eq!(t.completions.len(), 3),
        TargetSpec::Sandbox(_) => panic!("a system target"),
    }
}

/// The ```toml blocks of a doc.
fn toml_blocks(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    text.split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_fault_examples_of_the_chaos_docs_parse_in_an_experiment() {
    let blocks: Vec<String> = toml_blocks("docs/chaos.md")
        .into_iter()
        .filter(|b| b.contains("[[fault]]"))
        .collect();
    assert!(blocks.len() >= 2, "{blocks:#?}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/example.toml");
    let mut types = Vec::new();
    for b in &blocks {
        let text = format!(
            "name = \"docs\"\nprofile = \"../profiles/demo.toml\"\n[target]\nhttp = \"http://127.0.0.1:1\"\n{b}"
        );
        let e = experiment::parse(&text, &path, &experiment::Disk)
            .unwrap_or_else(|d| panic!("{b}\n{d}"));
        types.extend(e.plan.occurrences.iter().map(|o| o.fault.type_name.clone()));
    }
    for t in ["command", "stall-consumers", "kill-process"] {
        assert!(types.iter().any(|x| x == t), "no {t} example: {types:?}");
    }
}

#[test]
fn the_variables_example_expands_the_environment_and_names_an_unset_variable() {
    let block = toml_blocks("docs/experiments.md")
        .into_iter()
        .find(|b| b.contains("${env:"))
        .expect("the variables example");
    let dir = tempfile::tempdir().unwrap();
    let chaos = dir.path().join("chaos");
    std::fs::create_dir(&chaos).unwrap();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let file = chaos.join("vars.toml");
    std::fs::write(&file, &block).unwrap();
    let validate = |queue: Option<&str>| {
        let mut c = shakedown();
        c.arg("validate").arg(&file).env_remove("QUEUE");
        // The profile path is relative to the file: point `../profiles/<name>` at ours.
        std::os::unix::fs::symlink(&profiles, dir.path().join("profiles")).ok();
        if let Some(q) = queue {
            c.env("QUEUE", q);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, t) = validate(Some("jobs"));
    assert_eq!(code, Some(0), "{t}");
    let e = experiment::load(&file).err();
    // In this process QUEUE is unset (unless the environment sets it).
    if std::env::var_os("QUEUE").is_none() {
        let d = e.expect("QUEUE unset is an error").to_string();
        assert!(d.contains("environment variable `QUEUE` is not set"), "{d}");
    }
    let (code, t) = validate(None);
    assert_eq!(code, Some(2), "{t}");
    let line = block
        .lines()
        .position(|l| l.contains("${env:QUEUE}"))
        .unwrap()
        + 1;
    assert!(
        t.contains(&format!("vars.toml:{line}:10")),
        "expected the place of ${{env:QUEUE}}: {t}"
    );
}

#[test]
fn the_activities_example_parses_on_a_system_target_and_maps_a_line() {
    let block = toml_blocks("docs/experiments.md")
        .into_iter()
        .find(|b| b.contains("[[target.activities]]"))
        .expect("the activities example");
    let text = format!(
        "name = \"a\"\nprofile = \"../profiles/demo.toml\"\n[target]\nhttp = \"http://127.0.0.1:9\"\n{block}"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/example.toml");
    let e = experiment::parse(&text, &path, &experiment::Disk).unwrap_or_else(|d| panic!("{d}"));
    let TargetSpec::System(t) = e.target else {
        panic!("a system target")
    };
    assert_eq!(t.activities.len(), 1);
    let line = t.activities[0]
        .map_line(
            r#"{"ts": 1700000002000, "old_desired": 2, "new_desired": 5}"#,
            1_700_000_000_000,
        )
        .unwrap()
        .unwrap();
    assert_eq!((line.t_ms, line.from, line.to), (2000, Some(2), Some(5)));
    assert_eq!(line.group, "workers");
    // Two origins in one table: refused with the place.
    let bad = text.replace("file = ", "url = \"http://127.0.0.1:9/log\"\nfile = ");
    let err = experiment::parse(&bad, &path, &experiment::Disk).unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of `file`, `command`, `url` or `asg`"),
        "{err}"
    );
}

/// Bad faults, probes, promises and activities in one file: every error at once, each at
/// the exact line and column of the key or value it is about (taken from the parser's
/// spans, never searched for in the text).
#[test]
fn every_bad_table_is_reported_at_its_exact_place() {
    let text = r#"name = "bad-tables"
profile = "../profiles/demo.toml"
[target]
http = "http://127.0.0.1:9"

[[fault]]
name = "slow"
type = "delay-queue"
at = "soon"
queue = "jobs"
delay = "1.5s"
dealy = "2s"

[[fault]]
name = "boom"
type = "explode"
at = "10s"

[[probe]]
name = "depth"
kind = "sqs"
queue = "jobs"
metric = "dlq_visible"
evry = "1s"

[[probe]]
name = "depth"
kind = "kafka"

[[promise]]
type = "failover"
fault = "slwo"
within = "1.5s"
depth = "depth"

[[promise]]
name = "buffer"
type = "buffering"
fault = "slow#1"
depth = "dpeth"
eps = 2

[[target.activities]]
url = "ftp://scaler"
"#;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/bad-tables.toml");
    let err = experiment::parse(text, &path, &experiment::Disk).unwrap_err();
    let got: Vec<String> = err
        .iter()
        .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
        .collect();
    let want = [
        "9:6 a time like `45s`, or { phase = \"stages[2]\", offset = \"10s\" }",
        "12:1 unknown field `dealy` in [[fault]] \"slow\"",
        "16:8 unknown fault type `explode`",
        "23:10 probe `depth`: metric `dlq_visible` needs `dlq`",
        "24:1 unknown field `evry`",
        "27:8 two probes are named `depth`",
        "28:8 unknown probe kind `kafka`",
        "32:9 promise `failover:slwo` names fault `slwo`, which is not a `[[fault]]`",
        "34:1 `depth` does not apply to a `failover` promise",
        "40:9 promise `buffer` names probe `dpeth`, which is not a `[[probe]]`",
        "41:7 expected a fraction between 0 and 1, found 2",
        "44:7 [[target.activities]] #1: `url` must be an http:// or https:// URL, found `ftp://scaler`",
    ];
    assert_eq!(got.len(), want.len(), "{err}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "{g:?} does not start with {w:?}\n{err}");
    }
    let hints: Vec<String> = err
        .iter()
        .map(|d| d.hint.clone().unwrap_or_default())
        .collect();
    assert_eq!(hints[1], "did you mean `delay`?");
    assert_eq!(hints[4], "did you mean `every`?");
    assert_eq!(hints[7], "did you mean `slow`?");
    assert!(hints[8].contains("`within`"), "{}", hints[8]);
    assert_eq!(hints[9], "did you mean `depth`?");
    assert!(err.to_string().contains("bad-tables.toml:9:6"), "{err}");
}

/// docs/aws.md gives each shipped AWS experiment's IAM policy: exactly the actions a run of
/// it calls (what `run --dry-run` prints).
#[test]
fn the_iam_policies_of_the_docs_are_what_the_aws_examples_call() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/aws.md")).unwrap();
    let mut checked = 0;
    for section in doc.split("\n### `").skip(1) {
        let file = section.split('`').next().unwrap();
        let policy = section
            .split("```json\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap_or_else(|| panic!("no policy for {file}"));
        let policy: serde_json::Value = serde_json::from_str(policy).unwrap();
        let documented: std::collections::BTreeSet<String> = policy["Statement"][0]["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let exp = experiment::load(&root.join(file)).unwrap();
        let called: std::collections::BTreeSet<String> =
            shakedown::experiment::iam::aws_actions(&exp)
                .into_iter()
                .map(str::to_owned)
                .collect();
        assert_eq!(documented, called, "{file}");
        checked += 1;
    }
    let shipped = std::fs::read_dir(root.join("chaos"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("aws-")
        })
        .count();
    assert_eq!(
        checked, shipped,
        "every chaos/aws-*.toml has its policy in docs/aws.md"
    );
}

#[test]
fn the_sweep_example_parses_in_an_event_driven_experiment() {
    let block = toml_blocks("docs/experiments.md")
        .into_iter()
        .find(|b| b.contains("[sweep]"))
        .expect("the [sweep] example");
    let text = format!(
        "name = \"s\"\nprofile = \"../profiles/serverless-sweep.toml\"\n[target.sandbox]\narch = \"event-driven\"\n\
         [[target.sandbox.bus.embedded.rules]]\nname = \"r\"\ntargets = [{{ type = \"function\", name = \"resize\" }}]\n\
         [[target.sandbox.bus.embedded.functions]]\nname = \"resize\"\nbase = \"20ms\"\ncpu = \"200ms\"\n{block}"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/example.toml");
    let e = experiment::parse(&text, &path, &experiment::Disk).unwrap_or_else(|d| panic!("{d}"));
    let s = e.sweep.expect("a sweep");
    assert_eq!(s.function, "resize");
    assert_eq!(s.memory_mb, [128, 512, 1024, 1769, 3008]);
    assert_eq!(
        (s.promise.as_str(), s.figure.as_str()),
        ("latency", "e2e_p99_ms")
    );
    // The same table on an existing system is refused, naming the fix.
    let system = format!(
        "name = \"s\"\nprofile = \"../profiles/serverless-sweep.toml\"\n[target]\nhttp = \"http://127.0.0.1:9\"\n\
         [[target.completions]]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/done\"\n{block}"
    );
    let d = experiment::parse(&system, &path, &experiment::Disk)
        .unwrap_err()
        .to_string();
    assert!(d.contains("[sweep] needs a `[target.sandbox]`"), "{d}");
    // The documented sweep.json is one: it reads as the type that writes it.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiments.md"))
            .unwrap();
    let json = doc
        .split("```json\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("\"planned_mb\""))
        .expect("the sweep.json example");
    let file: shakedown::sweep::SweepFile =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(file.cheapest_mb, Some(512));
    assert!(file.rows.iter().filter(|r| r.cheapest).all(|r| r.meets));
}
