//! `shakedown recover --from-tags`: undo what dead runs left applied on AWS, from the undo
//! tags on the resources themselves, for when the journal is gone with the local disk.
//!
//! Before a reversible AWS change is applied it records its undo on the resource
//! ([`crate::chaos::change::Undoable::tag`]): a queue's `shakedown:undo:<run-id>` tag holds a
//! [`QueueUndoTag`] (`{"DelaySeconds":"0"}`, `{"remove-policy-statement":"<sid>"}`), an
//! instance's holds `StartInstances (was running)`. This module finds every such tag
//! (ListQueues + ListQueueTags; DescribeInstances, filtered here by key prefix since the key
//! holds the run id), decodes it into the [`Change`]s it records and undoes, verifies and
//! untags each exactly as the runner does ([`Change::undo_verified`]), then removes the tag. A run is
//! skipped while its lock or journal in the results directory shows it alive; a run whose
//! journal is there is recovered from the journal (the fuller record: it has the exact
//! previous policy), and its leftover tags are then removed. Everything is idempotent: once
//! a tag is gone there is nothing left to do, and restoring a restored value changes nothing.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use aws_sdk_ec2::types::{Filter, Tag};

use super::{live_lock_holder, recover_run, remove_stale_lock};
use crate::aws::{
    AwsError, AwsTarget, describe_instances, list_queues, queue_attribute, queue_tags, untag_queue,
};
use crate::chaos::change::ec2::{Ec2Action, Ec2StateChange};
use crate::chaos::change::queue::QueueUndoTag;
use crate::chaos::change::{Change, UNDO_TAG_PREFIX, undo_tag_key};
use crate::chaos::fault::{Env, FaultError};
use crate::chaos::journal::{self, Event, JOURNAL_FILE};
use crate::chaos::local::pid_alive;

/// Queue attributes a tag may restore: the ones faults change. Anything else in a tag is
/// reported and left alone (a tag is not trusted to set arbitrary attributes).
pub const RESTORABLE_ATTRIBUTES: [&str; 1] = ["DelaySeconds"];

/// What an instance's undo tag value starts with.
const START_INSTANCES: &str = "StartInstances";

/// A resource carrying an undo tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tagged {
    /// An SQS queue, by URL.
    Queue(String),
    /// An EC2 instance, by id.
    Instance(String),
}

/// One `shakedown:undo:<run-id>` tag found on a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoTag {
    /// The run that wrote it (the key's suffix).
    pub run_id: String,
    /// Where it is.
    pub resource: Tagged,
    /// The recorded undo.
    pub value: String,
}

/// What recovering from tags did; every line names its run.
#[derive(Debug, Clone, Default)]
pub struct TagRecovery {
    /// Restored, verified, tag removed.
    pub undone: Vec<String>,
    /// Not restored (or not verified): may still be applied; the tag is kept.
    pub failed: Vec<String>,
    /// Runs left alone because they are still running.
    pub skipped: Vec<String>,
    /// Anything else worth saying.
    pub notes: Vec<String>,
}

/// Which services a target names: a target giving only an SQS (or only an EC2) endpoint
/// is not scanned on the other service, which would otherwise be AWS itself.
fn services(target: &AwsTarget) -> (bool, bool) {
    let all = target.endpoint_url.is_some();
    let ec2 = all || target.ec2_endpoint_url.is_some() || target.sqs_endpoint_url.is_none();
    let sqs = all || target.sqs_endpoint_url.is_some() || target.ec2_endpoint_url.is_none();
    (ec2, sqs)
}

/// Every undo tag on the target's queues and instances (of `run_id` only, if given).
/// Terminated instances are not listed: there is nothing to restore on them.
pub async fn find_undo_tags(
    env: &Env,
    target: &AwsTarget,
    run_id: Option<&str>,
) -> Result<Vec<UndoTag>, FaultError> {
    let c = env.clients(target).await?;
    let (ec2, sqs) = services(target);
    let wanted = |key: &str| {
        key.strip_prefix(UNDO_TAG_PREFIX)
            .filter(|run| run_id.is_none_or(|r| r == *run))
            .map(str::to_owned)
    };
    let mut found = Vec::new();
    if sqs {
        for url in list_queues(&c.sqs).await? {
            let tags = match queue_tags(&c.sqs, &url).await {
                Ok(tags) => tags,
                // Deleted since it was listed.
                Err(e) if e.code().is_some_and(|c| c.contains("NonExistentQueue")) => continue,
                Err(e) => return Err(e.into()),
            };
            for (key, value) in tags {
                if let Some(run_id) = wanted(&key) {
                    found.push(UndoTag {
                        run_id,
                        resource: Tagged::Queue(url.clone()),
                        value,
                    });
                }
            }
        }
    }
    if ec2 {
        let live_states = Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("stopping")
            .values("stopped")
            .build();
        for instance in describe_instances(&c.ec2, vec![live_states]).await? {
            for (key, value) in instance.tags {
                if let Some(run_id) = wanted(&key) {
                    found.push(UndoTag {
                        run_id,
                        resource: Tagged::Instance(instance.id.clone()),
                        value,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// A run id a run directory can have: one plain path component. (Tags are not trusted:
/// a run id must never lead outside the results directory.)
fn plain_run_id(run_id: &str) -> bool {
    let mut parts = Path::new(run_id).components();
    matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none()
}

/// The pid of the run if its lock or its journal under `results` shows it alive.
fn live_run(results: &Path, run_id: &str) -> Option<u32> {
    live_lock_holder(results, run_id).or_else(|| {
        let entries = journal::read(&results.join(run_id).join(JOURNAL_FILE)).ok()?;
        if entries
            .iter()
            .any(|e| matches!(e.event, Event::RunEnded { .. }))
        {
            return None;
        }
        entries
            .iter()
            .rev()
            .find_map(|e| match e.event {
                Event::RunStarted { pid, .. } => Some(pid),
                _ => None,
            })
            .filter(|&pid| pid_alive(pid))
    })
}

/// Finds every undo tag of the target (of `run_id` only, if given) and undoes what it
/// records, run by run. `results` is where live runs' locks and journals would be.
pub async fn recover_from_tags(
    env: &Env,
    target: &AwsTarget,
    results: &Path,
    run_id: Option<&str>,
) -> Result<TagRecovery, FaultError> {
    let mut by_run: BTreeMap<String, Vec<UndoTag>> = BTreeMap::new();
    for tag in find_undo_tags(env, target, run_id).await? {
        by_run.entry(tag.run_id.clone()).or_default().push(tag);
    }
    let mut report = TagRecovery::default();
    for (run, tags) in by_run {
        if !plain_run_id(&run) {
            report.failed.push(format!(
                "run {run:?}: not a run id shakedown writes; {} tag(s) left alone",
                tags.len()
            ));
            continue;
        }
        if let Some(pid) = live_run(results, &run) {
            report.skipped.push(format!(
                "run {run}: still running (pid {pid}); stop it (SIGTERM undoes its faults) instead"
            ));
            continue;
        }
        let dir = results.join(&run);
        if dir.join(JOURNAL_FILE).is_file() {
            recover_with_journal(env, target, &run, &dir, &tags, &mut report).await;
        } else {
            recover_run_from_tags(env, target, results, &run, tags, &mut report).await;
        }
    }
    Ok(report)
}

/// The run's journal is here: it is the fuller record, so recover from it; its leftover
/// tags (written before each change, so the journal knows all of them) are then removed.
async fn recover_with_journal(
    env: &Env,
    target: &AwsTarget,
    run: &str,
    dir: &Path,
    tags: &[UndoTag],
    report: &mut TagRecovery,
) {
    let r = match recover_run(dir, env).await {
        Ok(r) => r,
        Err(e) => {
            report.failed.push(format!("run {run}: {e}"));
            return;
        }
    };
    report.notes.push(format!(
        "run {run}: recovered from its journal {}",
        dir.join(JOURNAL_FILE).display()
    ));
    let line = |s: &String| format!("run {run}: {s}");
    report.undone.extend(r.undone.iter().map(line));
    report.failed.extend(r.failed.iter().map(line));
    report.notes.extend(r.notes.iter().map(line));
    if r.failed.is_empty()
        && let Err(e) = remove_tags(env, target, run, tags).await
    {
        report
            .notes
            .push(format!("run {run}: leftover undo tags not removed: {e}"));
    }
}

async fn remove_tags(
    env: &Env,
    target: &AwsTarget,
    run: &str,
    tags: &[UndoTag],
) -> Result<(), FaultError> {
    let c = env.clients(target).await?;
    let key = undo_tag_key(run);
    let mut instances = Vec::new();
    for t in tags {
        match &t.resource {
            Tagged::Queue(url) => untag_queue(&c.sqs, url, &key).await?,
            Tagged::Instance(id) => instances.push(id.clone()),
        }
    }
    if !instances.is_empty() {
        c.ec2
            .delete_tags()
            .set_resources(Some(instances))
            .tags(Tag::builder().key(key).build())
            .send()
            .await
            .map_err(|e| AwsError::call("ec2:DeleteTags", e))?;
    }
    Ok(())
}

async fn recover_run_from_tags(
    env: &Env,
    target: &AwsTarget,
    results: &Path,
    run: &str,
    tags: Vec<UndoTag>,
    report: &mut TagRecovery,
) {
    let failures = report.failed.len();
    let mut stopped = Vec::new();
    for t in tags {
        match t.resource {
            Tagged::Queue(url) => match restore_queue(env, target, run, &url, &t.value).await {
                Ok((summary, notes)) => {
                    report.undone.push(format!("run {run}: {summary}"));
                    report
                        .notes
                        .extend(notes.into_iter().map(|n| format!("run {run}: {n}")));
                }
                Err(e) => report.failed.push(format!("run {run}: {url}: {e}")),
            },
            Tagged::Instance(id) if t.value.starts_with(START_INSTANCES) => stopped.push(id),
            Tagged::Instance(id) => report.failed.push(format!(
                "run {run}: instance {id}: unknown undo {:?}; tag left alone",
                t.value
            )),
        }
    }
    if !stopped.is_empty() {
        // One change for all: a single StartInstances, one wait.
        let ids = stopped.join(", ");
        let change = Change::Ec2State(Ec2StateChange {
            target: target.clone(),
            instances: stopped,
            action: Ec2Action::Stop,
        });
        match change.undo_verified(env, run).await {
            Ok(notes) => {
                report
                    .undone
                    .push(format!("run {run}: StartInstances {ids}"));
                report
                    .notes
                    .extend(notes.into_iter().map(|n| format!("run {run}: {n}")));
            }
            Err(e) => report.failed.push(format!(
                "run {run}: instances {ids} may still be stopped: {e}"
            )),
        }
    }
    if report.failed.len() == failures
        && let Some(note) = remove_stale_lock(results, run)
    {
        report.notes.push(format!("run {run}: {note}"));
    }
}

/// Decodes a queue's undo tag into the changes it records ([`QueueUndoTag::changes`]),
/// undoes and verifies each as the runner would, and removes the tag. Returns a summary and
/// notes; the error keeps the tag (the queue may still be changed).
async fn restore_queue(
    env: &Env,
    target: &AwsTarget,
    run: &str,
    url: &str,
    value: &str,
) -> Result<(String, Vec<String>), FaultError> {
    let key = undo_tag_key(run);
    let record = QueueUndoTag::parse(value).map_err(|e| {
        FaultError::Invalid(format!("tag {key} is not an undo record ({e}); left alone"))
    })?;
    if let Some(other) = record
        .attributes
        .keys()
        .find(|a| !RESTORABLE_ATTRIBUTES.contains(&a.as_str()))
    {
        return Err(FaultError::Invalid(format!(
            "tag {key} asks to restore {other}, which no fault changes; left alone"
        )));
    }
    let c = env.clients(target).await?;
    let mut now = BTreeMap::new();
    for attribute in record.attributes.keys() {
        if let Some(v) = queue_attribute(&c.sqs, url, attribute).await? {
            now.insert(attribute.clone(), v);
        }
    }
    let sids = &record.remove_statements;
    let policy = match sids.is_empty() {
        true => None,
        false => queue_attribute(&c.sqs, url, "Policy").await?,
    };
    let mut notes = Vec::new();
    for change in record.changes(target, url, &now, policy.as_deref())? {
        notes.extend(change.undo_verified(env, run).await?);
    }
    // Each undone change took its entry out; what is left had nothing to undo.
    if let Err(e) = untag_queue(&c.sqs, url, &key).await {
        notes.push(format!("{url}: undo tag not removed: {e}"));
    }
    let mut done: Vec<String> = record
        .attributes
        .iter()
        .map(|(a, v)| format!("{a}={v}"))
        .collect();
    if !sids.is_empty() {
        done.push(format!("policy statement {} removed", sids.join(", ")));
    }
    Ok((format!("{url}: {}", done.join(", ")), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_from_tags_stay_inside_the_results_directory() {
        assert!(plain_run_id("2024-05-01T10-00-00-demo"));
        for bad in ["", ".", "..", "../x", "a/b", "/abs"] {
            assert!(!plain_run_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_target_naming_one_service_is_not_scanned_on_the_other() {
        let only_sqs = AwsTarget {
            sqs_endpoint_url: Some("http://127.0.0.1:1".into()),
            ..AwsTarget::default()
        };
        assert_eq!(services(&only_sqs), (false, true));
        assert_eq!(
            services(&AwsTarget::local("http://127.0.0.1:1")),
            (true, true)
        );
        assert_eq!(services(&AwsTarget::default()), (true, true));
    }
}
