//! [`RunView`]: everything a promise may look at, at 1 s resolution, built from a results
//! directory by [`super::load`] or in code by tests. Pure: no files, no clocks.
//!
//! Time is seconds from the start of the run (second `s` is `[s, s + 1)`), the clock of
//! `timeline.csv`. Missing data stays missing: a probe gap is `None`, never a zero, and a
//! view without a ledger has `ledger: None`.

use std::collections::BTreeMap;

use crate::metrics::{ErrorClass, SecondHistograms};

pub use super::ledger::{Accepted, Completion, LOST_SAMPLE, Ledger, LedgerBuilder, Outcome};
pub use super::tally::Tally;

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

    /// A timeline row's `p50, p90, p99, p999, max` columns; `None` when the second had no
    /// responses. Rows written before the p99.9 column take the max in its place.
    pub fn from_columns(columns: [Option<f64>; 5]) -> Option<Latency> {
        match columns {
            [Some(p50), Some(p90), Some(p99), p999, Some(max)] => Some(Latency {
                p50,
                p90,
                p99,
                p999: p999.unwrap_or(max),
                max,
            }),
            _ => None,
        }
    }

    /// `(quantile level, value)` pairs, lowest first.
    pub(crate) fn points(&self) -> [(f64, f64); 5] {
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
    pub errors: [u64; ErrorClass::COUNT],
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
        let mut errors = [0; ErrorClass::COUNT];
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

/// Seconds after an instance fault during which changes of a running count are taken for
/// the dip and its replacement, not scaling ([`RunView::derived_scaling`]).
pub const REPLACEMENT_GRACE_S: f64 = 60.0;

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
    /// Per second, how late the harness's own heartbeat woke at worst (`harness.csv`), in
    /// ms; `None` when the run did not record it.
    pub harness_lag_ms: Option<Vec<Option<f64>>>,
    /// `harness.csv`'s `cpu_busy` per second: the machine's busy CPU share (0-1).
    pub harness_cpu_busy: Option<Vec<Option<f64>>>,
    /// Per stream, the latency histogram of each second (`latency.hlog`, from the intended
    /// send time): window quantiles are exact where these cover the window. `None` when the
    /// run did not record them.
    pub histograms: Option<SecondHistograms>,
}

/// Which streams a figure covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams<'a> {
    All,
    Only(&'a str),
    /// Several streams, merged (the streams that target one service).
    Set(&'a [String]),
}

impl<'a> Streams<'a> {
    pub fn from_option(stream: Option<&'a str>) -> Streams<'a> {
        stream.map_or(Streams::All, Streams::Only)
    }

    /// Whether the stream `name` is one of these.
    pub fn includes(self, name: &str) -> bool {
        match self {
            Streams::All => true,
            Streams::Only(only) => only == name,
            Streams::Set(set) => set.iter().any(|s| s == name),
        }
    }
}

/// The pre-fault reference a promise compares against.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// `[from, to)` in seconds.
    pub window: (f64, f64),
    pub error_rate: f64,
    pub p99_ms: f64,
    /// Where `p99_ms` comes from ([`Tally::quantile_source`]).
    pub p99_source: &'static str,
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
        let seconds = to.saturating_sub(from) as f64;
        let mut t = Tally::with_histograms(seconds);
        if self.histograms.is_none() {
            t.histograms = None;
        }
        for (name, series) in &self.streams {
            if !streams.includes(name) {
                continue;
            }
            for (i, s) in series.iter().enumerate().take(to).skip(from) {
                let histogram = self.histograms.as_ref().and_then(|h| h.get(name, i));
                t.add_with(s, histogram);
            }
        }
        t
    }

    /// Whether the chosen streams exist in the view.
    pub fn has_streams(&self, streams: Streams<'_>) -> bool {
        match streams {
            Streams::All => !self.streams.is_empty(),
            Streams::Only(s) => self.streams.contains_key(s),
            Streams::Set(set) => set.iter().any(|s| self.streams.contains_key(s)),
        }
    }

    /// The worst harness lag in seconds `[from, to]` (ms) and the second it came in;
    /// `None` when not recorded.
    pub fn harness_lag(&self, from: f64, to: f64) -> Option<(f64, usize)> {
        worst_in(self.harness_lag_ms.as_ref()?, from, to)
    }

    /// The busiest second of the machine in `[from, to]` (its busy CPU share, 0-1) and
    /// which second it was; `None` when not recorded.
    pub fn harness_cpu_busy(&self, from: f64, to: f64) -> Option<(f64, usize)> {
        worst_in(self.harness_cpu_busy.as_ref()?, from, to)
    }

    /// Scaling activities derived from an instance-count probe, for runs that recorded none
    /// (a system other than the sandbox with no activity source): one per change of the
    /// sampled count, `from -> to`, at the second it was seen. They follow the running
    /// count, not desired capacity: a replaced instance shows as a dip and a rise.
    ///
    /// Changes from an instance fault (terminate, stop, kill) to [`REPLACEMENT_GRACE_S`]
    /// after it are left out: a dip and its replacement are not scaling decisions.
    pub fn derived_scaling(&self, probe: &str) -> Vec<Activity> {
        let points = self.probe_points(probe, 0, self.len());
        let replacing = |t: f64| {
            self.faults.iter().any(|f| {
                matches!(
                    f.kind.as_str(),
                    "terminate-instances" | "stop-instances" | "kill-process"
                ) && t >= f.start
                    && t <= f.end.unwrap_or(f.start).max(f.start) + REPLACEMENT_GRACE_S
            })
        };
        points
            .windows(2)
            .filter(|w| w[0].1.round() != w[1].1.round() && !replacing(w[1].0 as f64))
            .map(|w| Activity {
                t: w[1].0 as f64,
                group: String::new(),
                kind: ActivityKind::Scaling,
                from: Some(w[0].1.round().max(0.0) as u32),
                to: Some(w[1].1.round().max(0.0) as u32),
                instance: None,
                cause: format!("derived from probe `{probe}`"),
            })
            .collect()
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
            p99_source: tally.quantile_source(),
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

/// The largest value of a per-second series in seconds `[from, to]`, with its second.
fn worst_in(series: &[Option<f64>], from: f64, to: f64) -> Option<(f64, usize)> {
    let (from, to) = (from.max(0.0).floor() as usize, to.max(0.0).ceil() as usize);
    series
        .iter()
        .enumerate()
        .take(to + 1)
        .skip(from)
        .filter_map(|(s, v)| v.map(|v| (v, s)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_and_median() {
        assert_eq!(slope(&[(0, 0.0), (1, 2.0), (2, 4.0)]), Some(2.0));
        assert_eq!(slope(&[(3, 1.0)]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
