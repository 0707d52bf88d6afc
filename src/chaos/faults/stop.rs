//! `stop-instances`: EC2 StopInstances, then StartInstances after the duration.

use serde::Deserialize;

use super::terminate::resolve_instances;
use crate::chaos::aws::InstanceSelector;
use crate::chaos::change::Change;
use crate::chaos::change::ec2::{Ec2Action, Ec2StateChange};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::guard::Cap;

/// ```toml
/// [[fault]]
/// type = "stop-instances"
/// at = "1m"
/// duration = "2m"
/// instances = { asg = "workers" }
/// percent = 50
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopInstances {
    /// Which running instances may be chosen.
    pub instances: InstanceSelector,
    /// How many to stop.
    pub count: Option<usize>,
    /// Or which percentage (rounded up).
    pub percent: Option<f64>,
    /// Seed of the random choice.
    pub seed: Option<u64>,
}

impl Fault for StopInstances {
    fn type_name(&self) -> &'static str {
        "stop-instances"
    }
    fn impact(&self) -> Impact {
        Impact::Destructive
    }
    fn cap(&self) -> Option<Cap> {
        super::cap(self.count, self.percent)
    }
    fn seed(&self) -> Option<u64> {
        self.seed
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(resolve_instances(
            env,
            self.type_name(),
            &self.instances,
            self.count,
            self.percent,
        ))
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        chosen: &'a [Resource],
        _occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            Ok(Change::Ec2State(Ec2StateChange {
                target: env.aws_target(self.type_name())?.clone(),
                instances: super::ids(chosen),
                action: Ec2Action::Stop,
            }))
        })
    }
}
