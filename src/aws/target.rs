//! [`AwsTarget`]: which AWS (or AWS-compatible) control plane to reach, and how.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

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
    /// EventBridge endpoint, overriding `endpoint_url` (the sandbox's bus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_endpoint_url: Option<String>,
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

    pub(super) fn ec2_endpoint(&self) -> Option<&str> {
        self.ec2_endpoint_url
            .as_deref()
            .or(self.endpoint_url.as_deref())
    }

    pub(super) fn sqs_endpoint(&self) -> Option<&str> {
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
}

pub(super) fn loopback(url: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(loopback("http://127.0.0.1:4566"));
        assert!(loopback("http://localhost:4566/"));
        assert!(loopback("http://[::1]:80"));
        assert!(!loopback("https://ec2.us-east-1.amazonaws.com"));
    }

    #[test]
    fn secrets_are_not_serialized() {
        let t = AwsTarget::local("http://127.0.0.1:1");
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }
}
