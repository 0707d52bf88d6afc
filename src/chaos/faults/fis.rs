//! `fis`: an existing AWS FIS experiment template, started as the fault and stopped as its
//! undo (journaled, recoverable after a kill -9: see [`FisChange`]), so FIS's catalogue
//! (Lambda invocation delays and errors, network disruption, API errors...) joins
//! shakedown's timeline and verdicts.
//!
//! What FIS targets is the template's business (its targets, its stop conditions, its IAM
//! role); shakedown checks the template exists, and applies `require_tag` to the template's
//! own tags, so an account opts a template in as it opts instances in.

use serde::Deserialize;

use crate::aws::AwsError;
use crate::chaos::change::Change;
use crate::chaos::change::fis::{FIS_ACTIONS, FisChange, fis};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};

/// ```toml
/// [[fault]]
/// type = "fis"
/// at = "1m"
/// duration = "2m"                 # stopped after this, unless it ended by itself
/// template = "EXT1a2b3c4d5e6f7"   # the experiment template's id
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FisExperiment {
    /// The experiment template's id.
    pub template: String,
}

impl Fault for FisExperiment {
    fn type_name(&self) -> &'static str {
        "fis"
    }
    fn impact(&self) -> Impact {
        Impact::Reversible
    }
    fn aws_actions(&self) -> Vec<&'static str> {
        FIS_ACTIONS.to_vec()
    }
    fn check(&self) -> Result<(), FaultError> {
        if self.template.trim().is_empty() {
            return Err(FaultError::Invalid(
                "`template` is empty: give the FIS experiment template's id (EXT...)".into(),
            ));
        }
        Ok(())
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            self.check()?;
            let target = env.aws_target(self.type_name())?;
            let client = fis(env, target).await?;
            let out = client
                .get_experiment_template()
                .id(&self.template)
                .send()
                .await
                .map_err(|e| {
                    AwsError::call("fis:GetExperimentTemplate", e)
                        .on(format!("template {}", self.template))
                })?;
            let template = out.experiment_template();
            let mut actions: Vec<String> = template
                .and_then(|t| t.actions())
                .map(|a| {
                    a.values()
                        .filter_map(|a| a.action_id().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            actions.sort();
            actions.dedup();
            let description = template.and_then(|t| t.description()).unwrap_or_default();
            Ok(vec![Resource {
                id: self.template.clone(),
                label: format!(
                    "{description}{}{}",
                    if description.is_empty() || actions.is_empty() {
                        ""
                    } else {
                        ": "
                    },
                    actions.join(", ")
                ),
                aws_tags: Some(
                    template
                        .and_then(|t| t.tags())
                        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                ),
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
            let target = env.aws_target(self.type_name())?.clone();
            Ok(Change::Fis(FisChange {
                target,
                template: self.template.clone(),
                token: uuid::Builder::from_random_bytes(rand::random())
                    .into_uuid()
                    .to_string(),
                occurrence: occurrence.to_owned(),
            }))
        })
    }
}
