//! The ledger's files: `accepted.jsonl`, `completions.jsonl` (appended as the run goes,
//! flushed at least every second) and `ledger.json` (written at the end), and their readers
//! for offline analysis. A torn last line (a crash mid-write) is ignored on reading.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::LedgerError;
use super::ids::{AcceptedEntry, AcceptedIds, IdFormat};
use super::summary::{AcceptTimes, CompletionRecord, LedgerSummary};

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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn append_file(path: &Path) -> Result<BufWriter<File>, LedgerError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(BufWriter::new)
        .map_err(io_error(path))
}

/// Appends JSON lines to a file, flushing after each batch.
#[derive(Debug)]
pub struct JsonLinesWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonLinesWriter {
    /// Opens `path` for appending (created if missing).
    pub fn append(path: &Path) -> Result<Self, LedgerError> {
        Ok(JsonLinesWriter {
            path: path.to_path_buf(),
            out: append_file(path)?,
        })
    }

    /// Writes every item as one line, then flushes.
    pub fn write_all<T: Serialize>(
        &mut self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), LedgerError> {
        for item in items {
            serde_json::to_writer(&mut self.out, &item).map_err(|e| LedgerError::Io {
                path: self.path.clone(),
                source: e.into(),
            })?;
            self.out.write_all(b"\n").map_err(io_error(&self.path))?;
        }
        self.out.flush().map_err(io_error(&self.path))
    }
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

/// Reads a JSON-lines file; a torn (unparsable) *last* line is skipped, any other bad
/// line is an error naming its line number.
pub fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, LedgerError> {
    let mut out = Vec::new();
    for_each_json_line(path, |item| out.push(item))?;
    Ok(out)
}

/// Streams a JSON-lines file through `f` without keeping it in memory (see
/// [`read_json_lines`] for torn lines).
pub fn for_each_json_line<T: for<'de> Deserialize<'de>>(
    path: &Path,
    f: impl FnMut(T),
) -> Result<(), LedgerError> {
    let mut lines = JsonLines::open(path)?;
    lines.by_ref().for_each(f);
    lines.finish()
}

/// The records of a JSON-lines file, one at a time. A read error or a bad line that is not
/// the last ends the iteration; [`JsonLines::finish`] then returns it. A torn last line is
/// skipped (see [`read_json_lines`]).
pub struct JsonLines<T> {
    path: PathBuf,
    lines: std::iter::Enumerate<std::io::Lines<BufReader<File>>>,
    /// A bad line, an error only if another line follows it.
    pending: Option<(usize, String)>,
    error: Option<LedgerError>,
    _record: std::marker::PhantomData<fn() -> T>,
}

impl<T: for<'de> Deserialize<'de>> JsonLines<T> {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let file = File::open(path).map_err(io_error(path))?;
        Ok(JsonLines {
            path: path.to_path_buf(),
            lines: BufReader::new(file).lines().enumerate(),
            pending: None,
            error: None,
            _record: std::marker::PhantomData,
        })
    }

    /// What ended the iteration early, if anything did.
    pub fn finish(self) -> Result<(), LedgerError> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<T: for<'de> Deserialize<'de>> Iterator for JsonLines<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        for (n, line) in self.lines.by_ref() {
            let line = match line {
                Ok(line) => line,
                Err(source) => {
                    self.error = Some(LedgerError::Io {
                        path: self.path.clone(),
                        source,
                    });
                    return None;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            if let Some((at, message)) = self.pending.take() {
                self.error = Some(LedgerError::Parse {
                    path: self.path.clone(),
                    line: at,
                    message,
                });
                return None;
            }
            match serde_json::from_str(&line) {
                Ok(item) => return Some(item),
                Err(e) => self.pending = Some((n + 1, e.to_string())),
            }
        }
        None
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
    for_each_json_line(path, |line: AcceptedLine| {
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
    read_json_lines(path)
}

/// Writes `ledger.json` (pretty, replacing any previous one through a temporary file).
pub fn write_summary(path: &Path, summary: &LedgerSummary) -> Result<(), LedgerError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(summary).expect("plain data serializes");
    std::fs::write(&tmp, text + "\n").map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Reads `ledger.json`.
pub fn read_summary(path: &Path) -> Result<LedgerSummary, LedgerError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| LedgerError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
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

    #[test]
    fn the_iterator_stops_at_a_bad_line_and_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let good = "{\"id\":\"r-0-1\",\"done_ms\":5,\"outcome\":\"completed\",\"receive_count\":1}";
        std::fs::write(&path, format!("{good}\n\n{good}\nbad\n{good}\n{good}\n")).unwrap();
        let mut lines = JsonLines::<CompletionRecord>::open(&path).unwrap();
        assert_eq!(lines.by_ref().count(), 2, "the records before the bad line");
        let err = lines.finish().unwrap_err();
        assert!(matches!(err, LedgerError::Parse { line: 4, .. }), "{err}");
        // A torn tail, even followed by blank lines, is not an error.
        std::fs::write(&path, format!("{good}\n{{\"id\":\n\n")).unwrap();
        let mut lines = JsonLines::<CompletionRecord>::open(&path).unwrap();
        assert_eq!(lines.by_ref().count(), 1);
        lines.finish().unwrap();
    }
}
