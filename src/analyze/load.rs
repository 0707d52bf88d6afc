//! Reading a results directory into a [`RunView`], and writing `verdict.json`: the
//! analyzer's only IO. File formats: `results/README.md`.
//!
//! A missing file is missing data, never an error: the view lacks that part (and
//! [`RunView::notes`] says so), and the promises that need it are not evaluable. A file
//! that exists but cannot be read or parsed is an error ([`LoadError`]), except a torn
//! last line, which a run killed mid-write leaves behind and which is skipped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::verdict::VerdictFile;
use super::view::{
    Activity, ActivityKind, FaultWindow, Latency, LedgerBuilder, Outcome, Phase, RunView, Second,
};
use crate::chaos::journal::{self, Event};
use crate::ledger::census::QueueCensus;
use crate::metrics::SecondHistograms;
use crate::results::dir::{
    ACCEPTED_FILE, ACTIVITIES_FILE, COMPLETIONS_FILE, JOURNAL_FILE, LEDGER_FILE, PROBES_FILE,
    RUN_FILE, TIMELINE_FILE,
};
use crate::results::jsonl::{self, JsonlError};
use crate::results::timeline::TimelineRow;
use crate::results::{FileError, RunDir, RunMeta, hlog};

/// Why a results directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file of the run directory (`path:line: message` or `path: io error`).
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

impl From<JsonlError> for LoadError {
    fn from(e: JsonlError) -> LoadError {
        FileError::from(e).into()
    }
}

/// Loads everything a run directory holds.
pub fn load_run(dir: &Path) -> Result<RunView, LoadError> {
    let run = RunDir::open(dir).map_err(|_| FileError::Io {
        path: dir.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, "not a results directory"),
    })?;
    let mut view = RunView::default();
    let note = |view: &mut RunView, file: &str| view.notes.push(format!("{file} missing"));
    let meta = run.read_meta()?;
    match &meta {
        Some(m) => view.phases = phases(m),
        None => note(&mut view, RUN_FILE),
    }
    match run.read_timeline()? {
        Some(rows) => view.streams = timeline_seconds(rows),
        None => note(&mut view, TIMELINE_FILE),
    }
    // The exact per-second histograms; without them, window percentiles fall back to the
    // bound from the timeline's per-second percentiles.
    if let Some(log) = run.read_latency()? {
        view.histograms = Some(stream_histograms(log, view.streams.keys()));
    }
    // The harness's own timekeeping (runs before it existed have no harness.csv).
    if let Some(mut harness) = run.read_harness()? {
        view.harness_lag_ms = harness.remove("lag_max_ms");
        view.harness_cpu_busy = harness.remove("cpu_busy");
    }
    match run.read_probes()? {
        Some(probes) => view.probes = probes,
        None => note(&mut view, PROBES_FILE),
    }
    let journal_path = run.journal();
    match (journal_path.exists(), &meta) {
        (false, _) => note(&mut view, JOURNAL_FILE),
        (true, None) => view.notes.push(format!(
            "{JOURNAL_FILE} not usable without {RUN_FILE} (its start time)"
        )),
        (true, Some(m)) => {
            view.faults = fault_windows(&journal::read(&journal_path)?, m.started_at)
        }
    }
    let activities = run.activities();
    if activities.exists() {
        view.activities = Some(read_activities(&activities)?);
    } else {
        note(&mut view, ACTIVITIES_FILE);
    }
    // The ledger's times are ms since the Unix epoch; the view's are ms from the run's start.
    let epoch_ms = meta
        .as_ref()
        .map_or(0, |m| m.started_at.timestamp_millis().max(0) as u64);
    let rel = |t: u64| t.saturating_sub(epoch_ms);
    let accepted_path = run.accepted();
    if !accepted_path.exists() {
        note(&mut view, ACCEPTED_FILE);
    } else if meta.is_none() {
        view.notes.push(format!(
            "{ACCEPTED_FILE} not usable without {RUN_FILE} (its start time)"
        ));
    } else {
        // Streamed, never held whole: a run of millions of messages costs a few bytes each.
        let mut ledger = LedgerBuilder::default();
        jsonl::for_each(&accepted_path, |a: AcceptedLine| {
            ledger.accept(&a.id, rel(a.t_ms))
        })?;
        let completions_path = run.completions();
        if completions_path.exists() {
            jsonl::for_each(&completions_path, |c: CompletionLine| {
                ledger.complete(&c.id, rel(c.done_ms), c.outcome.into())
            })?;
        } else {
            note(&mut view, COMPLETIONS_FILE);
        }
        let census = match run.read_ledger::<LedgerFile>()? {
            Some(l) => l.queue.or(l.still_queued.map(QueueCensus::single)),
            None => {
                note(&mut view, LEDGER_FILE);
                None
            }
        };
        view.ledger = Some(ledger.finish(census));
    }
    Ok(view)
}

/// Writes `verdict.json` atomically (temp file + rename).
pub fn write_verdict(dir: &Path, file: &VerdictFile) -> Result<(), LoadError> {
    Ok(RunDir::at(dir).write_verdict(file)?)
}

/// The timeline's rows as seconds per stream (seconds without a row are default).
fn timeline_seconds(rows: Vec<(usize, TimelineRow)>) -> BTreeMap<String, Vec<Second>> {
    let mut out: BTreeMap<String, Vec<Second>> = BTreeMap::new();
    for (_, row) in rows {
        let s = row.second as usize;
        let latency = Latency::from_columns(row.latency_ms());
        let sec = Second {
            intended: row.intended,
            sent: row.sent,
            ok: row.ok,
            errors: row.errors(),
            late: row.late,
            dropped: row.dropped,
            in_flight: row.in_flight,
            latency,
        };
        let series = out.entry(row.stream).or_default();
        if series.len() <= s {
            series.resize(s + 1, Second::default());
        }
        series[s] = sec;
    }
    out
}

/// The latency log's histograms of each stream (its tag `<stream>`, from the intended send
/// time), keyed by stream name. A tag that could also be another stream's `.service` tag is
/// ambiguous and left out (its windows fall back to the timeline bound).
fn stream_histograms<'a>(
    mut log: SecondHistograms,
    streams: impl Iterator<Item = &'a String>,
) -> SecondHistograms {
    let streams: Vec<&String> = streams.collect();
    let tags: Vec<String> = streams.iter().map(|s| hlog::tag(s)).collect();
    let mut out = SecondHistograms::default();
    for (stream, tag) in streams.iter().zip(&tags) {
        let ambiguous = tags.iter().any(|t| format!("{t}.service") == *tag);
        if let Some(series) = log.take(tag)
            && !ambiguous
        {
            out.set(stream, series);
        }
    }
    out
}

/// Profile stages from `run.json`: `[seconds, from, to]` per stage, back to back.
fn phases(meta: &RunMeta) -> Vec<Phase> {
    let mut out = Vec::new();
    for s in &meta.profile.streams {
        let mut t = 0.0;
        for (index, [len, from, to]) in s.stages.iter().copied().enumerate() {
            out.push(Phase {
                stream: s.name.clone(),
                index,
                start: t,
                end: t + len,
                from_rate: from,
                to_rate: to,
            });
            t += len;
        }
    }
    out
}

/// Folds journal entries into fault windows, times relative to `start`.
pub fn fault_windows(entries: &[journal::Entry], start: DateTime<Utc>) -> Vec<FaultWindow> {
    let rel = |t: DateTime<Utc>| (t - start).num_milliseconds() as f64 / 1000.0;
    let mut out: Vec<FaultWindow> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for e in entries {
        let t = rel(e.time);
        match &e.event {
            Event::Intent { fault, choice, .. } => {
                by_id.insert(fault.id.clone(), out.len());
                out.push(FaultWindow {
                    name: fault.name.clone(),
                    id: fault.id.clone(),
                    kind: fault.type_name.clone(),
                    start: t,
                    end: None,
                    targets: choice.chosen.iter().map(ToString::to_string).collect(),
                });
            }
            Event::Applied { fault, .. } | Event::ApplyFailed { fault, .. } => {
                if let Some(&i) = by_id.get(&fault.id) {
                    out[i].start = t;
                }
            }
            Event::Irreversible { fault } => {
                if let Some(&i) = by_id.get(&fault.id) {
                    out[i].start = t;
                    out[i].end = Some(t);
                }
            }
            Event::Undone { fault, .. } => {
                if let Some(&i) = by_id.get(&fault.id) {
                    out[i].end = Some(t);
                }
            }
            Event::UndoFailed { fault, .. } => {
                if let Some(&i) = by_id.get(&fault.id) {
                    out[i].end = None;
                }
            }
            Event::RunStarted { .. } | Event::RunEnded { .. } => {}
        }
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

/// One line of `activities.jsonl`.
#[derive(Debug, Deserialize)]
struct ActivityLine {
    t_ms: u64,
    group: String,
    #[serde(default = "scaling")]
    kind: String,
    from: Option<u32>,
    to: Option<u32>,
    instance: Option<String>,
    #[serde(default)]
    cause: String,
}

fn scaling() -> String {
    "scaling".into()
}

fn read_activities(path: &Path) -> Result<Vec<Activity>, LoadError> {
    let mut lines = Vec::new();
    jsonl::for_each(path, |a: ActivityLine| lines.push(a))?;
    let mut out = Vec::new();
    for (i, a) in lines.into_iter().enumerate() {
        let kind = match a.kind.as_str() {
            "scaling" => ActivityKind::Scaling,
            "launch" => ActivityKind::Launch,
            "terminate" => ActivityKind::Terminate,
            other => {
                return Err(FileError::parse(
                    path,
                    i + 1,
                    format!("unknown kind `{other}`: expected scaling, launch or terminate"),
                )
                .into());
            }
        };
        out.push(Activity {
            t: a.t_ms as f64 / 1000.0,
            group: a.group,
            kind,
            from: a.from,
            to: a.to,
            instance: a.instance,
            cause: a.cause,
        });
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(out)
}

/// What the analyzer reads of a line of `accepted.jsonl` (other fields are ignored).
#[derive(Debug, Deserialize)]
struct AcceptedLine {
    id: String,
    t_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeLine {
    Completed,
    DeadLettered,
}

impl From<OutcomeLine> for Outcome {
    fn from(o: OutcomeLine) -> Outcome {
        match o {
            OutcomeLine::Completed => Outcome::Completed,
            OutcomeLine::DeadLettered => Outcome::DeadLettered,
        }
    }
}

fn completed() -> OutcomeLine {
    OutcomeLine::Completed
}

/// What the analyzer reads of a line of `completions.jsonl` (other fields are ignored).
#[derive(Debug, Deserialize)]
struct CompletionLine {
    id: String,
    done_ms: u64,
    #[serde(default = "completed")]
    outcome: OutcomeLine,
}

#[derive(Debug, Deserialize)]
struct LedgerFile {
    /// `null` when the final queue depth could not be measured.
    still_queued: Option<u64>,
    /// The end-of-run census (files written before it existed have `still_queued` only).
    #[serde(default)]
    queue: Option<QueueCensus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_rows_become_seconds_with_gaps() {
        // The header of timelines written before the TLS columns: they still read.
        let old_header = "second,stream,intended,sent,ok,err_refused,err_timeout,err_reset,\
            err_4xx,err_5xx,err_other,err_aborted,err_throttled,err_rejected,late,dropped,\
            in_flight,bytes_sent,bytes_received,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,u_p50_ms,\
            u_p90_ms,u_p99_ms,u_p999_ms,u_max_ms,lag_p99_ms";
        let text = format!(
            "{}\n0,up,10,10,9,0,0,0,0,1,0,0,0,0,0,0,0,100,200,5.0,8.0,9.0,9.5,10.0,,,,,,\n2,\"a,b\",1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,1,1,,,,,,,,,,,\n3,up,1,",
            old_header
        );
        let rows = crate::results::timeline::read(text.as_bytes(), Path::new("t.csv")).unwrap();
        let t = timeline_seconds(rows);
        assert_eq!(t["up"][0].ok, 9);
        assert_eq!(t["up"][0].failed(), 1);
        assert_eq!(t["up"][0].latency.unwrap().p99, 9.0);
        assert_eq!(t["a,b"].len(), 3);
        assert_eq!(t["a,b"][2].latency, None);
        let bad = format!("{}\nx,up\n0,up", crate::results::timeline::header());
        assert!(matches!(
            crate::results::timeline::read(bad.as_bytes(), Path::new("t.csv")),
            Err(FileError::Parse { line: 2, .. })
        ));
    }
}
