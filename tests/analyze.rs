//! The analyzer on synthetic runs shaped like the sandbox's architectures and broken
//! variants: every promise must pass on `queued` and catch what each variant breaks.
//! Then the same runs written as a results directory and loaded back give the same verdicts;
//! the published verdict schema and the `docs/promises.md` examples are checked.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use shakedown::analyze::view::{
    Accepted, Activity, ActivityKind, Completion, FaultWindow, Ledger, Outcome, RunView, Second,
};
use shakedown::analyze::{self, Promise, Status, Verdict, render_table};
use shakedown::metrics::{ErrorClass, Window};

/// The experiment every scenario is judged by.
const PROMISES: &str = r#"
[[promise]]
type = "failover"
fault = "kill-web"
within = "20s"
hold = "5s"
max_failed = 500
instances = "web_instances"
replace_within = "60s"

[[promise]]
name = "uploads-during-stall"
type = "failover"
fault = "stall-workers"
within = "20s"
hold = "5s"

[[promise]]
type = "buffering"
fault = "stall-workers"
depth = "queue_depth"

[[promise]]
type = "drain"
fault = "stall-workers"
depth = "queue_depth"
within = "90s"
capacity = "400/s"

[[promise]]
type = "no-loss"

[[promise]]
type = "scale-out"
group = "workers"
instances = "workers"
depth = "queue_depth"
target = 100
max = 4
within = "60s"

[[promise]]
type = "scale-in"
group = "workers"
instances = "workers"
depth = "queue_depth"
min = 1
within = "60s"

[[promise]]
name = "steady-state"
type = "threshold"
checks = ["p99 < 300ms", "error_rate < 0.1%", "rate >= 95/s"]
over = "before"

[[promise]]
name = "e2e"
type = "threshold"
checks = ["e2e_p99 < 90s"]

[[promise]]
type = "cost"
instances = "workers"
instance_hour = 0.0416
budget = 0.05
"#;

const LEN: usize = 330;
const RATE: u64 = 100;
const KILL_AT: usize = 60;
const STALL: (usize, usize) = (120, 180);
const PER_WORKER: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Queued,
    Tiered,
    Monolith,
    NoHealthChecks,
    FixedFleet,
    AckBeforeProcess,
    LossyQueue,
}

fn promises() -> Vec<Promise> {
    analyze::parse_promises(PROMISES, Path::new("experiment.toml")).unwrap()
}

/// A run of `arch`: 100 uploads/s for 330 s, a web instance killed at 60 s (replaced at
/// 90 s), workers stalled over 120..180 s. Workers each process 100 jobs/s.
fn scenario(arch: Arch) -> RunView {
    let mut v = RunView::default();
    let has_queue = !matches!(arch, Arch::Tiered | Arch::Monolith);
    // Producer traffic.
    let uploads: Vec<Second> = (0..LEN)
        .map(|s| {
            let killed = s >= KILL_AT && (arch == Arch::NoHealthChecks || s < KILL_AT + 3);
            let stalled = (STALL.0..STALL.1).contains(&s);
            if arch == Arch::Monolith && stalled {
                // Processing inline: uploads wait for the stalled processor and time out.
                let mut errors = [0; ErrorClass::COUNT];
                errors[ErrorClass::Timeout as usize] = RATE;
                Second {
                    intended: RATE,
                    sent: RATE,
                    errors,
                    ..Second::default()
                }
            } else if killed {
                let failed = if arch == Arch::NoHealthChecks {
                    RATE / 3
                } else {
                    30
                };
                Second::simple(RATE - failed, failed, 25.0)
            } else {
                Second::simple(RATE, 0, 20.0)
            }
        })
        .collect();
    v.streams.insert("uploads".into(), uploads.clone());
    // Faults.
    v.faults = vec![
        FaultWindow {
            name: "kill-web".into(),
            id: "kill-web#0".into(),
            kind: "terminate-instances".into(),
            start: KILL_AT as f64,
            end: Some(KILL_AT as f64),
            targets: vec!["i-web-2".into()],
        },
        FaultWindow {
            name: "stall-workers".into(),
            id: "stall-workers#0".into(),
            kind: "stall-consumers".into(),
            start: STALL.0 as f64,
            end: Some(STALL.1 as f64),
            targets: vec!["i-worker-1".into()],
        },
    ];
    v.probes.insert(
        "web_instances".into(),
        (0..LEN)
            .map(|s| {
                Some(if (KILL_AT..KILL_AT + 30).contains(&s) {
                    2.0
                } else {
                    3.0
                })
            })
            .collect(),
    );
    v.activities = Some(Vec::new());
    if !has_queue {
        if arch == Arch::Monolith {
            // Jobs are done inline, 100 ms after the upload.
            let (acc, done): (Vec<Accepted>, Vec<Completion>) = uploads
                .iter()
                .enumerate()
                .flat_map(|(s, sec)| (0..sec.ok).map(move |i| (s, i)))
                .map(|(s, i)| {
                    let id = format!("up-{s}-{i}");
                    let t = s as u64 * 1000 + i * 5;
                    (
                        Accepted {
                            id: id.clone(),
                            stream: "uploads".into(),
                            t_ms: t,
                        },
                        Completion {
                            id,
                            done_ms: t + 100,
                            outcome: Outcome::Completed,
                            receive_count: 1,
                        },
                    )
                })
                .unzip();
            v.ledger = Some(Ledger::build(&acc, &done, Some(0)));
        }
        return v;
    }
    // The worker fleet and the queue, second by second, FIFO.
    let workers = |s: usize| -> u64 {
        match arch {
            Arch::FixedFleet => 2,
            _ if (140..230).contains(&s) => 4,
            _ => 1,
        }
    };
    let mut queue: VecDeque<(String, u64)> = VecDeque::new();
    let (mut accepted, mut completions) = (Vec::new(), Vec::new());
    let (mut depth, mut count) = (Vec::new(), Vec::new());
    for (s, sec) in uploads.iter().enumerate() {
        for i in 0..sec.ok {
            let id = format!("up-{s}-{i}");
            let t_ms = s as u64 * 1000 + i * 10;
            accepted.push(Accepted {
                id: id.clone(),
                stream: "uploads".into(),
                t_ms,
            });
            if arch == Arch::LossyQueue && queue.len() >= 2000 {
                continue; // accepted (202), then dropped on overflow
            }
            queue.push_back((id, t_ms));
        }
        if arch == Arch::AckBeforeProcess && s == STALL.0 + 3 {
            // Messages received and deleted before processing die with the stalled worker.
            queue.drain(..300);
        }
        let capacity = if (STALL.0..STALL.1).contains(&s) {
            0
        } else {
            workers(s) * PER_WORKER
        };
        for _ in 0..capacity {
            let Some((id, _)) = queue.pop_front() else {
                break;
            };
            completions.push(Completion {
                id,
                done_ms: s as u64 * 1000 + 900,
                outcome: Outcome::Completed,
                receive_count: 1,
            });
        }
        depth.push(Some(queue.len() as f64));
        count.push(Some(workers(s) as f64));
    }
    v.probes.insert("queue_depth".into(), depth);
    v.probes.insert("workers".into(), count);
    v.ledger = Some(Ledger::build(
        &accepted,
        &completions,
        Some(queue.len() as u64),
    ));
    if arch != Arch::FixedFleet {
        let act =
            |t: f64, kind, from: Option<u32>, to: Option<u32>, instance: Option<&str>| Activity {
                t,
                group: "workers".into(),
                kind,
                from,
                to,
                instance: instance.map(str::to_string),
                cause: "target tracking on backlog per instance".into(),
            };
        v.activities = Some(vec![
            act(125.0, ActivityKind::Scaling, Some(1), Some(4), None),
            act(126.0, ActivityKind::Launch, None, None, Some("i-w2")),
            act(126.0, ActivityKind::Launch, None, None, Some("i-w3")),
            act(126.0, ActivityKind::Launch, None, None, Some("i-w4")),
            act(229.0, ActivityKind::Scaling, Some(4), Some(1), None),
            act(230.0, ActivityKind::Terminate, None, None, Some("i-w4")),
        ]);
    }
    v
}

fn statuses(verdicts: &[Verdict]) -> BTreeMap<String, Status> {
    verdicts
        .iter()
        .map(|v| (v.promise.clone(), v.status))
        .collect()
}

/// Expected statuses, in the order of [`PROMISES`].
fn expect(arch: Arch, want: [Status; 10]) {
    let verdicts = analyze::evaluate(&promises(), &scenario(arch));
    let got: Vec<Status> = verdicts.iter().map(|v| v.status).collect();
    if std::env::var_os("SHAKEDOWN_SHOW").is_some() {
        eprintln!("{arch:?}\n{}", render_table(&verdicts));
    }
    assert_eq!(got, want, "{arch:?}:\n{}", render_table(&verdicts));
}

use Status::{Fail as F, NotEvaluable as N, Pass as P};

#[test]
fn queued_keeps_every_promise() {
    expect(Arch::Queued, [P, P, P, P, P, P, P, P, P, P]);
    let verdicts = analyze::evaluate(&promises(), &scenario(Arch::Queued));
    let by = |name: &str| verdicts.iter().find(|v| v.promise == name).unwrap().clone();
    let failover = by("failover:kill-web");
    assert_eq!(failover.figures["recovery_s"], 3.0.into());
    assert_eq!(failover.figures["failed_requests"], 90u64.into());
    assert_eq!(failover.figures["replacement_s"], 30.0.into());
    let drain = by("drain:stall-workers");
    // 5700 queued after second 180; 4 workers (400/s) against 100/s arriving: 19 s, as predicted.
    assert_eq!(drain.figures["backlog_at_end"], 5700.0.into());
    assert_eq!(drain.figures["drain_s"], 19.0.into());
    assert_eq!(drain.figures["predicted_s"], 19.0.into());
    assert_eq!(by("scale-out:workers").figures["breach_s"], 121.0.into());
    assert_eq!(by("scale-in:workers").figures["scale_in_s"], 31.0.into());
}

#[test]
fn tiered_without_a_queue_cannot_show_buffering() {
    // No queue: buffering, drain, no-loss, scaling, e2e and cost lack their data.
    expect(Arch::Tiered, [P, P, N, N, N, N, N, P, N, N]);
    let v = analyze::evaluate(&promises(), &scenario(Arch::Tiered));
    assert!(
        v[2].reason
            .as_deref()
            .unwrap()
            .contains("no depth probe `queue_depth`"),
        "{:?}",
        v[2]
    );
}

#[test]
fn monolith_uploads_time_out_while_processing_stalls() {
    expect(Arch::Monolith, [P, F, F, N, P, N, N, P, P, N]);
    let v = analyze::evaluate(&promises(), &scenario(Arch::Monolith));
    assert!(
        v[1].reason
            .as_deref()
            .unwrap()
            .contains("recovered in 60s (limit 20s)"),
        "{:?}",
        v[1]
    );
    assert!(
        v[2].reason
            .as_deref()
            .unwrap()
            .contains("producers 0.00% ok"),
        "{:?}",
        v[2]
    );
}

#[test]
fn no_health_checks_errors_persist() {
    expect(Arch::NoHealthChecks, [F, F, F, P, P, P, P, P, P, P]);
    let v = analyze::evaluate(&promises(), &scenario(Arch::NoHealthChecks));
    assert!(
        v[0].reason
            .as_deref()
            .unwrap()
            .contains("not recovered within 20s"),
        "{:?}",
        v[0]
    );
}

#[test]
fn fixed_fleet_neither_scales_out_nor_in() {
    // Buffering and no-loss hold; the backlog drains at 2 x 100/s - 100/s arriving.
    expect(Arch::FixedFleet, [P, P, P, P, P, F, F, P, P, P]);
}

#[test]
fn ack_before_process_loses_messages() {
    expect(Arch::AckBeforeProcess, [P, P, P, P, F, P, P, P, P, P]);
    let v = analyze::evaluate(&promises(), &scenario(Arch::AckBeforeProcess));
    assert_eq!(v[4].figures["lost"], 300u64.into());
}

#[test]
fn lossy_queue_loses_messages_and_stops_buffering() {
    expect(Arch::LossyQueue, [P, P, F, P, F, P, P, P, P, P]);
    let v = analyze::evaluate(&promises(), &scenario(Arch::LossyQueue));
    // The queue fills (2000) 20 s into the stall: 40 s x 100/s, and the arrivals of second 180
    // before the workers resume, are dropped.
    assert_eq!(v[4].figures["lost"], 4100u64.into());
}

#[test]
fn an_empty_results_dir_evaluates_nothing_as_pass() {
    let dir = tempfile::tempdir().unwrap();
    let file = analyze::analyze_dir(dir.path(), &promises()).unwrap();
    assert!(
        file.verdicts
            .iter()
            .all(|v| v.status == Status::NotEvaluable),
        "{}",
        render_table(&file.verdicts)
    );
    assert_eq!(file.overall, Status::NotEvaluable);
}

// ---- round trip through the file formats of results/README.md ----

fn window_of(s: &Second) -> Window {
    let mut w = Window::default();
    w.counters.intended = s.intended;
    w.counters.sent = s.sent;
    w.counters.ok = s.ok;
    w.counters.errors = s.errors;
    w.counters.late = s.late;
    w.counters.dropped = s.dropped;
    if let Some(l) = s.latency {
        w.corrected
            .record_n((l.p99 * 1000.0) as u64, s.responses())
            .unwrap();
        w.uncorrected
            .record_n((l.p99 * 1000.0) as u64, s.responses())
            .unwrap();
    }
    w
}

const START: &str = "2025-01-01T12:00:00Z";

fn at(t: f64) -> String {
    let start: chrono::DateTime<chrono::Utc> = START.parse().unwrap();
    (start + chrono::Duration::milliseconds((t * 1000.0) as i64)).to_rfc3339()
}

/// Writes `view` in the on-disk formats.
fn write_results(dir: &Path, view: &RunView) {
    let run = serde_json::json!({
        "format_version": 1, "run_id": "synthetic", "kind": "experiment",
        "tool": {"name": "shakedown", "version": "0.1.0"}, "command": ["shakedown"], "host": "test",
        "target": "http://127.0.0.1:1", "profile": {"name": "p", "path": null, "streams": [
            {"name": "uploads", "kind": "upload", "transport": "http", "arrival": "uniform", "stages": [[330.0, 100.0, 100.0]], "scheduled": 33000.0}
        ]},
        "mode": {"model": "open", "duration_s": 330.0}, "seed": 1, "segment": "0/1", "run_tag": "t",
        "settings": {"max_in_flight": 100, "max_lateness_ms": 1000, "late_after_ms": 10, "connect_timeout_ms": 1000, "request_timeout_ms": 1000},
        "started_at": START, "ended_at": null, "status": "completed"
    });
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&run).unwrap(),
    )
    .unwrap();
    let mut timeline = shakedown::results::timeline::header() + "\n";
    for (name, seconds) in &view.streams {
        for (s, sec) in seconds.iter().enumerate() {
            timeline += &shakedown::results::timeline::row(s as u32, name, &window_of(sec), 0);
            timeline.push('\n');
        }
    }
    std::fs::write(dir.join("timeline.csv"), timeline).unwrap();
    let names: Vec<&String> = view.probes.keys().collect();
    let mut probes = format!(
        "second,{}\n",
        names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    for s in 0..view.len() {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                view.probes[*n]
                    .get(s)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(probes, "{s},{}", cells.join(","));
    }
    std::fs::write(dir.join("probes.csv"), probes).unwrap();
    let mut journal = String::new();
    let mut seq = 0;
    let mut line = |t: f64, event: serde_json::Value| {
        seq += 1;
        let mut e = serde_json::json!({"v": 1, "seq": seq, "time": at(t), "run_id": "synthetic"});
        e.as_object_mut()
            .unwrap()
            .extend(event.as_object().unwrap().clone());
        journal += &(e.to_string() + "\n");
    };
    line(
        0.0,
        serde_json::json!({"event": "run-started", "pid": 1, "occurrences": view.faults.len()}),
    );
    for f in &view.faults {
        let fault = serde_json::json!({"id": f.id, "name": f.name, "type": f.kind});
        let target = serde_json::json!({"id": f.targets[0], "label": "x"});
        line(
            f.start - 0.01,
            serde_json::json!({"event": "intent", "fault": fault, "choice": {"matched": [target], "chosen": [target], "seed": 1},
            "change": {"change": "signal", "processes": [{"pid": 7, "start_time": 1, "command": "x"}], "signal": "SIGSTOP", "undo_signal": "SIGCONT"}, "summary": "s"}),
        );
        if f.end == Some(f.start) {
            line(
                f.start,
                serde_json::json!({"event": "irreversible", "fault": fault}),
            );
        } else {
            line(
                f.start,
                serde_json::json!({"event": "applied", "fault": fault}),
            );
            if let Some(end) = f.end {
                line(
                    end,
                    serde_json::json!({"event": "undone", "fault": fault, "by": "runner"}),
                );
            }
        }
    }
    std::fs::write(dir.join("journal.jsonl"), journal).unwrap();
    if let Some(acts) = &view.activities {
        let mut text = String::new();
        for a in acts {
            let kind = match a.kind {
                ActivityKind::Scaling => "scaling",
                ActivityKind::Launch => "launch",
                ActivityKind::Terminate => "terminate",
            };
            let v = serde_json::json!({"t_ms": (a.t * 1000.0) as u64, "group": a.group, "kind": kind, "from": a.from, "to": a.to, "instance": a.instance, "cause": a.cause});
            text += &(v.to_string() + "\n");
        }
        std::fs::write(dir.join("activities.jsonl"), text).unwrap();
    }
}

/// The ledger files are written from the same records the in-memory scenario used, with
/// times in ms since the Unix epoch as the run writes them.
fn write_ledger(dir: &Path, accepted: &[Accepted], done: &[Completion], still_queued: u64) {
    let epoch = START
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis() as u64;
    let mut a = String::new();
    for x in accepted {
        a += &(serde_json::json!({"id": x.id, "stream": x.stream, "t_ms": x.t_ms + epoch})
            .to_string()
            + "\n");
    }
    let mut c = String::new();
    for x in done {
        let outcome = if x.outcome == Outcome::Completed {
            "completed"
        } else {
            "dead_lettered"
        };
        c += &(serde_json::json!({"id": x.id, "done_ms": x.done_ms + epoch, "outcome": outcome, "receive_count": x.receive_count}).to_string() + "\n");
    }
    // A torn last line, as a killed run leaves it, is ignored.
    c += "{\"id\":\"up-1";
    std::fs::write(dir.join("accepted.jsonl"), a).unwrap();
    std::fs::write(dir.join("completions.jsonl"), c).unwrap();
    std::fs::write(
        dir.join("ledger.json"),
        format!("{{\"format_version\":1,\"still_queued\":{still_queued}}}"),
    )
    .unwrap();
}

#[test]
fn a_results_dir_gives_the_same_verdicts_as_the_view() {
    for arch in [Arch::Queued, Arch::FixedFleet, Arch::NoHealthChecks] {
        let view = scenario(arch);
        let dir = tempfile::tempdir().unwrap();
        write_results(dir.path(), &view);
        // Ledger records: one accepted per ok upload, completed 1 s later.
        let mut acc = Vec::new();
        let mut done = Vec::new();
        for (s, sec) in view.streams["uploads"].iter().enumerate() {
            for i in 0..sec.ok {
                let id = format!("up-{s}-{i}");
                acc.push(Accepted {
                    id: id.clone(),
                    stream: "uploads".into(),
                    t_ms: s as u64 * 1000,
                });
                done.push(Completion {
                    id,
                    done_ms: s as u64 * 1000 + 1000,
                    outcome: Outcome::Completed,
                    receive_count: 1,
                });
            }
        }
        write_ledger(dir.path(), &acc, &done, 0);
        let mut expected_view = view.clone();
        expected_view.ledger = Some(Ledger::build(&acc, &done, Some(0)));

        let loaded = analyze::load_run(dir.path()).unwrap();
        assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
        assert_eq!(loaded.faults.len(), 2);
        assert_eq!(loaded.faults[0].start, KILL_AT as f64);
        assert_eq!(loaded.faults[1].end, Some(STALL.1 as f64));
        assert_eq!(loaded.phases.len(), 1);
        let want = analyze::evaluate(&promises(), &expected_view);
        let file = analyze::analyze_dir(dir.path(), &promises()).unwrap();
        assert_eq!(
            statuses(&file.verdicts),
            statuses(&want),
            "{arch:?}\nfrom files:\n{}\nin memory:\n{}",
            render_table(&file.verdicts),
            render_table(&want)
        );
        for (a, b) in file.verdicts.iter().zip(&want) {
            assert_eq!(a.window, b.window, "{}", a.promise);
            assert_eq!(
                a.figures.keys().collect::<Vec<_>>(),
                b.figures.keys().collect::<Vec<_>>(),
                "{}",
                a.promise
            );
        }
        analyze::write_verdict(dir.path(), &file).unwrap();
        let back: analyze::VerdictFile = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("verdict.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(back, file);
    }
}

#[test]
fn a_fault_never_undone_is_read_from_the_journal() {
    let mut view = scenario(Arch::Queued);
    view.faults[1].end = None;
    let dir = tempfile::tempdir().unwrap();
    write_results(dir.path(), &view);
    let loaded = analyze::load_run(dir.path()).unwrap();
    assert_eq!(loaded.faults[1].end, None);
    let verdicts = analyze::evaluate(&promises(), &loaded);
    let drain = verdicts.iter().find(|v| v.kind == "drain").unwrap();
    assert_eq!(drain.status, Status::NotEvaluable);
    assert!(drain.reason.as_deref().unwrap().contains("never undone"));
    assert!(
        loaded
            .notes
            .iter()
            .any(|n| n.contains("accepted.jsonl missing"))
    );
}

// ---- published schema and documentation ----

#[test]
fn verdict_schema_is_published() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/verdict.schema.json");
    let generated = analyze::verdict::schema();
    if std::env::var_os("SHAKEDOWN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "{} is out of date: run `SHAKEDOWN_BLESS=1 cargo test --test analyze` and review the diff",
        path.display()
    );
}

#[test]
fn every_toml_example_in_the_promise_docs_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/promises.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut examples = 0;
    let mut types = std::collections::BTreeSet::new();
    for block in doc.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        let parsed =
            analyze::parse_promises(text, &path).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
        assert!(
            !parsed.is_empty(),
            "an example without [[promise]]:\n{text}"
        );
        for p in &parsed {
            types.insert(
                format!("{:?}", p.kind)
                    .split('(')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        examples += 1;
    }
    assert!(examples >= 11, "found {examples} examples");
    assert_eq!(
        types.len(),
        shakedown::analyze::spec::TYPES.len(),
        "every promise type has an example: {types:?}"
    );
}

/// The window p99 of a written run: exact from `latency.hlog` where the timeline's
/// per-second percentiles only give an upper bound, and that bound when the log is absent.
/// Second 0: 100 responses at 10 ms; second 1: 98 at 10 ms and 2 at 1 s. True p99 of the
/// 200: 10 ms; the old bound: 1 s.
#[test]
fn window_p99_comes_from_the_latency_log_exactly_and_falls_back_to_the_bound() {
    use shakedown::results::hlog::HlogWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut fast = Window::default();
    let mut mixed = Window::default();
    for i in 0..100 {
        fast.counters.sent += 1;
        mixed.counters.sent += 1;
        fast.record_response(10_000, 9_000, None);
        let us = if i < 98 { 10_000 } else { 1_000_000 };
        mixed.record_response(us, us, None);
    }
    let mut timeline = shakedown::results::timeline::header() + "\n";
    let mut hlog = HlogWriter::create(
        &dir.path().join("latency.hlog"),
        "synthetic",
        std::time::SystemTime::now(),
    )
    .unwrap();
    for (s, w) in [&fast, &mixed].into_iter().enumerate() {
        timeline += &(shakedown::results::timeline::row(s as u32, "uploads", w, 0) + "\n");
        hlog.write_second(s as u32, [("uploads", &w.corrected, &w.uncorrected)])
            .unwrap();
    }
    drop(hlog);
    std::fs::write(dir.path().join("timeline.csv"), timeline).unwrap();
    let promises = analyze::parse_promises(
        "[[promise]]\ntype = \"threshold\"\nchecks = [\"p99 < 100ms\"]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    let judge = || {
        let view = analyze::load_run(dir.path()).unwrap();
        analyze::evaluate(&promises, &view).remove(0)
    };
    let exact = judge();
    let ten_ms = fast.corrected.highest_equivalent(10_000) as f64 / 1000.0;
    assert_eq!(exact.status, Status::Pass, "{exact:?}");
    assert_eq!(exact.figures["p99_ms"], ten_ms.into());
    assert_eq!(exact.figures["latency_source"], "latency.hlog".into());
    std::fs::remove_file(dir.path().join("latency.hlog")).unwrap();
    let bound = judge();
    let one_s = mixed.corrected.max() as f64 / 1000.0;
    assert_eq!(bound.status, Status::Fail, "{bound:?}");
    assert_eq!(bound.figures["p99_ms"], one_s.into());
    assert_eq!(bound.figures["latency_source"], "timeline bound".into());
    assert!(one_s > 999.0 && ten_ms < 10.1);
}

// ---- the committed example run ----

/// `results/examples/demo-quick/` is a real `shakedown demo --quick` run (debug build, this
/// repository's sandbox). Analyzing it offline must give the verdicts it recorded, status
/// and summary: a change to the analyzer that moves any of them must say so and re-record
/// the example (`shakedown analyze results/examples/demo-quick`).
#[test]
fn the_committed_example_run_reproduces_its_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/examples/demo-quick");
    let experiment = dir.join("experiment.toml");
    let text = std::fs::read_to_string(&experiment).unwrap();
    let promises = analyze::parse_promises(&text, &experiment).unwrap();
    let file = analyze::analyze_dir(&dir, &promises).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    let recorded: BTreeMap<String, (String, String)> = recorded["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("promise"), (s("status"), s("summary")))
        })
        .collect();
    let now: BTreeMap<String, (String, String)> = file
        .verdicts
        .iter()
        .map(|v| {
            let status = serde_json::to_value(v.status).unwrap();
            (
                v.promise.clone(),
                (status.as_str().unwrap().to_owned(), v.summary.clone()),
            )
        })
        .collect();
    assert_eq!(now, recorded, "{}", render_table(&file.verdicts));
    assert_eq!(recorded.len(), 5, "every promise of demo-quick was judged");
}
