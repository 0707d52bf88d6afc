//! Chaos, as one test binary (one link of the AWS SDKs instead of four):
//!
//! | module | what |
//! |---|---|
//! | [`local`] | faults on real local processes (`sleep` children stopped, resumed, killed), the journal, guardrails, dry run, stop conditions, crash recovery of a real harness process |
//! | [`command`] | the `command` fault: apply / undo / verify shell commands, timeouts, `kill -9` then `recover` |
//! | [`proxy`] | the built-in TCP proxy and its toxics, and a latency fault driven by the runner |
//! | [`aws`] | AWS-API faults against the sandbox's EC2 and SQS endpoints and against `moto_server`; `recover --from-tags` |
//!
//! The runner's clock itself is tested on paused time in `src/chaos/runner.rs`.

#[path = "../support/mod.rs"]
mod support;

mod aws;
mod command;
mod local;
mod proxy;
