//! SQS queue changes: one attribute (DelaySeconds) set and restored, and a Deny statement
//! added to the queue policy and removed by restoring the exact previous policy.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Undoable;
use crate::chaos::aws::{AwsError, AwsTarget, queue_attribute, set_queue_attribute, undo_tag_key};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

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
            let c = env.clients(&self.target)?;
            set_queue_attribute(&c.sqs, &self.queue_url, &self.attribute, &self.value).await?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target)?;
            set_queue_attribute(&c.sqs, &self.queue_url, &self.attribute, &self.previous).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target)?;
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
        let value = json!({ &self.attribute: &self.previous }).to_string();
        Box::pin(tag_queue(env, &self.target, &self.queue_url, run_id, value))
    }

    fn untag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(untag_queue(env, &self.target, &self.queue_url, run_id))
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
            let c = env.clients(&self.target)?;
            set_queue_attribute(&c.sqs, &self.queue_url, "Policy", &policy).await?;
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target)?;
            // An empty Policy removes the attribute.
            let value = self.previous.as_deref().unwrap_or("");
            set_queue_attribute(&c.sqs, &self.queue_url, "Policy", value).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target)?;
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
        let value = json!({ "remove-policy-statement": &self.sid }).to_string();
        Box::pin(tag_queue(env, &self.target, &self.queue_url, run_id, value))
    }

    fn untag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(untag_queue(env, &self.target, &self.queue_url, run_id))
    }
}

async fn tag_queue(
    env: &Env,
    target: &AwsTarget,
    url: &str,
    run_id: &str,
    value: String,
) -> Result<(), FaultError> {
    let c = env.clients(target)?;
    c.sqs
        .tag_queue()
        .queue_url(url)
        .tags(undo_tag_key(run_id), value)
        .send()
        .await
        .map_err(|e| AwsError::call("TagQueue", e))?;
    Ok(())
}

async fn untag_queue(
    env: &Env,
    target: &AwsTarget,
    url: &str,
    run_id: &str,
) -> Result<(), FaultError> {
    let c = env.clients(target)?;
    c.sqs
        .untag_queue()
        .queue_url(url)
        .tag_keys(undo_tag_key(run_id))
        .send()
        .await
        .map_err(|e| AwsError::call("UntagQueue", e))?;
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
    fn policy_comparison() {
        assert!(same_policy(None, None));
        assert!(same_policy(Some(""), None));
        assert!(!same_policy(Some("{}"), None));
        assert!(same_policy(Some(r#"{"a": 1}"#), Some(r#"{"a":1}"#)));
        assert!(!same_policy(Some(r#"{"a":2}"#), Some(r#"{"a":1}"#)));
    }
}
