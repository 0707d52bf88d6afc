//! The pure health state machine of one balancer target: no IO, no clock.
//!
//! A target moves between four states:
//!
//! ```text
//!            healthy_threshold passes            unhealthy_threshold failures
//!   initial ---------------------------> healthy ---------------------------> unhealthy
//!      |                                    ^                                     |
//!      | unhealthy_threshold failures       +------ healthy_threshold passes -----+
//!      +------------------------------------------------------------------------> unhealthy
//!
//!   any state --deregister--> draining (terminal: probes are ignored)
//! ```
//!
//! Counters are of *consecutive* outcomes: a pass resets the failure count and vice versa.

use serde::Serialize;

/// Where a target stands with the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    /// Registered, not yet proven healthy: receives no traffic.
    Initial,
    /// In rotation.
    Healthy,
    /// Failed `unhealthy_threshold` consecutive checks: receives no traffic until it recovers.
    Unhealthy,
    /// Deregistered: receives no new requests; removed once its in-flight requests end.
    Draining,
}

impl TargetState {
    /// The lowercase name used in logs and JSON (`initial`, `healthy`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
        }
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The check answered with a success status within the timeout.
    Pass,
    /// The check failed; the text says why (status, timeout, connection error).
    Fail(String),
}

/// How many consecutive outcomes flip a target's state. Zero is treated as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive passes that bring an `initial` or `unhealthy` target into rotation.
    pub healthy: u32,
    /// Consecutive failures that take an `initial` or `healthy` target out of rotation.
    pub unhealthy: u32,
}

/// A state change, with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: TargetState,
    /// State after.
    pub to: TargetState,
    /// Why, e.g. `2 consecutive health checks failed (last: connection refused)`.
    pub reason: String,
}

/// Threshold logic for one target.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    state: TargetState,
    passes: u32,
    failures: u32,
    thresholds: Thresholds,
}

impl HealthMachine {
    /// A freshly registered target under active health checks: starts `initial`.
    pub fn checked(thresholds: Thresholds) -> Self {
        let thresholds = Thresholds {
            healthy: thresholds.healthy.max(1),
            unhealthy: thresholds.unhealthy.max(1),
        };
        HealthMachine {
            state: TargetState::Initial,
            passes: 0,
            failures: 0,
            thresholds,
        }
    }

    /// A target without health checks: in rotation from the start, whatever happens to it.
    pub fn unchecked() -> Self {
        HealthMachine {
            state: TargetState::Healthy,
            passes: 0,
            failures: 0,
            thresholds: Thresholds {
                healthy: 1,
                unhealthy: 1,
            },
        }
    }

    /// The current state.
    pub fn state(&self) -> TargetState {
        self.state
    }

    /// Feeds one health-check outcome; returns the transition it caused, if any.
    /// Ignored once draining.
    pub fn observe(&mut self, probe: &Probe) -> Option<Transition> {
        if self.state == TargetState::Draining {
            return None;
        }
        match probe {
            Probe::Pass => {
                self.failures = 0;
                self.passes = self.passes.saturating_add(1);
                let n = self.thresholds.healthy;
                (self.state != TargetState::Healthy && self.passes >= n).then(|| {
                    self.move_to(
                        TargetState::Healthy,
                        format!("{n} consecutive health checks passed"),
                    )
                })
            }
            Probe::Fail(why) => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                let n = self.thresholds.unhealthy;
                (self.state != TargetState::Unhealthy && self.failures >= n).then(|| {
                    self.move_to(
                        TargetState::Unhealthy,
                        format!("{n} consecutive health checks failed (last: {why})"),
                    )
                })
            }
        }
    }

    /// Deregistration: the target leaves rotation for good. `None` if already draining.
    pub fn drain(&mut self) -> Option<Transition> {
        (self.state != TargetState::Draining)
            .then(|| self.move_to(TargetState::Draining, "deregistered".to_string()))
    }

    fn move_to(&mut self, to: TargetState, reason: String) -> Transition {
        let from = self.state;
        self.state = to;
        self.passes = 0;
        self.failures = 0;
        Transition { from, to, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(healthy: u32, unhealthy: u32) -> HealthMachine {
        HealthMachine::checked(Thresholds { healthy, unhealthy })
    }

    fn fail() -> Probe {
        Probe::Fail("connection refused".into())
    }

    #[test]
    fn initial_needs_healthy_threshold_passes() {
        let mut m = machine(3, 2);
        assert_eq!(m.observe(&Probe::Pass), None);
        assert_eq!(m.observe(&Probe::Pass), None);
        assert_eq!(m.state(), TargetState::Initial);
        let t = m.observe(&Probe::Pass).expect("third pass promotes");
        assert_eq!((t.from, t.to), (TargetState::Initial, TargetState::Healthy));
        assert_eq!(t.reason, "3 consecutive health checks passed");
    }

    #[test]
    fn a_failure_resets_the_pass_streak() {
        let mut m = machine(2, 5);
        m.observe(&Probe::Pass);
        m.observe(&fail());
        assert_eq!(m.observe(&Probe::Pass), None);
        assert!(m.observe(&Probe::Pass).is_some());
        assert_eq!(m.state(), TargetState::Healthy);
    }

    #[test]
    fn healthy_goes_unhealthy_after_consecutive_failures_only() {
        let mut m = machine(1, 2);
        m.observe(&Probe::Pass);
        assert_eq!(m.observe(&fail()), None);
        assert_eq!(
            m.observe(&Probe::Pass),
            None,
            "already healthy: no transition"
        );
        assert_eq!(m.observe(&fail()), None, "streak was reset by the pass");
        let t = m.observe(&fail()).expect("second consecutive failure");
        assert_eq!(
            (t.from, t.to),
            (TargetState::Healthy, TargetState::Unhealthy)
        );
        assert!(
            t.reason.contains("last: connection refused"),
            "{}",
            t.reason
        );
        assert_eq!(m.observe(&fail()), None, "no repeated transition");
    }

    #[test]
    fn initial_can_go_straight_to_unhealthy_and_recover() {
        let mut m = machine(2, 2);
        m.observe(&fail());
        assert_eq!(
            m.observe(&fail()).map(|t| t.to),
            Some(TargetState::Unhealthy)
        );
        m.observe(&Probe::Pass);
        assert_eq!(
            m.observe(&Probe::Pass).map(|t| (t.from, t.to)),
            Some((TargetState::Unhealthy, TargetState::Healthy))
        );
    }

    #[test]
    fn draining_is_terminal() {
        let mut m = machine(1, 1);
        m.observe(&Probe::Pass);
        let t = m.drain().expect("drain transition");
        assert_eq!(
            (t.from, t.to),
            (TargetState::Healthy, TargetState::Draining)
        );
        assert_eq!(m.drain(), None);
        assert_eq!(m.observe(&fail()), None);
        assert_eq!(m.observe(&Probe::Pass), None);
        assert_eq!(m.state(), TargetState::Draining);
    }

    #[test]
    fn zero_thresholds_act_as_one_and_unchecked_starts_healthy() {
        let mut m = machine(0, 0);
        assert_eq!(
            m.observe(&Probe::Pass).map(|t| t.to),
            Some(TargetState::Healthy)
        );
        assert_eq!(
            m.observe(&fail()).map(|t| t.to),
            Some(TargetState::Unhealthy)
        );
        assert_eq!(HealthMachine::unchecked().state(), TargetState::Healthy);
    }

    proptest::proptest! {
        /// Whatever the probe sequence, the state changes only at the end of a full streak,
        /// and the state always matches the last `threshold` outcomes when they agree.
        #[test]
        fn transitions_need_full_streaks(
            probes in proptest::collection::vec(proptest::bool::ANY, 0..200),
            healthy in 1u32..5,
            unhealthy in 1u32..5,
        ) {
            let mut m = machine(healthy, unhealthy);
            let mut streak_pass = 0u32;
            let mut streak_fail = 0u32;
            for ok in probes {
                let before = m.state();
                let t = m.observe(&if ok { Probe::Pass } else { fail() });
                if ok { streak_pass += 1; streak_fail = 0 } else { streak_fail += 1; streak_pass = 0 }
                if let Some(t) = &t {
                    proptest::prop_assert_eq!(t.from, before);
                    if ok {
                        proptest::prop_assert_eq!(t.to, TargetState::Healthy);
                        proptest::prop_assert!(streak_pass >= healthy);
                    } else {
                        proptest::prop_assert_eq!(t.to, TargetState::Unhealthy);
                        proptest::prop_assert!(streak_fail >= unhealthy);
                    }
                    streak_pass = 0;
                    streak_fail = 0;
                }
                if streak_pass >= healthy { proptest::prop_assert_eq!(m.state(), TargetState::Healthy); }
                if streak_fail >= unhealthy { proptest::prop_assert_eq!(m.state(), TargetState::Unhealthy); }
            }
        }
    }
}
