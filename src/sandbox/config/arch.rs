//! The architectures the sandbox runs, their deliberately broken variants, and what
//! `--arch NAME` names.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::services::{ProcessCall, ScalingMode};
use super::{Ack, Overflow, SandboxConfig};
use crate::sandbox::asg::policy::Policy;

/// The reference architectures of DESIGN section 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Web tier enqueues a job and answers 202; a scaling worker fleet processes it.
    #[default]
    Queued,
    /// Web tier behind the balancer answers 200 after reading the upload; no queue work.
    Tiered,
    /// Web tier processes each upload inline before answering 200 (the anti-pattern).
    Monolith,
    /// Web tier forwards `POST /events` to an event bus (see [`super::BusConfig`]).
    EventDriven,
    /// Four services, each its own group behind the balancer's path rules: `upload`,
    /// `process` (the workers), `store` and `manage` (see [`super::ServicesConfig`]).
    Microservices,
}

impl Arch {
    /// Every architecture, in documentation order.
    pub const ALL: [Arch; 5] = [
        Arch::Queued,
        Arch::Tiered,
        Arch::Monolith,
        Arch::EventDriven,
        Arch::Microservices,
    ];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Queued => "queued",
            Arch::Tiered => "tiered",
            Arch::Monolith => "monolith",
            Arch::EventDriven => "event-driven",
            Arch::Microservices => "microservices",
        }
    }

    /// Whether this architecture runs a worker fleet reading the jobs queue (in
    /// `microservices`, the `process` service).
    pub fn has_workers(self) -> bool {
        matches!(self, Arch::Queued | Arch::Microservices)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A deliberate flaw for the analyzer to catch. Applying one only changes ordinary fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The balancer has no health checks: a dead web instance keeps getting traffic.
    NoHealthChecks,
    /// The worker group never scales (policy `fixed`).
    FixedFleet,
    /// Workers delete a job before processing it: a worker killed mid-job loses it.
    AckBeforeProcess,
    /// The jobs queue has a small capacity and silently drops what does not fit.
    LossyQueue,
    /// The worker group's `max` is 1: it scales, but never to what the backlog calls for.
    CappedFleet,
    /// New workers boot for [`SLOW_SCALER_WARMUP`] before they consume: capacity comes
    /// far later than any scale-out promise allows.
    SlowScaler,
    /// No cooldowns: the group scales in the moment the backlog dips and out the moment
    /// it rises, so desired capacity changes direction again and again.
    Flapping,
    /// Microservices whose `upload` calls `process` synchronously (no queue): a slow or
    /// stalled `process` makes uploads slow or fail.
    DistributedMonolith,
    /// Microservices whose groups share one scaling decision (`process`'s backlog): a
    /// processing backlog scales every service.
    SharedFleet,
    /// Microservices whose `manage` waits on `store` without a timeout: a slow `store`
    /// exhausts `manage`'s request slots.
    NoTimeouts,
}

impl Variant {
    /// Every variant, in documentation order.
    pub const ALL: [Variant; 10] = [
        Variant::NoHealthChecks,
        Variant::FixedFleet,
        Variant::AckBeforeProcess,
        Variant::LossyQueue,
        Variant::CappedFleet,
        Variant::SlowScaler,
        Variant::Flapping,
        Variant::DistributedMonolith,
        Variant::SharedFleet,
        Variant::NoTimeouts,
    ];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::NoHealthChecks => "no-health-checks",
            Variant::FixedFleet => "fixed-fleet",
            Variant::AckBeforeProcess => "ack-before-process",
            Variant::LossyQueue => "lossy-queue",
            Variant::CappedFleet => "capped-fleet",
            Variant::SlowScaler => "slow-scaler",
            Variant::Flapping => "flapping",
            Variant::DistributedMonolith => "distributed-monolith",
            Variant::SharedFleet => "shared-fleet",
            Variant::NoTimeouts => "no-timeouts",
        }
    }

    /// The architecture a broken name stands for on the command line: `queued` with the
    /// flaw, or `microservices` for the flaws only services have.
    pub fn base_arch(self) -> Arch {
        match self {
            Variant::DistributedMonolith | Variant::SharedFleet | Variant::NoTimeouts => {
                Arch::Microservices
            }
            _ => Arch::Queued,
        }
    }

    /// Sets the fields that make up this flaw.
    pub fn apply(self, config: &mut SandboxConfig) {
        match self {
            Variant::NoHealthChecks => config.web.health_check.enabled = false,
            Variant::FixedFleet => {
                // A fleet of its starting size (at least one worker) that never changes.
                config.workers.policy = Policy::Fixed;
                config.workers.desired = config.workers.desired.max(1);
                config.workers.min = config.workers.min.max(config.workers.desired);
            }
            Variant::AckBeforeProcess => config.workers.ack = Ack::BeforeProcess,
            Variant::LossyQueue => {
                config.queue.overflow = Overflow::Drop;
                config
                    .queue
                    .capacity
                    .get_or_insert(LOSSY_QUEUE_DEFAULT_CAPACITY);
            }
            Variant::CappedFleet => {
                let w = &mut config.workers;
                w.max = CAPPED_FLEET_MAX;
                w.min = w.min.min(w.max);
                w.desired = w.desired.clamp(w.min, w.max);
            }
            Variant::SlowScaler => config.workers.warmup = SLOW_SCALER_WARMUP,
            Variant::Flapping => {
                config.workers.scale_out_cooldown = Duration::ZERO;
                config.workers.scale_in_cooldown = Duration::ZERO;
            }
            Variant::DistributedMonolith => {
                // process answers calls: at least one instance is always there to answer.
                config.services.upload.process = ProcessCall::Sync;
                let w = &mut config.workers;
                w.min = w.min.max(1);
                w.max = w.max.max(w.min);
                w.desired = w.desired.clamp(w.min, w.max);
            }
            Variant::SharedFleet => {
                // One decision for every group, on process's backlog; every group may grow
                // as far as process may.
                config.services.scaling = ScalingMode::Shared;
                let max = config.workers.max;
                for group_max in config.services.maxes_mut() {
                    *group_max = (*group_max).max(max);
                }
            }
            Variant::NoTimeouts => config.services.manage.store_timeout = None,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Capacity the `lossy-queue` variant gives the jobs queue when none is configured.
pub const LOSSY_QUEUE_DEFAULT_CAPACITY: usize = 100;

/// The `capped-fleet` variant's `workers.max`: one worker, where the demo's stall and
/// burst call for the whole default fleet of 8 (backlog 20 per worker).
pub const CAPPED_FLEET_MAX: u32 = 1;

/// The `slow-scaler` variant's `workers.warmup`: well beyond the 25-30 s that the
/// experiments in `chaos/` allow for scale-out, so that no timing jitter can hide it.
pub const SLOW_SCALER_WARMUP: Duration = Duration::from_secs(45);

/// What `--arch NAME` names: an architecture, or a broken variant on top of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchChoice {
    /// The architecture.
    pub arch: Arch,
    /// The flaw, if a broken name was given.
    pub variant: Option<Variant>,
}

impl FromStr for ArchChoice {
    type Err = String;

    /// Accepts the architectures and the broken variants (each broken name is its
    /// [`Variant::base_arch`] with that flaw).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(arch) = Arch::ALL.into_iter().find(|a| a.name() == s) {
            return Ok(ArchChoice {
                arch,
                variant: None,
            });
        }
        if let Some(variant) = Variant::ALL.into_iter().find(|v| v.name() == s) {
            return Ok(ArchChoice {
                arch: variant.base_arch(),
                variant: Some(variant),
            });
        }
        let names: Vec<&str> = Arch::ALL
            .iter()
            .map(|a| a.name())
            .chain(Variant::ALL.iter().map(|v| v.name()))
            .collect();
        Err(format!(
            "unknown architecture `{s}`; expected one of: {}",
            names.join(", ")
        ))
    }
}
