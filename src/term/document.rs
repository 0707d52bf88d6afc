//! The one JSON document `--output json` prints on stdout: filled as the command goes,
//! printed once by [`crate::run`] when the command ends (also after an error). The shape is
//! documented in `docs/output.md` and published as `docs/schema/output.schema.json`.

use std::io::Write as _;
use std::path::PathBuf;

use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::VerdictFile;
use crate::metrics::StreamSummary;

/// Version of the document's format.
pub const FORMAT_VERSION: u32 = 1;

/// What `--output json` prints: one object, the keys a command produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputDocument {
    /// Version of this format.
    pub format_version: u32,
    /// The subcommand (`run`, `demo`, `load`, `analyze`).
    pub command: String,
    /// The process's exit code: 0 every promise held (or the load completed), 1 a promise
    /// failed, 2 an error.
    pub exit_code: u8,
    /// The run directory (`results/<run-id>`), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// The verdicts, exactly as written to `verdict.json` (`run`, `demo`, `analyze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictFile>,
    /// One summary per stream over the load, as in `run.json`'s `summary` (`run`, `demo`,
    /// `load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<StreamSummary>>,
    /// A `run` of an experiment with a `[sweep]`: the sweep, exactly as written to
    /// `sweep.json` (each size's verdicts are in its own run directory, `rows[].run_dir`);
    /// `verdict` and `streams` are then absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepFile>,
    /// The error that ended the command, with its causes, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

static DOCUMENT: Mutex<Option<OutputDocument>> = Mutex::new(None);

/// Adds to the document (`--output json` only; a no-op otherwise).
pub fn document(f: impl FnOnce(&mut OutputDocument)) {
    if super::json_mode() {
        f(DOCUMENT.lock().get_or_insert_with(OutputDocument::default));
    }
}

/// Prints the document on stdout (`--output json` only), with the command and exit code.
pub fn emit_document(command: &str, exit_code: u8) {
    if !super::json_mode() {
        return;
    }
    let mut doc = DOCUMENT.lock().take().unwrap_or_default();
    doc.format_version = FORMAT_VERSION;
    doc.command = command.to_owned();
    doc.exit_code = exit_code;
    let text = serde_json::to_string_pretty(&doc).expect("the document serializes");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The JSON schema of the document, as published in `docs/schema/output.schema.json`.
pub fn schema() -> String {
    let schema = schemars::schema_for!(OutputDocument);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}
