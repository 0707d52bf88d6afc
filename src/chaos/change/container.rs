//! Docker containers: pause undone by unpause (stall), or a one-way `docker kill`.

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::chaos::docker::{DockerCli, action_args, paused_args};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// What is done to the containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerAction {
    /// `docker pause`, undone by `docker unpause`.
    Pause,
    /// `docker kill --signal <signal>`: irreversible.
    Kill {
        /// The signal.
        signal: String,
    },
}

/// A docker action on chosen containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerChange {
    /// The CLI used.
    pub docker: DockerCli,
    /// Full container ids.
    pub containers: Vec<String>,
    /// The action.
    pub action: ContainerAction,
}

impl ContainerChange {
    /// The CLI arguments that apply the change.
    pub fn apply_args(&self) -> Vec<String> {
        match &self.action {
            ContainerAction::Pause => action_args("pause", &[], &self.containers),
            ContainerAction::Kill { signal } => action_args(
                "kill",
                &["--signal".into(), signal.clone()],
                &self.containers,
            ),
        }
    }

    /// The CLI arguments that undo it (`None` if irreversible).
    pub fn undo_args(&self) -> Option<Vec<String>> {
        matches!(self.action, ContainerAction::Pause)
            .then(|| action_args("unpause", &[], &self.containers))
    }
}

impl Undoable for ContainerChange {
    fn reversible(&self) -> bool {
        self.undo_args().is_some()
    }

    fn summary(&self) -> String {
        let apply = self.apply_args().join(" ");
        match self.undo_args() {
            Some(u) => format!("docker {apply}; undo: docker {}", u.join(" ")),
            None => format!("docker {apply}; irreversible"),
        }
    }

    fn apply<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            self.docker.run(&self.apply_args()).await?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            if !self.reversible() {
                return Ok(vec![]);
            }
            // Unpausing a running container fails: unpause only those still paused.
            let paused = self.paused().await?;
            if paused.is_empty() {
                return Ok(vec![]);
            }
            self.docker
                .run(&action_args("unpause", &[], &paused))
                .await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if !self.reversible() {
                return Ok(());
            }
            let paused = self.paused().await?;
            if paused.is_empty() {
                Ok(())
            } else {
                Err(FaultError::NotVerified(format!(
                    "still paused: {}",
                    paused.join(", ")
                )))
            }
        })
    }
}

impl ContainerChange {
    async fn paused(&self) -> Result<Vec<String>, FaultError> {
        let out = self.docker.run(&paused_args(&self.containers)).await?;
        Ok(self
            .containers
            .iter()
            .zip(out.lines())
            .filter(|(_, l)| l.trim() == "true")
            .map(|(id, _)| id.clone())
            .collect())
    }
}
