//! The docker backend: the `docker` CLI (no engine API client), so whatever context and
//! credentials the user's CLI has are the ones used.

use std::path::PathBuf;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

/// Why a docker command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The CLI is not installed (or not at the configured path).
    #[error("the docker CLI `{program}` was not found: install docker or set the docker path")]
    NotInstalled {
        /// The program looked for.
        program: String,
    },
    /// The CLI runs but cannot reach an engine.
    #[error("docker engine unavailable (`{program} {args}`): {stderr}")]
    EngineUnavailable {
        /// The program.
        program: String,
        /// The arguments.
        args: String,
        /// What the CLI said.
        stderr: String,
    },
    /// Any other failure of a docker command.
    #[error("`{program} {args}` failed: {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// The arguments.
        args: String,
        /// What the CLI said.
        stderr: String,
    },
}

/// How to call docker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DockerCli {
    /// The program (`docker` from `PATH` by default).
    pub program: PathBuf,
}

impl Default for DockerCli {
    fn default() -> Self {
        DockerCli {
            program: PathBuf::from("docker"),
        }
    }
}

/// `docker ps -q --no-trunc --filter label=<label>`: running containers with the label.
pub fn list_args(label: &str) -> Vec<String> {
    ["ps", "-q", "--no-trunc", "--filter"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("label={label}")])
        .collect()
}

/// `docker <verb> [extra...] <ids...>` (pause, unpause, kill --signal X).
pub fn action_args(verb: &str, extra: &[String], ids: &[String]) -> Vec<String> {
    std::iter::once(verb.to_owned())
        .chain(extra.iter().cloned())
        .chain(ids.iter().cloned())
        .collect()
}

/// `docker inspect -f '{{.State.Paused}}' <ids...>`.
pub fn paused_args(ids: &[String]) -> Vec<String> {
    action_args("inspect", &["-f".into(), "{{.State.Paused}}".into()], ids)
}

impl DockerCli {
    /// Runs the CLI with `args` and returns its stdout.
    pub async fn run(&self, args: &[String]) -> Result<String, DockerError> {
        let program = self.program.display().to_string();
        let output = tokio::process::Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    DockerError::NotInstalled {
                        program: program.clone(),
                    }
                }
                _ => DockerError::Failed {
                    program: program.clone(),
                    args: args.join(" "),
                    stderr: e.to_string(),
                },
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let engine_down = [
            "Cannot connect to the Docker daemon",
            "error during connect",
            "Is the docker daemon running",
            "docker.sock",
        ]
        .iter()
        .any(|m| stderr.contains(m));
        let args = args.join(" ");
        Err(if engine_down {
            DockerError::EngineUnavailable {
                program,
                args,
                stderr,
            }
        } else {
            DockerError::Failed {
                program,
                args,
                stderr,
            }
        })
    }

    /// Ids of running containers with `label` (`KEY` or `KEY=VALUE`).
    pub async fn containers(&self, label: &str) -> Result<Vec<String>, DockerError> {
        Ok(self
            .run(&list_args(label))
            .await?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_construction() {
        assert_eq!(
            list_args("role=worker"),
            ["ps", "-q", "--no-trunc", "--filter", "label=role=worker"]
        );
        let ids = vec!["abc".to_owned(), "def".to_owned()];
        assert_eq!(action_args("pause", &[], &ids), ["pause", "abc", "def"]);
        assert_eq!(
            action_args("kill", &["--signal".into(), "SIGTERM".into()], &ids),
            ["kill", "--signal", "SIGTERM", "abc", "def"]
        );
        assert_eq!(
            paused_args(&ids),
            ["inspect", "-f", "{{.State.Paused}}", "abc", "def"]
        );
    }

    #[tokio::test]
    async fn missing_cli_is_a_clear_error() {
        let cli = DockerCli {
            program: "/nonexistent/docker".into(),
        };
        let err = cli.containers("a=b").await.unwrap_err();
        assert!(matches!(err, DockerError::NotInstalled { .. }), "{err}");
        assert!(err.to_string().contains("not found"));
    }

    #[tokio::test]
    async fn absent_engine_is_a_clear_error() {
        // Without an engine (this project's CI) the error must say which part is missing.
        let err = match DockerCli::default().containers("a=b").await {
            Ok(_) => {
                println!("SKIP absent_engine_is_a_clear_error: a docker engine answers here");
                return;
            }
            Err(e) => e,
        };
        assert!(
            matches!(
                err,
                DockerError::NotInstalled { .. } | DockerError::EngineUnavailable { .. }
            ),
            "{err}"
        );
    }
}
