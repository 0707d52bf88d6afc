//! The AWS backend: clients for a target (AWS itself, the sandbox, moto) and the few calls
//! the faults share.

use std::collections::BTreeMap;
use std::net::IpAddr;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ec2::types::Filter;
use serde::{Deserialize, Serialize};

use super::fault::Resource;

/// How to reach an AWS control plane. Secrets are never written to the journal: a run
/// recovered later takes them from the environment (or, for a loopback endpoint, signs
/// with placeholder credentials, which local endpoints accept).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct AwsTarget {
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, or `us-east-1` for a loopback endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Named profile of `~/.aws/credentials` / `~/.aws/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// One endpoint for every service (moto, LocalStack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// EC2 endpoint, overriding `endpoint_url` (the sandbox serves EC2 and SQS on two ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_endpoint_url: Option<String>,
    /// SQS endpoint, overriding `endpoint_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs_endpoint_url: Option<String>,
    /// Static access key id (for local endpoints); needs `secret_access_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Static secret; never serialized.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub secret_access_key: Option<String>,
}

impl AwsTarget {
    /// A target for a local endpoint serving every service, with placeholder credentials.
    pub fn local(endpoint_url: &str) -> AwsTarget {
        AwsTarget {
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint_url.to_owned()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            ..AwsTarget::default()
        }
    }

    fn ec2_endpoint(&self) -> Option<&str> {
        self.ec2_endpoint_url
            .as_deref()
            .or(self.endpoint_url.as_deref())
    }

    fn sqs_endpoint(&self) -> Option<&str> {
        self.sqs_endpoint_url
            .as_deref()
            .or(self.endpoint_url.as_deref())
    }

    /// The EC2 and SQS endpoints configured (empty: the services' public endpoints).
    pub fn endpoint_urls(&self) -> Vec<&str> {
        [self.ec2_endpoint(), self.sqs_endpoint()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Whether every configured endpoint is on a loopback address.
    pub fn is_loopback(&self) -> bool {
        let endpoints = [self.ec2_endpoint(), self.sqs_endpoint()];
        endpoints.iter().flatten().count() > 0 && endpoints.iter().flatten().all(|e| loopback(e))
    }
}

fn loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An EC2 and an SQS client for one target.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
}

/// Why an AWS call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// No region configured.
    #[error("no AWS region: set `region` in the target or AWS_REGION")]
    NoRegion,
    /// A call failed.
    #[error("{op}: {message}")]
    Call {
        /// The API operation.
        op: &'static str,
        /// Error code, if the service sent one.
        code: Option<String>,
        /// What the SDK said (with its cause chain).
        message: String,
    },
    /// The answer lacked something we need.
    #[error("{op}: unexpected answer: {message}")]
    Unexpected {
        /// The API operation.
        op: &'static str,
        /// What was missing.
        message: String,
    },
}

impl AwsError {
    /// Wraps an SDK error.
    pub fn call<E>(op: &'static str, e: aws_sdk_ec2::error::SdkError<E>) -> AwsError
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        let code = e.code().map(str::to_owned);
        let message = match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => aws_sdk_ec2::error::DisplayErrorContext(&e).to_string(),
        };
        AwsError::Call { op, code, message }
    }

    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Builds the clients for `target`: explicit endpoint, region and static credentials for
/// local endpoints; otherwise the named profile or the usual `AWS_*` environment.
pub fn aws_clients(target: &AwsTarget) -> Result<AwsClients, AwsError> {
    let region = target
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .or_else(|| target.is_loopback().then(|| "us-east-1".to_owned()))
        .ok_or(AwsError::NoRegion)?;
    let credentials = credentials(target);
    let ec2 = {
        let mut b = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.clone()))
            .credentials_provider(credentials.clone());
        if let Some(url) = target.ec2_endpoint() {
            b = b.endpoint_url(url);
        }
        aws_sdk_ec2::Client::from_conf(b.build())
    };
    let sqs = {
        let mut b = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(region))
            .credentials_provider(credentials);
        if let Some(url) = target.sqs_endpoint() {
            b = b.endpoint_url(url);
        }
        aws_sdk_sqs::Client::from_conf(b.build())
    };
    Ok(AwsClients { ec2, sqs })
}

fn credentials(target: &AwsTarget) -> SharedCredentialsProvider {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_config::profile::ProfileFileCredentialsProvider;
    if let (Some(id), Some(secret)) = (&target.access_key_id, &target.secret_access_key) {
        return SharedCredentialsProvider::new(Credentials::new(
            id,
            secret,
            None,
            None,
            "shakedown-static",
        ));
    }
    if let Some(profile) = &target.profile {
        return SharedCredentialsProvider::new(
            ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .build(),
        );
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new());
    }
    if target.is_loopback() {
        return SharedCredentialsProvider::new(Credentials::new(
            "shakedown-local",
            "shakedown-local",
            None,
            None,
            "shakedown-loopback",
        ));
    }
    SharedCredentialsProvider::new(ProfileFileCredentialsProvider::builder().build())
}

/// Which EC2 instances a fault acts on: tags and/or an Auto Scaling group; only instances
/// in the `running` state are matched.
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

/// Every instance matching `filters` (paginated, bounded), as resources with their tags.
pub async fn describe_instances(
    ec2: &aws_sdk_ec2::Client,
    filters: Vec<Filter>,
) -> Result<Vec<Resource>, AwsError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..100 {
        let resp = ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::call("DescribeInstances", e))?;
        for i in resp.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let tags: BTreeMap<String, String> = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect();
            let label = tags.get("Name").cloned().unwrap_or_default();
            out.push(Resource {
                id: id.to_owned(),
                label,
                aws_tags: Some(tags),
            });
        }
        token = next_page(resp.next_token());
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The token of the next page, if the answer has one.
fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The state name (`running`, `stopped`, ...) of each instance id.
pub async fn instance_states(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<BTreeMap<String, String>, AwsError> {
    let resp = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::call("DescribeInstances", e))?;
    Ok(resp
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_owned(),
                i.state()?.name()?.as_str().to_owned(),
            ))
        })
        .collect())
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
            .map_err(|e| AwsError::call("GetQueueUrl", e))?;
        resp.queue_url()
            .map(str::to_owned)
            .ok_or(AwsError::Unexpected {
                op: "GetQueueUrl",
                message: "no QueueUrl".into(),
            })
    }
}

/// Reads one queue attribute (`None` when the queue does not report it).
pub async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let resp = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::from(name))
        .send()
        .await
        .map_err(|e| AwsError::call("GetQueueAttributes", e))?;
    Ok(resp
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::from(name)))
        .cloned())
}

/// Sets one queue attribute.
pub async fn set_queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: &str,
    value: &str,
) -> Result<(), AwsError> {
    sqs.set_queue_attributes()
        .queue_url(url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::from(name), value)
        .send()
        .await
        .map_err(|e| AwsError::call("SetQueueAttributes", e))?;
    Ok(())
}

/// Every undo tag's key starts with this; the run id follows.
pub const UNDO_TAG_PREFIX: &str = "shakedown:undo:";

/// The tag key under which a run records an undo on the resource itself.
pub fn undo_tag_key(run_id: &str) -> String {
    format!("{UNDO_TAG_PREFIX}{run_id}")
}

/// The tags of a queue (ListQueueTags).
pub async fn queue_tags(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let resp = sqs
        .list_queue_tags()
        .queue_url(url)
        .send()
        .await
        .map_err(|e| AwsError::call("ListQueueTags", e))?;
    Ok(resp
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// Sets one tag of a queue (TagQueue).
pub async fn tag_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    sqs.tag_queue()
        .queue_url(url)
        .tags(key, value)
        .send()
        .await
        .map_err(|e| AwsError::call("TagQueue", e))?;
    Ok(())
}

/// Removes one tag of a queue (UntagQueue; a missing tag is not an error).
pub async fn untag_queue(sqs: &aws_sdk_sqs::Client, url: &str, key: &str) -> Result<(), AwsError> {
    sqs.untag_queue()
        .queue_url(url)
        .tag_keys(key)
        .send()
        .await
        .map_err(|e| AwsError::call("UntagQueue", e))?;
    Ok(())
}

/// Every queue URL of the account and region (ListQueues, paginated, bounded).
pub async fn list_queues(sqs: &aws_sdk_sqs::Client) -> Result<Vec<String>, AwsError> {
    let mut urls = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..1000 {
        let resp = sqs
            .list_queues()
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::call("ListQueues", e))?;
        urls.extend(resp.queue_urls().iter().cloned());
        token = next_page(resp.next_token());
        if token.is_none() {
            break;
        }
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(loopback("http://127.0.0.1:4566"));
        assert!(loopback("http://localhost:4566/"));
        assert!(loopback("http://[::1]:80"));
        assert!(!loopback("https://ec2.us-east-1.amazonaws.com"));
        assert!(!AwsTarget::default().is_loopback());
    }

    #[test]
    fn secrets_are_not_serialized() {
        let t = AwsTarget::local("http://127.0.0.1:1");
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }

    #[test]
    fn empty_instance_selector_is_refused() {
        assert!(InstanceSelector::default().filters("running").is_err());
    }
}
