//! `stop-instances`: EC2 StopInstances, then StartInstances after the duration.

use super::instances::{InstanceAction, InstanceFault};
use crate::chaos::change::ec2::Ec2Action;
use crate::chaos::fault::Impact;

/// ```toml
/// [[fault]]
/// type = "stop-instances"
/// at = "1m"
/// duration = "2m"
/// instances = { asg = "workers" }
/// percent = 50
/// ```
pub type StopInstances = InstanceFault<Stop>;

/// The action of [`StopInstances`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stop;

impl InstanceAction for Stop {
    const TYPE_NAME: &'static str = "stop-instances";
    const IMPACT: Impact = Impact::Destructive;
    const ACTION: Ec2Action = Ec2Action::Stop;
}
