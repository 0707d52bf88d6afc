//! `stall-consumers`: consumers stop taking work for the duration.
//!
//! Backends, one per key (give exactly one):
//! - `queue` + `principal` (AWS): a `Deny sqs:ReceiveMessage` statement for the consumers'
//!   principal is added to the queue policy; undo restores the exact previous policy string
//!   (or removes the policy if there was none);
//! - `processes` (local): SIGSTOP, undone by SIGCONT;
//! - `instances` (EC2 endpoint, e.g. the sandbox): StopInstances, undone by StartInstances;
//! - `containers` (docker): `docker pause`, undone by `docker unpause`.

use serde::Deserialize;

use super::instances::resolve_instances;
use crate::aws::{InstanceSelector, QueueRef, queue_attribute};
use crate::chaos::change::Change;
use crate::chaos::change::container::{ContainerAction, ContainerChange};
use crate::chaos::change::ec2::{Ec2Action, Ec2StateChange};
use crate::chaos::change::queue::{QUEUE_CHANGE_ACTIONS, QueuePolicyChange};
use crate::chaos::change::signal::SignalChange;
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::guard::Cap;
use crate::chaos::local::{LocalError, ProcRef, ProcessSelector, stat};

/// ```toml
/// [[fault]]
/// type = "stall-consumers"
/// at = "1m"
/// duration = "45s"
/// processes = { command = "worker", process_group = 4242 }
/// percent = 100
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallConsumers {
    /// AWS: the queue (name or URL) whose policy gets the Deny statement.
    pub queue: Option<QueueRef>,
    /// AWS: the consumers' principal (role/user ARN or account id); with `queue`.
    pub principal: Option<String>,
    /// Local: which processes to freeze.
    pub processes: Option<ProcessSelector>,
    /// EC2 endpoint: which instances to stop (the sandbox freezes their processes).
    pub instances: Option<InstanceSelector>,
    /// Docker: which containers to pause.
    pub containers: Option<ContainerSelector>,
    /// How many processes/instances/containers (required for those backends).
    pub count: Option<usize>,
    /// Or which percentage (rounded up).
    pub percent: Option<f64>,
    /// Seed of the random choice.
    pub seed: Option<u64>,
}

/// Containers by label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSelector {
    /// `KEY=VALUE` (or `KEY`) as for `docker ps --filter label=...`.
    pub label: String,
}

/// Which backend a stall (or kill) spec selected.
pub(crate) enum Backend<'a> {
    Queue(&'a QueueRef, &'a str),
    Processes(&'a ProcessSelector),
    Instances(&'a InstanceSelector),
    Containers(&'a ContainerSelector),
}

impl StallConsumers {
    fn backend(&self) -> Result<Backend<'_>, FaultError> {
        let chosen = [
            self.queue.is_some(),
            self.processes.is_some(),
            self.instances.is_some(),
            self.containers.is_some(),
        ];
        if chosen.iter().filter(|&&b| b).count() != 1 {
            return Err(FaultError::Invalid(
                "stall-consumers needs exactly one of `queue`, `processes`, `instances`, `containers`".into(),
            ));
        }
        Ok(
            match (
                &self.queue,
                &self.principal,
                &self.processes,
                &self.instances,
                &self.containers,
            ) {
                (Some(q), Some(p), ..) => Backend::Queue(q, p),
                (Some(_), None, ..) => {
                    return Err(FaultError::Invalid(
                        "`queue` needs `principal` (the consumers' role)".into(),
                    ));
                }
                (_, _, Some(p), ..) => Backend::Processes(p),
                (_, _, _, Some(i), _) => Backend::Instances(i),
                (_, _, _, _, Some(c)) => Backend::Containers(c),
                _ => unreachable!("exactly one backend is set"),
            },
        )
    }
}

impl Fault for StallConsumers {
    fn type_name(&self) -> &'static str {
        "stall-consumers"
    }
    fn impact(&self) -> Impact {
        if self.queue.is_some() {
            Impact::Reversible
        } else {
            Impact::Destructive
        }
    }
    fn cap(&self) -> Option<Cap> {
        super::cap(self.count, self.percent)
    }
    fn seed(&self) -> Option<u64> {
        self.seed
    }
    fn aws_actions(&self) -> Vec<&'static str> {
        if self.queue.is_some() {
            QUEUE_CHANGE_ACTIONS.to_vec()
        } else if self.instances.is_some() {
            Ec2Action::Stop.aws_actions().to_vec()
        } else {
            Vec::new()
        }
    }
    fn check(&self) -> Result<(), FaultError> {
        super::check_cap(self.count, self.percent)?;
        if let Backend::Processes(p) = self.backend()? {
            p.check()?;
        }
        Ok(())
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            self.check()?;
            match self.backend()? {
                Backend::Queue(q, _) => {
                    let c = env.clients(env.aws_target(self.type_name())?).await?;
                    Ok(vec![Resource {
                        id: q.url(&c.sqs).await?,
                        label: String::new(),
                        aws_tags: None,
                    }])
                }
                Backend::Processes(p) => resolve_processes(p),
                Backend::Instances(i) => {
                    resolve_instances(env, self.type_name(), i, self.count, self.percent).await
                }
                Backend::Containers(c) => resolve_containers(env, c).await,
            }
        })
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        chosen: &'a [Resource],
        occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            Ok(match self.backend()? {
                Backend::Queue(_, principal) => {
                    let target = env.aws_target(self.type_name())?.clone();
                    let c = env.clients(&target).await?;
                    let url = chosen[0].id.clone();
                    let previous = queue_attribute(&c.sqs, &url, "Policy").await?;
                    let queue_arn = queue_attribute(&c.sqs, &url, "QueueArn")
                        .await?
                        .ok_or_else(|| {
                            FaultError::Invalid(format!("queue {url} has no QueueArn"))
                        })?;
                    Change::QueuePolicy(QueuePolicyChange {
                        target,
                        queue_url: url,
                        queue_arn,
                        principal: principal.to_owned(),
                        sid: format!("shakedown-{}", sid_safe(occurrence)),
                        previous: previous.filter(|p| !p.is_empty()),
                    })
                }
                Backend::Processes(_) => Change::Signal(SignalChange {
                    processes: proc_refs(chosen)?,
                    signal: "SIGSTOP".into(),
                    undo_signal: Some("SIGCONT".into()),
                }),
                Backend::Instances(_) => Change::Ec2State(Ec2StateChange {
                    target: env.aws_target(self.type_name())?.clone(),
                    instances: super::ids(chosen),
                    action: Ec2Action::Stop,
                }),
                Backend::Containers(_) => Change::Container(ContainerChange {
                    docker: env.docker.clone(),
                    containers: super::ids(chosen),
                    action: ContainerAction::Pause,
                }),
            })
        })
    }
}

/// A policy Sid allows only alphanumerics.
fn sid_safe(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Local processes as resources (id = pid).
pub(crate) fn resolve_processes(sel: &ProcessSelector) -> Result<Vec<Resource>, FaultError> {
    Ok(sel.resolve()?.iter().map(Resource::from).collect())
}

/// Chosen process resources back to [`ProcRef`]s, with their start times read now.
pub(crate) fn proc_refs(chosen: &[Resource]) -> Result<Vec<ProcRef>, FaultError> {
    chosen
        .iter()
        .map(|r| {
            let pid: i32 =
                r.id.parse()
                    .map_err(|_| FaultError::Invalid(format!("`{}` is not a pid", r.id)))?;
            let s = stat(pid).ok_or(LocalError::Recycled { pid })?;
            Ok(ProcRef {
                pid,
                start_time: s.start_time,
                command: r.label.clone(),
            })
        })
        .collect()
}

/// Running containers with the label, as resources.
pub(crate) async fn resolve_containers(
    env: &Env,
    sel: &ContainerSelector,
) -> Result<Vec<Resource>, FaultError> {
    Ok(env
        .docker
        .containers(&sel.label)
        .await?
        .into_iter()
        .map(|id| Resource {
            id,
            label: sel.label.clone(),
            aws_tags: None,
        })
        .collect())
}
