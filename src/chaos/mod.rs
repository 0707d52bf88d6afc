//! Chaos: faults with exact undos, a journal that survives the harness, and recovery.
//!
//! The module's first duty is to leave the system as it found it. Every fault is split in
//! two: a [`Fault`] (what the experiment asked for: a selector and parameters)
//! resolves its targets and *prepares* a [`Change`], a serializable record
//! that knows how to apply itself, undo itself and verify the undo. The change is written to
//! the run's journal (fsynced) **before** it is applied, so `shakedown recover` can undo it
//! after the harness was killed with `kill -9`.
//!
//! | module | job |
//! |---|---|
//! | [`spec`] | the `[[fault]]` tables of an experiment file (serde, user docs) |
//! | [`plan`] | [`FaultPlan`]: specs with resolved start times and occurrences |
//! | [`guard`] | `[guardrails]`: caps, allow-listed tags, stop conditions, the run lock |
//! | [`fault`] | the [`Fault`] trait and the environment faults act in |
//! | [`faults`] | one module per fault type (`terminate-instances`, `stall-consumers`, ...) |
//! | [`change`] | the undoable records faults produce (EC2 state, signals, queue attributes, ...) |
//! | [`journal`] | `results/<run-id>/journal.jsonl`: the append-only, fsynced record |
//! | [`runner`] | [`Runner`]: executes a plan on the run's clock, undoes in reverse on any exit |
//! | [`recover`] | undo what a dead run left applied, from its journal or ([`recover::tags`]) the AWS undo tags; [`check_clean`] before a new run |
//! | [`local`], [`docker`], [`proxy`] | the backends: signals, docker CLI, TCP proxy (AWS calls go through [`crate::aws`]) |

pub mod change;
pub mod docker;
pub mod fault;
pub mod faults;
pub mod guard;
pub mod journal;
pub mod local;
pub mod plan;
pub mod proxy;
pub mod recover;
pub mod runner;
pub mod spec;

pub use change::Change;
pub use fault::{Env, Fault, FaultError};
pub use guard::{Guardrails, Snapshot, StopCondition};
pub use journal::Journal;
pub use plan::{FaultPlan, PlanFile};
pub use recover::{Unrecovered, check_clean};
pub use runner::{AbortHandle, Outcome, Prepared, RunEnd, RunReport, Runner};
pub use spec::FaultSpec;
