//! shakedown: a load generator and chaos-testing harness for decoupled architectures.
//!
//! Map of the crate (pure modules know nothing of tokio, files or AWS):
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`chaos`] | faults with journaled, verified undos; runner, guardrails, recover, TCP proxy | IO |
//! | [`sandbox`] | the embedded reference system: SQS- and EC2-compatible endpoints, balancer, fleet | IO |
pub mod chaos;
pub mod sandbox;
