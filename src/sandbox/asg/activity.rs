//! The activity log: like EC2 Auto Scaling's `DescribeScalingActivities`, each change of a
//! group's desired capacity (with the policy's cause) and each instance launched or
//! terminated by a group (with why: scaling, or the replacement of an instance that was
//! terminated, exited or stayed stopped).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

/// What an activity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivityKind {
    /// Desired capacity changed (`from` -> `to`).
    Scaling,
    /// An instance was launched.
    Launch,
    /// An instance was terminated by the group, or left it on its own.
    Terminate,
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ActivityKind::Scaling => "scaling",
            ActivityKind::Launch => "launch",
            ActivityKind::Terminate => "terminate",
        })
    }
}

/// One entry of the activity log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The group (`web` or `workers`).
    pub group: String,
    /// What happened.
    pub kind: ActivityKind,
    /// Desired capacity before (scaling only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// Desired capacity after (scaling only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// The instance launched or terminated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Why.
    pub cause: String,
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<7} {:<9}",
            self.time.format("%H:%M:%S%.3f"),
            self.group,
            self.kind
        )?;
        if let (Some(from), Some(to)) = (self.from, self.to) {
            write!(f, " {from} -> {to}")?;
        }
        if let Some(id) = &self.instance {
            write!(f, " {id}")?;
        }
        write!(f, ": {}", self.cause)
    }
}

/// Most activities kept; older ones are dropped.
pub const ACTIVITY_LOG_CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Entries {
    items: VecDeque<Activity>,
    next_seq: u64,
}

/// The groups' activity log. Cheap to clone; clones share the entries.
#[derive(Debug, Clone)]
pub struct ActivityLog {
    entries: Arc<Mutex<Entries>>,
    version: Arc<watch::Sender<u64>>,
}

impl Default for ActivityLog {
    fn default() -> Self {
        ActivityLog {
            entries: Arc::new(Mutex::new(Entries {
                items: VecDeque::new(),
                next_seq: 1,
            })),
            version: Arc::new(watch::channel(0).0),
        }
    }
}

/// What [`ActivityLog::record`] needs besides the time and sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    /// The group.
    pub group: String,
    /// What happened.
    pub kind: ActivityKind,
    /// Desired before and after (scaling).
    pub change: Option<(u32, u32)>,
    /// The instance.
    pub instance: Option<String>,
    /// Why.
    pub cause: String,
}

impl ActivityLog {
    /// Appends an activity stamped now and returns it.
    pub fn record(&self, new: NewActivity) -> Activity {
        let mut entries = self.entries.lock();
        let activity = Activity {
            seq: entries.next_seq,
            time: Utc::now(),
            group: new.group,
            kind: new.kind,
            from: new.change.map(|c| c.0),
            to: new.change.map(|c| c.1),
            instance: new.instance,
            cause: new.cause,
        };
        entries.next_seq += 1;
        if entries.items.len() == ACTIVITY_LOG_CAPACITY {
            entries.items.pop_front();
        }
        entries.items.push_back(activity.clone());
        let seq = activity.seq;
        drop(entries);
        self.version.send_replace(seq);
        activity
    }

    /// Activities with `seq > after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Activity> {
        self.entries
            .lock()
            .items
            .iter()
            .filter(|a| a.seq > after)
            .cloned()
            .collect()
    }

    /// The sequence number of the newest activity, changing on every record.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_are_numbered_and_read_after_a_seq() {
        let log = ActivityLog::default();
        let rx = log.subscribe();
        for to in 1..=3 {
            log.record(NewActivity {
                group: "workers".into(),
                kind: ActivityKind::Scaling,
                change: Some((to - 1, to)),
                instance: None,
                cause: "test".into(),
            });
        }
        assert_eq!(*rx.borrow(), 3);
        let later = log.since(1);
        assert_eq!(later.iter().map(|a| a.seq).collect::<Vec<_>>(), [2, 3]);
        let line = later[1].to_string();
        assert!(line.contains("workers scaling   2 -> 3: test"), "{line}");
        let json = serde_json::to_value(&later[0]).unwrap();
        assert_eq!(json["kind"], "scaling");
        assert!(json.get("instance").is_none());
    }
}
