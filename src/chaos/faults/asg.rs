//! `suspend-processes`: an Auto Scaling group's processes (Launch, Terminate,
//! AlarmNotification...) suspended for the duration, so a team sees what happens when
//! scaling is broken; the undo resumes those that were running before.

use serde::Deserialize;

use crate::chaos::change::Change;
use crate::chaos::change::asg::{
    ASG_PROCESS_ACTIONS, AsgProcessesChange, autoscaling, suspended_processes,
};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};

/// The process names Auto Scaling knows.
pub const PROCESSES: &[&str] = &[
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
];

/// ```toml
/// [[fault]]
/// type = "suspend-processes"
/// at = "30s"
/// duration = "2m"
/// group = "workers"                                   # the Auto Scaling group's name
/// processes = ["Launch", "Terminate", "AlarmNotification"]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendProcesses {
    /// The group's name.
    pub group: String,
    /// The processes to suspend.
    pub processes: Vec<String>,
}

impl Fault for SuspendProcesses {
    fn type_name(&self) -> &'static str {
        "suspend-processes"
    }
    fn impact(&self) -> Impact {
        Impact::Reversible
    }
    fn aws_actions(&self) -> Vec<&'static str> {
        ASG_PROCESS_ACTIONS.to_vec()
    }
    fn check(&self) -> Result<(), FaultError> {
        if self.group.trim().is_empty() {
            return Err(FaultError::Invalid(
                "`group` is empty: give the Auto Scaling group's name".into(),
            ));
        }
        if self.processes.is_empty() {
            return Err(FaultError::Invalid(format!(
                "`processes` is empty: name some of {}",
                PROCESSES.join(", ")
            )));
        }
        for p in &self.processes {
            if !PROCESSES.contains(&p.as_str()) {
                let hint = crate::config::diag::closest_name(p, PROCESSES.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(FaultError::Invalid(format!(
                    "unknown process `{p}` in `processes`{hint}: Auto Scaling's are {}",
                    PROCESSES.join(", ")
                )));
            }
        }
        Ok(())
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            self.check()?;
            let target = env.aws_target(self.type_name())?;
            let client = autoscaling(env, target).await?;
            // Reading the group proves it exists (and that it may be read).
            suspended_processes(&client, &self.group).await?;
            Ok(vec![Resource {
                id: self.group.clone(),
                label: String::new(),
                aws_tags: None,
            }])
        })
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        _chosen: &'a [Resource],
        _occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            let target = env.aws_target(self.type_name())?.clone();
            let client = autoscaling(env, &target).await?;
            let previously = suspended_processes(&client, &self.group).await?;
            Ok(Change::AsgProcesses(AsgProcessesChange {
                target,
                group: self.group.clone(),
                processes: self.processes.clone(),
                previously: previously.into_iter().collect(),
            }))
        })
    }
}
