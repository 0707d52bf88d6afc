//! SDK clients for loopback endpoints (the sandbox, our in-process servers, moto), built
//! from an explicit config: region `us-east-1`, static credentials, the endpoint, a bound
//! on each call. Nothing is read from the environment, so no credential chain ever probes
//! the instance-metadata address and no test needs `std::env::set_var`.

use std::time::Duration;

use aws_credential_types::Credentials;

/// The region every test client signs for.
pub const REGION: &str = "us-east-1";

/// A bound on each call: a test against a loopback server must fail, not hang.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Static credentials with access key id `key` (the sandbox tells callers apart by it).
fn credentials(key: &str) -> Credentials {
    Credentials::new(key, "test", None, None, "static")
}

/// The SQS config for `endpoint`, signing with access key id `key`; the SDK's default
/// retries.
pub fn sqs_config(endpoint: &str, key: &str) -> aws_sdk_sqs::config::Builder {
    use aws_sdk_sqs::config::{BehaviorVersion, Region, timeout::TimeoutConfig};
    aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials(key))
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
}

/// An SQS client for `endpoint`.
pub fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    sqs_as(endpoint, "test")
}

/// [`sqs`] signing with access key id `key`.
pub fn sqs_as(endpoint: &str, key: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config(endpoint, key).build())
}

/// The EC2 config for `endpoint`; the SDK's default retries.
pub fn ec2_config(endpoint: &str) -> aws_sdk_ec2::config::Builder {
    use aws_sdk_ec2::config::{BehaviorVersion, Region, timeout::TimeoutConfig};
    aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials("test"))
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
}

/// An EC2 client for `endpoint`.
pub fn ec2(endpoint: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(ec2_config(endpoint).build())
}
