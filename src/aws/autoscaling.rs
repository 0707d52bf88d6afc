//! Auto Scaling helpers: one group, described.

use aws_sdk_autoscaling::types::AutoScalingGroup;

use super::AwsError;

/// The group named `name` (DescribeAutoScalingGroups); an error naming it when the region
/// has none.
pub async fn describe_group(
    client: &aws_sdk_autoscaling::Client,
    name: &str,
) -> Result<AutoScalingGroup, AwsError> {
    const OP: &str = "autoscaling:DescribeAutoScalingGroups";
    let out = client
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| AwsError::call(OP, e).on(format!("group `{name}`")))?;
    out.auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
        .cloned()
        .ok_or_else(|| AwsError::Unexpected {
            op: OP,
            message: format!("no Auto Scaling group named `{name}` in this region"),
        })
}
