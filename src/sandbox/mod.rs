//! The sandbox: a real, local decoupled architecture (see DESIGN section 6).
//!
//! Each submodule is one component with its own endpoint; the supervisor wires them.

pub mod ec2;
pub mod lb;
pub mod sqs;
