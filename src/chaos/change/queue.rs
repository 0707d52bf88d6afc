//! SQS queue changes: one attribute (DelaySeconds) set and restored, and a Deny statement
//! added to the queue policy and removed by restoring the exact previous policy. Both record
//! their undo in the queue's [`QueueUndoTag`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Undoable, undo_tag_key};
use crate::aws::{
    AwsTarget, queue_attribute, queue_tags, set_queue_attribute, tag_queue, untag_queue,
};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// The IAM actions of a queue attribute change (DelaySeconds, Policy): resolving the queue,
/// reading the value to restore, setting and restoring it, and its recovery tag.
pub const QUEUE_CHANGE_ACTIONS: &[&str] = &[
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes",
    "sqs:ListQueueTags",
    "sqs:TagQueue",
    "sqs:UntagQueue",
];

/// One queue attribute set to `value`; undo sets `previous` back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueAttributeChange {
    /// Where the queue lives (no secrets).
    pub target: AwsTarget,
    /// The queue URL.
    pub queue_url: String,
    /// The attribute (`DelaySeconds`).
    pub attribute: String,
    /// Its value before the change, read just before it.
    pub previous: String,
    /// The value set.
    pub value: String,
}

impl Undoable for QueueAttributeChange {
    fn summary(&self) -> String {
        format!(
            "SetQueueAttributes {} {}={} (was {}); undo: {}={}",
            self.queue_url,
            self.attribute,
            self.value,
            self.previous,
            self.attribute,
            self.previous
        )
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            set_queue_attribute(&c.sqs, &self.queue_url, &self.attribute, &self.value).await?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            set_queue_attribute(&c.sqs, &self.queue_url, &self.attribute, &self.previous).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            let now = queue_attribute(&c.sqs, &self.queue_url, &self.attribute).await?;
            if now.as_deref() == Some(self.previous.as_str()) {
                Ok(())
            } else {
                Err(FaultError::NotVerified(format!(
                    "{} of {} reads {:?}, expected {:?}",
                    self.attribute, self.queue_url, now, self.previous
                )))
            }
        })
    }

    fn tag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        let (target, url) = (&self.target, &self.queue_url);
        Box::pin(update_undo_tag(env, target, url, run_id, |t| {
            t.hold(&self.attribute, &self.previous)
        }))
    }

    fn untag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        let (target, url) = (&self.target, &self.queue_url);
        Box::pin(update_undo_tag(env, target, url, run_id, |t| {
            t.release(&self.attribute, &self.previous)
        }))
    }
}

/// A `Deny sqs:ReceiveMessage` statement for `principal`, added to the queue policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueuePolicyChange {
    /// Where the queue lives (no secrets).
    pub target: AwsTarget,
    /// The queue URL.
    pub queue_url: String,
    /// The queue ARN (the statement's resource).
    pub queue_arn: String,
    /// The consumers' principal (an IAM role or user ARN, or an account id).
    pub principal: String,
    /// The statement's Sid (`shakedown-<run-id>-<n>`).
    pub sid: String,
    /// The exact policy string before the change; `None` when the queue had none.
    pub previous: Option<String>,
}

impl QueuePolicyChange {
    /// The policy with the Deny statement added to `previous`.
    pub fn denying_policy(&self) -> Result<String, FaultError> {
        let mut policy: Value = match &self.previous {
            Some(p) if !p.is_empty() => serde_json::from_str(p).map_err(|e| {
                FaultError::Invalid(format!("current queue policy is not JSON: {e}"))
            })?,
            _ => json!({ "Version": "2012-10-17", "Statement": [] }),
        };
        let statement = json!({
            "Sid": self.sid,
            "Effect": "Deny",
            "Principal": { "AWS": self.principal },
            "Action": "sqs:ReceiveMessage",
            "Resource": self.queue_arn,
        });
        let statements = policy
            .as_object_mut()
            .ok_or_else(|| FaultError::Invalid("queue policy is not a JSON object".into()))?
            .entry("Statement")
            .or_insert_with(|| json!([]));
        match statements {
            Value::Array(list) => list.push(statement),
            single => *single = json!([single.take(), statement]),
        }
        Ok(policy.to_string())
    }
}

fn same_policy(now: Option<&str>, before: Option<&str>) -> bool {
    let norm = |p: Option<&str>| p.filter(|s| !s.is_empty()).map(str::to_owned);
    let (now, before) = (norm(now), norm(before));
    match (&now, &before) {
        (Some(a), Some(b)) if a != b => {
            // Some endpoints re-serialize the JSON: compare the documents.
            serde_json::from_str::<Value>(a).ok() == serde_json::from_str::<Value>(b).ok()
                && serde_json::from_str::<Value>(a).is_ok()
        }
        _ => now == before,
    }
}

impl Undoable for QueuePolicyChange {
    fn summary(&self) -> String {
        let undo = match &self.previous {
            Some(_) => "restore the previous policy string".to_owned(),
            None => "remove the policy (there was none)".to_owned(),
        };
        format!(
            "Deny sqs:ReceiveMessage to {} on {} (policy statement {}); undo: {undo}",
            self.principal, self.queue_url, self.sid
        )
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let policy = self.denying_policy()?;
            let c = env.clients(&self.target).await?;
            set_queue_attribute(&c.sqs, &self.queue_url, "Policy", &policy).await?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            // An empty Policy removes the attribute.
            let value = self.previous.as_deref().unwrap_or("");
            set_queue_attribute(&c.sqs, &self.queue_url, "Policy", value).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            let now = queue_attribute(&c.sqs, &self.queue_url, "Policy").await?;
            if same_policy(now.as_deref(), self.previous.as_deref()) {
                Ok(())
            } else {
                Err(FaultError::NotVerified(format!(
                    "policy of {} reads {:?}, expected {:?}",
                    self.queue_url, now, self.previous
                )))
            }
        })
    }

    fn tag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        // Tag values are short (256 chars): record the statement to remove, not the policy.
        let (target, url) = (&self.target, &self.queue_url);
        Box::pin(update_undo_tag(env, target, url, run_id, |t| {
            t.add_statement(&self.sid)
        }))
    }

    fn untag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        let (target, url) = (&self.target, &self.queue_url);
        Box::pin(update_undo_tag(env, target, url, run_id, |t| {
            t.drop_statement(&self.sid)
        }))
    }
}

/// The policy without the statements whose `Sid` is in `sids`: `None` when none of them is
/// there (nothing to change); `Some("")` when nothing but an empty statement list would be
/// left (the policy is then removed, as the Deny statement's undo does when there was none).
/// The remaining policy equals the original as a JSON document, not necessarily byte for byte.
pub fn without_statements(policy: &str, sids: &[String]) -> Result<Option<String>, FaultError> {
    if policy.trim().is_empty() {
        return Ok(None);
    }
    let mut doc: Value = serde_json::from_str(policy)
        .map_err(|e| FaultError::Invalid(format!("queue policy is not JSON: {e}")))?;
    let ours = |st: &Value| {
        st.get("Sid")
            .and_then(Value::as_str)
            .is_some_and(|sid| sids.iter().any(|s| s == sid))
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err(FaultError::Invalid(
            "queue policy is not a JSON object".into(),
        ));
    };
    let removed = match obj.get_mut("Statement") {
        Some(Value::Array(list)) => {
            let before = list.len();
            list.retain(|st| !ours(st));
            before - list.len()
        }
        Some(single) if ours(single) => {
            *single = json!([]);
            1
        }
        _ => 0,
    };
    if removed == 0 {
        return Ok(None);
    }
    let empty = obj
        .get("Statement")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && obj
            .keys()
            .all(|k| matches!(k.as_str(), "Version" | "Id" | "Statement"));
    Ok(Some(if empty {
        String::new()
    } else {
        doc.to_string()
    }))
}

/// What a queue's `shakedown:undo:<run-id>` tag holds: a JSON object with the attribute
/// values to restore (`{"DelaySeconds":"0"}`) and the Sids of the Deny statements to remove
/// (`"remove-policy-statement": "<sid>"`, a list when there are several). The changes of one
/// run on one queue share the tag: each adds its entry before it is applied and takes it out
/// after its verified undo; the tag is removed when it is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueUndoTag {
    /// Attribute -> value to restore (the value before the run's first change of it).
    pub attributes: BTreeMap<String, String>,
    /// Sids of policy statements to remove.
    pub remove_statements: Vec<String>,
}

const REMOVE_STATEMENT: &str = "remove-policy-statement";

impl QueueUndoTag {
    /// Parses a tag value.
    pub fn parse(value: &str) -> Result<QueueUndoTag, String> {
        let map = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => return Err(format!("not JSON: {e}")),
        };
        let mut tag = QueueUndoTag::default();
        for (key, v) in map {
            match (key.as_str(), v) {
                (REMOVE_STATEMENT, Value::String(sid)) => tag.remove_statements.push(sid),
                (REMOVE_STATEMENT, Value::Array(list)) => {
                    for sid in list {
                        match sid {
                            Value::String(sid) => tag.remove_statements.push(sid),
                            other => return Err(format!("`{REMOVE_STATEMENT}` holds {other}")),
                        }
                    }
                }
                (_, Value::String(value)) => {
                    tag.attributes.insert(key, value);
                }
                (_, other) => return Err(format!("`{key}` is not a string: {other}")),
            }
        }
        Ok(tag)
    }

    /// The tag value.
    pub fn render(&self) -> String {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.attributes {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        match self.remove_statements.as_slice() {
            [] => {}
            [one] => {
                map.insert(REMOVE_STATEMENT.into(), json!(one));
            }
            many => {
                map.insert(REMOVE_STATEMENT.into(), json!(many));
            }
        }
        Value::Object(map).to_string()
    }

    /// Records `previous` as the value to restore `attribute` to, unless an earlier change
    /// of the run holds it already (its value is the one from before the run).
    pub fn hold(&mut self, attribute: &str, previous: &str) {
        self.attributes
            .entry(attribute.to_owned())
            .or_insert_with(|| previous.to_owned());
    }

    /// Forgets `attribute` after the undo that restored it to `previous` (kept when it
    /// holds an earlier change's value: that change is not undone yet).
    pub fn release(&mut self, attribute: &str, previous: &str) {
        if self.attributes.get(attribute).map(String::as_str) == Some(previous) {
            self.attributes.remove(attribute);
        }
    }

    /// Records a statement to remove.
    pub fn add_statement(&mut self, sid: &str) {
        if !self.remove_statements.iter().any(|s| s == sid) {
            self.remove_statements.push(sid.to_owned());
        }
    }

    /// Forgets a statement after its removal.
    pub fn drop_statement(&mut self, sid: &str) {
        self.remove_statements.retain(|s| s != sid);
    }

    /// Whether it records nothing.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.remove_statements.is_empty()
    }
}

impl QueueUndoTag {
    /// Decodes the tag into the changes it records, in the order to undo them, given the
    /// queue as it is now: `now` holds the current value of each recorded attribute (the
    /// value the run set), `policy` the current policy. Each attribute becomes the
    /// [`QueueAttributeChange`] back to its recorded value; each statement still in the
    /// policy becomes the [`QueuePolicyChange`] that added it (principal and resource read
    /// from the statement), newest first, whose previous policy is the current one without it
    /// and the statements undone before it. A statement already gone has nothing to undo.
    pub fn changes(
        &self,
        target: &AwsTarget,
        queue_url: &str,
        now: &BTreeMap<String, String>,
        policy: Option<&str>,
    ) -> Result<Vec<super::Change>, FaultError> {
        let mut changes: Vec<super::Change> = self
            .attributes
            .iter()
            .map(|(attribute, previous)| {
                super::Change::QueueAttribute(QueueAttributeChange {
                    target: target.clone(),
                    queue_url: queue_url.to_owned(),
                    attribute: attribute.clone(),
                    previous: previous.clone(),
                    value: now.get(attribute).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let mut current = policy.unwrap_or("").to_owned();
        for sid in self.remove_statements.iter().rev() {
            let Some(statement) = statement(&current, sid)? else {
                continue;
            };
            let Some(rest) = without_statements(&current, std::slice::from_ref(sid))? else {
                continue;
            };
            let principal = match &statement["Principal"] {
                Value::Object(p) => p.get("AWS").and_then(Value::as_str),
                p => p.as_str(),
            };
            changes.push(super::Change::QueuePolicy(QueuePolicyChange {
                target: target.clone(),
                queue_url: queue_url.to_owned(),
                queue_arn: statement["Resource"].as_str().unwrap_or("").to_owned(),
                principal: principal.unwrap_or("").to_owned(),
                sid: sid.clone(),
                previous: (!rest.is_empty()).then(|| rest.clone()),
            }));
            current = rest;
        }
        Ok(changes)
    }
}

/// The statement of `policy` whose `Sid` is `sid`, if it is there.
fn statement(policy: &str, sid: &str) -> Result<Option<Value>, FaultError> {
    if policy.trim().is_empty() {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(policy)
        .map_err(|e| FaultError::Invalid(format!("queue policy is not JSON: {e}")))?;
    let is_it = |st: &&Value| st.get("Sid").and_then(Value::as_str) == Some(sid);
    Ok(match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().find(is_it).cloned(),
        Some(single) => Some(single).filter(is_it).cloned(),
        None => None,
    })
}

/// Reads the run's undo tag of the queue, lets `edit` change it, and writes it back
/// (removing it when it is empty). Changes of one run are applied and undone one at a time,
/// so this read-modify-write does not race with itself.
async fn update_undo_tag(
    env: &Env,
    target: &AwsTarget,
    url: &str,
    run_id: &str,
    edit: impl FnOnce(&mut QueueUndoTag),
) -> Result<(), FaultError> {
    let c = env.clients(target).await?;
    let key = undo_tag_key(run_id);
    let mut tag = match queue_tags(&c.sqs, url).await?.get(&key) {
        Some(value) => QueueUndoTag::parse(value).map_err(|e| {
            FaultError::Invalid(format!("tag {key} of {url} is not an undo record: {e}"))
        })?,
        None => QueueUndoTag::default(),
    };
    edit(&mut tag);
    if tag.is_empty() {
        untag_queue(&c.sqs, url, &key).await?;
    } else {
        tag_queue(&c.sqs, url, &key, &tag.render()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(previous: Option<&str>) -> QueuePolicyChange {
        QueuePolicyChange {
            target: AwsTarget::default(),
            queue_url: "http://q".into(),
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:q".into(),
            principal: "arn:aws:iam::123456789012:role/worker".into(),
            sid: "shakedown-r1-0".into(),
            previous: previous.map(str::to_owned),
        }
    }

    #[test]
    fn deny_statement_is_appended_to_the_existing_policy() {
        let prev = r#"{"Version":"2012-10-17","Statement":[{"Sid":"keep","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}]}"#;
        let p: Value = serde_json::from_str(&change(Some(prev)).denying_policy().unwrap()).unwrap();
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0]["Sid"], "keep");
        assert_eq!(st[1]["Effect"], "Deny");
        assert_eq!(st[1]["Action"], "sqs:ReceiveMessage");
        let p: Value = serde_json::from_str(&change(None).denying_policy().unwrap()).unwrap();
        assert_eq!(p["Statement"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn statements_are_removed_by_sid_and_an_emptied_policy_goes() {
        let deny = change(None).denying_policy().unwrap();
        let sid = vec!["shakedown-r1-0".to_owned()];
        assert_eq!(
            without_statements(&deny, &sid).unwrap().as_deref(),
            Some("")
        );
        let prev = r#"{"Version":"2012-10-17","Statement":[{"Sid":"keep","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}]}"#;
        let deny = change(Some(prev)).denying_policy().unwrap();
        let left = without_statements(&deny, &sid).unwrap().unwrap();
        assert!(same_policy(Some(&left), Some(prev)), "{left}");
        assert_eq!(
            without_statements(prev, &sid).unwrap(),
            None,
            "nothing of ours"
        );
        assert_eq!(without_statements("", &sid).unwrap(), None);
        assert!(without_statements("nope", &sid).is_err());
    }

    #[test]
    fn undo_tags_round_trip_in_the_documented_format() {
        let tag = QueueUndoTag::parse(r#"{"DelaySeconds":"0"}"#).unwrap();
        assert_eq!(tag.attributes["DelaySeconds"], "0");
        assert_eq!(tag.render(), r#"{"DelaySeconds":"0"}"#);
        let one = QueueUndoTag::parse(r#"{"remove-policy-statement":"s1"}"#).unwrap();
        assert_eq!(one.remove_statements, ["s1"]);
        assert_eq!(one.render(), r#"{"remove-policy-statement":"s1"}"#);
        let both = QueueUndoTag {
            attributes: BTreeMap::from([("DelaySeconds".into(), "5".into())]),
            remove_statements: vec!["s1".into(), "s2".into()],
        };
        assert_eq!(QueueUndoTag::parse(&both.render()).unwrap(), both);
        assert!(QueueUndoTag::parse("[]").is_err());
        assert!(QueueUndoTag::parse(r#"{"DelaySeconds":0}"#).is_err());
        assert!(QueueUndoTag::default().is_empty());
    }

    #[test]
    fn overlapping_changes_share_the_tag_and_keep_the_oldest_value() {
        // delay 0 -> 30 (A), then 30 -> 60 (B); undone newest first.
        let mut tag = QueueUndoTag::default();
        tag.hold("DelaySeconds", "0");
        tag.hold("DelaySeconds", "30");
        tag.add_statement("s1");
        assert_eq!(tag.attributes["DelaySeconds"], "0");
        tag.release("DelaySeconds", "30");
        assert_eq!(tag.attributes["DelaySeconds"], "0", "A is not undone yet");
        tag.release("DelaySeconds", "0");
        tag.drop_statement("s1");
        assert!(tag.is_empty());
    }

    #[test]
    fn a_tag_decodes_into_the_changes_it_records_newest_statement_first() {
        let target = AwsTarget::local("http://127.0.0.1:1");
        let keep = r#"{"Sid":"keep","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}"#;
        let before = format!(r#"{{"Version":"2012-10-17","Statement":[{keep}]}}"#);
        let mut first = change(Some(&before));
        first.target = target.clone();
        let one = first.denying_policy().unwrap();
        let mut second = first.clone();
        second.sid = "shakedown-r1-1".into();
        second.previous = Some(one.clone());
        let two = second.denying_policy().unwrap();
        let tag = QueueUndoTag {
            attributes: BTreeMap::from([("DelaySeconds".into(), "0".into())]),
            remove_statements: vec![first.sid.clone(), second.sid.clone(), "gone".into()],
        };
        let now = BTreeMap::from([("DelaySeconds".to_owned(), "60".to_owned())]);
        let changes = tag.changes(&target, "http://q", &now, Some(&two)).unwrap();
        let [
            super::super::Change::QueueAttribute(delay),
            super::super::Change::QueuePolicy(newest),
            super::super::Change::QueuePolicy(oldest),
        ] = changes.as_slice()
        else {
            panic!("{changes:?}")
        };
        assert_eq!((delay.previous.as_str(), delay.value.as_str()), ("0", "60"));
        assert_eq!(newest.sid, second.sid);
        assert_eq!(newest.principal, first.principal);
        assert_eq!(newest.queue_arn, first.queue_arn);
        assert!(same_policy(newest.previous.as_deref(), Some(&one)));
        assert!(same_policy(oldest.previous.as_deref(), Some(&before)));
        // The queue had no policy: undoing the only statement removes it.
        let alone = change(None).denying_policy().unwrap();
        let tag = QueueUndoTag {
            remove_statements: vec!["shakedown-r1-0".into()],
            ..QueueUndoTag::default()
        };
        let changes = tag
            .changes(&target, "http://q", &now, Some(&alone))
            .unwrap();
        assert!(
            matches!(&changes[..], [super::super::Change::QueuePolicy(c)] if c.previous.is_none()),
            "{changes:?}"
        );
        assert!(
            tag.changes(&target, "http://q", &now, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn policy_comparison() {
        assert!(same_policy(None, None));
        assert!(same_policy(Some(""), None));
        assert!(!same_policy(Some("{}"), None));
        assert!(same_policy(Some(r#"{"a": 1}"#), Some(r#"{"a":1}"#)));
        assert!(!same_policy(Some(r#"{"a":2}"#), Some(r#"{"a":1}"#)));
    }
}
