//! [`RunView`]: everything a promise may look at, at 1 s resolution, built from a results
//! directory by [`super::load`] or in code by tests. Pure: no files, no clocks.
//!
//! Time is seconds from the start of the run (second `s` is `[s, s + 1)`), the clock of
//! `timeline.csv`. Missing data stays missing: a probe gap is `None`, never a zero, and a
//! view without a ledger has `ledger: None`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hdrhistogram::Histogram;

use crate::metrics::ErrorClass;

/// Fewest seconds with responses a baseline window must hold to be used.
pub const MIN_BASELINE_SECONDS: usize = 3;

/// Latency percentiles of one second of one stream, in milliseconds, measured from the
/// intended send time (the timeline's `p50_ms` ... `max_ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// The same value at every percentile (handy in tests).
    pub fn flat(ms: f64) -> Latency {
        Latency {
            p50: ms,
            p90: ms,
            p99: ms,
            p999: ms,
            max: ms,
        }
    }

    /// `(quantile level, value)` pairs, lowest first.
    fn points(&self) -> [(f64, f64); 5] {
        [
            (0.5, self.p50),
            (0.9, self.p90),
            (0.99, self.p99),
            (0.999, self.p999),
            (1.0, self.max),
        ]
    }
}

/// One second of one stream: a row of `timeline.csv`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Arrivals due in this second.
    pub intended: u64,
    /// Requests started.
    pub sent: u64,
    /// Successful responses completed.
    pub ok: u64,
    /// Failures completed, indexed like [`ErrorClass::ALL`].
    pub errors: [u64; 9],
    /// Sent late.
    pub late: u64,
    /// Never sent.
    pub dropped: u64,
    /// In flight when the second was collected.
    pub in_flight: u64,
    /// Latency of the responses of this second; `None` when none arrived.
    pub latency: Option<Latency>,
}

impl Second {
    /// A second with `ok` successes and `failed` 5xx errors, all arrivals sent on time,
    /// and a flat latency (used to build synthetic views).
    pub fn simple(ok: u64, failed: u64, latency_ms: f64) -> Second {
        let mut errors = [0; 9];
        errors[ErrorClass::Status5xx as usize] = failed;
        Second {
            intended: ok + failed,
            sent: ok + failed,
            ok,
            errors,
            latency: (ok + failed > 0).then(|| Latency::flat(latency_ms)),
            ..Second::default()
        }
    }

    /// Failures of every class.
    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Responses that carry a latency: successes, 4xx and 5xx.
    pub fn responses(&self) -> u64 {
        self.ok
            + self.errors[ErrorClass::Status4xx as usize]
            + self.errors[ErrorClass::Status5xx as usize]
    }
}

/// A fault as the journal recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// The fault's name (from the experiment).
    pub name: String,
    /// `<name>#<occurrence>`, unique in the run.
    pub id: String,
    /// The fault type (`terminate-instances`, `stall-consumers`...).
    pub kind: String,
    /// When it was applied, in seconds from the run's start.
    pub start: f64,
    /// When it was undone; equal to `start` for instant (irreversible) faults, `None` when
    /// it was never undone (the run died, or the undo failed).
    pub end: Option<f64>,
    /// What it acted on (resource ids or labels).
    pub targets: Vec<String>,
}

/// One stage of one stream's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub stream: String,
    /// Position in the stream's `stages`, from 0.
    pub index: usize,
    pub start: f64,
    pub end: f64,
    /// Arrival rate at the start and end of the stage, per second.
    pub from_rate: f64,
    pub to_rate: f64,
}

/// What a scaling activity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// Desired capacity changed.
    Scaling,
    /// An instance was launched.
    Launch,
    /// An instance was terminated or left the group.
    Terminate,
}

/// One entry of `activities.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Seconds from the run's start.
    pub t: f64,
    pub group: String,
    pub kind: ActivityKind,
    /// Desired capacity before and after (scaling only).
    pub from: Option<u32>,
    pub to: Option<u32>,
    /// The instance launched or terminated.
    pub instance: Option<String>,
    pub cause: String,
}

/// How many lost ids a [`Ledger`] keeps as a sample.
pub const LOST_SAMPLE: usize = 20;

/// The end-to-end accounting of accepted messages.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Distinct message ids accepted by the producer side.
    pub accepted: u64,
    /// Distinct accepted ids with at least one `completed` record.
    pub completed: u64,
    /// Distinct accepted ids dead-lettered (and never completed).
    pub dead_lettered: u64,
    /// Accepted ids with no completion record at all.
    pub unaccounted: u64,
    /// Messages still in the queue (visible, in flight or delayed) when the run ended;
    /// `None` when `ledger.json` did not say.
    pub still_queued: Option<u64>,
    /// Up to [`LOST_SAMPLE`] unaccounted ids, smallest first.
    pub unaccounted_sample: Vec<String>,
    /// Completion records beyond the first per id (the same job done more than once).
    pub duplicates: u64,
    /// Completion records whose id was never accepted.
    pub unknown: u64,
    /// Completions per second of the run (by `done_ms`).
    pub completions_per_s: Vec<u64>,
    /// End-to-end latency (accepted -> first completion), microseconds.
    pub e2e_us: Histogram<u64>,
}

/// One accepted message (a line of `accepted.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub stream: String,
    /// Milliseconds from the run's start.
    pub t_ms: u64,
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    DeadLettered,
}

/// One completion record (a line of `completions.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: String,
    /// Milliseconds from the run's start.
    pub done_ms: u64,
    pub outcome: Outcome,
    pub receive_count: u32,
}

impl Ledger {
    /// Matches completions to accepted messages.
    pub fn build(
        accepted: &[Accepted],
        completions: &[Completion],
        still_queued: Option<u64>,
    ) -> Ledger {
        let mut accepted_at: HashMap<&str, u64> = HashMap::with_capacity(accepted.len());
        for a in accepted {
            let t = accepted_at.entry(a.id.as_str()).or_insert(a.t_ms);
            *t = (*t).min(a.t_ms);
        }
        // Per id: first completion time, and whether it was dead-lettered.
        let mut done: HashMap<&str, (Option<u64>, bool)> = HashMap::new();
        let mut duplicates = 0;
        let mut unknown = 0;
        let mut completions_per_s = Vec::new();
        for c in completions {
            if !accepted_at.contains_key(c.id.as_str()) {
                unknown += 1;
                continue;
            }
            let entry = done.entry(c.id.as_str()).or_insert((None, false));
            match c.outcome {
                Outcome::Completed => {
                    let second = (c.done_ms / 1000) as usize;
                    if completions_per_s.len() <= second {
                        completions_per_s.resize(second + 1, 0);
                    }
                    completions_per_s[second] += 1;
                    match entry.0 {
                        Some(first) => {
                            duplicates += 1;
                            entry.0 = Some(first.min(c.done_ms));
                        }
                        None => entry.0 = Some(c.done_ms),
                    }
                }
                Outcome::DeadLettered => entry.1 = true,
            }
        }
        let mut e2e_us = crate::metrics::new_histogram();
        let (mut completed, mut dead_lettered) = (0, 0);
        for (id, (first, dead)) in &done {
            match first {
                Some(t) => {
                    completed += 1;
                    let latency_ms = t.saturating_sub(accepted_at[id]);
                    let _ = e2e_us.record((latency_ms * 1000).max(1));
                }
                None if *dead => dead_lettered += 1,
                None => {}
            }
        }
        let missing: BTreeSet<&str> = accepted_at
            .keys()
            .filter(|id| !done.contains_key(*id))
            .copied()
            .collect();
        Ledger {
            accepted: accepted_at.len() as u64,
            completed,
            dead_lettered,
            unaccounted: missing.len() as u64,
            still_queued,
            unaccounted_sample: missing
                .iter()
                .take(LOST_SAMPLE)
                .map(|s| s.to_string())
                .collect(),
            duplicates,
            unknown,
            completions_per_s,
            e2e_us,
        }
    }

    /// Messages lost: accepted ids with no completion record beyond those still queued.
    /// `None` when ids are unaccounted for and the still-queued count is unknown.
    pub fn lost(&self) -> Option<u64> {
        match self.still_queued {
            Some(q) => Some(self.unaccounted.saturating_sub(q)),
            None if self.unaccounted == 0 => Some(0),
            None => None,
        }
    }
}

/// Everything the analyzer knows about a run.
#[derive(Debug, Clone, Default)]
pub struct RunView {
    /// Per stream, one [`Second`] per second from 0 (seconds without a row are default).
    pub streams: BTreeMap<String, Vec<Second>>,
    /// Per probe, one value per second; `None` is a gap (no sample), not a zero.
    pub probes: BTreeMap<String, Vec<Option<f64>>>,
    /// Faults, by start time.
    pub faults: Vec<FaultWindow>,
    /// Profile stages.
    pub phases: Vec<Phase>,
    /// Scaling activities, by time; `None` when the run did not record them.
    pub activities: Option<Vec<Activity>>,
    /// The message ledger, when the run kept one.
    pub ledger: Option<Ledger>,
    /// Why some data is missing (files absent or unusable), for verdict reasons.
    pub notes: Vec<String>,
}

/// Which streams a figure covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams<'a> {
    All,
    Only(&'a str),
}

impl<'a> Streams<'a> {
    pub fn from_option(stream: Option<&'a str>) -> Streams<'a> {
        stream.map_or(Streams::All, Streams::Only)
    }
}

/// The traffic of a window of seconds, summed over the chosen streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Seconds covered.
    pub seconds: f64,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub dropped: u64,
    /// `(responses, percentiles)` of every stream-second that had responses.
    pub latency: Vec<(u64, Latency)>,
}

impl Tally {
    /// Adds one stream-second.
    pub fn add(&mut self, s: &Second) {
        self.intended += s.intended;
        self.sent += s.sent;
        self.ok += s.ok;
        self.failed += s.failed();
        self.dropped += s.dropped;
        if let Some(l) = s.latency {
            let n = s.responses().max(1);
            self.latency.push((n, l));
        }
    }

    /// Requests that ended: ok + failed + dropped.
    pub fn ended(&self) -> u64 {
        self.ok + self.failed + self.dropped
    }

    /// (failed + dropped) / (ok + failed + dropped); `None` when nothing ended.
    pub fn error_rate(&self) -> Option<f64> {
        let n = self.ended();
        (n > 0).then(|| (self.failed + self.dropped) as f64 / n as f64)
    }

    /// Successes per second; `None` for an empty window.
    pub fn ok_rate(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.ok as f64 / self.seconds)
    }

    /// An upper bound of the window's `q` latency quantile (ms), exact for one second.
    ///
    /// Each stream-second is known only by its percentiles, so its share of responses at or
    /// below `x` is at least the highest level whose percentile is <= `x`. The result is the
    /// smallest `x` where these lower bounds, weighted by response counts, reach `q`: the true
    /// quantile is never above it, and a second with few responses weighs little.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|(n, _)| n).sum();
        if total == 0 {
            return None;
        }
        let mut candidates: Vec<f64> = self
            .latency
            .iter()
            .flat_map(|(_, l)| l.points().map(|(_, v)| v))
            .collect();
        candidates.sort_by(f64::total_cmp);
        candidates.dedup();
        let need = q * total as f64 - 1e-9;
        candidates.into_iter().find(|&x| {
            let below: f64 = self
                .latency
                .iter()
                .map(|(n, l)| {
                    let level = l
                        .points()
                        .iter()
                        .filter(|(_, v)| *v <= x)
                        .map(|(level, _)| *level)
                        .fold(0.0, f64::max);
                    *n as f64 * level
                })
                .sum();
            below >= need
        })
    }
}

/// The pre-fault reference a promise compares against.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// `[from, to)` in seconds.
    pub window: (f64, f64),
    pub error_rate: f64,
    pub p99_ms: f64,
    pub ok_rate: f64,
}

impl RunView {
    /// Seconds covered by the timeline and the probes.
    pub fn len(&self) -> usize {
        let t = self.streams.values().map(Vec::len).max().unwrap_or(0);
        let p = self.probes.values().map(Vec::len).max().unwrap_or(0);
        t.max(p)
    }

    /// True when the view holds no timeline and no probe.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end of the run: [`RunView::len`] as seconds.
    pub fn end(&self) -> f64 {
        self.len() as f64
    }

    /// The traffic of seconds `[from, to)` (clamped to the run).
    pub fn tally(&self, streams: Streams<'_>, from: usize, to: usize) -> Tally {
        let mut t = Tally {
            seconds: to.saturating_sub(from) as f64,
            ..Tally::default()
        };
        for (name, seconds) in &self.streams {
            if let Streams::Only(only) = streams
                && only != name
            {
                continue;
            }
            for s in seconds.iter().take(to).skip(from) {
                t.add(s);
            }
        }
        t
    }

    /// Whether the chosen streams exist in the view.
    pub fn has_streams(&self, streams: Streams<'_>) -> bool {
        match streams {
            Streams::All => !self.streams.is_empty(),
            Streams::Only(s) => self.streams.contains_key(s),
        }
    }

    /// The first fault named `name` (or whose id is `name`).
    pub fn fault(&self, name: &str) -> Option<&FaultWindow> {
        self.faults.iter().find(|f| f.name == name || f.id == name)
    }

    /// The start of the first fault of the run.
    pub fn first_fault_start(&self) -> Option<f64> {
        self.faults.iter().map(|f| f.start).min_by(f64::total_cmp)
    }

    /// The baseline: up to `max_len` seconds just before the first fault (the whole run when
    /// there is none), using only seconds with responses. `None` when fewer than
    /// [`MIN_BASELINE_SECONDS`] such seconds exist.
    pub fn baseline(&self, streams: Streams<'_>, max_len: f64) -> Option<Baseline> {
        let to = self
            .first_fault_start()
            .unwrap_or(self.end())
            .floor()
            .max(0.0) as usize;
        let from = to.saturating_sub(max_len.ceil() as usize);
        let mut tally = self.tally(streams, from, to);
        let busy = (from..to)
            .filter(|&s| self.tally(streams, s, s + 1).responses() > 0)
            .count();
        if busy < MIN_BASELINE_SECONDS {
            return None;
        }
        tally.seconds = (to - from) as f64;
        Some(Baseline {
            window: (from as f64, to as f64),
            error_rate: tally.error_rate()?,
            p99_ms: tally.quantile(0.99)?,
            ok_rate: tally.ok_rate()?,
        })
    }

    /// A probe's samples in seconds `[from, to)`, skipping gaps: `(second, value)`.
    pub fn probe_points(&self, probe: &str, from: usize, to: usize) -> Vec<(usize, f64)> {
        self.probes
            .get(probe)
            .map(|values| {
                values
                    .iter()
                    .enumerate()
                    .take(to)
                    .skip(from)
                    .filter_map(|(s, v)| v.map(|v| (s, v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last sample of a probe strictly before second `before`.
    pub fn probe_before(&self, probe: &str, before: usize) -> Option<(usize, f64)> {
        self.probe_points(probe, 0, before).last().copied()
    }

    /// Scaling activities of one group (all groups when `group` is `None`).
    pub fn activities_of<'v>(
        &'v self,
        group: Option<&'v str>,
    ) -> impl Iterator<Item = &'v Activity> {
        self.activities
            .iter()
            .flatten()
            .filter(move |a| group.is_none_or(|g| a.group == g))
    }
}

impl Tally {
    /// Responses that carry a latency.
    pub fn responses(&self) -> u64 {
        self.latency.iter().map(|(n, _)| n).sum()
    }
}

/// The median of some values (`None` when empty).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Least-squares slope of `(x, y)` points; `None` with fewer than two distinct `x`.
pub fn slope(points: &[(usize, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|(x, _)| *x as f64).sum::<f64>() / n;
    let my = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|(x, _)| (*x as f64 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points
        .iter()
        .map(|(x, y)| (*x as f64 - mx) * (y - my))
        .sum();
    Some(sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_bound_is_exact_for_one_second_and_weights_thin_seconds() {
        let mut t = Tally::default();
        t.add(&Second::simple(1000, 0, 10.0));
        assert_eq!(t.quantile(0.99), Some(10.0));
        // Two responses at 5 s in an otherwise fast window do not move the p99...
        t.add(&Second::simple(2, 0, 5000.0));
        assert_eq!(t.quantile(0.99), Some(10.0));
        // ... but 5% of slow responses do.
        t.add(&Second::simple(60, 0, 5000.0));
        assert_eq!(t.quantile(0.99), Some(5000.0));
        assert_eq!(Tally::default().quantile(0.99), None);
    }

    #[test]
    fn quantile_bound_never_below_the_truth() {
        // One second: 90 responses at 10 ms, 10 at 100 ms: p50=10, p90=10, p99=100.
        let l = Latency {
            p50: 10.0,
            p90: 10.0,
            p99: 100.0,
            p999: 100.0,
            max: 100.0,
        };
        let mut t = Tally::default();
        t.latency.push((100, l));
        t.latency.push((100, Latency::flat(20.0)));
        // True p50 of the union (200 values: 90 x 10, 100 x 20, 10 x 100) is 20.
        assert_eq!(t.quantile(0.5), Some(20.0));
        assert_eq!(t.quantile(0.95), Some(20.0));
        assert_eq!(t.quantile(0.99), Some(100.0));
    }

    #[test]
    fn ledger_matches_ids() {
        let acc = |id: &str, t| Accepted {
            id: id.into(),
            stream: "s".into(),
            t_ms: t,
        };
        let done = |id: &str, t, outcome| Completion {
            id: id.into(),
            done_ms: t,
            outcome,
            receive_count: 1,
        };
        let l = Ledger::build(
            &[acc("a", 0), acc("b", 100), acc("c", 200), acc("d", 300)],
            &[
                done("a", 1000, Outcome::Completed),
                done("a", 1500, Outcome::Completed),
                done("b", 2100, Outcome::DeadLettered),
                done("zz", 10, Outcome::Completed),
            ],
            Some(1),
        );
        assert_eq!(
            (l.accepted, l.completed, l.dead_lettered, l.unaccounted),
            (4, 1, 1, 2)
        );
        assert_eq!((l.duplicates, l.unknown, l.lost()), (1, 1, Some(1)));
        assert_eq!(l.unaccounted_sample, ["c", "d"]);
        assert_eq!(l.completions_per_s, [0, 2]);
        assert_eq!(l.e2e_us.max() / 1000, 1000);
        let unknown_queue = Ledger {
            still_queued: None,
            ..l
        };
        assert_eq!(unknown_queue.lost(), None);
    }

    #[test]
    fn slope_and_median() {
        assert_eq!(slope(&[(0, 0.0), (1, 2.0), (2, 4.0)]), Some(2.0));
        assert_eq!(slope(&[(3, 1.0)]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
