//! shakedown: a load generator and chaos-testing harness for decoupled architectures.
//!
//! Map of the crate (pure modules know nothing of tokio, files or AWS):
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`units`] | human-readable durations, sizes and rates: parse and format | pure |
//! | [`template`] | request templates (`/upload/{id}`, JSON bodies with `{uuid}`...), parsed once, rendered fast | pure |
//! | [`config`] | config files: TOML -> validated plans (profiles), every error at once with file:line:col | files only |
//! | [`sandbox`] | the embedded reference system: SQS- and EC2-compatible endpoints, balancer, fleet | IO |
pub mod config;
pub mod sandbox;
pub mod template;
pub mod units;
