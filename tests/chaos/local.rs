//! Chaos against real local processes: `sleep` children stopped, resumed and killed, with
//! the journal, guardrails, dry run, stop conditions, and crash recovery (SIGKILL / SIGTERM
//! of a real harness process).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::{CommandExt, ExitStatusExt};

use crate::support::cli::shakedown;
use crate::support::wait::{eventually, wait_exit};
use shakedown::chaos::Outcome;
use shakedown::chaos::fault::Env;
use shakedown::chaos::guard::Snapshot;
use shakedown::chaos::journal::{self, ChangeState, Event, JOURNAL_FILE};
use shakedown::chaos::local::stat;
use shakedown::chaos::plan::{FaultPlan, dry_run};
use shakedown::chaos::recover::{check_clean, recover_run};
use shakedown::chaos::runner::{RunError, Runner};
use tokio_util::sync::CancellationToken;

/// `sleep` children, SIGKILLed and reaped on drop.
struct Sleepers(Vec<Child>);

impl Sleepers {
    /// `n` children in a new process group (led by the first).
    fn group(n: usize) -> Sleepers {
        let mut children: Vec<Child> = Vec::new();
        for _ in 0..n {
            let pgid = children.first().map_or(0, |c| c.id() as i32);
            children.push(
                Command::new("sleep")
                    .arg("300")
                    .stdin(Stdio::null())
                    .process_group(pgid)
                    .spawn()
                    .expect("spawn sleep"),
            );
        }
        Sleepers(children)
    }
    fn pids(&self) -> Vec<i32> {
        self.0.iter().map(|c| c.id() as i32).collect()
    }
    fn pgid(&self) -> i32 {
        self.0[0].id() as i32
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn state(pid: i32) -> char {
    stat(pid).map_or('-', |s| s.state)
}

fn pid_file(dir: &Path, pids: &[i32]) -> PathBuf {
    let path = dir.join("workers.pid");
    let text: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

fn events(run_dir: &Path) -> Vec<String> {
    journal::read(&run_dir.join(JOURNAL_FILE))
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::to_value(&e.event).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn stall_plan(pid_file: &Path, duration: &str, extra: &str) -> FaultPlan {
    FaultPlan::from_toml(&format!(
        r#"
        seed = 1
        [guardrails]
        max_instances = 5
        {extra}

        [[fault]]
        name = "stall"
        type = "stall-consumers"
        at = "0s"
        duration = "{duration}"
        processes = {{ pid_file = "{}" }}
        percent = 100
        "#,
        pid_file.display()
    ))
    .unwrap()
}

#[tokio::test]
async fn stall_consumers_stops_and_resumes_real_processes() {
    let kids = Sleepers::group(2);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let run_dir = tmp.path().join("run-stall");
    let runner = Runner::new(stall_plan(&file, "400ms", ""), Env::new(None), &run_dir);
    let run = tokio::spawn(runner.run(CancellationToken::new()));
    let pids = kids.pids();
    eventually("both stopped", Duration::from_secs(3), async || {
        pids.iter().all(|&p| state(p) == 'T')
    })
    .await;
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!((report.applied, report.undone), (1, 1));
    for &p in &pids {
        assert_ne!(state(p), 'T', "pid {p} still stopped after the run");
    }
    assert_eq!(
        events(&run_dir),
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
    check_clean(tmp.path()).unwrap();
}

#[tokio::test]
async fn command_match_never_leaves_the_named_group() {
    let inside = Sleepers::group(2);
    let outside = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::from_toml(&format!(
        r#"
        [guardrails]
        max_instances = 5
        [[fault]]
        type = "stall-consumers"
        at = "0s"
        duration = "300ms"
        processes = {{ command = "sleep 300", process_group = {} }}
        percent = 100
        "#,
        inside.pgid()
    ))
    .unwrap();
    let run = tokio::spawn(
        Runner::new(plan, Env::new(None), &tmp.path().join("r")).run(CancellationToken::new()),
    );
    let pids = inside.pids();
    eventually("group stopped", Duration::from_secs(3), async || {
        pids.iter().all(|&p| state(p) == 'T')
    })
    .await;
    assert_ne!(
        state(outside.pids()[0]),
        'T',
        "a process outside the group was stopped"
    );
    run.await.unwrap().unwrap();
    assert!(pids.iter().all(|&p| state(p) != 'T'));
}

#[tokio::test]
async fn kill_process_kills_the_chosen_count_and_is_irreversible() {
    let mut kids = Sleepers::group(3);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = FaultPlan::from_toml(&format!(
        r#"
        [guardrails]
        max_instances = 3
        [[fault]]
        type = "kill-process"
        at = "0s"
        processes = {{ pid_file = "{}" }}
        count = 1
        "#,
        file.display()
    ))
    .unwrap();
    let run_dir = tmp.path().join("r");
    let report = Runner::new(plan, Env::new(None), &run_dir)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    let mut killed = 0;
    for c in &mut kids.0 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                assert_eq!(status.signal(), Some(9));
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(killed, 1);
    assert_eq!(
        events(&run_dir),
        ["run-started", "intent", "irreversible", "run-ended"]
    );
}

#[tokio::test]
async fn selector_over_the_cap_is_refused_with_the_list_and_nothing_changes() {
    let kids = Sleepers::group(3);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = FaultPlan::from_toml(&format!(
        r#"
        [guardrails]
        max_instances = 2
        [[fault]]
        type = "stall-consumers"
        at = "0s"
        duration = "1s"
        processes = {{ pid_file = "{}" }}
        count = 1
        "#,
        file.display()
    ))
    .unwrap();
    let err = Runner::new(plan, Env::new(None), &tmp.path().join("r"))
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RunError::Refused(_)), "{text}");
    for p in kids.pids() {
        assert!(text.contains(&p.to_string()), "{p} not listed in: {text}");
        assert_ne!(state(p), 'T');
    }
    assert!(text.contains("max_instances = 2"), "{text}");
}

#[tokio::test]
async fn destructive_fault_without_cap_is_refused() {
    let kids = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = FaultPlan::from_toml(&format!(
        "[guardrails]\nmax_instances = 2\n[[fault]]\ntype = \"kill-process\"\nat = \"0s\"\nprocesses = {{ pid_file = \"{}\" }}\n",
        file.display()
    ))
    .unwrap();
    let err = Runner::new(plan, Env::new(None), &tmp.path().join("r"))
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs `count` or `percent`"),
        "{err}"
    );
    assert!(stat(kids.pids()[0]).is_some_and(|s| s.state != 'Z'));
}

#[tokio::test]
async fn dry_run_resolves_and_changes_nothing() {
    let kids = Sleepers::group(2);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = stall_plan(&file, "10s", "");
    let steps = dry_run(&plan, &Env::new(None)).await.unwrap();
    let text = shakedown::chaos::plan::render_dry_run(&steps);
    println!("{text}");
    for p in kids.pids() {
        assert!(text.contains(&p.to_string()), "{text}");
    }
    assert!(text.contains("undo: SIGCONT"), "{text}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for p in kids.pids() {
        assert_ne!(state(p), 'T');
    }
    assert!(!tmp.path().join("r").exists());
}

#[tokio::test]
async fn stop_condition_aborts_and_undoes() {
    let kids = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = stall_plan(
        &file,
        "60s",
        "stop = [ { metric = \"error_rate\", above = 0.05 } ]",
    );
    let (tx, rx) = tokio::sync::watch::channel(Snapshot::default());
    let run_dir = tmp.path().join("r");
    let run = tokio::spawn(
        Runner::new(plan, Env::new(None), &run_dir)
            .watch(rx)
            .run(CancellationToken::new()),
    );
    let pid = kids.pids()[0];
    eventually("stopped", Duration::from_secs(3), async || {
        state(pid) == 'T'
    })
    .await;
    let started = Instant::now();
    tx.send(Snapshot {
        error_rate: Some(0.5),
        ..Snapshot::default()
    })
    .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(report.reason.unwrap().contains("error_rate"));
    assert_ne!(state(pid), 'T');
    let ev = events(&run_dir);
    assert_eq!(ev.last().unwrap(), "run-ended");
    assert!(ev.contains(&"undone".to_owned()));
}

#[tokio::test]
async fn abort_and_cancellation_undo_in_reverse_order() {
    let a = Sleepers::group(1);
    let b = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let fa = tmp.path().join("a.pid");
    let fb = tmp.path().join("b.pid");
    std::fs::write(&fa, a.pids()[0].to_string()).unwrap();
    std::fs::write(&fb, b.pids()[0].to_string()).unwrap();
    let text = format!(
        r#"
        [guardrails]
        max_instances = 1
        [[fault]]
        name = "first"
        type = "stall-consumers"
        at = "0s"
        duration = "60s"
        processes = {{ pid_file = "{}" }}
        count = 1
        [[fault]]
        name = "second"
        type = "stall-consumers"
        at = "100ms"
        duration = "60s"
        processes = {{ pid_file = "{}" }}
        count = 1
        "#,
        fa.display(),
        fb.display()
    );
    // Abort through the handle.
    let runner = Runner::new(
        FaultPlan::from_toml(&text).unwrap(),
        Env::new(None),
        &tmp.path().join("r1"),
    );
    let handle = runner.abort_handle();
    let run = tokio::spawn(runner.run(CancellationToken::new()));
    let (pa, pb) = (a.pids()[0], b.pids()[0]);
    eventually("both stopped", Duration::from_secs(3), async || {
        state(pa) == 'T' && state(pb) == 'T'
    })
    .await;
    handle.abort("operator said so");
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(state(pa) != 'T' && state(pb) != 'T');
    let entries = journal::read(&tmp.path().join("r1").join(JOURNAL_FILE)).unwrap();
    let undone: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Undone { fault, .. } => Some(fault.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(undone, ["second", "first"]);

    // Cancellation (what Ctrl-C / SIGTERM do in the binary).
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Runner::new(
            FaultPlan::from_toml(&text).unwrap(),
            Env::new(None),
            &tmp.path().join("r2"),
        )
        .run(cancel.clone()),
    );
    eventually("both stopped", Duration::from_secs(3), async || {
        state(pa) == 'T' && state(pb) == 'T'
    })
    .await;
    cancel.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted);
    assert_eq!(report.exit_code(), 130);
    assert!(state(pa) != 'T' && state(pb) != 'T');
}

#[tokio::test]
async fn only_one_run_holds_faults_and_a_stale_lock_is_reported() {
    let kids = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let run = tokio::spawn(
        Runner::new(
            stall_plan(&file, "500ms", ""),
            Env::new(None),
            &tmp.path().join("r1"),
        )
        .run(CancellationToken::new()),
    );
    let pid = kids.pids()[0];
    eventually("stopped", Duration::from_secs(3), async || {
        state(pid) == 'T'
    })
    .await;
    let err = Runner::new(
        stall_plan(&file, "1s", ""),
        Env::new(None),
        &tmp.path().join("r2"),
    )
    .run(CancellationToken::new())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("holds the chaos lock"), "{err}");
    run.await.unwrap().unwrap();

    // A lock left by a dead process is reported, not taken.
    std::fs::write(
        tmp.path().join("chaos.lock"),
        r#"{"pid":999999999,"run_id":"ghost"}"#,
    )
    .unwrap();
    let err = Runner::new(
        stall_plan(&file, "1s", ""),
        Env::new(None),
        &tmp.path().join("r3"),
    )
    .run(CancellationToken::new())
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("stale chaos lock") && text.contains("ghost"),
        "{text}"
    );
    assert!(tmp.path().join("chaos.lock").exists());
    assert_ne!(state(pid), 'T');
}

// The real harness process, killed mid-fault.

fn harness(plan: &Path, run_dir: &Path) -> Child {
    shakedown()
        .arg("__chaos-run")
        .arg(plan)
        .arg("--journal")
        .arg(run_dir)
        .spawn()
        .expect("spawn shakedown")
}

fn write_stall_plan(dir: &Path, pid_file: &Path) -> PathBuf {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "[guardrails]\nmax_instances = 4\n[[fault]]\nname = \"stall\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"60s\"\nprocesses = {{ pid_file = \"{}\" }}\npercent = 100\n",
            pid_file.display()
        ),
    )
    .unwrap();
    plan
}

#[tokio::test]
async fn sigkill_mid_stall_leaves_the_journal_and_recover_resumes_consumers() {
    let kids = Sleepers::group(2);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = write_stall_plan(tmp.path(), &file);
    let results = tmp.path().join("results");
    let run_dir = results.join("run-killed");
    let mut h = harness(&plan, &run_dir);
    let pids = kids.pids();
    eventually("consumers stopped", Duration::from_secs(10), async || {
        pids.iter().all(|&p| state(p) == 'T')
    })
    .await;
    h.kill().unwrap();
    let status = wait_exit(&mut h, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(9));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        pids.iter().all(|&p| state(p) == 'T'),
        "consumers must still be stalled after kill -9"
    );

    // A new run refuses to start, naming the recover command.
    let err = check_clean(&results).unwrap_err().to_string();
    assert!(
        err.contains(&format!("shakedown recover {}", run_dir.display())),
        "{err}"
    );
    let states: Vec<ChangeState> =
        journal::fold(&journal::read(&run_dir.join(JOURNAL_FILE)).unwrap())
            .iter()
            .map(|t| t.state)
            .collect();
    assert_eq!(states, [ChangeState::Applied]);

    // recover, then recover again (a no-op).
    let first = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert_eq!(first.undone.len(), 1, "{first:?}");
    assert!(first.failed.is_empty());
    assert!(
        first.notes.iter().any(|n| n.contains("stale chaos lock")),
        "{first:?}"
    );
    assert!(pids.iter().all(|&p| state(p) != 'T'));
    let second = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert!(
        second.undone.is_empty() && second.failed.is_empty(),
        "{second:?}"
    );
    check_clean(&results).unwrap();
    let ev = events(&run_dir);
    assert_eq!(
        ev,
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
}

#[tokio::test]
async fn sigterm_mid_stall_undoes_before_exit() {
    let kids = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    let file = pid_file(tmp.path(), &kids.pids());
    let plan = write_stall_plan(tmp.path(), &file);
    let run_dir = tmp.path().join("results").join("run-term");
    let mut h = harness(&plan, &run_dir);
    let pid = kids.pids()[0];
    eventually("consumer stopped", Duration::from_secs(10), async || {
        state(pid) == 'T'
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(h.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_exit(&mut h, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert_ne!(state(pid), 'T');
    let entries = journal::read(&run_dir.join(JOURNAL_FILE)).unwrap();
    assert!(matches!(
        entries.last().unwrap().event,
        Event::RunEnded {
            outcome: Outcome::Interrupted,
            ..
        }
    ));
    check_clean(&tmp.path().join("results")).unwrap();
}

// Fleets of local processes: pid file globs and lists, whole process groups, children.

fn selected(selector: &str) -> Vec<i32> {
    let sel: shakedown::chaos::local::ProcessSelector = toml::from_str(selector).unwrap();
    sel.resolve()
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .iter()
        .map(|p| p.pid)
        .collect()
}

#[tokio::test]
async fn a_fleet_is_selected_by_pid_file_glob_list_group_and_parent() {
    let kids = Sleepers::group(3);
    let mut pids = kids.pids();
    pids.sort_unstable();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("workers");
    std::fs::create_dir(&dir).unwrap();
    for (i, p) in kids.pids().iter().enumerate() {
        std::fs::write(dir.join(format!("w{i}.pid")), format!("{p}\n")).unwrap();
    }
    std::fs::write(dir.join("README"), "not a pid file").unwrap();
    let d = dir.display();
    assert_eq!(selected(&format!("pid_file = \"{d}/*.pid\"")), pids);
    assert_eq!(
        selected(&format!("pid_file = [\"{d}/w0.pid\", \"{d}/w2.pid\"]")),
        [kids.pids()[0], kids.pids()[2]]
    );
    assert!(selected(&format!("pid_file = \"{d}/*.nope\"")).is_empty());
    // One pid file, the whole group (the three share the first one's group).
    assert_eq!(
        selected(&format!("pid_file = \"{d}/w1.pid\"\nprocess_group = true")),
        pids
    );
    assert_eq!(
        selected(&format!(
            "pid_file = \"{d}/w1.pid\"\nprocess_group = true\ncommand = \"sleep\""
        )),
        pids
    );

    // A parent (its own group) with two children: the children, from /proc.
    let mut parent = Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300 & wait"])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let ppid = parent.id() as i32;
    std::fs::write(tmp.path().join("app.pid"), ppid.to_string()).unwrap();
    let by_pid = format!("children_of = {ppid}");
    eventually("two children", Duration::from_secs(5), async || {
        selected(&by_pid).len() == 2
    })
    .await;
    let children = selected(&by_pid);
    assert!(!children.contains(&ppid));
    assert_eq!(
        selected(&format!(
            "children_of = \"{}\"",
            tmp.path().join("app.pid").display()
        )),
        children
    );
    // The whole group of the parent's children is the parent too.
    assert_eq!(
        selected(&format!("{by_pid}\nprocess_group = true")).len(),
        3
    );
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(ppid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = parent.wait();
}

#[test]
fn widening_to_shakedowns_own_group_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // This test process's pid: its group is the harness's own.
    let file = pid_file(tmp.path(), &[std::process::id() as i32]);
    let sel: shakedown::chaos::local::ProcessSelector = toml::from_str(&format!(
        "pid_file = \"{}\"\nprocess_group = true",
        file.display()
    ))
    .unwrap();
    let err = sel.resolve().unwrap_err().to_string();
    assert!(err.contains("shakedown's own"), "{err}");
}

#[tokio::test]
async fn validate_and_run_accept_and_refuse_the_same_selectors() {
    let kids = Sleepers::group(1);
    let tmp = tempfile::tempdir().unwrap();
    pid_file(tmp.path(), &kids.pids());
    let with = |processes: String| {
        format!(
            "[guardrails]\nmax_instances = 2\n[[fault]]\nname = \"k\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"1s\"\nprocesses = {processes}\ncount = 1\n"
        )
    };
    // A glob: validate (the plan) and run (resolving it) both accept it.
    let glob = with(format!(
        "{{ pid_file = \"{}/*.pid\" }}",
        tmp.path().display()
    ));
    let plan = FaultPlan::from_toml(&glob).unwrap();
    let steps = dry_run(&plan, &Env::new(None)).await.unwrap();
    assert_eq!(steps[0].choice.matched.len(), 1);
    // A selector with no source: both refuse it, in the same words.
    let bad = with("{ process_group = true }".into());
    let errors = FaultPlan::from_toml(&bad).unwrap_err();
    let sel: shakedown::chaos::local::ProcessSelector =
        toml::from_str("process_group = true").unwrap();
    let at_run = sel.resolve().unwrap_err().to_string();
    assert_eq!(errors.count(), 1, "{errors:?}");
    let message = &errors.iter().next().unwrap().message;
    assert!(message.contains(&at_run), "{errors:?} vs {at_run}");
}
