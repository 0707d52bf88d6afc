//! One module per promise type: its validated parameters and its pure `evaluate`.
//!
//! Adding a promise: a module here with a parameter struct and
//! `fn evaluate(&self, name: &str, view: &RunView) -> Verdict`, a variant in
//! [`super::spec::PromiseKind`] with its keys in `spec::TYPES`, a section in
//! `docs/promises.md`, and its tests.

pub mod buffering;
pub mod cost;
pub mod drain;
pub mod failover;
pub mod no_loss;
pub mod scale_in;
pub mod scale_out;
pub mod threshold;

use super::spec::{Promise, PromiseKind};
use super::verdict::Verdict;
use super::view::RunView;

/// Evaluates one promise against a run.
pub fn evaluate(promise: &Promise, view: &RunView) -> Verdict {
    let name = promise.name.as_str();
    match &promise.kind {
        PromiseKind::Failover(p) => p.evaluate(name, view),
        PromiseKind::Buffering(p) => p.evaluate(name, view),
        PromiseKind::NoLoss(p) => p.evaluate(name, view),
        PromiseKind::Drain(p) => p.evaluate(name, view),
        PromiseKind::ScaleOut(p) => p.evaluate(name, view),
        PromiseKind::ScaleIn(p) => p.evaluate(name, view),
        PromiseKind::Threshold(p) => p.evaluate(name, view),
        PromiseKind::Cost(p) => p.evaluate(name, view),
    }
}

/// The second holding time `t` (floor; negative times are second 0).
pub(crate) fn second_of(t: f64) -> usize {
    t.max(0.0).floor() as usize
}

/// The first whole second starting at or after `t`.
pub(crate) fn second_from(t: f64) -> usize {
    t.max(0.0).ceil() as usize
}

/// `12.0s`-style formatting for summaries.
pub(crate) fn secs(t: f64) -> String {
    format!("{t:.0}s")
}

/// A missing-data reason that mentions why the view lacks it, when the loader said.
pub(crate) fn missing(view: &RunView, what: &str, file: &str) -> String {
    match view.notes.iter().find(|n| n.contains(file)) {
        Some(note) => format!("{what} ({note})"),
        None => what.to_string(),
    }
}

/// Rounds to milliseconds, so figures read cleanly (`2.8`, not `2.8000000000000007`).
pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
