//! A group's bookkeeping, pure (time passed in as seconds): members, desired capacity,
//! replacements, launch back-off; [`GroupState::reconcile`] says what the
//! [`super::manager::Manager`] must do.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::sandbox::ec2::{InstanceId, InstanceState};

/// Longest delay between launches after repeated launch failures.
const MAX_BACKOFF_SECS: f64 = 30.0;

/// What the manager must do for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start one more instance.
    Launch {
        /// Why (scaling, or which instance it replaces).
        cause: String,
    },
    /// Take an instance out of the group.
    Terminate {
        /// The instance.
        id: InstanceId,
        /// Why.
        cause: String,
        /// Ask it to finish its work first (scale-in) rather than kill it.
        drain: bool,
    },
    /// An instance left the group on its own (terminated outside the group, exited).
    Lost {
        /// The instance.
        id: InstanceId,
        /// Its state and reason.
        cause: String,
    },
}

/// An instance as the group knows it.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    /// Launch order within the group.
    order: u64,
    /// Has it ever been `running`?
    was_running: bool,
    /// Since when it has been stopping/stopped.
    stopped_since: Option<f64>,
    /// The group is taking it out (scale-in or replacement); it no longer counts.
    leaving: bool,
}

/// What the registry says about a member: its state and, if any, its state reason.
pub type MemberState = (InstanceState, Option<String>);

/// A group's bookkeeping, pure: members, desired capacity, pending replacement causes.
#[derive(Debug, Clone)]
pub struct GroupState {
    name: String,
    min: u32,
    max: u32,
    desired: u32,
    replace_stopped_after: f64,
    members: BTreeMap<InstanceId, Member>,
    next_order: u64,
    replacements: VecDeque<String>,
    launch_failures: u32,
    backoff_until: f64,
}

/// A snapshot of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Smallest size.
    pub min: u32,
    /// Largest size.
    pub max: u32,
    /// Desired size.
    pub desired: u32,
    /// Members that count towards desired, launch order.
    pub instances: Vec<String>,
    /// Members being taken out.
    pub leaving: Vec<String>,
}

impl GroupState {
    /// An empty group; `desired` is clamped to `[min, max]`.
    pub fn new(
        name: &str,
        min: u32,
        max: u32,
        desired: u32,
        replace_stopped_after: Duration,
    ) -> Self {
        GroupState {
            name: name.to_owned(),
            min,
            max,
            desired: desired.clamp(min, max),
            replace_stopped_after: replace_stopped_after.as_secs_f64(),
            members: BTreeMap::new(),
            next_order: 0,
            replacements: VecDeque::new(),
            launch_failures: 0,
            backoff_until: f64::NEG_INFINITY,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Desired capacity.
    pub fn desired(&self) -> u32 {
        self.desired
    }

    /// Sets desired capacity (clamped to `[min, max]`); returns the value set.
    pub fn set_desired(&mut self, desired: u32) -> u32 {
        self.desired = desired.clamp(self.min, self.max);
        self.desired
    }

    /// Records a just-launched instance.
    pub fn add_member(&mut self, id: InstanceId) {
        self.next_order += 1;
        self.members.insert(
            id,
            Member {
                order: self.next_order,
                was_running: false,
                stopped_since: None,
                leaving: false,
            },
        );
    }

    /// Whether `id` is a member being taken out by the group.
    pub fn is_leaving(&self, id: &InstanceId) -> bool {
        self.members.get(id).is_some_and(|m| m.leaving)
    }

    /// Whether `id` is a member (leaving or not).
    pub fn contains(&self, id: &InstanceId) -> bool {
        self.members.contains_key(id)
    }

    /// A snapshot.
    pub fn status(&self) -> GroupStatus {
        let mut members: Vec<(&InstanceId, &Member)> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.order);
        let ids = |leaving: bool| {
            members
                .iter()
                .filter(|(_, m)| m.leaving == leaving)
                .map(|(id, _)| id.to_string())
                .collect()
        };
        GroupStatus {
            name: self.name.clone(),
            min: self.min,
            max: self.max,
            desired: self.desired,
            instances: ids(false),
            leaving: ids(true),
        }
    }

    /// Compares the members with the registry (`state_of`; `None` = unknown, gone) at
    /// time `now` (seconds) and returns what to do, in order.
    pub fn reconcile(
        &mut self,
        now: f64,
        state_of: impl Fn(&InstanceId) -> Option<MemberState>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let ids: Vec<InstanceId> = self.members.keys().cloned().collect();
        for id in ids {
            let (state, reason) = state_of(&id).unwrap_or((InstanceState::Terminated, None));
            let member = self.members.get_mut(&id).expect("listed above");
            match state {
                InstanceState::Terminated | InstanceState::ShuttingDown => {
                    let member = self.members.remove(&id).expect("listed above");
                    if member.leaving {
                        continue;
                    }
                    if !member.was_running {
                        self.launch_failures += 1;
                        let delay = 2f64
                            .powi(self.launch_failures as i32 - 1)
                            .min(MAX_BACKOFF_SECS);
                        self.backoff_until = now + delay;
                    }
                    let why = reason.unwrap_or_else(|| "no reason given".into());
                    let cause = format!("instance {id} is {state} ({why})");
                    self.replacements
                        .push_back(format!("replacing instance {id}, which is {state} ({why})"));
                    actions.push(Action::Lost { id, cause });
                }
                InstanceState::Stopping | InstanceState::Stopped => {
                    let since = *member.stopped_since.get_or_insert(now);
                    if !member.leaving && now - since >= self.replace_stopped_after {
                        member.leaving = true;
                        let secs = self.replace_stopped_after;
                        let cause = format!(
                            "instance {id} has been {state} for {secs:.0}s: unhealthy, replacing it"
                        );
                        self.replacements
                            .push_back(format!("replacing instance {id}, stopped for {secs:.0}s"));
                        actions.push(Action::Terminate {
                            id,
                            cause,
                            drain: false,
                        });
                    }
                }
                InstanceState::Running | InstanceState::Pending => {
                    member.stopped_since = None;
                    if state == InstanceState::Running && !member.was_running {
                        member.was_running = true;
                        self.launch_failures = 0;
                        self.backoff_until = f64::NEG_INFINITY;
                    }
                }
            }
        }
        let in_service = self.members.values().filter(|m| !m.leaving).count() as u32;
        if in_service < self.desired && now >= self.backoff_until {
            for _ in in_service..self.desired {
                let cause = self.replacements.pop_front().unwrap_or_else(|| {
                    format!(
                        "desired capacity {} but {in_service} in service: launching",
                        self.desired
                    )
                });
                actions.push(Action::Launch { cause });
            }
        }
        if in_service > self.desired {
            self.replacements.clear();
            let mut victims: Vec<(&InstanceId, &Member)> =
                self.members.iter().filter(|(_, m)| !m.leaving).collect();
            // Newest first, pending (never running) before running.
            victims.sort_by_key(|(_, m)| (m.was_running, std::cmp::Reverse(m.order)));
            let chosen: Vec<InstanceId> = victims
                .into_iter()
                .take((in_service - self.desired) as usize)
                .map(|(id, _)| id.clone())
                .collect();
            for id in chosen {
                self.members
                    .get_mut(&id)
                    .expect("chosen from members")
                    .leaving = true;
                let cause = format!(
                    "scale-in: group {} desired capacity is {}",
                    self.name, self.desired
                );
                actions.push(Action::Terminate {
                    id,
                    cause,
                    drain: true,
                });
            }
        }
        if in_service >= self.desired {
            self.replacements.clear();
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<InstanceId> {
        (0..n)
            .map(|i| format!("i-{i:017x}").parse().unwrap())
            .collect()
    }

    fn launches(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Launch { .. }))
            .count()
    }

    #[test]
    fn a_group_below_desired_launches_the_difference() {
        let mut g = GroupState::new("web", 0, 8, 2, Duration::from_secs(30));
        let actions = g.reconcile(0.0, |_| None);
        assert_eq!(launches(&actions), 2);
        for id in ids(2) {
            g.add_member(id);
        }
        assert!(
            g.reconcile(1.0, |_| Some((InstanceState::Pending, None)))
                .is_empty()
        );
    }

    #[test]
    fn a_terminated_member_is_reported_and_replaced_with_its_cause() {
        let mut g = GroupState::new("web", 0, 8, 2, Duration::from_secs(30));
        let members = ids(2);
        for id in &members {
            g.add_member(id.clone());
        }
        g.reconcile(0.0, |_| Some((InstanceState::Running, None)));
        let dead = members[0].clone();
        let actions = g.reconcile(1.0, |id| {
            if *id == dead {
                Some((InstanceState::Terminated, Some("User initiated".into())))
            } else {
                Some((InstanceState::Running, None))
            }
        });
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(matches!(&actions[0], Action::Lost { id, .. } if *id == dead));
        let Action::Launch { cause } = &actions[1] else {
            panic!("{actions:?}")
        };
        assert!(
            cause.contains(&format!("replacing instance {dead}")),
            "{cause}"
        );
        assert!(cause.contains("User initiated"), "{cause}");
    }

    #[test]
    fn a_member_stopped_too_long_is_terminated_then_replaced() {
        let mut g = GroupState::new("workers", 0, 8, 1, Duration::from_secs(30));
        let id = ids(1).remove(0);
        g.add_member(id.clone());
        let stopped = |_: &InstanceId| Some((InstanceState::Stopped, None));
        assert!(g.reconcile(0.0, stopped).is_empty());
        assert!(g.reconcile(29.0, stopped).is_empty());
        let actions = g.reconcile(30.0, stopped);
        assert!(matches!(&actions[0], Action::Terminate { id: t, drain: false, .. } if *t == id));
        assert!(
            matches!(&actions[1], Action::Launch { cause } if cause.contains("stopped for 30s"))
        );
        // Once it is gone, nothing more happens for it.
        g.add_member(ids(2).remove(1));
        let actions = g.reconcile(31.0, |i| {
            (*i != id).then_some((InstanceState::Running, None))
        });
        assert!(actions.is_empty(), "{actions:?}");
    }

    #[test]
    fn scale_in_drains_pending_then_newest_first() {
        let mut g = GroupState::new("workers", 0, 8, 3, Duration::from_secs(30));
        let members = ids(3);
        for id in &members {
            g.add_member(id.clone());
        }
        let pending = members[0].clone();
        let state = |id: &InstanceId| {
            Some((
                if *id == pending {
                    InstanceState::Pending
                } else {
                    InstanceState::Running
                },
                None,
            ))
        };
        g.reconcile(0.0, state);
        g.set_desired(1);
        let victims: Vec<_> = g
            .reconcile(1.0, state)
            .into_iter()
            .map(|a| match a {
                Action::Terminate {
                    id, drain: true, ..
                } => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(victims, vec![members[0].clone(), members[2].clone()]);
        assert_eq!(g.status().instances, vec![members[1].to_string()]);
        assert_eq!(g.status().leaving.len(), 2);
        // While they drain, they do not count and are not replaced.
        assert!(g.reconcile(2.0, state).is_empty());
    }

    #[test]
    fn launch_failures_back_off() {
        let mut g = GroupState::new("web", 0, 8, 1, Duration::from_secs(30));
        let [a, b] = <[InstanceId; 2]>::try_from(ids(2)).unwrap();
        assert_eq!(launches(&g.reconcile(0.0, |_| None)), 1);
        g.add_member(a);
        // Dies before ever running: next launch waits 1 s, then 2 s after a second failure.
        assert_eq!(launches(&g.reconcile(0.5, |_| None)), 0);
        assert_eq!(launches(&g.reconcile(1.5, |_| None)), 1);
        g.add_member(b);
        assert_eq!(launches(&g.reconcile(2.0, |_| None)), 0);
        assert_eq!(launches(&g.reconcile(3.5, |_| None)), 0);
        assert_eq!(launches(&g.reconcile(4.0, |_| None)), 1);
    }

    #[test]
    fn desired_is_clamped_to_the_bounds() {
        let mut g = GroupState::new("workers", 1, 4, 9, Duration::from_secs(30));
        assert_eq!(g.desired(), 4);
        assert_eq!(g.set_desired(0), 1);
    }
}
