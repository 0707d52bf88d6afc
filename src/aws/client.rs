//! SDK clients: [`aws_clients`] for a target (AWS itself, the sandbox, moto), and
//! [`local_sqs_config`] for the sandbox's own clients of its loopback SQS endpoint.

use std::sync::Once;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use super::{AwsError, AwsTarget};

/// An EC2 and an SQS client for one target.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
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

/// The SQS configuration of a client of a local endpoint: fixed region, static credentials
/// (`key_id` names the caller to the sandbox's queue policy), nothing read from profiles,
/// the environment or instance metadata. Callers add retries and timeouts, then `build()`.
pub fn local_sqs_config(
    endpoint: &str,
    region: &str,
    key_id: &str,
    secret: &str,
) -> aws_sdk_sqs::config::Builder {
    let credentials = Credentials::new(key_id, secret, None, None, "shakedown-local-static");
    aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
}

/// Sets `AWS_EC2_METADATA_DISABLED=true` once, unless the environment already says something,
/// so that no SDK configuration built afterwards probes the instance-metadata address.
/// Programs that build SDK clients from several threads should set the variable at startup.
pub fn disable_imds() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("AWS_EC2_METADATA_DISABLED").is_none() {
            // SAFETY: this runs once, before the caller builds any SDK configuration, and
            // only when the variable is unset. Callers document that programs touching the
            // environment concurrently must set it at startup instead.
            unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
        }
    });
}
