//! What a config names on AWS: instances by tags or Auto Scaling group, a queue by name or URL.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use serde::Deserialize;

use super::AwsError;

/// Which EC2 instances a fault or probe acts on: tags and/or an Auto Scaling group; only
/// instances in the given state are matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSelector {
    /// Tags every matched instance carries (`{ tier = "web" }`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Auto Scaling group name (the `aws:autoscaling:groupName` tag).
    pub asg: Option<String>,
}

impl InstanceSelector {
    /// The DescribeInstances filters; an empty selector is refused (it would match everything).
    pub fn filters(&self, state: &str) -> Result<Vec<Filter>, String> {
        if self.tags.is_empty() && self.asg.is_none() {
            return Err("an instance selector needs `tags` or `asg`".into());
        }
        let mut filters = vec![
            Filter::builder()
                .name("instance-state-name")
                .values(state)
                .build(),
        ];
        for (k, v) in &self.tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v).build());
        }
        if let Some(asg) = &self.asg {
            filters.push(
                Filter::builder()
                    .name("tag:aws:autoscaling:groupName")
                    .values(asg)
                    .build(),
            );
        }
        Ok(filters)
    }
}

/// A queue given by URL or by name (looked up with GetQueueUrl).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum QueueRef {
    /// `queue = "jobs"` or `queue = "https://..."`.
    Plain(String),
}

impl QueueRef {
    /// The queue URL.
    pub async fn url(&self, sqs: &aws_sdk_sqs::Client) -> Result<String, AwsError> {
        let QueueRef::Plain(s) = self;
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(s.clone());
        }
        let resp = sqs
            .get_queue_url()
            .queue_name(s)
            .send()
            .await
            .map_err(|e| AwsError::call("sqs:GetQueueUrl", e).on(format!("queue `{s}`")))?;
        resp.queue_url()
            .map(str::to_owned)
            .ok_or(AwsError::Unexpected {
                op: "sqs:GetQueueUrl",
                message: "no QueueUrl".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_instance_selector_is_refused() {
        assert!(InstanceSelector::default().filters("running").is_err());
    }
}
