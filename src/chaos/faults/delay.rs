//! `delay-queue`: SetQueueAttributes DelaySeconds for the duration; undo restores the value
//! read just before the change.

use std::time::Duration;

use serde::Deserialize;

use crate::aws::{QueueRef, queue_attribute};
use crate::chaos::change::Change;
use crate::chaos::change::queue::QueueAttributeChange;
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};

/// ```toml
/// [[fault]]
/// type = "delay-queue"
/// at = "30s"
/// duration = "1m"
/// queue = "jobs"        # name or URL
/// delay = "15s"         # 0..=15m, whole seconds
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayQueue {
    /// The queue, by name or URL.
    pub queue: QueueRef,
    /// The delay every new message gets.
    #[serde(with = "crate::units::serde_duration")]
    pub delay: Duration,
}

impl Fault for DelayQueue {
    fn type_name(&self) -> &'static str {
        "delay-queue"
    }
    fn impact(&self) -> Impact {
        Impact::Reversible
    }
    fn aws_actions(&self) -> Vec<&'static str> {
        crate::chaos::change::queue::QUEUE_CHANGE_ACTIONS.to_vec()
    }
    fn resolve<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
        Box::pin(async move {
            if self.delay > Duration::from_secs(900) || self.delay.subsec_nanos() != 0 {
                return Err(FaultError::Invalid(format!(
                    "delay must be whole seconds in 0s..=15m, got {:?}",
                    self.delay
                )));
            }
            let c = env.clients(env.aws_target(self.type_name())?).await?;
            let url = self.queue.url(&c.sqs).await?;
            Ok(vec![Resource {
                id: url,
                label: String::new(),
                aws_tags: None,
            }])
        })
    }
    fn prepare<'a>(
        &'a self,
        env: &'a Env,
        chosen: &'a [Resource],
        _occurrence: &'a str,
    ) -> BoxFuture<'a, Result<Change, FaultError>> {
        Box::pin(async move {
            let target = env.aws_target(self.type_name())?.clone();
            let c = env.clients(&target).await?;
            let url = chosen[0].id.clone();
            let previous = queue_attribute(&c.sqs, &url, "DelaySeconds")
                .await?
                .unwrap_or_else(|| "0".into());
            Ok(Change::QueueAttribute(QueueAttributeChange {
                target,
                queue_url: url,
                attribute: "DelaySeconds".into(),
                previous,
                value: self.delay.as_secs().to_string(),
            }))
        })
    }
}
