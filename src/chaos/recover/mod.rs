//! Undo what a dead run left applied, from its journal alone; refuse new runs until then.
//!
//! Recovery is idempotent: it undoes only changes the journal does not show as undone,
//! every undo is itself a no-op on a restored resource, and each success is journaled, so a
//! second `recover` finds nothing to do. Without the journal, [`tags`] recovers AWS changes
//! from the undo tags on the resources themselves.

pub mod tags;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::fault::Env;
use super::guard::{LOCK_FILE, read_lock};
use super::journal::{self, Event, JOURNAL_FILE, Journal, JournalError, RunOutcome, Undoer};
use super::local::pid_alive;
use super::runner::undo_and_verify;

/// Earlier runs whose faults may still be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecovered {
    /// Each run directory with what is still applied there.
    pub runs: Vec<(PathBuf, Vec<String>)>,
}

impl fmt::Display for Unrecovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (dir, applied) in &self.runs {
            writeln!(
                f,
                "run {} left faults applied; undo them with `shakedown recover {}`:",
                journal::run_id_of(dir),
                dir.display()
            )?;
            for a in applied {
                writeln!(f, "  - {a}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Unrecovered {}

/// Fails if any run under `results_dir` left faults applied (runs still alive are skipped:
/// the run lock keeps them apart).
pub fn check_clean(results_dir: &Path) -> Result<(), Unrecovered> {
    check_clean_except(results_dir, None)
}

/// [`check_clean`], ignoring the run directory `except` (the run about to start).
pub(crate) fn check_clean_except(
    results_dir: &Path,
    except: Option<&Path>,
) -> Result<(), Unrecovered> {
    let mut runs = Vec::new();
    for dir in run_dirs(results_dir) {
        if except.is_some_and(|e| e == dir) || live_run(&dir).is_some() {
            continue;
        }
        let applied = match journal::read(&dir.join(JOURNAL_FILE)) {
            Ok(entries) => journal::fold(&entries)
                .into_iter()
                .filter(|t| t.state.outstanding())
                .map(|t| format!("{}: {}", t.fault.id, t.change.ops().summary()))
                .collect(),
            Err(e) => vec![format!("unreadable journal: {e}")],
        };
        if !applied.is_empty() {
            runs.push((dir, applied));
        }
    }
    if runs.is_empty() {
        Ok(())
    } else {
        Err(Unrecovered { runs })
    }
}

/// Run directories (those with a journal) under `results_dir`, sorted.
pub fn run_dirs(results_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(results_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(JOURNAL_FILE).is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The pid of the live process holding the lock for this run, if any.
fn live_run(run_dir: &Path) -> Option<u32> {
    live_lock_holder(run_dir.parent()?, &journal::run_id_of(run_dir))
}

/// The pid of the live process holding the lock in `results_dir` for run `run_id`, if any.
fn live_lock_holder(results_dir: &Path, run_id: &str) -> Option<u32> {
    let info = read_lock(&results_dir.join(LOCK_FILE)).ok()?;
    (info.run_id == run_id && pid_alive(info.pid)).then_some(info.pid)
}

/// Removes the lock in `results_dir` if it names `run_id` and its holder is dead; says so.
fn remove_stale_lock(results_dir: &Path, run_id: &str) -> Option<String> {
    let lock = results_dir.join(LOCK_FILE);
    let info = read_lock(&lock).ok()?;
    if info.run_id != run_id || pid_alive(info.pid) {
        return None;
    }
    fs::remove_file(&lock).ok()?;
    Some(format!(
        "removed the stale chaos lock of run {} (pid {} is gone)",
        info.run_id, info.pid
    ))
}

/// Why recovery could not run.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The journal could not be read or appended.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The run is still alive: it undoes its own faults.
    #[error("run {} is still running (pid {pid}): stop it (SIGTERM undoes its faults) instead of recovering", dir.display())]
    Live {
        /// The run.
        dir: PathBuf,
        /// Its pid.
        pid: u32,
    },
    /// No journal there.
    #[error("{}: no {JOURNAL_FILE} (not a run directory)", .0.display())]
    NotARun(PathBuf),
}

/// What recovering one run did.
#[derive(Debug, Clone, Default)]
pub struct RunRecovery {
    /// The run directory.
    pub dir: PathBuf,
    /// Changes undone now.
    pub undone: Vec<String>,
    /// Changes whose undo failed: still applied.
    pub failed: Vec<String>,
    /// Other things worth saying (a stale lock removed, ...).
    pub notes: Vec<String>,
}

/// Undoes every change the run's journal shows as possibly applied, newest first.
pub async fn recover_run(run_dir: &Path, env: &Env) -> Result<RunRecovery, RecoverError> {
    if !run_dir.join(JOURNAL_FILE).is_file() {
        return Err(RecoverError::NotARun(run_dir.to_owned()));
    }
    if let Some(pid) = live_run(run_dir) {
        return Err(RecoverError::Live {
            dir: run_dir.to_owned(),
            pid,
        });
    }
    let entries = journal::read(&run_dir.join(JOURNAL_FILE))?;
    let ended = entries
        .iter()
        .any(|e| matches!(e.event, Event::RunEnded { .. }));
    let outstanding: Vec<_> = journal::fold(&entries)
        .into_iter()
        .filter(|t| t.state.outstanding())
        .collect();
    let mut report = RunRecovery {
        dir: run_dir.to_owned(),
        ..RunRecovery::default()
    };
    // Endpoints of an embedded sandbox that died with the run (its processes too: they are
    // killed with their supervisor): what was applied through them is gone.
    let (pid, ephemeral) = entries
        .iter()
        .find_map(|e| match &e.event {
            Event::RunStarted { pid, ephemeral, .. } => Some((*pid, ephemeral.clone())),
            _ => None,
        })
        .unwrap_or_default();
    let mut journal = Journal::open(run_dir)?;
    for t in outstanding.iter().rev() {
        let summary = format!("{}: {}", t.fault.id, t.change.ops().summary());
        let endpoints = t.change.endpoints();
        if !endpoints.is_empty()
            && !ephemeral.is_empty()
            && endpoints.iter().all(|u| ephemeral.iter().any(|e| e == u))
        {
            journal.append(Event::Undone {
                fault: t.fault.clone(),
                by: Undoer::Recover,
                notes: vec![format!(
                    "the embedded sandbox it was applied to ended with its run (pid {pid}): nothing is left applied"
                )],
            })?;
            report
                .undone
                .push(format!("{summary} (ended with the sandbox)"));
            continue;
        }
        match undo_and_verify(env, &mut journal, &t.fault, &t.change, Undoer::Recover).await? {
            Ok(()) => report.undone.push(summary),
            Err(still) => report.failed.push(still),
        }
    }
    if !ended && report.failed.is_empty() {
        journal.append(Event::RunEnded {
            outcome: RunOutcome::Interrupted,
            reason: Some("the harness died; faults undone by `shakedown recover`".into()),
        })?;
    }
    if report.failed.is_empty()
        && let Some(parent) = run_dir.parent()
        && let Some(note) = remove_stale_lock(parent, journal.run_id())
    {
        report.notes.push(note);
    }
    Ok(report)
}
