//! The AWS layer: how shakedown reaches an AWS (or AWS-compatible) control plane. Used by the
//! driver's SQS transport, the probes, the ledger's census, the chaos faults and recovery, the
//! experiment's target and the sandbox's own SDK clients.
//!
//! | module | job |
//! |---|---|
//! | [`autoscaling`] | [`describe_group`]: one Auto Scaling group |
//! | [`cloudwatch`] | [`CloudWatch`]: `GetMetricData` over the JSON protocol, signed with SigV4 |
//! | [`target`] | [`AwsTarget`]: region, profile, endpoints, static credentials (never serialized) |
//! | [`client`] | [`aws_clients`] (EC2 + SQS for a target), [`local_sqs_config`] for loopback endpoints, [`disable_imds`] |
//! | [`error`] | [`AwsError`]: a failed call with the service's error code |
//! | [`select`] | what a config names: [`InstanceSelector`] (tags / Auto Scaling group), [`QueueRef`] (name or URL) |
//! | [`ec2`] | DescribeInstances helpers: matching [`Instance`]s, instance states |
//! | [`sqs`] | queue attributes, queue tags, ListQueues |

pub mod autoscaling;
pub mod client;
pub mod cloudwatch;
pub mod ec2;
pub mod error;
pub mod select;
pub mod sqs;
pub mod target;

pub use autoscaling::describe_group;
pub use client::{AwsClients, Identity, aws_clients, disable_imds, local_sqs_config, unserved};
pub use cloudwatch::CloudWatch;
pub use ec2::{Instance, describe_instances, instance_states};
pub use error::AwsError;
pub use select::{InstanceSelector, QueueRef};
pub use sqs::{
    list_queues, queue_attribute, queue_tags, set_queue_attribute, tag_queue, untag_queue,
};
pub use target::AwsTarget;

/// The token of the next page, if the answer has one.
fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}
