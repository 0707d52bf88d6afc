//! The `command` fault: apply / undo / verify shell commands with flag files in a temp
//! dir, a failing verify, a timeout, the dry run, and `kill -9` of a real `shakedown run`
//! followed by `shakedown recover` running the journaled undo.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::cli::{shakedown, text};
use crate::support::wait::eventually_blocking;
use shakedown::chaos::Outcome;
use shakedown::chaos::fault::Env;
use shakedown::chaos::journal::{self, Event, JOURNAL_FILE};
use shakedown::chaos::plan::FaultPlan;
use shakedown::chaos::runner::Runner;
use tokio_util::sync::CancellationToken;

fn plan(dir: &Path, keys: &str) -> FaultPlan {
    FaultPlan::from_toml(&format!(
        "[[fault]]\nname = \"cmd\"\ntype = \"command\"\nat = \"0s\"\nduration = \"300ms\"\ndir = \"{}\"\n{keys}",
        dir.display()
    ))
    .unwrap_or_else(|e| panic!("{e:?}"))
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

#[tokio::test]
async fn apply_then_undo_with_flag_files_and_output_in_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("up"), "").unwrap();
    let p = plan(
        tmp.path(),
        "apply = \"echo breaking; rm up\"\nundo = \"touch up\"\nverify = \"test -e up\"\n",
    );
    let run_dir = tmp.path().join("results").join("r");
    let run = tokio::spawn(Runner::new(p, Env::new(None), &run_dir).run(CancellationToken::new()));
    let t0 = Instant::now();
    while tmp.path().join("up").exists() {
        assert!(t0.elapsed() < Duration::from_secs(5), "apply never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!((report.applied, report.undone), (1, 1));
    assert!(
        tmp.path().join("up").exists(),
        "undo did not restore the flag"
    );
    assert_eq!(
        events(&run_dir),
        ["run-started", "intent", "applied", "undone", "run-ended"]
    );
    // The exact undo is journaled with the intent.
    let intent = &journal::read(&run_dir.join(JOURNAL_FILE)).unwrap()[1];
    let change = serde_json::to_value(&intent.event).unwrap()["change"].clone();
    assert_eq!(change["change"], "command");
    assert_eq!(change["undo"], "touch up");
    // Output goes to the run directory, not the terminal.
    let logs: Vec<PathBuf> = std::fs::read_dir(run_dir.join("commands"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("breaking") && log.contains("undo"), "{log}");
}

#[tokio::test]
async fn a_failing_verify_is_an_undo_failure_naming_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        tmp.path(),
        "apply = \"true\"\nundo = \"true\"\nverify = \"echo still broken >&2; exit 4\"\n",
    );
    let run_dir = tmp.path().join("r");
    let report = Runner::new(p, Env::new(None), &run_dir)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.undone, 0);
    assert_eq!(report.still_applied.len(), 1, "{report:?}");
    let still = &report.still_applied[0];
    assert!(
        still.contains("verify command `echo still broken"),
        "{still}"
    );
    assert!(still.contains("exited with code 4"), "{still}");
    assert!(still.contains("still broken"), "{still}");
    assert_eq!(report.exit_code(), 2);
    assert_eq!(
        events(&run_dir),
        [
            "run-started",
            "intent",
            "applied",
            "undo-failed",
            "run-ended"
        ]
    );
}

#[tokio::test]
async fn an_apply_past_its_timeout_is_killed_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        tmp.path(),
        "apply = \"sleep 30\"\nundo = \"touch undone\"\ntimeout = \"300ms\"\n",
    );
    let run_dir = tmp.path().join("r");
    let started = Instant::now();
    let report = Runner::new(p, Env::new(None), &run_dir)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.outcome, Outcome::Failed);
    let reason = report.reason.unwrap();
    assert!(reason.contains("apply command `sleep 30`"), "{reason}");
    assert!(reason.contains("timed out after 300ms"), "{reason}");
    // A failed apply may be half made: its undo runs.
    assert!(tmp.path().join("undone").exists());
    assert_eq!(
        events(&run_dir),
        [
            "run-started",
            "intent",
            "apply-failed",
            "undone",
            "run-ended"
        ]
    );
}

// The real `shakedown run`, against an existing-system target at a closed local port.

/// An experiment that removes `flag` (the system "breaks") for a minute; undo restores it.
fn experiment(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("p.toml"),
        "name = \"p\"\ntimeout = \"1s\"\n[[stream]]\nname = \"s\"\nkind = \"upload\"\nrequest = { method = \"PUT\", path = \"/u/{id}\" }\nsize = { dist = \"fixed\", size = \"1KiB\" }\nstages = [ { for = \"60s\", rate = \"2/s\" } ]\n",
    )
    .unwrap();
    let exp = dir.join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"cmd\"\nprofile = \"p.toml\"\n[target]\nhttp = \"http://127.0.0.1:9\"\n\
             [[fault]]\nname = \"break\"\ntype = \"command\"\nat = \"0s\"\nduration = \"60s\"\n\
             dir = \"{}\"\napply = \"rm flag\"\nundo = \"touch flag\"\nverify = \"test -e flag\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("flag"), "").unwrap();
    exp
}

#[test]
fn dry_run_prints_the_commands_and_runs_none() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path());
    let out = shakedown()
        .args(["run", "--dry-run"])
        .arg(&exp)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("sh -c \"rm flag\"; undo: sh -c \"touch flag\""),
        "{t}"
    );
    assert!(tmp.path().join("flag").exists(), "the dry run ran apply");
}

#[test]
fn kill_9_mid_command_fault_then_recover_runs_the_undo() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path());
    let results = tmp.path().join("results");
    let run_dir = results.join("dead");
    let mut child = shakedown()
        .args(["run", "-q", "--run-id", "dead", "--results"])
        .arg(&results)
        .arg(&exp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually_blocking("the fault applied", Duration::from_secs(60), || {
        std::fs::read_to_string(run_dir.join(JOURNAL_FILE))
            .unwrap_or_default()
            .contains("\"applied\"")
    });
    child.kill().unwrap(); // SIGKILL: no undo
    child.wait().unwrap();
    assert!(
        !tmp.path().join("flag").exists(),
        "the fault is still applied"
    );

    let out = shakedown().arg("recover").arg(&run_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        tmp.path().join("flag").exists(),
        "recover did not run the undo"
    );
    let entries = journal::read(&run_dir.join(JOURNAL_FILE)).unwrap();
    assert!(entries.iter().any(|e| matches!(
        e.event,
        Event::Undone {
            by: journal::Undoer::Recover,
            ..
        }
    )));
    // Twice is a no-op.
    std::fs::remove_file(tmp.path().join("flag")).unwrap();
    let again = shakedown().arg("recover").arg(&run_dir).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        !tmp.path().join("flag").exists(),
        "recover ran the undo twice"
    );
}
