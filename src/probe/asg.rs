//! `kind = "asg"`: an Auto Scaling group's desired capacity, bounds, and instances per
//! lifecycle state (DescribeAutoScalingGroups).

use aws_sdk_autoscaling::types::AutoScalingGroup;

use super::ProbeError;
use super::spec::{AsgMetric, AsgProbe};
use crate::aws::describe_group;

/// Reads one figure of one group.
#[derive(Debug)]
pub struct AsgSampler {
    client: aws_sdk_autoscaling::Client,
    spec: AsgProbe,
}

impl AsgSampler {
    /// A sampler for `spec`.
    pub fn new(client: aws_sdk_autoscaling::Client, spec: AsgProbe) -> Self {
        AsgSampler { client, spec }
    }

    /// The probe's figure of the group now.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let group = describe_group(&self.client, &self.spec.group).await?;
        Ok(figure(&group, self.spec.metric))
    }
}

/// One figure of a group, as the probe reports it.
pub fn figure(group: &AutoScalingGroup, metric: AsgMetric) -> f64 {
    let in_state = |pred: &dyn Fn(&str) -> bool| {
        group
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().is_some_and(|s| pred(s.as_str())))
            .count() as f64
    };
    match metric {
        AsgMetric::Desired => f64::from(group.desired_capacity().unwrap_or(0)),
        AsgMetric::Min => f64::from(group.min_size().unwrap_or(0)),
        AsgMetric::Max => f64::from(group.max_size().unwrap_or(0)),
        AsgMetric::InService => in_state(&|s| s == "InService"),
        AsgMetric::Pending => in_state(&|s| s.starts_with("Pending")),
        AsgMetric::Terminating => in_state(&|s| s.starts_with("Terminating")),
        AsgMetric::Standby => in_state(&|s| s == "Standby"),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_autoscaling::types::{Instance, LifecycleState};

    use super::*;

    fn instance(state: LifecycleState) -> Instance {
        Instance::builder()
            .instance_id("i-1")
            .availability_zone("eu-west-1a")
            .lifecycle_state(state)
            .health_status("Healthy")
            .protected_from_scale_in(false)
            .build()
    }

    #[test]
    fn figures_count_instances_per_lifecycle_state() {
        let group = AutoScalingGroup::builder()
            .auto_scaling_group_name("workers")
            .min_size(1)
            .max_size(10)
            .desired_capacity(4)
            .instances(instance(LifecycleState::InService))
            .instances(instance(LifecycleState::InService))
            .instances(instance(LifecycleState::PendingWait))
            .instances(instance(LifecycleState::Pending))
            .instances(instance(LifecycleState::TerminatingProceed))
            .instances(instance(LifecycleState::Standby))
            .build();
        assert_eq!(figure(&group, AsgMetric::Desired), 4.0);
        assert_eq!(figure(&group, AsgMetric::Min), 1.0);
        assert_eq!(figure(&group, AsgMetric::Max), 10.0);
        assert_eq!(figure(&group, AsgMetric::InService), 2.0);
        assert_eq!(figure(&group, AsgMetric::Pending), 2.0);
        assert_eq!(figure(&group, AsgMetric::Terminating), 1.0);
        assert_eq!(figure(&group, AsgMetric::Standby), 1.0);
    }
}
