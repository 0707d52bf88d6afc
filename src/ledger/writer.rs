//! The ledger's files: `accepted.jsonl`, `completions.jsonl` (appended as the run goes,
//! flushed at least every second) and `ledger.json` (written at the end), and their readers
//! for offline analysis, through the run directory's one JSON-lines reader and writer
//! ([`crate::results::jsonl`]: a torn last line is ignored on reading).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::LedgerError;
use super::ids::{AcceptedEntry, AcceptedIds, IdFormat};
use super::summary::{AcceptTimes, CompletionRecord, LedgerSummary};
use crate::results::file::{read_json, write_json_atomic};
use crate::results::jsonl::{self, JsonLinesWriter};

/// One line of `accepted.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedLine {
    /// The message id (`<run_tag>-<stream index>-<seq>`).
    pub id: String,
    /// The stream's name.
    pub stream: String,
    /// When the target accepted it, ms since the Unix epoch.
    pub t_ms: u64,
}

/// Turns spill entries into `accepted.jsonl` lines.
pub fn accepted_lines<'a>(
    entries: &'a [AcceptedEntry],
    ids: &'a IdFormat,
    stream_names: &'a [String],
) -> impl Iterator<Item = AcceptedLine> + 'a {
    entries.iter().map(|e| AcceptedLine {
        id: ids.format(e.stream, e.seq),
        stream: stream_names
            .get(e.stream)
            .cloned()
            .unwrap_or_else(|| e.stream.to_string()),
        t_ms: e.t_ms,
    })
}

/// Writes `accepted`'s spill to `path` every second until `cancel`, then once more.
/// Returns the number of lines written.
pub async fn run_accepted_spill(
    accepted: Arc<AcceptedIds>,
    path: PathBuf,
    ids: IdFormat,
    stream_names: Vec<String>,
    cancel: CancellationToken,
) -> Result<u64, LedgerError> {
    let mut out = JsonLinesWriter::append(&path)?;
    let mut written = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            () = cancel.cancelled() => true,
        };
        let entries = accepted.take_spill();
        written += entries.len() as u64;
        out.write_all(accepted_lines(&entries, &ids, &stream_names))?;
        if stop {
            return Ok(written);
        }
    }
}

/// Rebuilds the accepted ids (and their accept times) from `accepted.jsonl`: what an
/// offline re-analysis starts from. Lines of other runs or unknown streams are errors.
pub fn load_accepted(
    path: &Path,
    ids: &IdFormat,
    streams: usize,
) -> Result<(AcceptedIds, AcceptTimes), LedgerError> {
    let accepted = AcceptedIds::new(streams);
    let mut times = AcceptTimes::default();
    let mut bad: Option<String> = None;
    jsonl::for_each(path, |line: AcceptedLine| {
        if bad.is_some() {
            return;
        }
        let Some((stream, seq)) = ids.parse(&line.id) else {
            bad = Some(format!("id `{}` is not of this run", line.id));
            return;
        };
        match accepted.accept_at(stream, seq, line.t_ms) {
            Ok(_) => times.add(&AcceptedEntry {
                stream,
                seq,
                t_ms: line.t_ms,
            }),
            Err(e) => bad = Some(format!("id `{}`: {e}", line.id)),
        }
    })?;
    match bad {
        Some(message) => Err(LedgerError::Parse {
            path: path.to_path_buf(),
            line: 0,
            message,
        }),
        None => Ok((accepted, times)),
    }
}

/// Reads `completions.jsonl`.
pub fn read_completions(path: &Path) -> Result<Vec<CompletionRecord>, LedgerError> {
    Ok(jsonl::read_all(path)?)
}

/// Writes `ledger.json` (pretty, replacing any previous one through a temporary file).
pub fn write_summary(path: &Path, summary: &LedgerSummary) -> Result<(), LedgerError> {
    Ok(write_json_atomic(path, summary)?)
}

/// Reads `ledger.json`.
pub fn read_summary(path: &Path) -> Result<LedgerSummary, LedgerError> {
    read_json(path)?.ok_or_else(|| LedgerError::Io {
        path: path.to_path_buf(),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"r-0-1\",\"done_ms\":5,\"outcome\":\"completed\",\"receive_count\":1}\n{\"id\":\"r-0",
        )
        .unwrap();
        assert_eq!(read_completions(&path).unwrap().len(), 1);
        std::fs::write(&path, "nonsense\n{\"id\":\"r-0-1\",\"done_ms\":5,\"outcome\":\"completed\",\"receive_count\":1}\n").unwrap();
        let err = read_completions(&path).unwrap_err();
        assert!(matches!(err, LedgerError::Parse { line: 1, .. }), "{err}");
    }
}
