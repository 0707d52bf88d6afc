//! `kind = "ec2"`: how many instances match tags / an Auto Scaling group in one state.

use super::ProbeError;
use super::spec::Ec2Probe;
use crate::aws::describe_instances;

/// Counts instances through DescribeInstances (paginated).
#[derive(Debug)]
pub struct Ec2Sampler {
    client: aws_sdk_ec2::Client,
    spec: Ec2Probe,
}

impl Ec2Sampler {
    /// A sampler for `spec`.
    pub fn new(client: aws_sdk_ec2::Client, spec: Ec2Probe) -> Self {
        Ec2Sampler { client, spec }
    }

    /// The number of matching instances.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let filters = self
            .spec
            .instances
            .filters(&self.spec.state)
            .map_err(ProbeError::Config)?;
        let found = describe_instances(&self.client, filters).await?;
        Ok(found.len() as f64)
    }
}
