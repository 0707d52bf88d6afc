//! The pure instance registry: ids, the EC2 state machine, tags, filters, pagination and a
//! bounded change log. No IO, no clock, no tokio: every operation that depends on time takes
//! `now`, and randomness comes from a seeded generator owned by the fleet.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod query;
mod types;

use query::*;
pub use types::*;

fn user_initiated(now: DateTime<Utc>) -> String {
    format!("User initiated ({})", now.format("%Y-%m-%d %H:%M:%S GMT"))
}

/// The instance registry.
#[derive(Debug)]
pub struct Fleet {
    instances: HashMap<InstanceId, Instance>,
    next_seq: u64,
    rng: StdRng,
    retention: chrono::Duration,
    log: VecDeque<Transition>,
    log_capacity: usize,
    next_log_seq: u64,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new(rand::random())
    }
}

impl Fleet {
    /// An empty registry whose ids derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Fleet {
            instances: HashMap::new(),
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            retention: to_chrono(DEFAULT_TERMINATED_RETENTION),
            log: VecDeque::new(),
            log_capacity: DEFAULT_CHANGE_LOG_CAPACITY,
            next_log_seq: 1,
        }
    }

    /// Sets how long terminated instances stay visible (builder style).
    pub fn with_terminated_retention(mut self, retention: Duration) -> Self {
        self.retention = to_chrono(retention);
        self
    }

    /// Sets the change log capacity (builder style; at least 1).
    pub fn with_change_log_capacity(mut self, capacity: usize) -> Self {
        self.log_capacity = capacity.max(1);
        self
    }

    /// Number of instances currently known (terminated ones included until forgotten).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether no instance is known.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The instance with this id, if known.
    pub fn get(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }

    /// Sequence number of the newest transition (0 when none yet).
    pub fn version(&self) -> u64 {
        self.next_log_seq - 1
    }

    /// Registers a new instance in `pending`; the launcher calls this when it spawns a process.
    pub fn register(&mut self, spec: LaunchSpec, now: DateTime<Utc>) -> InstanceId {
        self.purge(now);
        let id = self.fresh_id();
        let reservation_id = format!("r-{:017x}", self.rng.random::<u128>() & ((1 << 68) - 1));
        self.next_seq += 1;
        let instance = Instance {
            id: id.clone(),
            reservation_id,
            image_id: spec.image_id,
            instance_type: spec.instance_type,
            availability_zone: spec.availability_zone,
            private_ip: spec.private_ip,
            launch_time: now,
            state: InstanceState::Pending,
            state_since: now,
            transition_reason: String::new(),
            state_reason: None,
            tags: spec.tags,
            seq: self.next_seq,
        };
        self.instances.insert(id.clone(), instance);
        self.record(&id, None, InstanceState::Pending, now, None);
        id
    }

    fn fresh_id(&mut self) -> InstanceId {
        loop {
            let id = InstanceId::from_bits(self.rng.random());
            if !self.instances.contains_key(&id) {
                return id;
            }
        }
    }

    /// The launcher reports the instance ready: `pending -> running` (idempotent on `running`).
    pub fn mark_running(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
    ) -> Result<StateChange, FleetError> {
        self.purge(now);
        let state = self.existing(id)?.state;
        match state {
            InstanceState::Pending => Ok(self.set_state(id, InstanceState::Running, now, None)),
            InstanceState::Running => Ok(unchanged(id, state)),
            _ => Err(FleetError::IncorrectState {
                id: id.clone(),
                state,
                action: Action::MarkRunning,
            }),
        }
    }

    /// The launcher reports the process gone on its own: any state `-> terminated`.
    pub fn mark_exited(
        &mut self,
        id: &InstanceId,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<StateChange, FleetError> {
        self.purge(now);
        let state = self.existing(id)?.state;
        if state == InstanceState::Terminated {
            return Ok(unchanged(id, state));
        }
        let reason = StateReason::new("Client.InstanceInitiatedShutdown", message);
        let change = self.set_state(id, InstanceState::Terminated, now, Some(reason));
        self.set_transition_reason(id, format!("Instance exited: {message}"));
        Ok(change)
    }

    /// First half of TerminateInstances: every listed instance that is not already going away
    /// moves to `shutting-down`. All ids are checked before anything changes.
    pub fn begin_terminate(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        let reason = StateReason::new("Client.UserInitiatedShutdown", "User initiated shutdown");
        Ok(unique(ids)
            .map(|id| {
                let state = self.instances[id].state;
                match state {
                    InstanceState::ShuttingDown | InstanceState::Terminated => unchanged(id, state),
                    _ => self.user_transition(id, InstanceState::ShuttingDown, &reason, now),
                }
            })
            .collect())
    }

    /// First half of StopInstances: `running -> stopping`; `stopping`/`stopped` stay.
    /// Fails whole if any instance is pending, shutting down or terminated.
    pub fn begin_stop(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        use InstanceState::*;
        self.begin_user_action(ids, now, Action::Stop, &[Running, Stopping, Stopped], |s| {
            (s == Running).then_some(Stopping)
        })
    }

    /// First half of StartInstances: `stopped -> pending`; `pending`/`running` stay.
    /// Fails whole if any instance is stopping, shutting down or terminated.
    pub fn begin_start(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, FleetError> {
        use InstanceState::*;
        self.begin_user_action(ids, now, Action::Start, &[Stopped, Pending, Running], |s| {
            (s == Stopped).then_some(Pending)
        })
    }

    fn begin_user_action(
        &mut self,
        ids: &[InstanceId],
        now: DateTime<Utc>,
        action: Action,
        allowed: &[InstanceState],
        next: impl Fn(InstanceState) -> Option<InstanceState>,
    ) -> Result<Vec<StateChange>, FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        if let Some(bad) = ids
            .iter()
            .find(|id| !allowed.contains(&self.instances[*id].state))
        {
            return Err(FleetError::IncorrectState {
                id: bad.clone(),
                state: self.instances[bad].state,
                action,
            });
        }
        let reason = match action {
            Action::Stop => Some(StateReason::new(
                "Client.UserInitiatedShutdown",
                "User initiated shutdown",
            )),
            _ => None,
        };
        Ok(unique(ids)
            .map(|id| {
                let state = self.instances[id].state;
                match (next(state), &reason) {
                    (Some(to), Some(r)) => self.user_transition(id, to, r, now),
                    (Some(to), None) => self.set_state(id, to, now, None),
                    (None, _) => unchanged(id, state),
                }
            })
            .collect())
    }

    /// Second half of a transition, once the driver acted: moves the instance from the
    /// intermediate state `from` to `to`. Returns `None` (and changes nothing) if the instance
    /// is gone or has meanwhile left `from` (e.g. it exited on its own).
    pub fn complete(
        &mut self,
        id: &InstanceId,
        from: InstanceState,
        to: InstanceState,
        now: DateTime<Utc>,
    ) -> Option<StateChange> {
        let state = self.instances.get(id)?.state;
        (state == from).then(|| {
            let reason = self.instances[id].state_reason.clone();
            self.set_state(id, to, now, reason)
        })
    }

    /// Undoes the first half of a transition whose driver call failed: back from `from` to
    /// `to`, recording `message` as the state reason. Same `None` rule as [`Fleet::complete`].
    pub fn abort(
        &mut self,
        id: &InstanceId,
        from: InstanceState,
        to: InstanceState,
        message: &str,
        now: DateTime<Utc>,
    ) -> Option<StateChange> {
        let state = self.instances.get(id)?.state;
        (state == from).then(|| {
            let reason = StateReason::new("Server.InternalError", message);
            let change = self.set_state(id, to, now, Some(reason.clone()));
            // Kept even when rolled back to `running`, so the failure stays visible.
            self.instances
                .get_mut(id)
                .expect("checked above")
                .state_reason = Some(reason);
            change
        })
    }

    /// CreateTags: adds or overwrites tags on every listed instance (all must exist).
    pub fn create_tags(
        &mut self,
        ids: &[InstanceId],
        tags: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        check_tags(tags)?;
        for id in ids {
            let current = &self.instances[id].tags;
            let added = tags.iter().filter(|(k, _)| !current.contains_key(k));
            let new_keys: std::collections::BTreeSet<&String> = added.map(|(k, _)| k).collect();
            if current.len() + new_keys.len() > MAX_TAGS_PER_RESOURCE {
                return Err(FleetError::TagLimitExceeded(id.clone()));
            }
        }
        for id in ids {
            let instance = self.instances.get_mut(id).expect("checked above");
            for (k, v) in tags {
                instance.tags.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    /// DeleteTags: removes the selected tags; with no selectors, every non-`aws:` tag.
    pub fn delete_tags(
        &mut self,
        ids: &[InstanceId],
        selectors: &[TagSelector],
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        self.purge(now);
        self.check_all_exist(ids)?;
        if let Some(s) = selectors.iter().find(|s| s.key.starts_with("aws:")) {
            return Err(reserved_key(&s.key));
        }
        for id in ids {
            let tags = &mut self.instances.get_mut(id).expect("checked above").tags;
            if selectors.is_empty() {
                tags.retain(|k, _| k.starts_with("aws:"));
            }
            for s in selectors {
                let matches = match &s.value {
                    None => true,
                    Some(v) => tags.get(&s.key) == Some(v),
                };
                if matches {
                    tags.remove(&s.key);
                }
            }
        }
        Ok(())
    }

    /// DescribeInstances: instances matching ids and filters, in registration order, paged.
    pub fn describe(
        &mut self,
        query: &DescribeQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<Instance>, FleetError> {
        self.purge(now);
        if !query.ids.is_empty() && query.max_results.is_some() {
            return Err(FleetError::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults"
                    .to_string(),
            ));
        }
        validate_page_size(query.max_results)?;
        self.check_all_exist(&query.ids)?;
        let filters = query
            .filters
            .iter()
            .map(InstanceFilter::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let after = query
            .next_token
            .as_deref()
            .map(parse_instance_token)
            .transpose()?;
        let mut matching: Vec<Instance> = self
            .instances
            .values()
            .filter(|i| query.ids.is_empty() || query.ids.contains(&i.id))
            .filter(|i| after.is_none_or(|a| i.seq > a))
            .filter(|i| filters.iter().all(|f| f.matches(i)))
            .cloned()
            .collect();
        matching.sort_by_key(|i| i.seq);
        Ok(paginate(matching, query.max_results, |i| {
            instance_token(i.seq)
        }))
    }

    /// DescribeTags: tags matching the filters, ordered by instance then key, paged.
    pub fn describe_tags(
        &mut self,
        filters: &[Filter],
        max_results: Option<usize>,
        next_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Page<TagDescription>, FleetError> {
        self.purge(now);
        validate_page_size(max_results)?;
        let filters = filters
            .iter()
            .map(TagFilter::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let after = next_token.map(parse_tag_token).transpose()?;
        let mut instances: Vec<&Instance> = self.instances.values().collect();
        instances.sort_by_key(|i| i.seq);
        let mut out = Vec::new();
        for i in instances {
            for (key, value) in &i.tags {
                let past = after
                    .as_ref()
                    .is_none_or(|(s, k)| (i.seq, key.as_str()) > (*s, k.as_str()));
                let tag = TagDescription {
                    resource_id: i.id.clone(),
                    resource_type: "instance",
                    key: key.clone(),
                    value: value.clone(),
                };
                if past && filters.iter().all(|f| f.matches(&tag)) {
                    out.push((i.seq, tag));
                }
            }
        }
        let page = paginate(out, max_results, |(seq, t)| tag_token(*seq, &t.key));
        Ok(Page {
            items: page.items.into_iter().map(|(_, t)| t).collect(),
            next_token: page.next_token,
        })
    }

    /// Transitions after `cursor` (0 for all that are still logged).
    pub fn changes_since(&self, cursor: u64) -> Changes {
        let oldest = self.log.front().map_or(self.next_log_seq, |t| t.seq);
        let missed = oldest.saturating_sub(cursor + 1);
        let transitions: Vec<Transition> = self
            .log
            .iter()
            .filter(|t| t.seq > cursor)
            .cloned()
            .collect();
        Changes {
            transitions,
            missed,
            cursor: self.version().max(cursor),
        }
    }

    /// Forgets instances terminated longer than the retention period ago.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        let retention = self.retention;
        self.instances
            .retain(|_, i| i.state != InstanceState::Terminated || now - i.state_since < retention);
    }

    fn existing(&self, id: &InstanceId) -> Result<&Instance, FleetError> {
        self.instances
            .get(id)
            .ok_or_else(|| FleetError::NotFound(vec![id.clone()]))
    }

    fn check_all_exist(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        let missing: Vec<InstanceId> = unique(ids)
            .filter(|id| !self.instances.contains_key(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FleetError::NotFound(missing))
        }
    }

    fn user_transition(
        &mut self,
        id: &InstanceId,
        to: InstanceState,
        reason: &StateReason,
        now: DateTime<Utc>,
    ) -> StateChange {
        let change = self.set_state(id, to, now, Some(reason.clone()));
        self.set_transition_reason(id, user_initiated(now));
        change
    }

    fn set_transition_reason(&mut self, id: &InstanceId, text: String) {
        if let Some(i) = self.instances.get_mut(id) {
            i.transition_reason = text;
        }
    }

    fn set_state(
        &mut self,
        id: &InstanceId,
        to: InstanceState,
        now: DateTime<Utc>,
        reason: Option<StateReason>,
    ) -> StateChange {
        let instance = self
            .instances
            .get_mut(id)
            .expect("caller checked existence");
        let previous = instance.state;
        instance.state = to;
        instance.state_since = now;
        if to == InstanceState::Running {
            instance.transition_reason.clear();
        }
        instance.state_reason = if to == InstanceState::Running {
            None
        } else {
            reason
        };
        let message = instance.state_reason.as_ref().map(|r| r.message.clone());
        self.record(id, Some(previous), to, now, message);
        StateChange {
            id: id.clone(),
            previous,
            current: to,
        }
    }

    fn record(
        &mut self,
        id: &InstanceId,
        from: Option<InstanceState>,
        to: InstanceState,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) {
        let seq = self.next_log_seq;
        self.next_log_seq += 1;
        self.log.push_back(Transition {
            seq,
            id: id.clone(),
            from,
            to,
            at,
            reason,
        });
        while self.log.len() > self.log_capacity {
            self.log.pop_front();
        }
    }
}

fn unchanged(id: &InstanceId, state: InstanceState) -> StateChange {
    StateChange {
        id: id.clone(),
        previous: state,
        current: state,
    }
}

/// The ids in order, each once.
fn unique(ids: &[InstanceId]) -> impl Iterator<Item = &InstanceId> {
    ids.iter()
        .enumerate()
        .filter(|(n, id)| !ids[..*n].contains(id))
        .map(|(_, id)| id)
}

fn reserved_key(key: &str) -> FleetError {
    FleetError::InvalidParameterValue(format!(
        "Value ( {key} ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use"
    ))
}

/// Validates user-supplied tags (CreateTags): no `aws:` prefix, EC2's length limits.
fn check_tags(tags: &[(String, String)]) -> Result<(), FleetError> {
    for (key, value) in tags {
        if key.starts_with("aws:") {
            return Err(reserved_key(key));
        }
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_LEN {
            return Err(FleetError::InvalidParameterValue(format!(
                "Tag key must be 1 to {MAX_TAG_KEY_LEN} characters: '{key}'"
            )));
        }
        if value.chars().count() > MAX_TAG_VALUE_LEN {
            return Err(FleetError::InvalidParameterValue(format!(
                "Tag value for key '{key}' exceeds {MAX_TAG_VALUE_LEN} characters"
            )));
        }
    }
    Ok(())
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests;
