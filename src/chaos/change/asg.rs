//! Auto Scaling processes suspended (SuspendProcesses) and resumed (ResumeProcesses): the
//! group's scaling broken on purpose, to see what the system does without it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::aws::{AwsError, AwsTarget, describe_group};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// The IAM actions of a process suspension: reading the group, suspending, resuming.
pub const ASG_PROCESS_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:ResumeProcesses",
    "autoscaling:SuspendProcesses",
];

/// Processes of one group suspended; the undo resumes those that were running before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AsgProcessesChange {
    /// Where the group lives (no secrets).
    pub target: AwsTarget,
    /// The group's name.
    pub group: String,
    /// The processes suspended.
    pub processes: Vec<String>,
    /// The processes that were already suspended before (left suspended by the undo).
    pub previously: Vec<String>,
}

impl AsgProcessesChange {
    /// The processes the undo resumes: those this change suspended that were running.
    fn to_resume(&self) -> Vec<String> {
        self.processes
            .iter()
            .filter(|p| !self.previously.contains(p))
            .cloned()
            .collect()
    }
}

/// The group's suspended processes now.
pub async fn suspended_processes(
    client: &aws_sdk_autoscaling::Client,
    group: &str,
) -> Result<BTreeSet<String>, AwsError> {
    let g = describe_group(client, group).await?;
    Ok(g.suspended_processes()
        .iter()
        .filter_map(|p| p.process_name().map(str::to_owned))
        .collect())
}

/// The Auto Scaling client of `target`, or why there is none.
pub async fn autoscaling(
    env: &Env,
    target: &AwsTarget,
) -> Result<aws_sdk_autoscaling::Client, FaultError> {
    env.clients(target)
        .await?
        .autoscaling
        .ok_or_else(|| FaultError::Invalid(crate::aws::unserved("Auto Scaling")))
}

impl Undoable for AsgProcessesChange {
    fn summary(&self) -> String {
        let resume = self.to_resume();
        format!(
            "SuspendProcesses {} on group {}; undo: {}",
            self.processes.join(", "),
            self.group,
            if resume.is_empty() {
                "nothing (all were suspended already)".to_owned()
            } else {
                format!("ResumeProcesses {}", resume.join(", "))
            }
        )
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let client = autoscaling(env, &self.target).await?;
            client
                .suspend_processes()
                .auto_scaling_group_name(&self.group)
                .set_scaling_processes(Some(self.processes.clone()))
                .send()
                .await
                .map_err(|e| {
                    AwsError::call("autoscaling:SuspendProcesses", e)
                        .on(format!("group `{}`", self.group))
                })?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let resume = self.to_resume();
            if resume.is_empty() {
                return Ok(Vec::new());
            }
            let client = autoscaling(env, &self.target).await?;
            client
                .resume_processes()
                .auto_scaling_group_name(&self.group)
                .set_scaling_processes(Some(resume))
                .send()
                .await
                .map_err(|e| {
                    AwsError::call("autoscaling:ResumeProcesses", e)
                        .on(format!("group `{}`", self.group))
                })?;
            Ok(Vec::new())
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let client = autoscaling(env, &self.target).await?;
            let now = suspended_processes(&client, &self.group).await?;
            let still: Vec<String> = self
                .to_resume()
                .into_iter()
                .filter(|p| now.contains(p))
                .collect();
            if still.is_empty() {
                Ok(())
            } else {
                Err(FaultError::NotVerified(format!(
                    "group {}: still suspended: {}",
                    self.group,
                    still.join(", ")
                )))
            }
        })
    }
}
