//! Auto Scaling decisions, pure: given what the group looks like now, what
//! should its desired capacity be, and why. No clock, no IO: time is passed
//! in as seconds, so every rule is unit-tested exactly.
//!
//! Semantics follow EC2 Auto Scaling where it matters for the promises the
//! analyzer checks (scale-out, scale-in, flapping):
//! - **target tracking** on backlog per instance: `desired = ceil(backlog / target)`,
//!   at least 1 while there is any backlog (scale from zero), clamped to `[min, max]`;
//! - **step** scaling: the largest step whose backlog threshold is reached adds
//!   (or, when the backlog is zero, removes) instances;
//! - **fixed**: never changes desired (the broken `fixed-fleet` variant);
//! - scale-out must be *sustained* too, if briefly: the policy must want more instances at
//!   `scale_out_evaluations` evaluations in a row (AWS's scale-out alarm needs 3
//!   datapoints), so a backlog that pokes over a threshold for one evaluation, as a
//!   draining burst does right after a scale-in, does not scale out again;
//! - cooldowns: no scale-out within `scale_out_cooldown` of the last scale-out,
//!   no scale-in within `scale_in_cooldown` of the last scaling of either direction;
//! - scale-in must be *sustained*: the policy must have wanted fewer instances
//!   at every evaluation for a whole `scale_in_cooldown` (like the 15-datapoint
//!   scale-in alarm of AWS target tracking), and it scales in only to the
//!   largest capacity wanted over that period. This is what prevents flapping
//!   under a backlog that hovers around a threshold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the group reacts to backlog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Policy {
    /// Keep backlog per instance near `backlog_per_instance` (the AWS-recommended SQS metric).
    TargetTracking { backlog_per_instance: f64 },
    /// Add `add` instances when backlog >= `backlog`; the largest reached step wins.
    /// When the backlog is zero, remove `scale_in_step` instances.
    Step {
        steps: Vec<Step>,
        scale_in_step: u32,
    },
    /// Never scale (desired stays where it is; terminated instances are still replaced).
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub backlog: u64,
    pub add: u32,
}

/// A group's limits and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub min: u32,
    pub max: u32,
    pub policy: Policy,
    #[serde(with = "crate::units::serde_duration")]
    pub scale_out_cooldown: Duration,
    #[serde(with = "crate::units::serde_duration")]
    pub scale_in_cooldown: Duration,
    /// Evaluations in a row that must want more instances before a scale-out (1: at once).
    pub scale_out_evaluations: u32,
    /// A new instance counts as capacity only after this long.
    #[serde(with = "crate::units::serde_duration")]
    pub warmup: Duration,
}

/// What the controller sees at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Seconds on the controller's clock.
    pub now: f64,
    /// Messages waiting (visible) plus being processed (in flight).
    pub backlog: u64,
    /// Current desired capacity.
    pub desired: u32,
}

/// A change of desired capacity, with its cause (for the activity log).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: u32,
    pub to: u32,
    pub cause: String,
}

/// Remembers the last scaling times for the cooldowns.
#[derive(Debug, Clone)]
pub struct Controller {
    spec: GroupSpec,
    last_out: Option<f64>,
    last_any: Option<f64>,
    /// Since when every evaluation wanted fewer instances than desired, and
    /// the most it wanted meanwhile.
    low: Option<(f64, u32)>,
    /// Evaluations in a row that wanted more instances than desired.
    high: u32,
}

impl Controller {
    pub fn new(spec: GroupSpec) -> Controller {
        Controller {
            spec,
            last_out: None,
            last_any: None,
            low: None,
            high: 0,
        }
    }

    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }

    /// The desired capacity the policy wants, before cooldowns.
    pub fn wanted(&self, obs: &Observation) -> u32 {
        let s = &self.spec;
        let raw = match &s.policy {
            Policy::Fixed => return obs.desired.clamp(s.min, s.max),
            Policy::TargetTracking {
                backlog_per_instance,
            } => {
                let per = backlog_per_instance.max(f64::MIN_POSITIVE);
                let n = (obs.backlog as f64 / per).ceil() as u64;
                if obs.backlog > 0 { n.max(1) } else { 0 }
            }
            Policy::Step {
                steps,
                scale_in_step,
            } => {
                let add = steps
                    .iter()
                    .filter(|st| obs.backlog >= st.backlog)
                    .map(|st| st.add)
                    .max();
                match add {
                    Some(a) => u64::from(obs.desired) + u64::from(a),
                    None if obs.backlog == 0 => {
                        u64::from(obs.desired.saturating_sub(*scale_in_step))
                    }
                    None => u64::from(obs.desired.max(1)),
                }
            }
        };
        (raw.min(u64::from(u32::MAX)) as u32).clamp(s.min, s.max)
    }

    /// Evaluates the policy; returns a decision when desired should change now.
    pub fn evaluate(&mut self, obs: &Observation) -> Option<Decision> {
        let wanted = self.wanted(obs);
        let since = |t: Option<f64>| t.map_or(f64::INFINITY, |t| obs.now - t);
        if wanted > obs.desired {
            self.high += 1;
        } else {
            self.high = 0;
        }
        if wanted < obs.desired {
            let (start, most) = self.low.get_or_insert((obs.now, wanted));
            *most = (*most).max(wanted);
            let (start, most) = (*start, *most);
            let cooldown = self.spec.scale_in_cooldown.as_secs_f64();
            if obs.now - start < cooldown || since(self.last_any) < cooldown {
                return None;
            }
            // Target tracking scales in conservatively (as AWS's does): at most half the
            // fleet per step. A backlog that stays near zero only says the fleet keeps up,
            // not that a much smaller one would; halving lets it find out without flapping.
            let to = match self.spec.policy {
                Policy::TargetTracking { .. } => most.max(obs.desired / 2).max(self.spec.min),
                _ => most,
            };
            return Some(self.decide(obs, to, "in"));
        }
        self.low = None;
        if wanted > obs.desired
            && self.high >= self.spec.scale_out_evaluations
            && since(self.last_out) >= self.spec.scale_out_cooldown.as_secs_f64()
        {
            self.last_out = Some(obs.now);
            return Some(self.decide(obs, wanted, "out"));
        }
        None
    }

    fn decide(&mut self, obs: &Observation, to: u32, direction: &str) -> Decision {
        self.last_any = Some(obs.now);
        self.low = None;
        self.high = 0;
        let cause = format!(
            "backlog {} needs {} instance(s) ({}); scaling {direction} from {} to {}",
            obs.backlog,
            to,
            self.describe(),
            obs.desired,
            to
        );
        Decision {
            from: obs.desired,
            to,
            cause,
        }
    }

    fn describe(&self) -> String {
        match &self.spec.policy {
            Policy::TargetTracking {
                backlog_per_instance,
            } => format!("target {backlog_per_instance} per instance"),
            Policy::Step { .. } => "step policy".into(),
            Policy::Fixed => "fixed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(policy: Policy) -> GroupSpec {
        GroupSpec {
            min: 0,
            max: 8,
            policy,
            scale_out_cooldown: Duration::from_secs(10),
            scale_in_cooldown: Duration::from_secs(30),
            scale_out_evaluations: 1,
            warmup: Duration::from_secs(2),
        }
    }

    fn obs(now: f64, backlog: u64, desired: u32) -> Observation {
        Observation {
            now,
            backlog,
            desired,
        }
    }

    #[test]
    fn target_tracking_scales_out_from_zero_and_clamps_to_max() {
        let mut c = Controller::new(spec(Policy::TargetTracking {
            backlog_per_instance: 10.0,
        }));
        let d = c.evaluate(&obs(0.0, 1, 0)).unwrap();
        assert_eq!((d.from, d.to), (0, 1), "any backlog wakes a group at zero");
        assert!(d.cause.contains("scaling out"));
        // Within the scale-out cooldown nothing happens, however large the backlog.
        assert_eq!(c.evaluate(&obs(5.0, 500, 1)), None);
        let d = c.evaluate(&obs(10.0, 500, 1)).unwrap();
        assert_eq!(d.to, 8, "clamped to max");
    }

    #[test]
    fn scale_in_waits_for_its_cooldown_and_reaches_zero() {
        let mut c = Controller::new(spec(Policy::TargetTracking {
            backlog_per_instance: 10.0,
        }));
        c.evaluate(&obs(0.0, 45, 0)).unwrap(); // -> 5
        assert_eq!(
            c.evaluate(&obs(1.0, 0, 5)),
            None,
            "the low backlog must be sustained"
        );
        assert_eq!(c.evaluate(&obs(20.0, 0, 5)), None);
        let d = c.evaluate(&obs(31.0, 0, 5)).unwrap();
        assert_eq!((d.from, d.to), (5, 2), "at most half the fleet per step");
        assert!(d.cause.contains("scaling in"));
        // Each further step needs the low backlog sustained again: 2 -> 1 -> 0.
        assert_eq!(c.evaluate(&obs(40.0, 0, 2)), None);
        assert_eq!(c.evaluate(&obs(71.0, 0, 2)).unwrap().to, 1);
        assert_eq!(c.evaluate(&obs(72.0, 0, 1)), None);
        assert_eq!(c.evaluate(&obs(103.0, 0, 1)).unwrap().to, 0);
    }

    #[test]
    fn scale_out_needs_the_backlog_over_the_target_at_evaluations_in_a_row() {
        let mut c = Controller::new(GroupSpec {
            scale_out_evaluations: 2,
            ..spec(Policy::TargetTracking {
                backlog_per_instance: 20.0,
            })
        });
        // One evaluation over the target (a draining burst) is not enough...
        assert_eq!(c.evaluate(&obs(0.0, 44, 2)), None);
        assert_eq!(c.evaluate(&obs(1.0, 30, 2)), None);
        assert_eq!(c.evaluate(&obs(2.0, 44, 2)), None);
        // ...two in a row are.
        let d = c.evaluate(&obs(3.0, 50, 2)).unwrap();
        assert_eq!((d.from, d.to), (2, 3));
    }

    #[test]
    fn scale_in_goes_only_to_the_most_wanted_over_the_window() {
        let mut c = Controller::new(spec(Policy::TargetTracking {
            backlog_per_instance: 10.0,
        }));
        c.evaluate(&obs(0.0, 80, 0)).unwrap(); // -> 8
        assert_eq!(c.evaluate(&obs(40.0, 0, 4)), None);
        assert_eq!(c.evaluate(&obs(50.0, 30, 4)), None);
        let d = c.evaluate(&obs(70.0, 0, 4)).unwrap();
        assert_eq!(d.to, 3, "30 messages were seen during the window");
    }

    #[test]
    fn min_is_respected_and_fixed_never_changes() {
        let mut s = spec(Policy::TargetTracking {
            backlog_per_instance: 10.0,
        });
        s.min = 2;
        let c = Controller::new(s);
        assert_eq!(c.wanted(&obs(0.0, 0, 3)), 2);
        let mut f = Controller::new(spec(Policy::Fixed));
        assert_eq!(f.evaluate(&obs(0.0, 10_000, 2)), None);
        assert_eq!(f.evaluate(&obs(100.0, 0, 2)), None);
    }

    #[test]
    fn step_policy_takes_the_largest_reached_step() {
        let steps = vec![
            Step {
                backlog: 10,
                add: 1,
            },
            Step {
                backlog: 100,
                add: 3,
            },
        ];
        let c = Controller::new(spec(Policy::Step {
            steps,
            scale_in_step: 1,
        }));
        assert_eq!(c.wanted(&obs(0.0, 5, 2)), 2);
        assert_eq!(c.wanted(&obs(0.0, 50, 2)), 3);
        assert_eq!(c.wanted(&obs(0.0, 150, 2)), 5);
        assert_eq!(c.wanted(&obs(0.0, 0, 2)), 1);
    }

    #[test]
    fn no_flapping_under_a_steady_backlog() {
        let mut c = Controller::new(spec(Policy::TargetTracking {
            backlog_per_instance: 10.0,
        }));
        let mut desired = 0;
        let mut changes = 0;
        for t in 0..600 {
            // A backlog oscillating around 40 +- 5.
            let backlog = 40 + (t % 3) as u64 * 5 - 5;
            if let Some(d) = c.evaluate(&obs(t as f64, backlog, desired)) {
                desired = d.to;
                changes += 1;
            }
        }
        assert!(changes <= 3, "{changes} changes");
    }
}
