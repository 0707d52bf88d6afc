//! A run session: what `load`, `run` and `demo` share, as a few named steps over one
//! struct each.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | [`Session`]: the run directory, and [`Recording`]: `run.json`, the clock, recorder + collector + live view (and the `--metrics-addr` exporter's state, [`crate::exporter::Live`]), the signal handler |
//! | [`target`] | the sandbox started for a run, the target resolved (HTTP address, AWS clients, queues, completion and activity sources) |
//! | [`meta`] | the initial `run.json` |
//! | [`collect`] | each finished second: timeline, latency log, live view, the stop conditions' snapshot |
//! | [`watch`] | an experiment's watchers on the run's clock: probes, heartbeat, completions, accepted ids, activities |
//! | [`ledger`] | the end of the run's accounting: queue census, dead letters, `ledger.json` |
//! | [`experiment`] | `run`/`demo`: prepare, run (load + faults), cool down, finish |
//! | [`load`] | `load`: prepare, run, finish |
//! | [`report`] | what the terminal shows at the end; verdicts -> exit outcome |
//! | [`sweep`] | `run` of an experiment with `[sweep]`: one run per memory size, then `sweep.json` and the table |
//!
//! Lines for people are written with [`crate::outln!`] (stdout, or stderr under `--output json`:
//! [`crate::term`]), never `println!`.
//!
//! The commands in [`crate::cmd`] only turn their arguments into the options here.

pub mod collect;
pub mod experiment;
pub mod ledger;
pub mod load;
pub mod meta;
pub mod report;
pub mod sweep;
pub mod target;
pub mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::exporter::{Live, Phase};
use crate::live::LiveView;
use crate::metrics::{Recorder, SecondStats, StreamSummary, Window};
use crate::results::{RunDir, RunMeta, RunStatus, RunWriter, create_run_files, run_id};

/// Recorder shards per runtime worker: enough that lanes rarely contend. Each shard costs
/// a window per stream per second to allocate and merge, so there are no more than the
/// threads that can record at once need (16 shards on 2 cores once cost 60 ms a second).
pub const SHARDS_PER_WORKER: usize = 2;

/// The recorder's shard count for the current runtime.
fn shards() -> usize {
    let workers = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
    (workers * SHARDS_PER_WORKER).clamp(1, 32)
}

/// A run directory, created for one run.
#[derive(Debug)]
pub struct Session {
    dir: RunDir,
}

impl Session {
    /// Creates `root/<run-id>`: `run_id` if given, else `<UTC time>-<name>`.
    pub fn create(root: &Path, run_id_arg: Option<&str>, name: &str) -> anyhow::Result<Session> {
        let dir_name = run_id_arg.map_or_else(|| run_id(name, SystemTime::now()), str::to_string);
        let dir = RunDir::create(root, &dir_name)
            .with_context(|| format!("cannot create a run directory under {}", root.display()))?;
        crate::term::document(|d| d.run_dir = Some(dir.path().to_path_buf()));
        Ok(Session { dir })
    }

    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the run's clock: `run.json` (status `running`, started now), the timeline and
    /// latency log, the recorder and its collector (which feeds the live view and the
    /// metrics exporter's `live` state, and calls `tap` with every finished second), and
    /// the Ctrl-C/SIGTERM handler.
    pub fn start_recording(
        &self,
        mut meta: RunMeta,
        names: Vec<String>,
        planned: Duration,
        quiet: bool,
        live: Option<Arc<Live>>,
        tap: impl FnMut(&SecondStats) + Send + 'static,
    ) -> anyhow::Result<Recording> {
        let start = Instant::now();
        let start_wall = SystemTime::now();
        meta.started_at = chrono::DateTime::<chrono::Utc>::from(start_wall);
        if let Some(l) = &live {
            l.begin(
                &meta.kind,
                &meta.run_id,
                &names,
                start,
                planned.as_secs_f64(),
            );
        }
        let streams = names.len();
        let (writer, timeline) = create_run_files(self.dir.path(), meta, names.clone(), start_wall)
            .with_context(|| format!("cannot write results in {}", self.dir.path().display()))?;
        let signal = CancellationToken::new();
        let signals = crate::shutdown::cancel_on_signals(signal.clone());
        let recorder = Arc::new(Recorder::new(start, streams, shards()));
        let collecting = CancellationToken::new();
        let exported = live;
        let live = LiveView::new(planned, quiet, 5);
        let collector = tokio::spawn(collect::collect(
            recorder.clone(),
            timeline,
            live,
            exported.clone(),
            collecting.clone(),
            tap,
        ));
        Ok(Recording {
            start,
            start_wall,
            recorder,
            signal,
            names,
            writer,
            signals,
            collector: Some(collector),
            collecting,
            totals: Vec::new(),
            live: exported,
        })
    }
}

/// A run on its clock: every second is written as it ends.
pub struct Recording {
    /// The run's time zero.
    pub start: Instant,
    pub start_wall: SystemTime,
    pub recorder: Arc<Recorder>,
    /// Cancelled by Ctrl-C or SIGTERM.
    pub signal: CancellationToken,
    /// The streams, in the recorder's order.
    pub names: Vec<String>,
    writer: RunWriter,
    signals: JoinHandle<()>,
    collector: Option<JoinHandle<Vec<Window>>>,
    collecting: CancellationToken,
    totals: Vec<Window>,
    /// The metrics exporter's state (`--metrics-addr`).
    live: Option<Arc<Live>>,
}

impl Recording {
    /// The start as milliseconds since the Unix epoch.
    pub fn start_ms(&self) -> u64 {
        self.start_wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// The metrics exporter's state, when `--metrics-addr` serves one.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.live.as_ref()
    }

    /// Tells the metrics exporter (if any) the run's phase.
    pub fn set_phase(&self, phase: Phase) {
        if let Some(l) = &self.live {
            l.set_phase(phase);
        }
    }

    pub fn interrupted(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Writes the last second and stops the collector; the per-stream totals are kept for
    /// [`Recording::finish`]. Signals are still watched until then.
    pub async fn stop_collecting(&mut self) -> anyhow::Result<()> {
        self.collecting.cancel();
        if let Some(c) = self.collector.take() {
            self.totals = c.await.context("the collector task failed")?;
        }
        self.set_phase(Phase::Finishing);
        Ok(())
    }

    /// Stops the collector if still running, stops watching signals, and records the end in
    /// `run.json`: the status, per-stream summaries over `load_elapsed`, peak memory, and an
    /// error if any. Returns the summaries.
    pub async fn finish(
        mut self,
        status: RunStatus,
        load_elapsed: Duration,
        error: Option<String>,
    ) -> anyhow::Result<Vec<StreamSummary>> {
        self.stop_collecting().await?;
        self.signals.abort();
        let summaries: Vec<StreamSummary> = self
            .names
            .iter()
            .zip(&self.totals)
            .map(|(name, w)| StreamSummary::new(name, w, load_elapsed.as_secs_f64()))
            .collect();
        crate::term::document(|d| d.streams = Some(summaries.clone()));
        let meta = self.writer.meta_mut();
        meta.summary = summaries.clone();
        meta.peak_rss_kib = crate::results::meta::peak_rss_kib();
        if error.is_some() {
            meta.error = error;
        }
        self.writer
            .finish(status)
            .context("cannot finish run.json")?;
        Ok(summaries)
    }
}
