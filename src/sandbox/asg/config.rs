//! `[workers]`: the worker Auto Scaling group's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::{GroupSpec, Policy};
use crate::sandbox::config::Ack;

/// The worker Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Smallest group size (0 = scale to zero).
    pub min: u32,
    /// Largest group size.
    pub max: u32,
    /// Desired size at start.
    pub desired: u32,
    /// Scaling policy, e.g. `{ type = "target-tracking", backlog_per_instance = 20.0 }`,
    /// `{ type = "step", steps = [{ backlog = 50, add = 2 }], scale_in_step = 1 }` or
    /// `{ type = "fixed" }`. Backlog = visible + in-flight messages.
    pub policy: Policy,
    /// No scale-out within this of the last scale-out.
    #[serde(with = "crate::units::serde_duration")]
    pub scale_out_cooldown: Duration,
    /// Scale-in needs a low backlog sustained this long, and this long since the last scaling.
    #[serde(with = "crate::units::serde_duration")]
    pub scale_in_cooldown: Duration,
    /// Boot time: a new worker stays `pending` this long before it consumes.
    #[serde(with = "crate::units::serde_duration")]
    pub warmup: Duration,
    /// Jobs one worker processes at once (it receives up to this many per call, at most 10).
    pub concurrency: u32,
    /// Long-polling wait of each ReceiveMessage (0..=20 s).
    #[serde(with = "crate::units::serde_duration")]
    pub wait_time: Duration,
    /// When a job is deleted: `after-process` or `before-process` (the flaw).
    pub ack: Ack,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            min: 0,
            max: 8,
            desired: 0,
            policy: Policy::TargetTracking {
                backlog_per_instance: 20.0,
            },
            scale_out_cooldown: Duration::from_secs(5),
            scale_in_cooldown: Duration::from_secs(15),
            warmup: Duration::from_secs(1),
            concurrency: 1,
            wait_time: Duration::from_secs(5),
            ack: Ack::AfterProcess,
        }
    }
}

/// Evaluations (one a second) in a row that must want more workers before a scale-out: a
/// backlog over the target for a single second (a burst draining right after a scale-in)
/// does not scale out, as AWS's scale-out alarm waits for consecutive datapoints.
const SCALE_OUT_EVALUATIONS: u32 = 2;

impl WorkersConfig {
    /// The Auto Scaling controller's view of this group.
    pub fn group_spec(&self) -> GroupSpec {
        GroupSpec {
            min: self.min,
            max: self.max,
            policy: self.policy.clone(),
            scale_out_cooldown: self.scale_out_cooldown,
            scale_in_cooldown: self.scale_in_cooldown,
            scale_out_evaluations: SCALE_OUT_EVALUATIONS,
            warmup: self.warmup,
        }
    }
}
