//! shakedown: a load generator and chaos-testing harness for decoupled architectures.
//!
//! Map of the crate (pure modules know nothing of tokio, files or AWS):
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`units`] | human-readable durations, sizes and rates: parse and format | pure |
//! | [`sandbox`] | the embedded reference system: SQS- and EC2-compatible endpoints, balancer, fleet | IO |
pub mod sandbox;
pub mod units;
