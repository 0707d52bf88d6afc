//! An AWS FIS experiment started from a template (StartExperiment) and stopped by the undo
//! (StopExperiment): FIS's actions (Lambda invocation delays and errors, network
//! disruption, API errors...) on shakedown's clock, in its journal and verdicts.
//!
//! The experiment's id exists only once it has started, and a run may die between the start
//! and the journal's next line. So the change carries a client token chosen before the
//! start: StartExperiment with it is idempotent, and the experiment is tagged with it, so the
//! undo (of this run, or of `shakedown recover` after a kill -9) finds the experiment by
//! that tag among the template's experiments. An experiment never started is nothing to
//! undo; one that already ended (completed, stopped, failed) stays as it is.

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::aws::{AwsError, AwsTarget};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// The IAM actions of a FIS fault: reading the template, starting, finding, stopping.
pub const FIS_ACTIONS: &[&str] = &[
    "fis:GetExperiment",
    "fis:GetExperimentTemplate",
    "fis:ListExperiments",
    "fis:StartExperiment",
    "fis:StopExperiment",
    "fis:TagResource",
];

/// The experiment tag carrying the change's client token.
pub const TOKEN_TAG: &str = "shakedown:token";

/// States of an experiment that has ended: nothing left to stop.
const ENDED: [&str; 4] = ["completed", "stopped", "failed", "cancelled"];

/// One experiment of one template, started by the change and stopped by the undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FisChange {
    /// Where FIS is called (no secrets).
    pub target: AwsTarget,
    /// The experiment template's id (`EXT...`).
    pub template: String,
    /// The StartExperiment client token, also the experiment's `shakedown:token` tag.
    pub token: String,
    /// The fault occurrence (`name#k`), tagged on the experiment for people looking at FIS.
    pub occurrence: String,
}

/// The FIS client of `target`, or why there is none.
pub async fn fis(env: &Env, target: &AwsTarget) -> Result<aws_sdk_fis::Client, FaultError> {
    env.clients(target)
        .await?
        .fis
        .ok_or_else(|| FaultError::Invalid(crate::aws::unserved("FIS")))
}

impl FisChange {
    /// The experiment this change started, as `(id, state)`, if it exists.
    pub async fn find(
        &self,
        client: &aws_sdk_fis::Client,
    ) -> Result<Option<(String, String)>, AwsError> {
        let mut token: Option<String> = None;
        // Bounded: 100 pages of 100 experiments.
        for _ in 0..100 {
            let out = client
                .list_experiments()
                .experiment_template_id(&self.template)
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    AwsError::call("fis:ListExperiments", e)
                        .on(format!("template {}", self.template))
                })?;
            for e in out.experiments() {
                let ours = e
                    .tags()
                    .is_some_and(|t| t.get(TOKEN_TAG) == Some(&self.token))
                    && e.experiment_template_id()
                        .is_none_or(|t| t == self.template);
                if ours && let Some(id) = e.id() {
                    let state = e
                        .state()
                        .and_then(|s| s.status())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    return Ok(Some((id.to_owned(), state)));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(None)
    }
}

impl Undoable for FisChange {
    fn summary(&self) -> String {
        format!(
            "StartExperiment from FIS template {} (token {}); undo: StopExperiment unless it has ended",
            self.template, self.token
        )
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let client = fis(env, &self.target).await?;
            client
                .start_experiment()
                .experiment_template_id(&self.template)
                .client_token(&self.token)
                .tags(TOKEN_TAG, &self.token)
                .tags("shakedown:fault", &self.occurrence)
                .send()
                .await
                .map_err(|e| {
                    AwsError::call("fis:StartExperiment", e)
                        .on(format!("template {}", self.template))
                })?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let client = fis(env, &self.target).await?;
            let Some((id, state)) = self.find(&client).await? else {
                return Ok(vec![format!(
                    "no experiment of template {} carries token {}: it never started",
                    self.template, self.token
                )]);
            };
            if ENDED.contains(&state.as_str()) {
                return Ok(vec![format!("experiment {id} had already ended ({state})")]);
            }
            client.stop_experiment().id(&id).send().await.map_err(|e| {
                AwsError::call("fis:StopExperiment", e).on(format!("experiment {id}"))
            })?;
            Ok(Vec::new())
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let client = fis(env, &self.target).await?;
            // FIS rolls its actions back while `stopping`: give it a bounded while.
            for attempt in 0..30 {
                let state = match self.find(&client).await? {
                    None => return Ok(()),
                    Some((id, _)) => client
                        .get_experiment()
                        .id(&id)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::call("fis:GetExperiment", e).on(format!("experiment {id}"))
                        })?
                        .experiment()
                        .and_then(|e| e.state())
                        .and_then(|s| s.status())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                };
                if ENDED.contains(&state.as_str()) {
                    return Ok(());
                }
                if attempt == 29 {
                    return Err(FaultError::NotVerified(format!(
                        "FIS experiment of template {} is still {state}",
                        self.template
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Ok(())
        })
    }
}
