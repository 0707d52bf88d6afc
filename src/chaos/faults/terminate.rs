//! `terminate-instances`: EC2 TerminateInstances on a capped random choice. Irreversible.

use serde::Deserialize;

use crate::chaos::aws::{InstanceSelector, describe_instances};
use crate::chaos::change::Change;
use crate::chaos::change::ec2::{Ec2Action, Ec2StateChange};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::guard::Cap;

/// ```toml
/// [[fault]]
/// type = "terminate-instances"
/// at = "2m"
/// instances = { tags = { tier = "web" } }   # or { asg = "web-asg" }
/// count = 1                                 # or percent = 25; required
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateInstances {
    /// Which running instances may be chosen.
    pub instances: InstanceSelector,
    /// How many to terminate.
    pub count: Option<usize>,
    /// Or which percentage (rounded up).
    pub percent: Option<f64>,
    /// Seed of the random choice (default: derived from the run's seed; always journaled).
    pub seed: Option<u64>,
}

impl Fault for TerminateInstances {
    fn type_name(&self) -> &'static str {
        "terminate-instances"
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
                action: Ec2Action::Terminate,
            }))
        })
    }
}

/// Running instances matching `selector`, with their tags.
pub(crate) async fn resolve_instances(
    env: &Env,
    fault: &'static str,
    selector: &InstanceSelector,
    count: Option<usize>,
    percent: Option<f64>,
) -> Result<Vec<Resource>, FaultError> {
    super::check_cap(count, percent)?;
    let filters = selector.filters("running").map_err(FaultError::Invalid)?;
    let clients = env.clients(env.aws_target(fault)?)?;
    Ok(describe_instances(&clients.ec2, filters).await?)
}
