//! shakedown: a load generator and chaos-testing harness for decoupled architectures.
//!
//! Map of the crate (pure modules know nothing of tokio, files or AWS):
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`sandbox`] | the embedded reference system: SQS- and EC2-compatible endpoints, balancer, fleet | IO |
//! | [`cmd_sandbox`] | `shakedown sandbox`: run the sandbox in the foreground | IO |
pub mod cmd_sandbox;
pub mod sandbox;
