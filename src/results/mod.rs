//! Run results on disk: `results/<run-id>/`, owned by [`RunDir`] (the name of every file,
//! and its readers and writers). `run.json`, `timeline.csv` and `latency.hlog` are written as
//! the run goes (each second is flushed, so a crash loses at most the last second). Formats:
//! `results/README.md` and the JSON schema in `docs/schema/run.schema.json`.
//!
//! | module | job |
//! |---|---|
//! | [`dir`] | [`RunDir`]: typed paths of every file of a run directory, its typed readers |
//! | [`mod@file`] | optional reads, JSON documents written atomically, [`FileError`] |
//! | [`jsonl`] | the one JSON-lines reader and writer (torn-last-line rule) |
//! | [`flat`] | a fast scanner for flat one-line JSON objects (the ledger files), serde as fallback |
//! | [`table`] | CSV rows through the `csv` crate and serde (torn-last-row rule) |
//! | [`timeline`] | `timeline.csv` rows |
//! | [`probes`] | `probes.csv` (and `harness.csv`) rows |
//! | [`hlog`] | `latency.hlog`: the interval-log writer and reader |
//! | [`harness`] | the heartbeat writing `harness.csv` |
//! | [`meta`] | `run.json` ([`RunMeta`]) and its schema |

pub mod dir;
pub mod file;
pub mod flat;
pub mod harness;
pub mod hlog;
pub mod jsonl;
pub mod meta;
pub mod probes;
pub mod table;
pub mod timeline;

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub use self::dir::RunDir;
pub use self::file::FileError;
pub use self::meta::{RunMeta, RunStatus};
use self::timeline::TimelineRow;
use crate::metrics::SecondStats;

/// A run id: `YYYYMMDD-HHMMSS-<name>` in UTC, the name reduced to `[a-z0-9-]`.
pub fn run_id(name: &str, at: SystemTime) -> String {
    let ts = chrono::DateTime::<chrono::Utc>::from(at).format("%Y%m%d-%H%M%S");
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        ts.to_string()
    } else {
        format!("{ts}-{slug}")
    }
}

/// Writes `run.json` (at the start, and again at the end).
pub struct RunWriter {
    dir: RunDir,
    meta: RunMeta,
}

/// Appends to `timeline.csv` and `latency.hlog`, one second at a time.
pub struct TimelineWriter {
    streams: Vec<String>,
    timeline: csv::Writer<BufWriter<File>>,
    hlog: hlog::HlogWriter,
}

/// Creates a run's files in `dir`: `run.json` with status `running`, and the
/// timeline and latency log with their headers.
pub fn create_run_files(
    dir: &Path,
    meta: RunMeta,
    streams: Vec<String>,
    start: SystemTime,
) -> io::Result<(RunWriter, TimelineWriter)> {
    let dir = RunDir::at(dir);
    let timeline = TimelineWriter::create(&dir, &meta.run_id, streams, start)?;
    let writer = RunWriter { dir, meta };
    writer.write_meta()?;
    Ok((writer, timeline))
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl RunWriter {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn meta_mut(&mut self) -> &mut RunMeta {
        &mut self.meta
    }

    /// Records the outcome and the end time in `run.json`.
    pub fn finish(&mut self, status: RunStatus) -> io::Result<()> {
        self.meta.status = status;
        self.meta.ended_at = Some(chrono::Utc::now());
        self.write_meta()
    }

    /// Rewrites `run.json` atomically (temp file + rename).
    pub fn write_meta(&self) -> io::Result<()> {
        file::write_json_atomic(&self.dir.run_json(), &self.meta).map_err(io::Error::other)
    }
}

impl TimelineWriter {
    fn create(
        dir: &RunDir,
        run_id: &str,
        streams: Vec<String>,
        start: SystemTime,
    ) -> io::Result<TimelineWriter> {
        let mut timeline = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(BufWriter::new(File::create(dir.timeline())?));
        timeline
            .write_record(timeline::header().split(','))
            .map_err(csv_io)?;
        timeline.flush()?;
        let hlog = hlog::HlogWriter::create(&dir.latency(), run_id, start)?;
        Ok(TimelineWriter {
            streams,
            timeline,
            hlog,
        })
    }

    /// Appends one second to the timeline and the latency log, and flushes both.
    pub fn write_second(&mut self, s: &SecondStats) -> io::Result<()> {
        for (i, w) in s.streams.iter().enumerate() {
            let row = TimelineRow::new(s.second, &self.streams[i], w, s.in_flight[i]);
            self.timeline.serialize(row).map_err(csv_io)?;
        }
        self.timeline.flush()?;
        let streams = s
            .streams
            .iter()
            .enumerate()
            .map(|(i, w)| (self.streams[i].as_str(), &w.corrected, &w.uncorrected));
        self.hlog.write_second(s.second, streams)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_slugs() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        assert_eq!(run_id("Photo Upload!", at), "19700102-000000-photo-upload");
        assert_eq!(run_id("--", at), "19700102-000000");
    }
}
