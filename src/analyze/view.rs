//! [`RunView`]: everything a promise may look at, at 1 s resolution, built from a results
//! directory by [`super::load`] or in code by tests. Pure: no files, no clocks.
//!
//! Time is seconds from the start of the run (second `s` is `[s, s + 1)`), the clock of
//! `timeline.csv`. Missing data stays missing: a probe gap is `None`, never a zero, and a
//! view without a ledger has `ledger: None`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use hdrhistogram::Histogram;

use crate::ledger::census::QueueCensus;
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

/// Seconds after an instance fault during which changes of a running count are taken for
/// the dip and its replacement, not scaling ([`RunView::derived_scaling`]).
pub const REPLACEMENT_GRACE_S: f64 = 60.0;

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
    /// Most messages possibly still in the queue (visible, in flight or delayed) when the
    /// run ended: the largest read of the end-of-run census; `None` when `ledger.json` did
    /// not say.
    pub still_queued: Option<u64>,
    /// The census's count when its reads agreed (nothing moved while the run took its last
    /// count); `None` when they did not.
    pub still_queued_settled: Option<u64>,
    /// When the queue listed its ids at the end (the sandbox): how many unaccounted ids
    /// were among them (exactly "still queued").
    pub queued_listed: Option<u64>,
    /// When the queue listed its ids: up to [`LOST_SAMPLE`] unaccounted ids not among them.
    pub lost_sample: Vec<String>,
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
    /// Matches completions to accepted messages (see [`LedgerBuilder`], which does the same
    /// one record at a time).
    pub fn build(
        accepted: &[Accepted],
        completions: &[Completion],
        still_queued: Option<u64>,
    ) -> Ledger {
        let mut b = LedgerBuilder::default();
        for a in accepted {
            b.accept(&a.id, a.t_ms);
        }
        for c in completions {
            b.complete(&c.id, c.done_ms, c.outcome);
        }
        b.finish(still_queued.map(QueueCensus::single))
    }

    /// Messages certainly lost: unaccounted ids not listed in the queue (when it listed its
    /// ids), else beyond the most that may still be queued. `None` when ids are unaccounted
    /// for and nothing says what was still queued.
    pub fn lost(&self) -> Option<u64> {
        if let Some(listed) = self.queued_listed {
            return Some(self.unaccounted - listed);
        }
        match self.still_queued {
            Some(q) => Some(self.unaccounted.saturating_sub(q)),
            None if self.unaccounted == 0 => Some(0),
            None => None,
        }
    }
}

/// Builds a [`Ledger`] from accepted ids, then completion records, one at a time, in memory
/// proportional to the number of messages but small per message: an id of the shape
/// `<prefix>-<number>` (every id the driver makes: `<run_tag>-<stream>-<seq>`) costs one
/// 12-byte slot in a vector per prefix, indexed by the number. Other ids, and numbers far
/// beyond the count seen so far, fall back to a map keyed by the whole id. Times are
/// milliseconds from the run's start.
///
/// All accepted ids must be given before the first completion: a completion whose id was
/// not accepted by then counts as unknown.
#[derive(Debug, Default)]
pub struct LedgerBuilder {
    prefixes: HashMap<String, usize>,
    families: Vec<Vec<Slot>>,
    others: HashMap<String, Slot>,
    accepted: u64,
    duplicates: u64,
    unknown: u64,
    completions_per_s: Vec<u64>,
}

/// One message: when it was first accepted and first completed, and whether it was
/// dead-lettered. Times are ms from the run's start, saturated below [`Slot::NONE`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    accepted: u32,
    done: u32,
    dead: bool,
}

impl Slot {
    const NONE: u32 = u32::MAX;
    const EMPTY: Slot = Slot {
        accepted: Slot::NONE,
        done: Slot::NONE,
        dead: false,
    };

    fn ms(t: u64) -> u32 {
        u32::try_from(t)
            .unwrap_or(Slot::NONE - 1)
            .min(Slot::NONE - 1)
    }
}

/// Numbers up to this far past a prefix's slots grow its vector; larger jumps go to the
/// map, so a stray huge number never allocates gigabytes.
const SLOT_SLACK: u64 = 1 << 20;

impl LedgerBuilder {
    /// Splits `<prefix>-<number>`; `None` for any other shape (or a number with a leading
    /// zero, which would not round-trip).
    fn split(id: &str) -> Option<(&str, u64)> {
        let (prefix, number) = id.rsplit_once('-')?;
        if number.is_empty()
            || (number.len() > 1 && number.starts_with('0'))
            || !number.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some((prefix, number.parse().ok()?))
    }

    /// The slot of an id; `create` makes it when absent (accepted ids), otherwise `None`.
    fn slot(&mut self, id: &str, create: bool) -> Option<&mut Slot> {
        // An id that once went to the map stays there.
        if !self.others.is_empty() && self.others.contains_key(id) {
            return self.others.get_mut(id);
        }
        if let Some((prefix, n)) = Self::split(id) {
            let family = match self.prefixes.get(prefix) {
                Some(&f) => Some(f),
                None if create => {
                    self.families.push(Vec::new());
                    self.prefixes
                        .insert(prefix.to_owned(), self.families.len() - 1);
                    Some(self.families.len() - 1)
                }
                None => None,
            };
            if let Some(f) = family {
                let slots = &mut self.families[f];
                if let Ok(i) = usize::try_from(n)
                    && (i < slots.len() || (create && n < slots.len() as u64 + SLOT_SLACK))
                {
                    if i >= slots.len() {
                        slots.resize(i + 1, Slot::EMPTY);
                    }
                    let slot = &mut self.families[f][i];
                    return (create || slot.accepted != Slot::NONE).then_some(slot);
                }
            }
        }
        create.then(|| self.others.entry(id.to_owned()).or_insert(Slot::EMPTY))
    }

    /// An accepted id (accepted more than once: the earliest time counts).
    pub fn accept(&mut self, id: &str, t_ms: u64) {
        let slot = self.slot(id, true).expect("created");
        let first = slot.accepted == Slot::NONE;
        slot.accepted = slot.accepted.min(Slot::ms(t_ms));
        if first {
            self.accepted += 1;
        }
    }

    /// A completion record.
    pub fn complete(&mut self, id: &str, done_ms: u64, outcome: Outcome) {
        let Some(slot) = self.slot(id, false) else {
            self.unknown += 1;
            return;
        };
        match outcome {
            Outcome::Completed => {
                let duplicate = slot.done != Slot::NONE;
                slot.done = slot.done.min(Slot::ms(done_ms));
                if duplicate {
                    self.duplicates += 1;
                }
                let second = (done_ms / 1000) as usize;
                if self.completions_per_s.len() <= second {
                    self.completions_per_s.resize(second + 1, 0);
                }
                self.completions_per_s[second] += 1;
            }
            Outcome::DeadLettered => slot.dead = true,
        }
    }

    /// The balance, with the end-of-run queue census as `ledger.json` recorded it.
    pub fn finish(self, census: Option<QueueCensus>) -> Ledger {
        let listed: Option<HashSet<&str>> = census
            .as_ref()
            .and_then(|c| c.ids.as_ref())
            .map(|ids| ids.iter().map(String::as_str).collect());
        let mut queued_listed = 0u64;
        let mut lost_sample: BTreeSet<String> = BTreeSet::new();
        let mut e2e_us = crate::metrics::new_histogram();
        let (mut completed, mut dead_lettered, mut unaccounted) = (0, 0, 0);
        // The smallest LOST_SAMPLE missing ids (as strings), kept without collecting them all.
        let mut sample: BTreeSet<String> = BTreeSet::new();
        let mut tally = |slot: &Slot, id: &dyn Fn() -> String| {
            if slot.accepted == Slot::NONE {
                return;
            }
            if slot.done != Slot::NONE {
                completed += 1;
                let latency_ms = u64::from(slot.done.saturating_sub(slot.accepted));
                let _ = e2e_us.record((latency_ms * 1000).max(1));
            } else if slot.dead {
                dead_lettered += 1;
            } else {
                unaccounted += 1;
                let id = id();
                if let Some(listed) = &listed {
                    if listed.contains(id.as_str()) {
                        queued_listed += 1;
                    } else {
                        lost_sample.insert(id.clone());
                        if lost_sample.len() > LOST_SAMPLE {
                            lost_sample.pop_last();
                        }
                    }
                }
                sample.insert(id);
                if sample.len() > LOST_SAMPLE {
                    sample.pop_last();
                }
            }
        };
        let mut names: Vec<(&String, &usize)> = self.prefixes.iter().collect();
        names.sort_by_key(|(_, f)| **f);
        for (prefix, f) in names {
            for (n, slot) in self.families[*f].iter().enumerate() {
                tally(slot, &|| format!("{prefix}-{n}"));
            }
        }
        for (id, slot) in &self.others {
            tally(slot, &|| id.clone());
        }
        Ledger {
            accepted: self.accepted,
            completed,
            dead_lettered,
            unaccounted,
            still_queued: census.as_ref().and_then(QueueCensus::upper),
            still_queued_settled: census.as_ref().and_then(QueueCensus::settled),
            queued_listed: listed.is_some().then_some(queued_listed),
            lost_sample: lost_sample.into_iter().collect(),
            unaccounted_sample: sample.into_iter().collect(),
            duplicates: self.duplicates,
            unknown: self.unknown,
            completions_per_s: self.completions_per_s,
            e2e_us,
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
    /// Per second, how late the harness's own heartbeat woke at worst (`harness.csv`), in
    /// ms; `None` when the run did not record it.
    pub harness_lag_ms: Option<Vec<Option<f64>>>,
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

    /// The worst harness lag in seconds `[from, to]` (ms) and the second it came in;
    /// `None` when not recorded.
    pub fn harness_lag(&self, from: f64, to: f64) -> Option<(f64, usize)> {
        let lag = self.harness_lag_ms.as_ref()?;
        let (from, to) = (from.max(0.0).floor() as usize, to.max(0.0).ceil() as usize);
        lag.iter()
            .enumerate()
            .take(to + 1)
            .skip(from)
            .filter_map(|(s, v)| v.map(|v| (v, s)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
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

    /// The accounting as a plain map from whole ids: what [`LedgerBuilder`] must agree with.
    fn reference(
        accepted: &[(String, u64)],
        completions: &[(String, u64, Outcome)],
    ) -> (u64, u64, u64, u64, u64, u64, Vec<String>, Vec<u64>, u64) {
        let mut at: HashMap<&str, u64> = HashMap::new();
        for (id, t) in accepted {
            let e = at.entry(id.as_str()).or_insert(*t);
            *e = (*e).min(*t);
        }
        let mut done: HashMap<&str, (Option<u64>, bool)> = HashMap::new();
        let (mut duplicates, mut unknown) = (0, 0);
        let mut per_s = Vec::new();
        for (id, t, outcome) in completions {
            if !at.contains_key(id.as_str()) {
                unknown += 1;
                continue;
            }
            let e = done.entry(id.as_str()).or_insert((None, false));
            match outcome {
                Outcome::Completed => {
                    let second = (*t / 1000) as usize;
                    if per_s.len() <= second {
                        per_s.resize(second + 1, 0);
                    }
                    per_s[second] += 1;
                    if e.0.is_some() {
                        duplicates += 1;
                    }
                    e.0 = Some(e.0.map_or(*t, |f: u64| f.min(*t)));
                }
                Outcome::DeadLettered => e.1 = true,
            }
        }
        let (mut completed, mut dead, mut max_latency) = (0, 0, 0);
        let mut missing = BTreeSet::new();
        for (id, t) in &at {
            match done.get(id) {
                Some((Some(d), _)) => {
                    completed += 1;
                    max_latency = max_latency.max(d.saturating_sub(*t));
                }
                Some((None, true)) => dead += 1,
                _ => {
                    missing.insert(id.to_string());
                }
            }
        }
        let sample = missing.iter().take(LOST_SAMPLE).cloned().collect();
        (
            at.len() as u64,
            completed,
            dead,
            missing.len() as u64,
            duplicates,
            unknown,
            sample,
            per_s,
            max_latency,
        )
    }

    fn id_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            // the driver's shape, dense
            (0..3u32, 0..40u64).prop_map(|(s, n)| format!("run-{s}-{n}")),
            // other shapes: no number, leading zeros, a huge number, a bare number
            (0..5u64).prop_map(|n| format!("order-{n:03}")),
            (0..3u64).prop_map(|n| format!("x-{}", u64::MAX - n)),
            (0..3u64).prop_map(|n| format!("{n}")),
            Just("plain".to_string()),
            Just("run-1-".to_string()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_compact_ledger_agrees_with_a_map_of_whole_ids(
            accepted in proptest::collection::vec((id_strategy(), 0..5_000u64), 0..120),
            completions in proptest::collection::vec(
                (id_strategy(), 0..9_000u64, proptest::bool::weighted(0.8)), 0..160),
        ) {
            let completions: Vec<(String, u64, Outcome)> = completions
                .into_iter()
                .map(|(id, t, ok)| (id, t, if ok { Outcome::Completed } else { Outcome::DeadLettered }))
                .collect();
            let mut b = LedgerBuilder::default();
            for (id, t) in &accepted {
                b.accept(id, *t);
            }
            for (id, t, o) in &completions {
                b.complete(id, *t, *o);
            }
            let l = b.finish(Some(QueueCensus::single(0)));
            let (acc, completed, dead, missing, dup, unknown, sample, per_s, max_latency) =
                reference(&accepted, &completions);
            proptest::prop_assert_eq!(
                (l.accepted, l.completed, l.dead_lettered, l.unaccounted, l.duplicates, l.unknown),
                (acc, completed, dead, missing, dup, unknown)
            );
            proptest::prop_assert_eq!(l.unaccounted_sample, sample);
            proptest::prop_assert_eq!(l.completions_per_s, per_s);
            proptest::prop_assert_eq!(l.e2e_us.len(), completed);
            if completed > 0 {
                let max_ms = l.e2e_us.max() / 1000;
                // 3 significant digits: the histogram's max is within 0.1% of the true one.
                proptest::prop_assert!(max_ms.abs_diff(max_latency) <= max_latency / 500 + 1);
            }
        }
    }

    #[test]
    fn a_stray_huge_number_does_not_grow_the_slots() {
        let mut b = LedgerBuilder::default();
        b.accept("run-0-0", 0);
        b.accept("run-0-4000000000", 5);
        b.accept("run-0-1", 7);
        assert_eq!(b.families[0].len(), 2, "the huge one went to the map");
        b.complete("run-0-4000000000", 1005, Outcome::Completed);
        b.complete("run-0-3", 1005, Outcome::Completed);
        let l = b.finish(Some(QueueCensus::single(0)));
        assert_eq!((l.accepted, l.completed, l.unknown), (3, 1, 1));
        assert_eq!(l.unaccounted_sample, ["run-0-0", "run-0-1"]);
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
