//! Probes: numbers sampled once a second on the run's clock (queue depth, instance counts,
//! balancer health, any HTTP JSON field or command output), for the promises of DESIGN
//! section 7 and the guardrails' stop conditions.
//!
//! | file | job | pure? |
//! |---|---|---|
//! | [`spec`] | the `[[probe]]` tables: parsing and validation | yes |
//! | [`sqs`] | queue attributes (aws-sdk-sqs) | no |
//! | [`ec2`] | instance counts by tags / Auto Scaling group and state (aws-sdk-ec2) | no |
//! | [`http`] | HTTP JSON pointer, sandbox balancer targets and group activities | no |
//! | [`cloudwatch`] | a CloudWatch metric (GetMetricData): newest complete period live, settled series after the run | no |
//! | [`command`] | a local command printing a number, killed at the timeout | no |
//! | [`activity`] | `[[target.activities]]`: a system's scaling log (file, command, URL) mapped into `activities.jsonl` | no |
//! | [`sampler`] | runs every probe on the run's clock with its timeout; snapshots | no |
//!
//! Adding a probe kind: its struct and a line in `probe_kinds!` in [`spec`] (the variant of
//! [`spec::ProbeKind`]; every error of its table is then reported at its key or value), a
//! file with its sampler, a variant of [`Prober`]; nothing else changes. User docs:
//! `docs/probes.md`, "Adding a probe".

pub mod activity;
pub mod asg;
pub mod cloudwatch;
pub mod command;
pub mod ec2;
pub mod elb;
pub mod http;
pub mod sampler;
pub mod spec;
pub mod sqs;

use std::time::Duration;

pub use sampler::{ProbeSnapshot, Sampler, SamplerReport};
pub use spec::{ProbeKind, ProbeSpec};

use crate::aws::{AwsClients, AwsError};

/// Why one sample failed (the cell becomes a gap).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// An HTTP request failed.
    #[error("{url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The answer held no usable number.
    #[error("no number: {0}")]
    NotANumber(String),
    /// The command failed.
    #[error("command: {0}")]
    Command(String),
    /// The source has no value for now (CloudWatch without a recent datapoint).
    #[error("{0}")]
    NoData(String),
    /// The sample took longer than the probe's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The probe cannot be built from its spec and the run's context.
    #[error("{0}")]
    Config(String),
}

/// What probes need from the run: clients for the experiment's target.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// EC2 and SQS clients for the target's AWS (or sandbox) endpoints.
    pub aws: Option<AwsClients>,
    /// The sandbox control endpoint's base URL, for probes that do not name one.
    pub control_url: Option<String>,
    /// The HTTP client of the HTTP kinds: the run's trust options for https
    /// ([`crate::tls::http_client`]).
    pub http: reqwest::Client,
}

impl Default for ProbeContext {
    /// No AWS target, no control endpoint, a plain HTTP client (the system's roots).
    fn default() -> Self {
        ProbeContext {
            aws: None,
            control_url: None,
            http: crate::tls::client_builder()
                .timeout(http::HTTP_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }
}

/// A probe ready to sample; stateful kinds keep their state between samples.
#[derive(Debug)]
pub enum Prober {
    /// See [`sqs::SqsSampler`].
    Sqs(sqs::SqsSampler),
    /// See [`ec2::Ec2Sampler`].
    Ec2(ec2::Ec2Sampler),
    /// See [`elb::TargetHealthSampler`].
    TargetHealth(elb::TargetHealthSampler),
    /// See [`asg::AsgSampler`].
    Asg(asg::AsgSampler),
    /// See [`cloudwatch::CloudWatchSampler`].
    CloudWatch(cloudwatch::CloudWatchSampler),
    /// See [`http::HttpSampler`] (http, balancer and sandbox-activities kinds).
    Http(http::HttpSampler),
    /// See [`command::CommandSampler`].
    Command(command::CommandSampler),
}

impl Prober {
    /// Builds the probe for `kind` (no network access yet).
    pub fn new(kind: &ProbeKind, ctx: &ProbeContext) -> Result<Prober, ProbeError> {
        let aws = || {
            ctx.aws.as_ref().ok_or_else(|| {
                ProbeError::Config("this probe needs an AWS target (region, endpoint)".into())
            })
        };
        Ok(match kind {
            ProbeKind::Sqs(p) => Prober::Sqs(sqs::SqsSampler::new(aws()?.sqs.clone(), p.clone())),
            ProbeKind::Ec2(p) => Prober::Ec2(ec2::Ec2Sampler::new(aws()?.ec2.clone(), p.clone())),
            ProbeKind::TargetHealth(p) => Prober::TargetHealth(elb::TargetHealthSampler::new(
                service(aws()?.elbv2.clone(), "Elastic Load Balancing")?,
                p.clone(),
            )),
            ProbeKind::Asg(p) => Prober::Asg(asg::AsgSampler::new(
                service(aws()?.autoscaling.clone(), "Auto Scaling")?,
                p.clone(),
            )),
            ProbeKind::CloudWatch(p) => Prober::CloudWatch(cloudwatch::CloudWatchSampler::new(
                service(aws()?.cloudwatch.clone(), "CloudWatch")?,
                p.clone(),
            )),
            ProbeKind::Http(p) if p.url.starts_with('/') => {
                let mut p = p.clone();
                p.url = format!("{}{}", control_url(None, ctx)?, p.url);
                Prober::Http(http::HttpSampler::json(ctx.http.clone(), &p))
            }
            ProbeKind::Http(p) => Prober::Http(http::HttpSampler::json(ctx.http.clone(), p)),
            ProbeKind::Balancer(p) => Prober::Http(http::HttpSampler::balancer(
                ctx.http.clone(),
                &control_url(p.url.as_ref(), ctx)?,
                &p.state,
            )),
            ProbeKind::SandboxActivities(p) => Prober::Http(http::HttpSampler::activities(
                ctx.http.clone(),
                &control_url(p.url.as_ref(), ctx)?,
                &p.group,
                p.metric,
            )),
            ProbeKind::Command(p) => {
                Prober::Command(command::CommandSampler::new(p.command.clone()))
            }
        })
    }

    /// Takes one sample. Dropping the future cancels it (a command is killed).
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let value = match self {
            Prober::Sqs(p) => p.sample().await?,
            Prober::Ec2(p) => p.sample().await?,
            Prober::TargetHealth(p) => p.sample().await?,
            Prober::Asg(p) => p.sample().await?,
            Prober::CloudWatch(p) => p.sample().await?,
            Prober::Http(p) => p.sample().await?,
            Prober::Command(p) => p.sample().await?,
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ProbeError::NotANumber(value.to_string()))
        }
    }

    /// One sample, given up after `timeout`.
    pub async fn sample_within(&mut self, timeout: Duration) -> Result<f64, ProbeError> {
        tokio::time::timeout(timeout, self.sample())
            .await
            .unwrap_or(Err(ProbeError::Timeout(timeout)))
    }
}

/// The client of a service, or why there is none: a target on this machine (the sandbox)
/// whose endpoints do not serve it, where calling AWS's public endpoint is not an option.
fn service<C>(client: Option<C>, name: &str) -> Result<C, ProbeError> {
    client.ok_or_else(|| ProbeError::Config(crate::aws::unserved(name)))
}

fn control_url(url: Option<&String>, ctx: &ProbeContext) -> Result<String, ProbeError> {
    url.or(ctx.control_url.as_ref())
        .map(|u| u.trim_end_matches('/').to_owned())
        .ok_or_else(|| {
            ProbeError::Config(
                "this probe needs `url` (the sandbox control endpoint) or a sandbox target".into(),
            )
        })
}
