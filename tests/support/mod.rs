//! The shared test kit, included by each test binary that needs it with `mod support;`.
//!
//! | module | what |
//! |---|---|
//! | [`aws`] | SDK clients with explicit config (region, static credentials, endpoint): no environment, no IMDS |
//! | [`cli`] | the built `shakedown` binary as a child process, and its output as text |
//! | [`moto`] | one `moto_server` launcher, and the rule for when it is missing (skip or fail) |
//! | [`slots`] | how many whole runs go at once, by weight |
//! | [`target`] | local HTTP targets with chosen misbehaviours |
//! | [`tls`] | a local https server (HTTP/1.1 and HTTP/2) with certificates made for the test |
//! | [`wait`] | one `eventually` (bounded polling), and a bounded wait for a child's exit |
//!
//! Each test binary uses a part of the kit; the rest is dead code there.
#![allow(dead_code)]

pub mod aws;
pub mod cli;
pub mod moto;
pub mod slots;
pub mod target;
pub mod tls;
pub mod wait;
