//! `kill-process`: a signal (SIGKILL by default) to chosen local processes, or `docker kill`
//! to chosen containers. Irreversible.

use serde::Deserialize;

use super::stall::{ContainerSelector, proc_refs, resolve_containers, resolve_processes};
use crate::chaos::change::Change;
use crate::chaos::change::container::{ContainerAction, ContainerChange};
use crate::chaos::change::signal::SignalChange;
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::guard::Cap;
use crate::chaos::local::{ProcessSelector, parse_signal};

/// ```toml
/// [[fault]]
/// type = "kill-process"
/// at = "90s"
/// processes = { pid_file = "/run/worker.pid" }   # or containers = { label = "role=worker" }
/// signal = "SIGKILL"                             # default
/// count = 1
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillProcess {
    /// Local processes.
    pub processes: Option<ProcessSelector>,
    /// Or docker containers.
    pub containers: Option<ContainerSelector>,
    /// The signal (default `SIGKILL`).
    #[serde(default = "sigkill")]
    pub signal: String,
    /// How many.
    pub count: Option<usize>,
    /// Or which percentage (rounded up).
    pub percent: Option<f64>,
    /// Seed of the random choice.
    pub seed: Option<u64>,
}

fn sigkill() -> String {
    "SIGKILL".into()
}

impl Fault for KillProcess {
    fn type_name(&self) -> &'static str {
        "kill-process"
    }
    fn impact(&self) -> Impact {
        Impact::Irreversible
    }
    fn cap(&self) -> Option<Cap> {
        super::cap(self.count, self.percent)
    }
    fn seed(&self) -> Option<u64> {
        self.seed
    }
    fn check(&self) -> Result<(), FaultError> {
        super::check_cap(self.count, self.percent)?;
        parse_signal(&self.signal)?;
        match (&self.processes, &self.containers) {
            (Some(p), None) => Ok(p.check()?),
            (None, Some(_)) => Ok(()),
            _ => Err(FaultError::Invalid(
                "kill-process needs exactly one of `processes`, `containers`".into(),
            )),
        }
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            self.check()?;
            match (&self.processes, &self.containers) {
                (Some(p), _) => resolve_processes(p),
                (None, Some(c)) => resolve_containers(env, c).await,
                (None, None) => unreachable!("checked"),
            }
        })
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        chosen: &'a [Resource],
        _occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            Ok(if self.processes.is_some() {
                Change::Signal(SignalChange {
                    processes: proc_refs(chosen)?,
                    signal: parse_signal(&self.signal)?.as_str().to_owned(),
                    undo_signal: None,
                })
            } else {
                Change::Container(ContainerChange {
                    docker: env.docker.clone(),
                    containers: super::ids(chosen),
                    action: ContainerAction::Kill {
                        signal: self.signal.clone(),
                    },
                })
            })
        })
    }
}
