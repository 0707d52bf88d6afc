//! Run results on disk: `results/<run-id>/` with `run.json`, `timeline.csv`
//! and `latency.hlog`, written as the run goes (each second is flushed, so a
//! crash loses at most the last second). Formats: `results/README.md` and
//! the JSON schema in `docs/schema/run.schema.json`.

pub mod harness;
pub mod meta;
pub mod timeline;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

pub use self::meta::{RunMeta, RunStatus};
use crate::metrics::SecondStats;

/// Creates a fresh directory `root/<run-id>`; appends `-2`, `-3`... if taken.
pub fn create_run_dir(root: &Path, run_id: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(root)?;
    for n in 1..1000 {
        let name = if n == 1 {
            run_id.to_string()
        } else {
            format!("{run_id}-{n}")
        };
        let dir = root.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "too many runs named {run_id} in {}",
        root.display()
    )))
}

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
    dir: PathBuf,
    meta: RunMeta,
}

/// Appends to `timeline.csv` and `latency.hlog`, one second at a time.
pub struct TimelineWriter {
    streams: Vec<String>,
    timeline: BufWriter<File>,
    hlog: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

/// Creates a run's files in `dir`: `run.json` with status `running`, and the
/// timeline and latency log with their headers.
pub fn create_run_files(
    dir: &Path,
    meta: RunMeta,
    streams: Vec<String>,
    start: SystemTime,
) -> io::Result<(RunWriter, TimelineWriter)> {
    let timeline = TimelineWriter::create(dir, &meta.run_id, streams, start)?;
    let writer = RunWriter {
        dir: dir.to_path_buf(),
        meta,
    };
    writer.write_meta()?;
    Ok((writer, timeline))
}

impl RunWriter {
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let tmp = self.dir.join("run.json.tmp");
        let json = serde_json::to_vec_pretty(&self.meta).map_err(io::Error::other)?;
        fs::write(&tmp, json)?;
        fs::rename(&tmp, self.dir.join("run.json"))
    }
}

impl TimelineWriter {
    fn create(
        dir: &Path,
        run_id: &str,
        streams: Vec<String>,
        start: SystemTime,
    ) -> io::Result<TimelineWriter> {
        let mut timeline = BufWriter::new(File::create(dir.join("timeline.csv"))?);
        writeln!(timeline, "{}", timeline::header())?;
        timeline.flush()?;
        let mut hlog = BufWriter::new(File::create(dir.join("latency.hlog"))?);
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut builder = IntervalLogWriterBuilder::new();
            builder
                .add_comment(&format!("shakedown {} run {run_id}", env!("CARGO_PKG_VERSION")))
                .add_comment("values and Interval_Max are microseconds; tag <stream> is latency from the intended send time, <stream>.service from the actual send")
                .with_start_time(start)
                .with_base_time(start);
            builder.begin_log_with(&mut hlog, &mut serializer)?;
            writeln!(
                hlog,
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
            )?;
        }
        hlog.flush()?;
        Ok(TimelineWriter {
            streams,
            timeline,
            hlog,
            serializer,
        })
    }

    /// Appends one second to the timeline and the latency log, and flushes both.
    pub fn write_second(&mut self, s: &SecondStats) -> io::Result<()> {
        for (i, w) in s.streams.iter().enumerate() {
            writeln!(
                self.timeline,
                "{}",
                timeline::row(s.second, &self.streams[i], w, s.in_flight[i])
            )?;
        }
        let start = Duration::from_secs(u64::from(s.second));
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.hlog, &mut self.serializer)?;
        for (i, w) in s.streams.iter().enumerate() {
            let name = hlog_tag(&self.streams[i]);
            let service = format!("{name}.service");
            for (h, tag) in [(&w.corrected, &name), (&w.uncorrected, &service)] {
                if h.is_empty() {
                    continue;
                }
                log.write_histogram(h, start, Duration::from_secs(1), Tag::new(tag))
                    .map_err(|e| io::Error::other(format!("writing latency.hlog: {e:?}")))?;
            }
        }
        self.timeline.flush()?;
        self.hlog.flush()
    }
}

/// Interval-log tags may not contain spaces or commas.
fn hlog_tag(stream: &str) -> String {
    stream
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
