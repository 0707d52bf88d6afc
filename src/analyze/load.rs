//! Reading a results directory into a [`RunView`], and writing `verdict.json`: the
//! analyzer's only IO. File formats: `results/README.md`.
//!
//! A missing file is missing data, never an error: the view lacks that part (and
//! [`RunView::notes`] says so), and the promises that need it are not evaluable. A file
//! that exists but cannot be read or parsed is an error ([`LoadError`]), except a torn
//! last line, which a run killed mid-write leaves behind and which is skipped.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::verdict::VerdictFile;
use super::view::{
    Activity, ActivityKind, FaultWindow, Latency, LedgerBuilder, Outcome, Phase, RunView, Second,
};
use crate::chaos::journal::{self, Event};
use crate::results::dir::{
    ACCEPTED_FILE, ACTIVITIES_FILE, COMPLETIONS_FILE, JOURNAL_FILE, LEDGER_FILE, PROBES_FILE,
    RUN_FILE, TIMELINE_FILE, VERDICT_FILE,
};
use crate::ledger::LedgerError;
use crate::ledger::census::QueueCensus;
use crate::metrics::ErrorClass;
use crate::results::RunMeta;


/// Why a results directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        /// 1-based; 0 for the whole file.
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

/// Reads a file; `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, LoadError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LoadError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads everything a run directory holds.
pub fn load_run(dir: &Path) -> Result<RunView, LoadError> {
    if !dir.is_dir() {
        return Err(LoadError::Io {
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "not a results directory"),
        });
    }
    let mut view = RunView::default();
    let note = |view: &mut RunView, file: &str| view.notes.push(format!("{file} missing"));
    let meta: Option<RunMeta> = match read_optional(&dir.join(RUN_FILE))? {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| LoadError::Parse {
            path: dir.join(RUN_FILE),
            line: e.line(),
            message: e.to_string(),
        })?),
        None => None,
    };
    match &meta {
        Some(m) => view.phases = phases(m),
        None => note(&mut view, RUN_FILE),
    }
    match read_optional(&dir.join(TIMELINE_FILE))? {
        Some(text) => view.streams = parse_timeline(&text, &dir.join(TIMELINE_FILE))?,
        None => note(&mut view, TIMELINE_FILE),
    }
    // The harness's own timekeeping (runs before it existed have no harness.csv).
    let harness_path = dir.join(crate::results::harness::HARNESS_FILE);
    if let Some(text) = read_optional(&harness_path)? {
        view.harness_lag_ms = parse_probes(&text, &harness_path)?.remove("lag_max_ms");
    }
    match read_optional(&dir.join(PROBES_FILE))? {
        Some(text) => view.probes = parse_probes(&text, &dir.join(PROBES_FILE))?,
        None => note(&mut view, PROBES_FILE),
    }
    let journal_path = dir.join(JOURNAL_FILE);
    match (journal_path.exists(), &meta) {
        (false, _) => note(&mut view, JOURNAL_FILE),
        (true, None) => view.notes.push(format!(
            "{JOURNAL_FILE} not usable without {RUN_FILE} (its start time)"
        )),
        (true, Some(m)) => {
            view.faults = fault_windows(&journal::read(&journal_path)?, m.started_at)
        }
    }
    let activities = dir.join(ACTIVITIES_FILE);
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
    let accepted_path = dir.join(ACCEPTED_FILE);
    if !accepted_path.exists() {
        note(&mut view, ACCEPTED_FILE);
    } else if meta.is_none() {
        view.notes.push(format!(
            "{ACCEPTED_FILE} not usable without {RUN_FILE} (its start time)"
        ));
    } else {
        // Streamed, never held whole: a run of millions of messages costs a few bytes each.
        let mut ledger = LedgerBuilder::default();
        stream_jsonl(&accepted_path, |a: AcceptedLine| {
            ledger.accept(&a.id, rel(a.t_ms))
        })?;
        let completions_path = dir.join(COMPLETIONS_FILE);
        if completions_path.exists() {
            stream_jsonl(&completions_path, |c: CompletionLine| {
                ledger.complete(&c.id, rel(c.done_ms), c.outcome.into())
            })?;
        } else {
            note(&mut view, COMPLETIONS_FILE);
        }
        let census = match read_optional(&dir.join(LEDGER_FILE))? {
            Some(text) => {
                let l: LedgerFile = serde_json::from_str(&text).map_err(|e| LoadError::Parse {
                    path: dir.join(LEDGER_FILE),
                    line: e.line(),
                    message: e.to_string(),
                })?;
                l.queue.or(l.still_queued.map(QueueCensus::single))
            }
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
    let path = dir.join(VERDICT_FILE);
    let tmp = dir.join("verdict.json.tmp");
    let io_err = |source| LoadError::Io {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(file).expect("verdicts serialize");
    fs::write(&tmp, json).map_err(io_err)?;
    fs::rename(&tmp, &path).map_err(io_err)
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

/// Splits one CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().expect("one cell").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells
}

/// The data lines of a CSV text with their 1-based numbers, and the header.
fn csv_lines(text: &str) -> (Vec<String>, Vec<(usize, &str)>) {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let header = lines.next().map(|(_, h)| split_csv(h)).unwrap_or_default();
    (
        header,
        lines.filter(|(_, l)| !l.trim().is_empty()).collect(),
    )
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> LoadError {
    LoadError::Parse {
        path: path.to_owned(),
        line,
        message: message.into(),
    }
}

/// Parses `timeline.csv` (columns found by name, so added columns do not break it).
pub fn parse_timeline(text: &str, path: &Path) -> Result<BTreeMap<String, Vec<Second>>, LoadError> {
    let (header, lines) = csv_lines(text);
    let col = |name: &str| header.iter().position(|h| h == name);
    let need =
        |name: &str| col(name).ok_or_else(|| parse_err(path, 1, format!("no `{name}` column")));
    let (second, stream) = (need("second")?, need("stream")?);
    let counts = ["intended", "sent", "ok", "late", "dropped", "in_flight"].map(col);
    let errors = ErrorClass::ALL.map(|c| col(&format!("err_{}", c.name())));
    let lat = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"].map(col);
    let mut out: BTreeMap<String, Vec<Second>> = BTreeMap::new();
    let last = lines.last().map(|l| l.0);
    for (n, line) in &lines {
        let cells = split_csv(line);
        let row = (|| -> Result<(usize, String, Second), String> {
            let cell = |i: usize| {
                cells
                    .get(i)
                    .map(String::as_str)
                    .ok_or_else(|| format!("missing cell {}", i + 1))
            };
            let int = |i: Option<usize>| -> Result<u64, String> {
                match i {
                    None => Ok(0),
                    Some(i) => {
                        let c = cell(i)?;
                        if c.is_empty() {
                            Ok(0)
                        } else {
                            c.parse().map_err(|_| {
                                format!("`{c}` in column `{}` is not a count", header[i])
                            })
                        }
                    }
                }
            };
            let float = |i: Option<usize>| -> Result<Option<f64>, String> {
                match i {
                    None => Ok(None),
                    Some(i) => {
                        let c = cell(i)?;
                        if c.is_empty() {
                            Ok(None)
                        } else {
                            c.parse().map(Some).map_err(|_| {
                                format!("`{c}` in column `{}` is not a number", header[i])
                            })
                        }
                    }
                }
            };
            let s: usize = cell(second)?
                .parse()
                .map_err(|_| "bad `second`".to_string())?;
            let mut sec = Second {
                intended: int(counts[0])?,
                sent: int(counts[1])?,
                ok: int(counts[2])?,
                late: int(counts[3])?,
                dropped: int(counts[4])?,
                in_flight: int(counts[5])?,
                ..Second::default()
            };
            for (k, c) in errors.iter().enumerate() {
                sec.errors[k] = int(*c)?;
            }
            let v = [
                float(lat[0])?,
                float(lat[1])?,
                float(lat[2])?,
                float(lat[3])?,
                float(lat[4])?,
            ];
            if let (Some(p50), Some(p90), Some(p99), Some(max)) = (v[0], v[1], v[2], v[4]) {
                sec.latency = Some(Latency {
                    p50,
                    p90,
                    p99,
                    p999: v[3].unwrap_or(max),
                    max,
                });
            }
            Ok((s, cell(stream)?.to_string(), sec))
        })();
        match row {
            Ok((s, name, sec)) => {
                let series = out.entry(name).or_default();
                if series.len() <= s {
                    series.resize(s + 1, Second::default());
                }
                series[s] = sec;
            }
            Err(_) if Some(*n) == last => break,
            Err(message) => return Err(parse_err(path, *n, message)),
        }
    }
    Ok(out)
}

/// Parses `probes.csv`: `second,<probe>...`, an empty cell (or a missing row) is a gap.
pub fn parse_probes(
    text: &str,
    path: &Path,
) -> Result<BTreeMap<String, Vec<Option<f64>>>, LoadError> {
    let (header, lines) = csv_lines(text);
    if header.first().map(String::as_str) != Some("second") {
        return Err(parse_err(path, 1, "the first column must be `second`"));
    }
    let names = &header[1..];
    let mut out: BTreeMap<String, Vec<Option<f64>>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    let last = lines.last().map(|l| l.0);
    for (n, line) in &lines {
        let cells = split_csv(line);
        let row = (|| -> Result<(usize, Vec<Option<f64>>), String> {
            let s = cells[0]
                .parse::<usize>()
                .map_err(|_| format!("bad second `{}`", cells[0]))?;
            if cells.len() != header.len() {
                return Err(format!(
                    "{} cells, the header has {}",
                    cells.len(),
                    header.len()
                ));
            }
            let values = cells[1..]
                .iter()
                .map(|c| {
                    if c.trim().is_empty() {
                        Ok(None)
                    } else {
                        c.trim()
                            .parse::<f64>()
                            .map(Some)
                            .map_err(|_| format!("`{c}` is not a number"))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok((s, values))
        })();
        match row {
            Ok((s, values)) => {
                for (name, v) in names.iter().zip(values) {
                    let series = out.get_mut(name).expect("named in the header");
                    if series.len() <= s {
                        series.resize(s + 1, None);
                    }
                    series[s] = v;
                }
            }
            Err(_) if Some(*n) == last => break,
            Err(message) => return Err(parse_err(path, *n, message)),
        }
    }
    Ok(out)
}

/// Streams a JSON-lines file through `f` line by line; a bad last line (a torn write) is
/// skipped, any other bad line is an error naming it.
fn stream_jsonl<T: for<'de> Deserialize<'de>>(
    path: &Path,
    f: impl FnMut(T),
) -> Result<(), LoadError> {
    crate::ledger::writer::for_each_json_line(path, f).map_err(|e| match e {
        LedgerError::Io { path, source } => LoadError::Io { path, source },
        LedgerError::Parse {
            path,
            line,
            message,
        } => LoadError::Parse {
            path,
            line,
            message,
        },
        other => LoadError::Parse {
            path: path.to_owned(),
            line: 0,
            message: other.to_string(),
        },
    })
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
    stream_jsonl(path, |a: ActivityLine| lines.push(a))?;
    let mut out = Vec::new();
    for (i, a) in lines.into_iter().enumerate() {
        let kind = match a.kind.as_str() {
            "scaling" => ActivityKind::Scaling,
            "launch" => ActivityKind::Launch,
            "terminate" => ActivityKind::Terminate,
            other => {
                return Err(parse_err(
                    path,
                    i + 1,
                    format!("unknown kind `{other}`: expected scaling, launch or terminate"),
                ));
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
    fn timeline_rows_by_column_name_with_gaps_and_a_torn_tail() {
        let text = format!(
            "{}\n0,up,10,10,9,0,0,0,0,1,0,0,0,0,0,0,0,100,200,5.0,8.0,9.0,9.5,10.0,,,,,,\n2,\"a,b\",1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,1,1,,,,,,,,,,,\n3,up,1,",
            crate::results::timeline::header()
        );
        let t = parse_timeline(&text, Path::new("t.csv")).unwrap();
        assert_eq!(t["up"][0].ok, 9);
        assert_eq!(t["up"][0].failed(), 1);
        assert_eq!(t["up"][0].latency.unwrap().p99, 9.0);
        assert_eq!(t["a,b"].len(), 3);
        assert_eq!(t["a,b"][2].latency, None);
        let bad = format!("{}\nx,up\n0,up", crate::results::timeline::header());
        assert!(matches!(
            parse_timeline(&bad, Path::new("t.csv")),
            Err(LoadError::Parse { line: 2, .. })
        ));
    }

    #[test]
    fn probes_keep_gaps() {
        let p = parse_probes("second,depth,n\n0,1,2\n1,,2\n3,4,\n", Path::new("p.csv")).unwrap();
        assert_eq!(p["depth"], [Some(1.0), None, None, Some(4.0)]);
        assert_eq!(p["n"], [Some(2.0), Some(2.0), None, None]);
        assert!(parse_probes("t,depth\n", Path::new("p.csv")).is_err());
    }
}
