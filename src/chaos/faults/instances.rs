//! What `stop-instances` and `terminate-instances` share: a capped random choice of running
//! EC2 instances and one EC2 action on them. [`InstanceAction`] says which action; the
//! fault types are [`InstanceFault`] with their action ([`super::stop`], [`super::terminate`]).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;

use crate::aws::{InstanceSelector, describe_instances};
use crate::chaos::change::Change;
use crate::chaos::change::ec2::{Ec2Action, Ec2StateChange};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::guard::Cap;

/// One EC2 action as a fault type.
pub trait InstanceAction: fmt::Debug + Clone + PartialEq + Send + Sync + 'static {
    /// The `type` of the `[[fault]]` table.
    const TYPE_NAME: &'static str;
    /// How much harm it does.
    const IMPACT: Impact;
    /// The EC2 action.
    const ACTION: Ec2Action;
}

/// The parameters of an instance fault (the example is in each type's docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceFault<A> {
    /// Which running instances may be chosen.
    pub instances: InstanceSelector,
    /// How many to act on.
    pub count: Option<usize>,
    /// Or which percentage (rounded up).
    pub percent: Option<f64>,
    /// Seed of the random choice (default: derived from the run's seed; always journaled).
    pub seed: Option<u64>,
    #[serde(skip)]
    action: PhantomData<A>,
}

impl<A: InstanceAction> Fault for InstanceFault<A> {
    fn type_name(&self) -> &'static str {
        A::TYPE_NAME
    }
    fn impact(&self) -> Impact {
        A::IMPACT
    }
    fn cap(&self) -> Option<Cap> {
        super::cap(self.count, self.percent)
    }
    fn seed(&self) -> Option<u64> {
        self.seed
    }
    fn aws_actions(&self) -> Vec<&'static str> {
        A::ACTION.aws_actions().to_vec()
    }
    fn check(&self) -> Result<(), FaultError> {
        super::check_cap(self.count, self.percent)?;
        self.instances
            .filters("running")
            .map(|_| ())
            .map_err(FaultError::Invalid)
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(resolve_instances(
            env,
            A::TYPE_NAME,
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
                target: env.aws_target(A::TYPE_NAME)?.clone(),
                instances: super::ids(chosen),
                action: A::ACTION,
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
    let clients = env.clients(env.aws_target(fault)?).await?;
    let found = describe_instances(&clients.ec2, filters).await?;
    Ok(found.into_iter().map(Resource::from).collect())
}
