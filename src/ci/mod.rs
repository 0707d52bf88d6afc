//! CI: what a pipeline reads of a run, and the regression gate.
//!
//! Every run directory gets `junit.xml` (one test case per promise, per threshold
//! expression, or per stream of a `load` run) and `summary.md` (for a pull-request comment
//! or `$GITHUB_STEP_SUMMARY`), written at the end of `run`, `demo`, `load` and `analyze`
//! ([`read::write_reports_or_warn`]). `shakedown gate` compares two runs of the same
//! experiment ([`gate`]). User docs: `docs/ci.md`.
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`cases`] | a run -> its test cases; nothing unchecked is a pass | yes |
//! | [`junit`] | the cases as JUnit XML | yes |
//! | [`summary`] | the run as short Markdown | yes |
//! | [`gate`] | regression spec, baseline model, the statistical rule, the gate's table | yes |
//! | [`read`] | run directory -> report / gate summary; writes the files and baselines | no |

pub mod cases;
pub mod gate;
pub mod junit;
pub mod read;
pub mod summary;

pub use read::write_reports_or_warn;
