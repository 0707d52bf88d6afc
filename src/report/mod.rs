//! The HTML run report, `results/<run-id>/report.html`: one self-contained file (inline CSS
//! and SVG, no network), written at the end of `run`, `demo`, `load` and `analyze`, and
//! re-rendered by `shakedown report RUN_DIR`. What it shows: `docs/report.md`.
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`model`] | [`RunData`] (the run's files, parsed) -> [`Report`]: charts on the shared time axis, verdict rows, tables, inputs | yes |
//! | [`svg`] | a chart -> inline SVG: scales, ticks, min/max downsampling, fault shading, activity markers, evidence boxes; the latency spectrum | yes |
//! | [`html`] | a [`Report`] -> the page (light, dark and print styles; a self-check script); escaping | yes |
//!
//! The IO is here: [`read_run`] reads a run directory into [`RunData`], [`write_report`]
//! renders it and writes the file atomically.

pub mod html;
pub mod model;
pub mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use model::{ProbeRole, Report, RunData};

use crate::analyze::view::Latency;
use crate::analyze::{LoadError, PromiseKind, RunView, VerdictFile, load_run};
use crate::results::dir::{EXPERIMENT_FILE, RUN_FILE, TIMELINE_FILE};
use crate::results::file::write_atomic;
use crate::results::{FileError, RunDir};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{}: not a run directory (no {RUN_FILE} and no {TIMELINE_FILE}); give a directory a run wrote, e.g. results/<run-id>",
        .0.display()
    )]
    NotARunDir(PathBuf),
    #[error("{0} (fix or remove that file, then run `shakedown report` again)")]
    File(#[from] FileError),
    #[error("{0} (fix or remove that file, then run `shakedown report` again)")]
    Load(#[from] LoadError),
}

/// Reads everything the report shows from a run directory. Missing files are missing
/// data (the report says so); a file that exists must parse.
pub fn read_run(dir: &Path) -> Result<RunData, ReportError> {
    read_run_with(dir, None)
}

/// [`read_run`], reusing the analyzer's view of the run when the caller has just loaded it
/// (`analyze`, `run`, `demo`): the ledger files of millions of messages are read once.
pub fn read_run_with(dir: &Path, view: Option<RunView>) -> Result<RunData, ReportError> {
    let run = RunDir::at(dir);
    if !dir.is_dir() || !(run.run_json().exists() || run.timeline().exists()) {
        return Err(ReportError::NotARunDir(dir.to_owned()));
    }
    let mut view = match view {
        Some(view) => view,
        None => load_run(dir)?,
    };
    let meta = run.read_meta()?;
    let verdicts: Option<VerdictFile> = run.read_verdict()?;
    let uncorrected = run
        .read_timeline()?
        .map(|rows| {
            let mut out: BTreeMap<String, Vec<Option<Latency>>> = BTreeMap::new();
            for (_, r) in rows {
                let s = r.second as usize;
                let series = out.entry(r.stream.clone()).or_default();
                if series.len() <= s {
                    series.resize(s + 1, None);
                }
                series[s] = Latency::from_columns([
                    r.u_p50_ms,
                    r.u_p90_ms,
                    r.u_p99_ms,
                    r.u_p999_ms,
                    r.u_max_ms,
                ]);
            }
            out
        })
        .unwrap_or_default();
    let latency_log = run.read_latency()?;
    let mut notes = Vec::new();
    // The analyzer's join (accepted -> first completion), grouped by completion second; it
    // exists when run.json and accepted.jsonl do.
    let e2e_ms = match (&meta, view.ledger.as_mut()) {
        (Some(m), Some(ledger)) => {
            // Completions stamped past the run's end (plus a minute; a week for a run that
            // never ended) are left out: a bad clock must not stretch the time axis.
            let last_s = m.ended_at.map_or(LATEST_COMPLETION_S, |end| {
                ((end - m.started_at).num_seconds().max(0) as usize + 60).min(LATEST_COMPLETION_S)
            });
            let (e2e, late) = end_to_end(std::mem::take(&mut ledger.e2e_ms_by_done_s), last_s);
            if late > 0 {
                notes.push(format!(
                    "{late} completion(s) stamped more than a minute after the run ended: left out of the end-to-end chart"
                ));
            }
            Some(e2e)
        }
        _ => None,
    };
    let experiment_text = run.read_experiment()?;
    let probe_roles = experiment_text
        .as_deref()
        .map(probe_roles)
        .unwrap_or_default();
    let pricing = if experiment_text.is_some() {
        match crate::analyze::load_promises(&run.experiment()) {
            Ok(promises) => promises.into_iter().find_map(|p| match p.kind {
                PromiseKind::Cost(c) => Some(c),
                _ => None,
            }),
            Err(_) => {
                notes.push(format!(
                    "{EXPERIMENT_FILE}: its promises do not parse (`shakedown validate` says why); cost not charted"
                ));
                None
            }
        }
    } else {
        None
    };
    // The profile file as recorded (relative to where the run was started): shown when it
    // can still be read from here.
    let profile_text = meta
        .as_ref()
        .and_then(|m| m.profile.path.clone())
        .and_then(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p, text))
        });
    Ok(RunData {
        run_id: run.run_id(),
        view,
        meta,
        verdicts,
        uncorrected,
        latency_log,
        e2e_ms,
        probe_roles,
        pricing,
        experiment_text,
        profile_text,
        notes,
    })
}

/// The latest second a completion is charted at when the run's end is unknown: a week.
const LATEST_COMPLETION_S: usize = 7 * 24 * 3600;

/// End-to-end latencies (ms) grouped by completion second, cut after second `last_s`; and
/// how many completions were cut.
fn end_to_end(mut by_second: Vec<Vec<u32>>, last_s: usize) -> (Vec<Vec<u32>>, u64) {
    let late = by_second
        .get(last_s + 1..)
        .map_or(0, |rest| rest.iter().map(|s| s.len() as u64).sum());
    by_second.truncate(last_s + 1);
    (by_second, late)
}

/// The role of each `[[probe]]` of an experiment's text, by name (what does not parse is
/// left to the name-based guess).
fn probe_roles(text: &str) -> BTreeMap<String, ProbeRole> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return BTreeMap::new();
    };
    let Some(probes) = doc.get("probe").and_then(|p| p.as_array()) else {
        return BTreeMap::new();
    };
    probes
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let kind = p.get("kind")?.as_str()?;
            let metric = p.get("metric").and_then(|m| m.as_str()).unwrap_or("");
            let role = match kind {
                "sqs" if metric != "oldest_age" => ProbeRole::Queue,
                "ec2" | "asg" | "balancer" | "target-health" => ProbeRole::Instances,
                _ => ProbeRole::Other,
            };
            Some((name.to_string(), role))
        })
        .collect()
}

/// Renders the report of a run directory.
pub fn render_dir(dir: &Path) -> Result<String, ReportError> {
    Ok(html::render(&Report::build(read_run(dir)?)))
}

/// Renders the report of `dir` and writes it atomically to `out` (default:
/// `<dir>/report.html`); returns the path written.
pub fn write_report(dir: &Path, out: Option<&Path>) -> Result<PathBuf, ReportError> {
    write_report_with(dir, out, None)
}

/// [`write_report`], reusing an already loaded view of the run (see [`read_run_with`]).
pub fn write_report_with(
    dir: &Path,
    out: Option<&Path>,
    view: Option<RunView>,
) -> Result<PathBuf, ReportError> {
    let progress = crate::term::spinner("rendering report.html");
    let page = read_run_with(dir, view).map(|data| html::render(&Report::build(data)));
    drop(progress);
    let page = page?;
    let path = out.map_or_else(|| RunDir::at(dir).report(), Path::to_path_buf);
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// The end-of-run hook of `run`, `demo`, `load` and `analyze`: writes the report and prints
/// `report: <path>`, or `report: <error>` on stderr. Never fails the run.
pub fn write_and_announce(dir: &Path) {
    write_and_announce_with(dir, None);
}

/// [`write_and_announce`], reusing an already loaded view of the run.
pub fn write_and_announce_with(dir: &Path, view: Option<RunView>) {
    match write_report_with(dir, None, view) {
        Ok(path) => crate::outln!("report: {}", path.display()),
        Err(e) => eprintln!("report: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_after_the_last_second_are_cut_and_counted() {
        let by_second = vec![vec![5], vec![], vec![7, 8], vec![9]];
        assert_eq!(end_to_end(by_second.clone(), 9), (by_second.clone(), 0));
        assert_eq!(end_to_end(by_second, 1), (vec![vec![5], vec![]], 3));
    }

    #[test]
    fn probe_roles_come_from_the_experiment() {
        let roles = probe_roles(
            r#"
[[probe]]
name = "backlog"
kind = "sqs"
metric = "visible"
[[probe]]
name = "age"
kind = "sqs"
metric = "oldest_age"
[[probe]]
name = "workers"
kind = "ec2"
"#,
        );
        assert_eq!(roles["backlog"], ProbeRole::Queue);
        assert_eq!(roles["age"], ProbeRole::Other);
        assert_eq!(roles["workers"], ProbeRole::Instances);
        assert!(probe_roles("not toml [").is_empty());
    }

    #[test]
    fn a_directory_without_run_files_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_report(dir.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("not a run directory") && e.contains("results/<run-id>"),
            "{e}"
        );
        // A corrupt file names itself.
        std::fs::write(dir.path().join(RUN_FILE), "{ nope").unwrap();
        let e = write_report(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("run.json") && e.contains("fix or remove"), "{e}");
    }

    #[test]
    fn an_interrupted_run_without_verdicts_or_ledger_renders() {
        // What a run killed early leaves: run.json ("running"), a timeline, probes.
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/examples/demo-quick");
        let dir = tempfile::tempdir().unwrap();
        for f in [RUN_FILE, TIMELINE_FILE, "probes.csv"] {
            std::fs::copy(example.join(f), dir.path().join(f)).unwrap();
        }
        let run = std::fs::read_to_string(dir.path().join(RUN_FILE))
            .unwrap()
            .replace("\"completed\"", "\"running\"");
        std::fs::write(dir.path().join(RUN_FILE), run).unwrap();
        let path = write_report(dir.path(), None).unwrap();
        assert_eq!(path, dir.path().join("report.html"));
        let page = std::fs::read_to_string(path).unwrap();
        assert!(page.contains("No verdicts"));
        assert!(
            page.contains("experiment run, 44s, running"),
            "the status is shown"
        );
        assert!(
            page.contains("journal.jsonl missing"),
            "what is missing is noted"
        );
        assert!(page.contains("id=\"chart-queue\""));
    }
}
