//! The IAM actions a run of an experiment calls on AWS, from what the file declares: the
//! policy `docs/aws.md` gives for each shipped experiment, and what `run --dry-run` prints.
//! (`sts:GetCallerIdentity`, which the dry run also calls, needs no permission.)

use std::collections::BTreeSet;

use super::{Experiment, TargetSpec};
use crate::config::profile::Transport;
use crate::ledger::source::CompletionSourceSpec;
use crate::probe::ProbeKind;

/// Every IAM action a run of `exp` may call, sorted. Empty for a sandbox target (its
/// endpoints accept any credentials).
pub fn aws_actions(exp: &Experiment) -> BTreeSet<&'static str> {
    let mut actions = BTreeSet::new();
    let TargetSpec::System(target) = &exp.target else {
        return actions;
    };
    let mut add = |list: &[&'static str]| actions.extend(list.iter().copied());
    // SendMessageBatch is authorised as sqs:SendMessage, DeleteMessageBatch as
    // sqs:DeleteMessage.
    if exp
        .profile
        .streams
        .iter()
        .any(|s| matches!(s.transport, Transport::Sqs { .. }))
    {
        add(&["sqs:GetQueueUrl", "sqs:SendMessage"]);
    }
    if exp
        .profile
        .streams
        .iter()
        .any(|s| matches!(s.transport, Transport::EventBridge { .. }))
    {
        add(&["events:PutEvents"]);
    }
    if target.queue.is_some() {
        // The ledger's census: the queue's depth before and after.
        add(&["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]);
    }
    if target.dlq.is_some() {
        // Drained at the end into the ledger.
        add(&["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"]);
    }
    for c in &target.completions {
        if let CompletionSourceSpec::Sqs(_) = c {
            add(&["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"]);
        }
    }
    if target.activities.iter().any(|a| a.asg.is_some()) {
        add(&["autoscaling:DescribeScalingActivities"]);
    }
    for p in &exp.probes {
        match p.kind {
            ProbeKind::Sqs(_) => add(&["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]),
            ProbeKind::Ec2(_) => add(&["ec2:DescribeInstances"]),
            ProbeKind::TargetHealth(ref t) => {
                add(&["elasticloadbalancing:DescribeTargetHealth"]);
                if !t.target_group.starts_with("arn:") {
                    add(&["elasticloadbalancing:DescribeTargetGroups"]);
                }
            }
            ProbeKind::Asg(_) => add(&["autoscaling:DescribeAutoScalingGroups"]),
            ProbeKind::CloudWatch(_) => add(&[crate::aws::cloudwatch::GET_METRIC_DATA]),
            _ => {}
        }
    }
    for occurrence in &exp.plan.occurrences {
        add(&occurrence.kind.fault().aws_actions());
    }
    actions
}
