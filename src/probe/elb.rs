//! `kind = "target-health"`: how many targets of an ELBv2 target group (ALB, NLB) are in one
//! health state (DescribeTargetHealth), the AWS counterpart of the sandbox's `balancer` probe.

use super::ProbeError;
use super::spec::TargetHealthProbe;
use crate::aws::AwsError;

/// Counts a target group's targets in one state; a name is resolved to its ARN once.
#[derive(Debug)]
pub struct TargetHealthSampler {
    client: aws_sdk_elasticloadbalancingv2::Client,
    spec: TargetHealthProbe,
    arn: Option<String>,
}

impl TargetHealthSampler {
    /// A sampler for `spec`.
    pub fn new(client: aws_sdk_elasticloadbalancingv2::Client, spec: TargetHealthProbe) -> Self {
        let arn = spec
            .target_group
            .starts_with("arn:")
            .then(|| spec.target_group.clone());
        TargetHealthSampler { client, spec, arn }
    }

    /// The target group's ARN (DescribeTargetGroups by name, the first time).
    async fn arn(&mut self) -> Result<String, AwsError> {
        if let Some(arn) = &self.arn {
            return Ok(arn.clone());
        }
        const OP: &str = "elasticloadbalancing:DescribeTargetGroups";
        let name = &self.spec.target_group;
        let out = self
            .client
            .describe_target_groups()
            .names(name)
            .send()
            .await
            .map_err(|e| AwsError::call(OP, e).on(format!("target group `{name}`")))?;
        let arn = out
            .target_groups()
            .iter()
            .find_map(|g| g.target_group_arn())
            .ok_or_else(|| AwsError::Unexpected {
                op: OP,
                message: format!("no target group named `{name}`"),
            })?
            .to_owned();
        self.arn = Some(arn.clone());
        Ok(arn)
    }

    /// The number of the group's targets in the probe's state.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let arn = self.arn().await?;
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(&arn)
            .send()
            .await
            .map_err(|e| AwsError::call("elasticloadbalancing:DescribeTargetHealth", e).on(&arn))?;
        let wanted = self.spec.state.as_str();
        let count = out
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                d.target_health()
                    .and_then(|h| h.state())
                    .is_some_and(|s| s.as_str() == wanted)
            })
            .count();
        Ok(count as f64)
    }
}
