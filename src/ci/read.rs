//! The CI part's IO: a run directory -> [`RunReport`] (for `junit.xml` and `summary.md`)
//! and -> [`RunSummary`] (for the gate); writing those files and baseline JSON files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::cases::RunReport;
use super::gate::baseline::{
    FORMAT_VERSION, Identity, KIND, QuantileSeries, RunSummary, StreamSeries, fnv1a, round_ms,
};
use super::gate::spec::Quantile;
use crate::analyze::{LoadError, VerdictFile};
use crate::metrics::{SecondHistograms, decode_histogram, new_histogram};
use crate::results::jsonl::JsonlError;
use crate::results::{FileError, RunDir, RunMeta, hlog};

/// Why a run or a baseline could not be read or a CI file written.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{}: not a run directory nor a baseline file", .0.display())]
    NotFound(PathBuf),
}

impl From<JsonlError> for CiError {
    fn from(e: JsonlError) -> CiError {
        FileError::from(e).into()
    }
}

/// Reads what `junit.xml` and `summary.md` show.
pub fn read_report(dir: &Path) -> Result<RunReport, CiError> {
    let run = RunDir::open(dir).map_err(|_| CiError::NotFound(dir.to_owned()))?;
    let meta = run.read_meta()?;
    let verdicts: Option<VerdictFile> = crate::results::file::read_json(&run.verdict())?;
    let experiment = read_experiment(&run)?
        .and_then(|t| t.get("name").and_then(|n| n.as_str()).map(String::from));
    Ok(RunReport {
        run_id: run.run_id(),
        meta,
        experiment,
        verdicts,
    })
}

/// Writes `junit.xml` and `summary.md` into a run directory (each atomically).
pub fn write_reports(dir: &Path) -> Result<(), CiError> {
    let report = read_report(dir)?;
    let run = RunDir::at(dir);
    write_atomic(&run.junit(), &super::junit::render(&report))?;
    write_atomic(&run.summary(), &super::summary::render(&report))?;
    Ok(())
}

/// The end-of-run hook of `run`, `demo`, `load` and `analyze`: writes `junit.xml` and
/// `summary.md`; a failure is printed to stderr and changes nothing else (the run and its
/// exit code stand).
pub fn write_reports_or_warn(dir: &Path) {
    if let Err(e) = write_reports(dir) {
        eprintln!("ci: junit.xml / summary.md not written: {e}");
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), CiError> {
    Ok(crate::results::file::write_atomic(path, text.as_bytes())?)
}

fn read_experiment(run: &RunDir) -> Result<Option<toml::Table>, CiError> {
    let path = run.experiment();
    match crate::results::file::read_optional(&path)? {
        None => Ok(None),
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            toml::from_str(&text)
                .map(Some)
                .map_err(|e| CiError::Format {
                    path,
                    message: e.to_string(),
                })
        }
    }
}

/// A run directory, or a baseline file written by [`save_summary`].
pub fn read_summary(path: &Path) -> Result<RunSummary, CiError> {
    if path.is_dir() {
        return summarize_run(path);
    }
    let text = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CiError::NotFound(path.to_owned()),
        _ => FileError::io(path, e).into(),
    })?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| CiError::Format {
        path: path.to_owned(),
        message: format!("not JSON: {e}"),
    })?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
        return Err(CiError::Format {
            path: path.to_owned(),
            message: format!(
                "not a gate baseline (no \"kind\": \"{KIND}\"); write one with `shakedown gate RUN_DIR --save FILE`"
            ),
        });
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(CiError::Format {
            path: path.to_owned(),
            message: format!(
                "baseline format_version {version:?}; this shakedown reads {FORMAT_VERSION}"
            ),
        });
    }
    serde_json::from_value(value).map_err(|e| CiError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes a baseline file (compact JSON, one line per stream at most a few KB).
pub fn save_summary(path: &Path, summary: &RunSummary) -> Result<(), CiError> {
    let mut json = serde_json::to_string(summary).map_err(|e| FileError::io(path, e.into()))?;
    json.push('\n');
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| FileError::io(parent, e))?;
    }
    write_atomic(path, &json)
}

/// Reduces a run directory to what the gate compares.
pub fn summarize_run(dir: &Path) -> Result<RunSummary, CiError> {
    let run = RunDir::open(dir).map_err(|_| CiError::NotFound(dir.to_owned()))?;
    let meta = run.read_meta()?.ok_or_else(|| CiError::Format {
        path: run.run_json(),
        message: "missing: the gate needs run.json (what ran, its seed)".into(),
    })?;
    let experiment = read_experiment(&run)?;
    let identity = identity(&meta, experiment);
    let rows = run.read_timeline()?.ok_or_else(|| CiError::Format {
        path: run.timeline(),
        message: "missing: the gate needs timeline.csv".into(),
    })?;
    let mut log = run.read_latency()?;
    let mut streams: BTreeMap<String, StreamSeries> = BTreeMap::new();
    let mut timeline: BTreeMap<String, Vec<Option<[Option<f64>; 5]>>> = BTreeMap::new();
    for (_, row) in rows {
        let s = streams
            .entry(row.stream.clone())
            .or_insert_with(|| StreamSeries {
                ok: 0,
                failed: 0,
                latency: QuantileSeries::default(),
            });
        s.ok += row.ok;
        s.failed += row.errors().iter().sum::<u64>();
        let t = timeline.entry(row.stream.clone()).or_default();
        let sec = row.second as usize;
        if t.len() <= sec {
            t.resize(sec + 1, None);
        }
        t[sec] = Some(row.latency_ms());
    }
    for (name, s) in streams.iter_mut() {
        let from_log = log
            .as_mut()
            .and_then(|l| latency_from_log(l, name).transpose());
        s.latency = match from_log {
            Some(series) => series.map_err(|message| CiError::Format {
                path: run.latency(),
                message,
            })?,
            None => latency_from_timeline(&timeline[name], &meta, name),
        };
    }
    let e2e = e2e(&run, &meta)?;
    Ok(RunSummary {
        format_version: FORMAT_VERSION,
        kind: KIND.into(),
        run_id: run.run_id(),
        identity,
        streams,
        e2e,
    })
}

fn identity(meta: &RunMeta, experiment: Option<toml::Table>) -> Identity {
    let (name, digest) = match experiment {
        Some(mut t) => {
            let name = t.get("name").and_then(|n| n.as_str()).map(String::from);
            // The system under test may change between the two runs; nothing else.
            t.remove("target");
            let canonical = toml::to_string(&t).unwrap_or_default();
            (name, Some(fnv1a(canonical.as_bytes())))
        }
        None => (None, None),
    };
    let traffic = serde_json::to_string(&(&meta.profile.streams, &meta.mode)).unwrap_or_default();
    Identity {
        run_kind: meta.kind.clone(),
        experiment: name,
        experiment_digest: digest,
        profile: meta.profile.name.clone(),
        profile_digest: fnv1a(traffic.as_bytes()),
        seed: meta.seed,
        tool_version: meta.tool.version.clone(),
    }
}

/// Per-second and whole-run quantiles from `latency.hlog` (exact); `None` when the log has
/// no series for the stream.
fn latency_from_log(
    log: &mut SecondHistograms,
    stream: &str,
) -> Result<Option<QuantileSeries>, String> {
    let Some(series) = log.take(&hlog::tag(stream)) else {
        return Ok(None);
    };
    let mut hists = Vec::with_capacity(series.len());
    for encoded in &series {
        hists.push(match encoded {
            Some(e) => Some(decode_histogram(e)?),
            None => None,
        });
    }
    Ok(Some(quantile_series(&hists)))
}

/// Quantiles of per-second histograms (microseconds) and of their union.
fn quantile_series(hists: &[Option<Histogram<u64>>]) -> QuantileSeries {
    let mut total = new_histogram();
    let mut out = QuantileSeries::default();
    for q in Quantile::ALL {
        out.seconds_ms.insert(
            q.name().into(),
            hists
                .iter()
                .map(|h| {
                    h.as_ref()
                        .filter(|h| !h.is_empty())
                        .map(|h| round_ms(h.value_at_quantile(q.level()) as f64 / 1000.0))
                })
                .collect(),
        );
    }
    for h in hists.iter().flatten() {
        let _ = total.add(h);
    }
    out.count = total.len();
    if !total.is_empty() {
        for q in Quantile::ALL {
            out.whole_ms.insert(
                q.name().into(),
                round_ms(total.value_at_quantile(q.level()) as f64 / 1000.0),
            );
        }
    }
    out
}

/// Without `latency.hlog`: the timeline's per-second percentiles and `run.json`'s whole-run
/// ones.
fn latency_from_timeline(
    seconds: &[Option<[Option<f64>; 5]>],
    meta: &RunMeta,
    stream: &str,
) -> QuantileSeries {
    let mut out = QuantileSeries::default();
    for (i, q) in Quantile::ALL.into_iter().enumerate() {
        out.seconds_ms.insert(
            q.name().into(),
            seconds.iter().map(|s| s.and_then(|p| p[i])).collect(),
        );
    }
    if let Some(s) = meta.summary.iter().find(|s| s.stream == stream)
        && s.latency_ms.count > 0
    {
        let l = &s.latency_ms;
        out.count = l.count;
        for (q, v) in Quantile::ALL.into_iter().zip([l.p50, l.p90, l.p99, l.p999]) {
            out.whole_ms.insert(q.name().into(), v);
        }
    }
    out
}

/// End-to-end latency by the second each message was accepted in: accepted -> its first
/// `completed` record, from the analyzer's join ([`crate::analyze::load::read_ledger`]).
/// Messages never completed (or dead-lettered) are left out: the no-loss promise counts
/// those.
fn e2e(run: &RunDir, meta: &RunMeta) -> Result<Option<QuantileSeries>, CiError> {
    if !run.completions().exists() {
        return Ok(None);
    }
    let start_ms = meta.started_at.timestamp_millis().max(0) as u64;
    let Some((ledger, _)) =
        crate::analyze::load::read_ledger(run, start_ms).map_err(|e| match e {
            LoadError::File(e) => CiError::File(e),
            other => CiError::Format {
                path: run.accepted(),
                message: other.to_string(),
            },
        })?
    else {
        return Ok(None);
    };
    let mut hists: Vec<Option<Histogram<u64>>> = Vec::new();
    for (accepted_ms, done_ms) in ledger.joined() {
        let second = (accepted_ms / 1000) as usize;
        if hists.len() <= second {
            hists.resize(second + 1, None);
        }
        let h = hists[second].get_or_insert_with(new_histogram);
        let _ = h.record(done_ms.saturating_sub(accepted_ms).max(1) * 1000);
    }
    if hists.iter().all(Option::is_none) {
        return Ok(None);
    }
    Ok(Some(quantile_series(&hists)))
}
