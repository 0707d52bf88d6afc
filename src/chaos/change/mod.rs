//! Changes: the serializable records a fault prepares, written to the journal before they
//! are applied. Each knows how to apply, undo (idempotently) and verify itself from the record
//! alone, so `shakedown recover` needs nothing but the journal.

pub mod asg;
pub mod command;
pub mod container;
pub mod ec2;
pub mod fis;
pub mod queue;
pub mod service;
pub mod signal;
pub mod toxic;

use serde::{Deserialize, Serialize};

use super::fault::{BoxFuture, Env, FaultError};

/// Every undo tag's key starts with this; the run id follows.
pub const UNDO_TAG_PREFIX: &str = "shakedown:undo:";

/// The tag key under which a run records an undo on the resource itself.
pub fn undo_tag_key(run_id: &str) -> String {
    format!("{UNDO_TAG_PREFIX}{run_id}")
}

/// What every change can do.
pub trait Undoable: Send + Sync {
    /// Whether [`Undoable::undo`] restores anything (`false` for terminate and kill).
    fn reversible(&self) -> bool {
        true
    }
    /// One line: what is done and how it is undone.
    fn summary(&self) -> String;
    /// Makes the change.
    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>>;
    /// Restores the previous state; a no-op when it is already restored. Returns notes
    /// (e.g. a process that exited meanwhile).
    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>>;
    /// Reads the state back and fails unless it is as before the change.
    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>>;
    /// Records the undo on the resource itself (AWS tags), so it survives the local disk.
    fn tag<'a>(&'a self, _env: &'a Env, _run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async { Ok(()) })
    }
    /// Removes what [`Undoable::tag`] wrote.
    fn untag<'a>(
        &'a self,
        _env: &'a Env,
        _run_id: &'a str,
    ) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Every kind of change, as written in the journal (`"change": "<kind>"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// EC2 instance state (stop/start, terminate).
    Ec2State(ec2::Ec2StateChange),
    /// A signal to local processes (SIGSTOP/SIGCONT, SIGKILL).
    Signal(signal::SignalChange),
    /// One SQS queue attribute (DelaySeconds).
    QueueAttribute(queue::QueueAttributeChange),
    /// A Deny statement in an SQS queue policy.
    QueuePolicy(queue::QueuePolicyChange),
    /// Docker containers (pause/unpause, kill).
    Container(container::ContainerChange),
    /// A toxic on a built-in proxy.
    Toxic(toxic::ToxicChange),
    /// Shell commands: apply, undo, verify (the `command` fault).
    Command(command::CommandChange),
    /// Auto Scaling processes suspended, resumed by the undo.
    AsgProcesses(asg::AsgProcessesChange),
    /// An AWS FIS experiment started from a template, stopped by the undo.
    Fis(fis::FisChange),
    /// A sandbox microservice's added latency (the `service-latency` fault).
    ServiceLatency(service::ServiceLatencyChange),
}

impl Change {
    /// The AWS (or AWS-compatible) target it acts through, if any.
    pub fn aws_target(&self) -> Option<&crate::aws::AwsTarget> {
        match self {
            Change::Ec2State(c) => Some(&c.target),
            Change::QueueAttribute(c) => Some(&c.target),
            Change::QueuePolicy(c) => Some(&c.target),
            Change::AsgProcesses(c) => Some(&c.target),
            Change::Fis(c) => Some(&c.target),
            Change::Signal(_)
            | Change::Container(_)
            | Change::Toxic(_)
            | Change::Command(_)
            | Change::ServiceLatency(_) => None,
        }
    }

    /// The endpoints it acts through: its AWS target's, or the sandbox control endpoint.
    /// When every one belonged to an embedded sandbox that ended with its run, nothing of
    /// the change is left to undo.
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Change::ServiceLatency(c) => vec![c.control_url.clone()],
            other => other
                .aws_target()
                .map(|t| t.endpoint_urls().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    /// Undoes the change, verifies the undo, then removes what [`Undoable::tag`] wrote for
    /// run `run_id` (a tag left behind is a note, not a failure): the one undo path of the
    /// runner, `recover` and `recover --from-tags`. Returns the notes of the undo.
    pub async fn undo_verified(&self, env: &Env, run_id: &str) -> Result<Vec<String>, FaultError> {
        let ops = self.ops();
        let mut notes = ops.undo(env).await?;
        ops.verify(env).await?;
        if let Err(e) = ops.untag(env, run_id).await {
            notes.push(format!("recovery tag not removed: {e}"));
        }
        Ok(notes)
    }

    /// The change's operations.
    pub fn ops(&self) -> &dyn Undoable {
        match self {
            Change::Ec2State(c) => c,
            Change::Signal(c) => c,
            Change::QueueAttribute(c) => c,
            Change::QueuePolicy(c) => c,
            Change::Container(c) => c,
            Change::Toxic(c) => c,
            Change::Command(c) => c,
            Change::AsgProcesses(c) => c,
            Change::Fis(c) => c,
            Change::ServiceLatency(c) => c,
        }
    }
}
