//! `command`: any change a shell command can make, with the command that undoes it.
//!
//! For what shakedown has no built-in fault for (`tc netem`, `iptables`, a feature flag, a
//! scaling policy of your own autoscaler...). Each command runs as `sh -c '<command>'` in its
//! own process group; one that runs past `timeout` is killed with its group. Output goes to
//! `commands/<occurrence>.log` in the run directory. The exact `undo` (and `verify`) command
//! is journaled before `apply` runs, so `shakedown recover` can run it after a `kill -9`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::chaos::change::Change;
use crate::chaos::change::command::{CommandChange, log_path};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};

/// ```toml
/// [[fault]]
/// name = "pause-autoscaler"
/// type = "command"
/// at = "30s"
/// duration = "2m"
/// apply = "kill -STOP $(cat /run/autoscaler.pid)"
/// undo = "kill -CONT $(cat /run/autoscaler.pid)"
/// verify = "test \"$(ps -o state= -p $(cat /run/autoscaler.pid))\" != T"
/// timeout = "10s"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFault {
    /// Makes the change; exit 0 = applied. A non-zero exit or a timeout fails the run
    /// (and `undo` runs, since the change may be half made).
    pub apply: String,
    /// Undoes it; exit 0 = undone. It may run twice (e.g. `recover` after a crash between
    /// the undo and its journal entry): make it idempotent.
    pub undo: String,
    /// Optional check run after `undo`: exit 0 = the system is restored; anything else is
    /// an `undo-failed` (exit code 2, `shakedown recover` retries).
    pub verify: Option<String>,
    /// Longest each command may run (default `30s`); then its process group is killed.
    #[serde(default = "thirty_seconds", with = "crate::units::serde_duration")]
    pub timeout: Duration,
    /// Working directory of the commands (default: where shakedown runs).
    pub dir: Option<PathBuf>,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

impl Fault for CommandFault {
    fn type_name(&self) -> &'static str {
        "command"
    }
    fn impact(&self) -> Impact {
        Impact::Reversible
    }
    fn check(&self) -> Result<(), FaultError> {
        for (key, cmd) in [("apply", &self.apply), ("undo", &self.undo)] {
            if cmd.trim().is_empty() {
                return Err(FaultError::Invalid(format!("`{key}` must not be empty")));
            }
        }
        if self.verify.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err(FaultError::Invalid(
                "`verify` must not be empty (or leave it out)".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(FaultError::Invalid("`timeout` must be > 0".into()));
        }
        Ok(())
    }
    fn resolve<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            self.check()?;
            Ok(vec![Resource {
                id: "sh".into(),
                label: self.apply.clone(),
                aws_tags: None,
            }])
        })
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        _chosen: &'a [Resource],
        occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            let dir = match &self.dir {
                Some(d) => Some(
                    std::path::absolute(d)
                        .map_err(|e| FaultError::Invalid(format!("`dir` {}: {e}", d.display())))?,
                ),
                None => None,
            };
            Ok(Change::Command(CommandChange {
                apply: self.apply.clone(),
                undo: self.undo.clone(),
                verify: self.verify.clone(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                dir,
                log: env.run_dir.as_deref().map(|d| log_path(d, occurrence)),
            }))
        })
    }
}
