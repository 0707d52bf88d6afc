//! The analyzer: turns a recorded run into verdicts, one per promise of the experiment:
//! pass, fail or not evaluable, with the measured figures and the evidence window.
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`view`] | [`RunView`]: the run at 1 s resolution (timeline, latency histograms, probes, faults, phases, scaling activities, ledger), windows and baselines | yes |
//! | [`tally`] | [`view::Tally`]: a window's traffic and latency quantiles, exact from merged HDR histograms (fallback: a bound from per-second percentiles) | yes |
//! | [`ledger`] | [`view::Ledger`], the message balance; [`view::LedgerBuilder`] balances millions of messages at ~12 bytes each | yes |
//! | [`load`] | a results directory -> [`RunView`]; writes `verdict.json` (the only IO) | no |
//! | [`spec`] | the `[[promise]]` tables -> validated [`Promise`]s, errors with file:line:col | yes |
//! | [`expr`] | threshold expressions (`p99 < 300ms`) and windows (`during:<fault>`) | yes |
//! | [`promises`] | one module per promise type: parameters + `evaluate` | yes |
//! | [`stats`] | is a share (slow responses, errors) beyond its limit, or within the chance of a small window? binomial test at 95% | yes |
//! | [`verdict`] | [`Verdict`], the terminal table, `verdict.json` and its schema | yes |
//!
//! Two rules hold everywhere: data that is missing makes a promise *not evaluable*, never a
//! pass (a probe gap is not a zero, a missing file is not an empty one); and a promise
//! measured as broken is a fail even when another of its legs lacks data. Definitions and
//! formulas: `docs/promises.md`.

pub mod expr;
pub mod ledger;
pub mod load;
pub mod promises;
pub mod spec;
pub mod stats;
pub mod tally;
pub mod verdict;
pub mod view;

use std::path::Path;

pub use load::{LoadError, load_run, write_verdict};
pub use spec::{Promise, PromiseKind, load_promises, parse_promises};
pub use verdict::{Status, Verdict, VerdictFile, render_table, render_table_with};
pub use view::RunView;

/// Evaluates every promise against a run, in order.
pub fn evaluate(promises: &[Promise], view: &RunView) -> Vec<Verdict> {
    promises
        .iter()
        .map(|p| promises::evaluate(p, view))
        .collect()
}

/// Loads the run in `dir`, evaluates the promises and returns the `verdict.json` contents
/// (not written: see [`write_verdict`]).
pub fn analyze_dir(dir: &Path, promises: &[Promise]) -> Result<VerdictFile, LoadError> {
    let view = load_run(dir)?;
    Ok(verdict_file(dir, promises, &view))
}

/// The verdicts of the run in `dir`, already loaded as `view`.
pub fn verdict_file(dir: &Path, promises: &[Promise], view: &RunView) -> VerdictFile {
    let run_id = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    VerdictFile::new(run_id, evaluate(promises, view))
}
