//! The [`Fault`] trait and the environment faults and changes act in.
//!
//! A fault only *plans*: [`Fault::resolve`] lists what its selector matches (nothing is
//! touched) and [`Fault::prepare`] reads the current state of the chosen resources and
//! returns a [`Change`], the serializable record that applies, undoes and verifies itself.
//! Adding a fault type means one module in [`super::faults`] (and a variant in
//! [`super::spec::FaultKind`]); it reuses a [`Change`] or adds one in [`super::change`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use parking_lot::Mutex;

use super::change::Change;
use super::change::command::CommandError;
use super::docker::{DockerCli, DockerError};
use super::guard::{Cap, GuardError};
use super::local::LocalError;
use super::proxy::ProxySet;
use crate::aws::{AwsClients, AwsError, AwsTarget, aws_clients};

/// A boxed, sendable future (the trait methods are called through `dyn Fault`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How much harm a fault can do; decides which guardrails apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Impact {
    /// Changes an attribute or a proxy; fully undone (delay-queue, queue policy, latency).
    Reversible,
    /// Acts on instances, processes or containers, but is undone (stop, pause).
    /// Needs a non-empty selector, a cap and `max_instances`.
    Destructive,
    /// Cannot be undone (terminate, kill). Same guardrails as `Destructive`.
    Irreversible,
}

impl Impact {
    /// Whether caps and `max_instances` are required.
    pub fn needs_cap(self) -> bool {
        !matches!(self, Impact::Reversible)
    }
}

/// One thing a selector matched.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Resource {
    /// Stable identifier (instance id, pid, queue URL, container id, proxy name).
    pub id: String,
    /// What a human needs to recognise it (name tag, command line, ...).
    pub label: String,
    /// The resource's tags when it lives on AWS (the `require_tag` guardrail applies to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_tags: Option<BTreeMap<String, String>>,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.label.is_empty() {
            f.write_str(&self.id)
        } else {
            write!(f, "{} ({})", self.id, self.label)
        }
    }
}

impl From<crate::aws::Instance> for Resource {
    /// An EC2 instance, labelled with its `Name` tag.
    fn from(i: crate::aws::Instance) -> Self {
        Resource {
            label: i.tags.get("Name").cloned().unwrap_or_default(),
            id: i.id,
            aws_tags: Some(i.tags),
        }
    }
}

/// A fault type: turns its spec into a [`Change`] on chosen resources.
pub trait Fault: Send + Sync + fmt::Debug {
    /// The `type` string of the spec.
    fn type_name(&self) -> &'static str;
    /// How much harm it can do.
    fn impact(&self) -> Impact;
    /// The blast-radius cap the spec declares (`count`/`percent`), if any.
    fn cap(&self) -> Option<Cap> {
        None
    }
    /// The seed the spec fixes for the random choice, if any.
    fn seed(&self) -> Option<u64> {
        None
    }
    /// The IAM actions it calls on AWS (resolving, applying, verifying and undoing, and
    /// the recovery tags), for the policy a run needs (`docs/aws.md`).
    fn aws_actions(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Checks the spec without reading or touching anything (selector shape, caps,
    /// signal names...). `validate` and `run` both call it (through the plan), so a file
    /// one accepts the other does too; `resolve` calls it again.
    fn check(&self) -> Result<(), FaultError> {
        Ok(())
    }
    /// Everything the selector matches, without touching anything.
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>>;
    /// Whether the fault acts for a duration (and is then undone) rather than at an instant.
    fn lasts(&self) -> bool {
        self.impact() != Impact::Irreversible
    }
    /// Reads the chosen resources' current state and returns the change to make (not made
    /// yet). `occurrence` is unique in the run (`<run-id>-<n>`) for ids the change creates.
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        chosen: &'a [Resource],
        occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>>;
}

/// Why a fault or change failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// An AWS (or AWS-compatible endpoint) call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Selecting or signalling local processes failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The docker CLI failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// A `command` fault's command failed or timed out.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A guardrail refused the fault.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The fault needs an AWS target and the plan has none.
    #[error(
        "fault `{0}` needs an AWS target: `[target.aws]` (region, endpoint_url) or the AWS environment (AWS_REGION, AWS_PROFILE)"
    )]
    NoAwsTarget(&'static str),
    /// The named proxy is not running in this harness.
    #[error("no proxy named `{0}` in this run")]
    NoProxy(String),
    /// The spec is inconsistent.
    #[error("invalid fault: {0}")]
    Invalid(String),
    /// After an undo, the state did not read back as before.
    #[error("undo not verified: {0}")]
    NotVerified(String),
    /// The sandbox control endpoint refused or could not be reached.
    #[error("sandbox control endpoint: {0}")]
    Control(String),
}

/// Where faults act: the AWS target, running proxies, the docker CLI.
pub struct Env {
    /// The default AWS target for faults that use AWS APIs.
    pub aws: Option<AwsTarget>,
    /// The run's TCP proxies, by name.
    pub proxies: ProxySet,
    /// How to call docker.
    pub docker: DockerCli,
    /// The run directory (absolute), where faults write their logs; set by the runner.
    pub run_dir: Option<PathBuf>,
    /// The sandbox control endpoint of the run's sandbox, if it has one.
    pub control_url: Option<String>,
    clients: Mutex<HashMap<AwsTarget, AwsClients>>,
}

impl Env {
    /// An environment with an optional AWS target, no proxies and `docker` from `PATH`.
    pub fn new(aws: Option<AwsTarget>) -> Self {
        Env {
            aws,
            proxies: ProxySet::default(),
            docker: DockerCli::default(),
            run_dir: None,
            control_url: None,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The default AWS target, or an error naming the fault that needs it.
    pub fn aws_target(&self, fault: &'static str) -> Result<&AwsTarget, FaultError> {
        self.aws.as_ref().ok_or(FaultError::NoAwsTarget(fault))
    }

    /// Clients for `target` (built once per target and cached).
    pub async fn clients(&self, target: &AwsTarget) -> Result<AwsClients, FaultError> {
        if let Some(c) = self.clients.lock().get(target) {
            return Ok(c.clone());
        }
        let c = aws_clients(target).await?;
        self.clients.lock().insert(target.clone(), c.clone());
        Ok(c)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("aws", &self.aws)
            .field("proxies", &self.proxies.names())
            .field("docker", &self.docker)
            .field("run_dir", &self.run_dir)
            .finish()
    }
}
