//! `[services]`: the four services of arch `microservices` (the fourth, `process`, is the
//! worker group of `[workers]`), how they call each other and how they scale.
//!
//! Each of `upload`, `store` and `manage` is its own group of instances behind the
//! balancer, selected by a path rule, with its own bounds and its own target-tracking
//! policy on the requests in flight per instance (as ALB's `RequestCountPerTarget`);
//! `process` scales on the jobs queue's backlog. With `scaling = "shared"` (the
//! `shared-fleet` flaw) one decision, process's, sets every group's desired capacity.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sandbox::asg::policy::{GroupSpec, Policy};

/// Who decides each service group's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScalingMode {
    /// Each group scales on its own signal.
    #[default]
    PerService,
    /// Every group takes process's decision (the `shared-fleet` flaw).
    Shared,
}

/// How `upload` hands an upload to `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessCall {
    /// A job on the jobs queue; the answer does not wait for processing.
    #[default]
    Queue,
    /// `POST /process/{id}` through the balancer, answered after processing (the
    /// `distributed-monolith` flaw).
    Sync,
}

/// `[services]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesConfig {
    /// `per-service` or `shared` (the flaw).
    pub scaling: ScalingMode,
    /// `upload`: takes `POST|PUT /upload/{id}`.
    pub upload: UploadConfig,
    /// `store`: the object store.
    pub store: StoreConfig,
    /// `manage`: `GET /objects`, `DELETE /objects/{id}`.
    pub manage: ManageConfig,
}

/// `[services.upload]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Smallest group size.
    pub min: u32,
    /// Largest group size.
    pub max: u32,
    /// Group size at start.
    pub desired: u32,
    /// Target tracking: requests in flight per instance.
    pub in_flight_per_instance: f64,
    /// Requests one instance serves at once; more wait for a slot.
    pub slots: u32,
    /// Requests that may wait for a slot per instance; beyond: 503 at once.
    pub waiting: u32,
    /// How long an upload waits for `store`; then it spools the object with its job and
    /// `process` writes it to `store` later. Unset = wait as long as `store` takes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::units::serde_duration::option"
    )]
    pub store_timeout: Option<Duration>,
    /// `queue` or `sync` (the `distributed-monolith` flaw).
    pub process: ProcessCall,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            min: 1,
            max: 4,
            desired: 2,
            in_flight_per_instance: 10.0,
            slots: 64,
            waiting: 256,
            store_timeout: Some(Duration::from_millis(100)),
            process: ProcessCall::Queue,
        }
    }
}

/// `[services.store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Smallest group size.
    pub min: u32,
    /// Largest group size.
    pub max: u32,
    /// Group size at start.
    pub desired: u32,
    /// Target tracking: requests in flight per instance.
    pub in_flight_per_instance: f64,
    /// Requests one instance serves at once (its capacity); more wait for a slot.
    pub concurrency: u32,
    /// Requests that may wait for a slot per instance; beyond: 503 at once.
    pub waiting: u32,
    /// Time one request takes once it has a slot.
    #[serde(with = "crate::units::serde_duration")]
    pub service_time: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            min: 1,
            max: 4,
            desired: 2,
            in_flight_per_instance: 8.0,
            concurrency: 8,
            waiting: 256,
            service_time: Duration::from_millis(2),
        }
    }
}

/// `[services.manage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManageConfig {
    /// Smallest group size.
    pub min: u32,
    /// Largest group size.
    pub max: u32,
    /// Group size at start.
    pub desired: u32,
    /// Target tracking: requests in flight per instance.
    pub in_flight_per_instance: f64,
    /// Requests one instance serves at once; more wait for a slot.
    pub slots: u32,
    /// Requests that may wait for a slot per instance; beyond: 503 at once.
    pub waiting: u32,
    /// How long `manage` waits for `store`; then it answers from its cached listing
    /// (`"degraded": true`). Unset = wait as long as `store` takes (the `no-timeouts` flaw).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::units::serde_duration::option"
    )]
    pub store_timeout: Option<Duration>,
    /// Most objects one listing returns.
    pub list_limit: u32,
}

impl Default for ManageConfig {
    fn default() -> Self {
        ManageConfig {
            min: 1,
            max: 4,
            desired: 2,
            in_flight_per_instance: 10.0,
            slots: 8,
            waiting: 64,
            store_timeout: Some(Duration::from_millis(100)),
            list_limit: 100,
        }
    }
}

/// One service group's size and scaling, whatever the service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSize {
    /// Smallest size.
    pub min: u32,
    /// Largest size.
    pub max: u32,
    /// Size at start.
    pub desired: u32,
    /// Target tracking: requests in flight per instance.
    pub in_flight_per_instance: f64,
}

impl GroupSize {
    /// The Auto Scaling controller's view: target tracking on requests in flight, with
    /// the cooldowns and warm-up of `[workers]` (one set of timings for the whole system).
    pub fn spec(&self, timings: &super::WorkersConfig) -> GroupSpec {
        GroupSpec {
            min: self.min,
            max: self.max,
            policy: Policy::TargetTracking {
                backlog_per_instance: self.in_flight_per_instance,
            },
            ..timings.group_spec()
        }
    }
}

impl ServicesConfig {
    /// The groups `upload`, `store`, `manage` by name, with their sizes.
    pub fn groups(&self) -> [(&'static str, GroupSize); 3] {
        let size = |min, max, desired, in_flight_per_instance| GroupSize {
            min,
            max,
            desired,
            in_flight_per_instance,
        };
        let (u, s, m) = (&self.upload, &self.store, &self.manage);
        [
            (
                "upload",
                size(u.min, u.max, u.desired, u.in_flight_per_instance),
            ),
            (
                "store",
                size(s.min, s.max, s.desired, s.in_flight_per_instance),
            ),
            (
                "manage",
                size(m.min, m.max, m.desired, m.in_flight_per_instance),
            ),
        ]
    }

    /// The `max` of each group, to change them all at once.
    pub fn maxes_mut(&mut self) -> [&mut u32; 3] {
        [
            &mut self.upload.max,
            &mut self.store.max,
            &mut self.manage.max,
        ]
    }

    /// Every problem of the values, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, g) in self.groups() {
            if g.min > g.max || !(g.min..=g.max).contains(&g.desired) {
                problems.push(format!(
                    "services.{name}: min <= desired <= max does not hold ({} <= {} <= {})",
                    g.min, g.desired, g.max
                ));
            }
            if g.max == 0 {
                problems.push(format!("services.{name}.max must be at least 1"));
            }
            if !(g.in_flight_per_instance.is_finite() && g.in_flight_per_instance > 0.0) {
                problems.push(format!(
                    "services.{name}.in_flight_per_instance must be positive"
                ));
            }
        }
        for (field, slots) in [
            ("upload.slots", self.upload.slots),
            ("store.concurrency", self.store.concurrency),
            ("manage.slots", self.manage.slots),
        ] {
            if slots == 0 {
                problems.push(format!("services.{field} must be at least 1"));
            }
        }
        for (field, t) in [
            ("upload.store_timeout", self.upload.store_timeout),
            ("manage.store_timeout", self.manage.store_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero()) {
                problems.push(format!(
                    "services.{field} must be positive (or left out: no timeout)"
                ));
            }
        }
        if self.manage.list_limit == 0 {
            problems.push("services.manage.list_limit must be at least 1".into());
        }
        problems
    }
}
