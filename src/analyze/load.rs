//! Reading a results directory into a [`RunView`], and writing `verdict.json`: the
//! analyzer's only IO. File formats: `results/README.md`.
//!
//! A missing file is missing data, never an error: the view lacks that part (and
//! [`RunView::notes`] says so), and the promises that need it are not evaluable. A file
//! that exists but cannot be read or parsed is an error ([`LoadError`]), except a torn
//! last line, which a run killed mid-write leaves behind and which is skipped.

use std::borrow::Cow;
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
use crate::results::flat::{self, Scalar};
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
    if meta.is_none() && run.accepted().exists() {
        view.notes.push(format!(
            "{ACCEPTED_FILE} not usable without {RUN_FILE} (its start time)"
        ));
    } else if let Some((ledger, has_completions)) = match meta {
        Some(_) => read_ledger(&run, epoch_ms)?,
        None => None,
    } {
        if !has_completions {
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
    } else {
        note(&mut view, ACCEPTED_FILE);
    }
    Ok(view)
}

/// Streams `accepted.jsonl`, then `completions.jsonl`, into a [`LedgerBuilder`], times made
/// relative to `epoch_ms` (the run's start): the one reading of the two ledger files, shared
/// by the verdicts, the report and the gate. Never holds a file whole: read in blocks parsed
/// on every core, each record's id borrowed from its block (no allocation per message);
/// line by line when a line does not parse, for the error's place. `None` without
/// `accepted.jsonl`; the flag says whether `completions.jsonl` exists (without it nothing
/// completed).
pub fn read_ledger(
    run: &RunDir,
    epoch_ms: u64,
) -> Result<Option<(LedgerBuilder, bool)>, LoadError> {
    let accepted_path = run.accepted();
    if !accepted_path.exists() {
        return Ok(None);
    }
    let completions_path = run.completions();
    let has_completions = completions_path.exists();
    let ledger = match read_ledger_in_blocks(run, epoch_ms, has_completions) {
        Some(ledger) => ledger,
        None => read_ledger_line_by_line(run, epoch_ms, has_completions)?,
    };
    Ok(Some((ledger, has_completions)))
}

/// The ledger files one line after the other: exact line numbers for a bad line, and the
/// torn-last-line rule ([`jsonl`]).
fn read_ledger_line_by_line(
    run: &RunDir,
    epoch_ms: u64,
    has_completions: bool,
) -> Result<LedgerBuilder, LoadError> {
    let rel = |t: u64| t.saturating_sub(epoch_ms);
    let mut ledger = LedgerBuilder::default();
    let mut picker = flat::Picker::new(ACCEPTED_KEYS);
    jsonl::for_each_line(&run.accepted(), |line| {
        let a = AcceptedLine::parse(line, &mut picker)?;
        ledger.accept_in(&a.id, &a.stream, rel(a.t_ms));
        Ok(())
    })?;
    if has_completions {
        let mut picker = flat::Picker::new(COMPLETION_KEYS);
        jsonl::for_each_line(&run.completions(), |line| {
            let c = CompletionLine::parse(line, &mut picker)?;
            ledger.complete(&c.id, rel(c.done_ms), c.outcome.into());
            Ok(())
        })?;
    }
    Ok(ledger)
}

/// One parsed ledger line, its id where it lies in the block (or owned, when serde had to
/// unescape it).
enum BlockId {
    At(u32, u32),
    Owned(String),
}

impl BlockId {
    fn of(id: Cow<'_, str>, block: &[u8]) -> BlockId {
        match id {
            Cow::Borrowed(s) => {
                let at = s.as_ptr() as usize - block.as_ptr() as usize;
                BlockId::At(at as u32, s.len() as u32)
            }
            Cow::Owned(s) => BlockId::Owned(s),
        }
    }

    fn get<'b>(&'b self, block: &'b [u8]) -> &'b str {
        match self {
            BlockId::At(at, len) => {
                let bytes = &block[*at as usize..(*at + *len) as usize];
                // SAFETY: `At` is made only by `of`, from a `&str` borrowed from these very
                // bytes of the same block, so they are UTF-8.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            BlockId::Owned(s) => s,
        }
    }
}

/// Each line of `block` through `parse` into `out`; false when one fails (or a block is too
/// large to address with `u32`).
fn parse_block<R>(
    block: &[u8],
    out: &mut Vec<R>,
    mut parse: impl FnMut(&[u8], &[u8]) -> Result<R, serde_json::Error>,
) -> bool {
    if u32::try_from(block.len()).is_err() {
        return false;
    }
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', block).map(|n| n + 1);
    for end in ends.chain(std::iter::once(block.len())) {
        let line = &block[start..end];
        start = end;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse(block, line) {
            Ok(r) => out.push(r),
            Err(_) => return false,
        }
    }
    true
}

/// The ledger files in blocks read and parsed on every core ([`jsonl::for_each_block`]; a
/// ledger's records apply in any order, all accepted before any completion). `None` when
/// any line does not parse: the line-by-line reader then reads again and says where (or
/// skips a torn last line).
fn read_ledger_in_blocks(
    run: &RunDir,
    epoch_ms: u64,
    has_completions: bool,
) -> Option<LedgerBuilder> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let rel = |t: u64| t.saturating_sub(epoch_ms);
    let mut ledger = LedgerBuilder::default();
    let mut whole = true;
    let accepted = jsonl::for_each_block(
        &run.accepted(),
        workers,
        |block, out| {
            let mut picker = flat::Picker::new(ACCEPTED_KEYS);
            parse_block(block, out, |block, line| {
                AcceptedLine::parse(line, &mut picker).map(|a| {
                    (
                        BlockId::of(a.id, block),
                        BlockId::of(a.stream, block),
                        a.t_ms,
                    )
                })
            })
        },
        |block, ok, lines| {
            whole &= ok;
            for (id, stream, t_ms) in lines.drain(..) {
                ledger.accept_in(id.get(block), stream.get(block), rel(t_ms));
            }
        },
    );
    if accepted.is_err() || !whole {
        return None;
    }
    if has_completions {
        let completions = jsonl::for_each_block(
            &run.completions(),
            workers,
            |block, out| {
                let mut picker = flat::Picker::new(COMPLETION_KEYS);
                parse_block(block, out, |block, line| {
                    CompletionLine::parse(line, &mut picker).map(|c| {
                        (
                            BlockId::of(c.id, block),
                            c.done_ms,
                            Outcome::from(c.outcome),
                        )
                    })
                })
            },
            |block, ok, lines| {
                whole &= ok;
                for (id, done_ms, outcome) in lines.drain(..) {
                    ledger.complete(id.get(block), rel(done_ms), outcome);
                }
            },
        );
        if completions.is_err() || !whole {
            return None;
        }
    }
    Some(ledger)
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
struct AcceptedLine<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Cow<'a, str>,
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
struct CompletionLine<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    done_ms: u64,
    #[serde(default = "completed")]
    outcome: OutcomeLine,
}

/// The keys the analyzer picks from a line of `accepted.jsonl` ([`AcceptedLine::parse`]).
const ACCEPTED_KEYS: [&str; 3] = ["id", "stream", "t_ms"];
/// The keys the analyzer picks from a line of `completions.jsonl`.
const COMPLETION_KEYS: [&str; 3] = ["id", "done_ms", "outcome"];

impl<'a> AcceptedLine<'a> {
    /// The fast scan for the usual line ([`flat::Picker`] of [`ACCEPTED_KEYS`]), serde for
    /// any other.
    fn parse(line: &'a [u8], picker: &mut flat::Picker<3>) -> Result<Self, serde_json::Error> {
        if let Some([Some(Scalar::Str(id)), Some(Scalar::Str(stream)), Some(t)]) = picker.pick(line)
            && let Some(t_ms) = t.as_u64()
        {
            return Ok(AcceptedLine {
                id: Cow::Borrowed(id),
                stream: Cow::Borrowed(stream),
                t_ms,
            });
        }
        serde_json::from_slice(line)
    }
}

impl<'a> CompletionLine<'a> {
    /// The fast scan for the usual line ([`flat::Picker`] of [`COMPLETION_KEYS`]), serde for
    /// any other.
    fn parse(line: &'a [u8], picker: &mut flat::Picker<3>) -> Result<Self, serde_json::Error> {
        if let Some([Some(Scalar::Str(id)), Some(done), outcome]) = picker.pick(line)
            && let Some(done_ms) = done.as_u64()
        {
            let outcome = match outcome {
                None | Some(Scalar::Str("completed")) => Some(OutcomeLine::Completed),
                Some(Scalar::Str("dead_lettered")) => Some(OutcomeLine::DeadLettered),
                Some(_) => None,
            };
            if let Some(outcome) = outcome {
                return Ok(CompletionLine {
                    id: Cow::Borrowed(id),
                    done_ms,
                    outcome,
                });
            }
        }
        serde_json::from_slice(line)
    }
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
    fn ledger_lines_scan_fast_and_fall_back_to_serde_alike() {
        let mut p = flat::Picker::new(ACCEPTED_KEYS);
        let a = AcceptedLine::parse(br#"{"id":"t-0-5","stream":"up","t_ms":17}"#, &mut p).unwrap();
        assert_eq!(
            (a.id.as_ref(), a.stream.as_ref(), a.t_ms),
            ("t-0-5", "up", 17)
        );
        assert!(matches!(a.id, Cow::Borrowed(_)));
        // The same layout again: read in place.
        let a = AcceptedLine::parse(br#"{"id":"t-0-60","stream":"up","t_ms":9}"#, &mut p).unwrap();
        assert_eq!((a.id.as_ref(), a.t_ms), ("t-0-60", 9));
        // Escapes and key order: serde's path, same result.
        let a = AcceptedLine::parse(br#"{"t_ms":17,"id":"t-0-\u0035"}"#, &mut p).unwrap();
        assert_eq!((a.id.as_ref(), a.t_ms), ("t-0-5", 17));
        for bad in [
            &br#"{"id":"a","stream":"up","t_ms":1.5}"#[..],
            br#"{"id":"a","stream":"up","t_ms":1}x"#,
            br#"{"id":"a","stream":"up","t_ms":1,"t_ms":2}"#,
            br#"{"id":"a","t_ms":1.5}"#,
            br#"{"id":"a","t_ms":1,"t_ms":2}"#,
            br#"{"id":5,"t_ms":1}"#,
            br#"{"t_ms":1}"#,
        ] {
            let mut warm = flat::Picker::new(ACCEPTED_KEYS);
            AcceptedLine::parse(br#"{"id":"t-0-5","stream":"up","t_ms":17}"#, &mut warm).unwrap();
            assert!(
                AcceptedLine::parse(bad, &mut warm).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut p = flat::Picker::new(COMPLETION_KEYS);
        let c =
            CompletionLine::parse(br#"{"id":"x","done_ms":9,"receive_count":1}"#, &mut p).unwrap();
        assert!(matches!(c.outcome, OutcomeLine::Completed));
        let c = CompletionLine::parse(
            br#"{"id":"x","done_ms":9,"outcome":"dead_lettered"}"#,
            &mut p,
        )
        .unwrap();
        assert!(matches!(c.outcome, OutcomeLine::DeadLettered));
        let c = CompletionLine::parse(br#"{"id":"x","done_ms":9,"outcome":"completed"}"#, &mut p)
            .unwrap();
        assert!(matches!(c.outcome, OutcomeLine::Completed));
        for bad in [
            &br#"{"id":"x","done_ms":9,"outcome":"lost"}"#[..],
            br#"{"id":"x","done_ms":9,"outcome":null}"#,
        ] {
            assert!(CompletionLine::parse(bad, &mut p).is_err());
        }
    }

    /// The balance of a ledger read both ways, for comparison.
    type Balance = (
        u64,
        u64,
        u64,
        u64,
        Vec<String>,
        Vec<u64>,
        Vec<(String, u64)>,
    );

    fn balance(l: LedgerBuilder) -> Balance {
        let l = l.finish(None);
        (
            l.accepted,
            l.completed,
            l.duplicates,
            l.unknown,
            l.unaccounted_sample,
            l.completions_per_s,
            l.silent
                .into_iter()
                .map(|s| (s.stream, s.accepted))
                .collect(),
        )
    }

    #[test]
    fn the_ledger_reads_alike_in_blocks_and_line_by_line_and_bad_lines_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        let mut accepted = String::new();
        let mut done = String::new();
        for i in 0..30_000u64 {
            accepted.push_str(&format!(
                "{{\"id\":\"r-{}-{i}\",\"stream\":\"up\",\"t_ms\":{}}}\n",
                i % 3,
                1000 + i
            ));
            if i % 1000 != 7 {
                let outcome = if i % 500 == 1 {
                    "dead_lettered"
                } else {
                    "completed"
                };
                done.push_str(&format!(
                    "{{\"id\":\"r-{}-{i}\",\"done_ms\":{},\"outcome\":\"{outcome}\"}}\n",
                    i % 3,
                    3000 + i * 2
                ));
            }
        }
        // A stream never heard of again (reads, say).
        for i in 0..50u64 {
            accepted.push_str(&format!(
                "{{\"id\":\"r-9-{i}\",\"stream\":\"reads\",\"t_ms\":{}}}\n",
                1000 + i
            ));
        }
        // An escaped id (serde's path), a duplicate and an unknown completion.
        accepted.push_str("{\"id\":\"odd\\u0021\",\"t_ms\":5}\n");
        done.push_str("{\"id\":\"odd!\",\"done_ms\":9}\n{\"id\":\"r-0-3\",\"done_ms\":9}\n");
        done.push_str("{\"id\":\"nobody\",\"done_ms\":9}\n");
        std::fs::write(run.accepted(), &accepted).unwrap();
        std::fs::write(run.completions(), &done).unwrap();
        let blocks = read_ledger_in_blocks(&run, 1000, true).expect("every line parses");
        let lines = read_ledger_line_by_line(&run, 1000, true).unwrap();
        let (b, l) = (balance(blocks), balance(lines));
        assert_eq!(b, l);
        assert_eq!((b.0, b.1, b.2, b.3), (30_051, 29_911, 1, 1));
        assert_eq!(b.6, [("reads".to_owned(), 50)]);

        // A torn last line, as a killed run leaves it: skipped.
        std::fs::write(run.completions(), format!("{done}{{\"id\":\"r-0")).unwrap();
        let (torn, _) = read_ledger(&run, 1000).unwrap().unwrap();
        assert_eq!(balance(torn), l);
        // A bad line in the middle: an error naming the file and the line.
        std::fs::write(run.completions(), format!("{{\"id\":1}}\n{done}")).unwrap();
        let e = read_ledger(&run, 1000).expect_err("a bad line").to_string();
        assert!(e.contains("completions.jsonl:1:"), "{e}");
    }

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
