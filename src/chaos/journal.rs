//! `results/<run-id>/journal.jsonl`: one JSON object per line, appended and fsynced.
//!
//! A fault writes `intent` (with the exact [`Change`], including previous values) **before**
//! acting, then `applied` / `apply-failed` / `irreversible`, and after its undo `undone` or
//! `undo-failed`. Folding the entries ([`fold`]) tells which changes may still be applied;
//! that is all `recover` needs. The format is documented in `docs/chaos.md` and published as a
//! JSON schema (`docs/schema/journal.schema.json`, see [`schema`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::change::Change;
use super::guard::Choice;
use crate::results::jsonl::{self, JsonLinesWriter, JsonlError};

/// Version of the journal format written in every entry.
pub const FORMAT_VERSION: u32 = 1;

/// The file name inside a run directory.
pub use crate::results::dir::JOURNAL_FILE;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entry {
    /// Format version ([`FORMAT_VERSION`]).
    pub v: u32,
    /// Position in the file, from 1.
    pub seq: u64,
    /// Wall-clock time of the entry.
    pub time: DateTime<Utc>,
    /// The run (the run directory's name).
    pub run_id: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Identifies one occurrence of one fault of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct FaultRef {
    /// `<name>#<occurrence>`: unique in the run.
    pub id: String,
    /// The fault's name (from the spec, or `<type>-<index>`).
    pub name: String,
    /// The fault type.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Who wrote an `undone` / `undo-failed` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Undoer {
    /// The run itself (end of the fault's duration, end of the run, abort, signal, error).
    Runner,
    /// `shakedown recover`.
    Recover,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every fault ran its course.
    Completed,
    /// A fault could not be applied; everything applied was undone.
    Failed,
    /// A stop condition or `Runner::abort` ended the run early; everything was undone.
    Aborted,
    /// Ctrl-C / SIGTERM / the caller's cancellation; everything was undone.
    Interrupted,
}

/// The events of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The runner started (it holds the chaos lock).
    RunStarted {
        /// The harness's pid.
        pid: u32,
        /// Number of fault occurrences planned.
        occurrences: usize,
        /// AWS-compatible endpoints that live and die with this process (the embedded
        /// sandbox's): once the process is gone, nothing applied through them remains.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ephemeral: Vec<String>,
    },
    /// About to apply: the change with everything needed to undo it.
    Intent {
        /// Which fault.
        fault: FaultRef,
        /// What the selector matched and chose.
        choice: Choice,
        /// The change, with previous values.
        change: Box<Change>,
        /// One line for humans: what and how it is undone.
        summary: String,
    },
    /// The change is in place (and will be undone).
    Applied {
        /// Which fault.
        fault: FaultRef,
        /// Non-fatal problems (e.g. the recovery tag could not be written).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The change is in place for good (terminate, kill): nothing to undo.
    Irreversible {
        /// Which fault.
        fault: FaultRef,
    },
    /// Applying failed (perhaps partially); an undo follows.
    ApplyFailed {
        /// Which fault.
        fault: FaultRef,
        /// Why.
        error: String,
    },
    /// The change was undone and the undo verified.
    Undone {
        /// Which fault.
        fault: FaultRef,
        /// Who undid it.
        by: Undoer,
        /// Non-fatal notes (e.g. a process that exited meanwhile).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// The undo failed or did not verify: the change may still be applied.
    UndoFailed {
        /// Which fault.
        fault: FaultRef,
        /// Who tried.
        by: Undoer,
        /// Why.
        error: String,
        /// What is still applied.
        still_applied: String,
    },
    /// The runner finished (after undoing everything it could).
    RunEnded {
        /// How.
        outcome: RunOutcome,
        /// Why it stopped early, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An IO error on the file.
    #[error("journal {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A line is not a journal entry.
    #[error("journal {}:{line}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<JsonlError> for JournalError {
    fn from(e: JsonlError) -> JournalError {
        match e {
            JsonlError::Io { path, source } => JournalError::Io { path, source },
            JsonlError::Parse { path, line, source } => JournalError::Parse { path, line, source },
        }
    }
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    out: JsonLinesWriter,
    run_id: String,
    seq: u64,
}

impl Journal {
    /// Opens (creating the directory and file if needed) the journal of the run in `run_dir`;
    /// the run id is the directory's name. Appends after any existing entries.
    pub fn open(run_dir: &Path) -> Result<Journal, JournalError> {
        let path = crate::results::RunDir::at(run_dir).journal();
        let io_err = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(run_dir).map_err(io_err)?;
        let seq = if path.exists() {
            read(&path)?.last().map_or(0, |e| e.seq)
        } else {
            0
        };
        let out = JsonLinesWriter::durable(&path)?;
        // Make the new file's directory entry durable too.
        if let Ok(dir) = File::open(run_dir) {
            let _ = dir.sync_all();
        }
        Ok(Journal {
            run_id: run_id_of(run_dir),
            path,
            out,
            seq,
        })
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and fsyncs it before returning.
    pub fn append(&mut self, event: Event) -> Result<(), JournalError> {
        self.seq += 1;
        let entry = Entry {
            v: FORMAT_VERSION,
            seq: self.seq,
            time: Utc::now(),
            run_id: self.run_id.clone(),
            event,
        };
        Ok(self.out.write(&entry)?)
    }
}

/// The run id of a run directory (its name).
pub fn run_id_of(run_dir: &Path) -> String {
    crate::results::RunDir::at(run_dir).run_id()
}

/// Reads every entry. A torn last line (the harness died mid-write) is ignored; any other
/// bad line is an error (the rule of [`crate::results::jsonl`]).
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    Ok(jsonl::read_all(path)?)
}

/// Where a change stands according to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    /// `intent` written, no outcome: it may or may not be applied.
    Intended,
    /// Applied, not undone.
    Applied,
    /// Applying failed part-way, not undone.
    ApplyFailed,
    /// An undo failed.
    UndoFailed,
    /// Undone and verified.
    Undone,
    /// Irreversible: nothing to undo.
    Irreversible,
}

impl ChangeState {
    /// Whether the change may still be in place and can be undone.
    pub fn outstanding(self) -> bool {
        matches!(
            self,
            ChangeState::Intended
                | ChangeState::Applied
                | ChangeState::ApplyFailed
                | ChangeState::UndoFailed
        )
    }
}

/// One change of the journal with its latest state.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Which fault.
    pub fault: FaultRef,
    /// The change.
    pub change: Change,
    /// Its state.
    pub state: ChangeState,
}

/// Folds entries into the changes, in intent order, with their latest state.
pub fn fold(entries: &[Entry]) -> Vec<Tracked> {
    fn set(out: &mut [Tracked], fault: &FaultRef, state: ChangeState) {
        if let Some(t) = out.iter_mut().rev().find(|t| t.fault.id == fault.id) {
            t.state = state;
        }
    }
    let mut out: Vec<Tracked> = Vec::new();
    for entry in entries {
        match &entry.event {
            Event::Intent { fault, change, .. } => out.push(Tracked {
                fault: fault.clone(),
                change: (**change).clone(),
                state: ChangeState::Intended,
            }),
            Event::Applied { fault, .. } => set(&mut out, fault, ChangeState::Applied),
            Event::Irreversible { fault } => set(&mut out, fault, ChangeState::Irreversible),
            Event::ApplyFailed { fault, .. } => set(&mut out, fault, ChangeState::ApplyFailed),
            Event::Undone { fault, .. } => set(&mut out, fault, ChangeState::Undone),
            Event::UndoFailed { fault, .. } => set(&mut out, fault, ChangeState::UndoFailed),
            Event::RunStarted { .. } | Event::RunEnded { .. } => {}
        }
    }
    out
}

/// The JSON schema of one journal line, as published in `docs/schema/journal.schema.json`.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Entry);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}
