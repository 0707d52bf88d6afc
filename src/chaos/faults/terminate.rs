//! `terminate-instances`: EC2 TerminateInstances on a capped random choice. Irreversible.

use super::instances::{InstanceAction, InstanceFault};
use crate::chaos::change::ec2::Ec2Action;
use crate::chaos::fault::Impact;

/// ```toml
/// [[fault]]
/// type = "terminate-instances"
/// at = "2m"
/// instances = { tags = { tier = "web" } }   # or { asg = "web-asg" }
/// count = 1                                 # or percent = 25; required
/// ```
pub type TerminateInstances = InstanceFault<Terminate>;

/// The action of [`TerminateInstances`].
#[derive(Debug, Clone, PartialEq)]
pub struct Terminate;

impl InstanceAction for Terminate {
    const TYPE_NAME: &'static str = "terminate-instances";
    const IMPACT: Impact = Impact::Irreversible;
    const ACTION: Ec2Action = Ec2Action::Terminate;
}
