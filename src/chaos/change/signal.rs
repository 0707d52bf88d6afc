//! Signals to local processes: SIGSTOP undone by SIGCONT (stall), or a one-way signal (kill).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::chaos::fault::{BoxFuture, Env, FaultError};
use crate::chaos::local::{self, Delivery, ProcRef, parse_signal};

/// How long an undo waits for resumed processes to leave the stopped state.
const RESUME_TIMEOUT: Duration = Duration::from_secs(2);

/// A signal sent to chosen processes, and the one that undoes it (if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignalChange {
    /// The processes, with start times (a recycled pid is never signalled).
    pub processes: Vec<ProcRef>,
    /// The signal applied (`SIGSTOP`, `SIGKILL`, ...).
    pub signal: String,
    /// The signal that undoes it (`SIGCONT`), or none (irreversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_signal: Option<String>,
}

fn pids(ps: &[ProcRef]) -> String {
    ps.iter()
        .map(|p| format!("{} ({})", p.pid, p.command))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Undoable for SignalChange {
    fn reversible(&self) -> bool {
        self.undo_signal.is_some()
    }

    fn summary(&self) -> String {
        match &self.undo_signal {
            Some(u) => format!(
                "{} to pids {}; undo: {u}",
                self.signal,
                pids(&self.processes)
            ),
            None => format!(
                "{} to pids {}; irreversible",
                self.signal,
                pids(&self.processes)
            ),
        }
    }

    fn apply<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let sig = parse_signal(&self.signal)?;
            for p in &self.processes {
                local::signal(p, sig)?;
            }
            Ok(())
        })
    }

    fn undo<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let Some(undo) = &self.undo_signal else {
                return Ok(vec![]);
            };
            let sig = parse_signal(undo)?;
            let mut notes = Vec::new();
            for p in &self.processes {
                if local::signal(p, sig)? == Delivery::Gone {
                    notes.push(format!(
                        "pid {} ({}) is gone: nothing to resume",
                        p.pid, p.command
                    ));
                }
            }
            Ok(notes)
        })
    }

    fn verify<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if self.undo_signal.is_none() {
                return Ok(());
            }
            let resumed = || {
                self.processes
                    .iter()
                    .all(|p| local::is_stopped(p) != Some(true))
            };
            if local::wait_until(RESUME_TIMEOUT, resumed).await {
                return Ok(());
            }
            let still: Vec<_> = self
                .processes
                .iter()
                .filter(|p| local::is_stopped(p) == Some(true))
                .cloned()
                .collect();
            Err(FaultError::NotVerified(format!(
                "still stopped (state T): {}",
                pids(&still)
            )))
        })
    }
}
