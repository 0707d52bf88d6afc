//! `service-latency`: one microservice made slow, not stopped: every instance of the
//! service waits `delay` more on each request (the sandbox's control endpoint,
//! `POST /services/<name>/latency`). Undo: the delay read just before the change.
//!
//! On AWS the same window comes from an FIS experiment template (`type = "fis"`, e.g. an
//! `aws:ecs:task-network-latency` or `aws:ssm:send-command` network-latency action on the
//! instances tagged `service=<name>`).

use std::time::Duration;

use serde::Deserialize;

use crate::chaos::change::Change;
use crate::chaos::change::service::{ServiceLatencyChange, read};
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};

/// ```toml
/// [[fault]]
/// name = "slow-store"
/// type = "service-latency"
/// at = "20s"
/// duration = "20s"
/// service = "store"        # a service of arch microservices
/// delay = "1s"             # added to each of its requests
/// # control = "http://127.0.0.1:34925"  # the sandbox control endpoint (default: the run's sandbox)
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLatency {
    /// The service: `upload`, `process`, `store` or `manage`.
    pub service: String,
    /// Added to each request of every instance of the service.
    #[serde(with = "crate::units::serde_duration")]
    pub delay: Duration,
    /// The sandbox control endpoint; default: the sandbox the run started.
    #[serde(default)]
    pub control: Option<String>,
}

impl ServiceLatency {
    fn control_url<'a>(&'a self, env: &'a Env) -> Result<&'a str, FaultError> {
        self.control
            .as_deref()
            .or(env.control_url.as_deref())
            .ok_or_else(|| {
                FaultError::Invalid(
                    "service-latency needs a sandbox: run against `[target.sandbox]`, or set \
                     `control` to a sandbox's control endpoint"
                        .into(),
                )
            })
    }
}

impl Fault for ServiceLatency {
    fn type_name(&self) -> &'static str {
        "service-latency"
    }
    fn impact(&self) -> Impact {
        Impact::Reversible
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            let control = self.control_url(env)?;
            let now = read(control, &self.service).await?;
            Ok(vec![Resource {
                id: format!("service:{}", self.service),
                label: format!("{control}, adds {now} ms now"),
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
            let control = self.control_url(env)?;
            let previous_ms = read(control, &self.service).await?;
            Ok(Change::ServiceLatency(ServiceLatencyChange {
                control_url: control.to_owned(),
                service: self.service.clone(),
                previous_ms,
                delay_ms: self.delay.as_millis() as u64,
            }))
        })
    }
}
