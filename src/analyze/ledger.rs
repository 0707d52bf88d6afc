//! The analyzer's message ledger: [`Ledger`], the end-to-end balance of accepted messages,
//! and [`LedgerBuilder`], which makes it from `accepted.jsonl` and `completions.jsonl` one
//! record at a time at ~12 bytes per message. Pure: the records are handed in.

use std::collections::{BTreeSet, HashMap, HashSet};

use hdrhistogram::Histogram;

use crate::ledger::census::QueueCensus;

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
    /// The streams not one of whose accepted messages has a record: none completed,
    /// dead-lettered or listed in the queue at the end. A stream whose requests start no job
    /// looks like this, and so does one whose every message was lost: the two cannot be told
    /// apart. (Only ids of the `<prefix>-<number>` shape accepted with their stream count.)
    pub silent: Vec<Silent>,
    /// Completions per second of the run (by `done_ms`).
    pub completions_per_s: Vec<u64>,
    /// End-to-end latency (accepted -> first completion), microseconds.
    pub e2e_us: Histogram<u64>,
    /// The same latencies in milliseconds, one per completed message, grouped by the second
    /// of the run its first completion fell in (the report's end-to-end chart).
    pub e2e_ms_by_done_s: Vec<Vec<u32>>,
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

/// A stream of which nothing was heard again ([`Ledger::silent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    /// The stream's name.
    pub stream: String,
    /// Its messages accepted.
    pub accepted: u64,
    /// The id prefixes of its messages (`<run tag>-<stream index>` for the driver's ids).
    pub families: Vec<String>,
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
            b.accept_in(&a.id, &a.stream, a.t_ms);
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
    /// The family of the last prefix looked up: consecutive lines nearly always share it,
    /// and comparing it saves hashing the prefix for every line.
    last: Option<(String, usize)>,
    families: Vec<Slots>,
    /// The stream of each family (an index into `streams`), from its first accepted id
    /// given with one ([`LedgerBuilder::accept_in`]); [`NO_STREAM`] until then.
    family_stream: Vec<u32>,
    streams: Vec<String>,
    /// The family the last [`LedgerBuilder::slot`] call used, if any.
    last_family: Option<usize>,
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

/// One prefix's slots, by number, in chunks of [`Slots::CHUNK`]: growing never moves the ones
/// there (a vector of ten million slots, doubled, would be copied and faulted in again).
#[derive(Debug, Default)]
struct Slots {
    chunks: Vec<Box<[Slot]>>,
    /// One past the highest number given.
    len: usize,
}

impl Slots {
    const CHUNK: usize = 1 << 16;

    fn len(&self) -> usize {
        self.len
    }

    /// The slot of number `i`, made (empty, with those below it) when past the end.
    fn at(&mut self, i: usize) -> &mut Slot {
        while self.chunks.len() * Self::CHUNK <= i {
            self.chunks
                .push(vec![Slot::EMPTY; Self::CHUNK].into_boxed_slice());
        }
        self.len = self.len.max(i + 1);
        &mut self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }

    fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }
}

/// A family whose stream is not known.
const NO_STREAM: u32 = u32::MAX;

/// Numbers up to this far past a prefix's slots grow its vector; larger jumps go to the
/// map, so a stray huge number never allocates gigabytes.
const SLOT_SLACK: u64 = 1 << 20;

impl LedgerBuilder {
    /// Splits `<prefix>-<number>`; `None` for any other shape (or a number with a leading
    /// zero, which would not round-trip).
    pub(crate) fn split(id: &str) -> Option<(&str, u64)> {
        // The number is a few bytes at the end: a plain backwards loop finds its dash before
        // a vectorized search (`rsplit_once`) has set up.
        let dash = id.bytes().rposition(|b| b == b'-')?;
        let (prefix, number) = (&id[..dash], &id[dash + 1..]);
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        Some((prefix, crate::results::flat::decimal(number.as_bytes())?))
    }

    /// The slot of an id; `create` makes it when absent (accepted ids), otherwise `None`.
    fn slot(&mut self, id: &str, create: bool) -> Option<&mut Slot> {
        self.last_family = None;
        // An id that once went to the map stays there.
        if !self.others.is_empty() && self.others.contains_key(id) {
            return self.others.get_mut(id);
        }
        if let Some((prefix, n)) = Self::split(id) {
            let cached = match &self.last {
                Some((p, f)) if crate::results::flat::same(p.as_bytes(), prefix.as_bytes()) => {
                    Some(*f)
                }
                _ => None,
            };
            let family = match cached.or_else(|| self.prefixes.get(prefix).copied()) {
                Some(f) => {
                    if cached.is_none() {
                        self.last = Some((prefix.to_owned(), f));
                    }
                    Some(f)
                }
                None if create => {
                    self.families.push(Slots::default());
                    self.family_stream.push(NO_STREAM);
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
                    self.last_family = Some(f);
                    let slot = slots.at(i);
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

    /// An accepted id of `stream` (the stream's name in `accepted.jsonl`): as
    /// [`LedgerBuilder::accept`], and the id's family is known to be that stream's, which
    /// lets the balance tell a stream not one of whose messages was heard of again
    /// ([`Ledger::silent`]).
    pub fn accept_in(&mut self, id: &str, stream: &str, t_ms: u64) {
        self.accept(id, t_ms);
        if let Some(f) = self.last_family
            && self.family_stream[f] == NO_STREAM
            && !stream.is_empty()
        {
            let index = match self.streams.iter().position(|s| s == stream) {
                Some(i) => i,
                None => {
                    self.streams.push(stream.to_owned());
                    self.streams.len() - 1
                }
            };
            self.family_stream[f] = index as u32;
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
                // The second as the slots keep it (saturated 49 days after the start): a wild
                // timestamp must not size this list.
                let second = (Slot::ms(done_ms) / 1000) as usize;
                if self.completions_per_s.len() <= second {
                    self.completions_per_s.resize(second + 1, 0);
                }
                self.completions_per_s[second] += 1;
            }
            Outcome::DeadLettered => slot.dead = true,
        }
    }

    /// The join of accepted ids to their first completion: `(accepted_ms, done_ms)` of every
    /// accepted message with a `completed` record (earliest accept, earliest completion),
    /// times in ms from the run's start. The one end-to-end join: the verdicts, the report
    /// and the gate's summary all measure from it.
    pub fn joined(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.families
            .iter()
            .flat_map(Slots::iter)
            .chain(self.others.values())
            .filter(|slot| slot.accepted != Slot::NONE && slot.done != Slot::NONE)
            .map(|slot| (u64::from(slot.accepted), u64::from(slot.done)))
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
        // Latencies are whole milliseconds: counted per millisecond first (below DENSE_MS),
        // recorded into the histogram once per distinct value at the end.
        const DENSE_MS: usize = 1 << 20;
        let mut per_ms: Vec<u64> = Vec::new();
        let mut e2e_ms_by_done_s: Vec<Vec<u32>> = Vec::new();
        let (mut completed, mut dead_lettered, mut unaccounted) = (0, 0, 0);
        // The smallest LOST_SAMPLE missing ids (as strings), kept without collecting them all.
        let mut sample: BTreeSet<String> = BTreeSet::new();
        // Whether a slot was accepted, and then whether anything was heard of it.
        enum Heard {
            NotAccepted,
            Something,
            Nothing,
        }
        let mut tally = |slot: &Slot, id: &dyn Fn() -> String| {
            if slot.accepted == Slot::NONE {
                return Heard::NotAccepted;
            }
            if slot.done != Slot::NONE {
                completed += 1;
                let latency_ms = slot.done.saturating_sub(slot.accepted);
                match per_ms.get_mut(latency_ms as usize) {
                    Some(n) => *n += 1,
                    None if (latency_ms as usize) < DENSE_MS => {
                        per_ms.resize(latency_ms as usize + 1, 0);
                        per_ms[latency_ms as usize] = 1;
                    }
                    None => {
                        let _ = e2e_us.record(u64::from(latency_ms) * 1000);
                    }
                }
                let second = (slot.done / 1000) as usize;
                if e2e_ms_by_done_s.len() <= second {
                    e2e_ms_by_done_s.resize(second + 1, Vec::new());
                }
                let list = &mut e2e_ms_by_done_s[second];
                if list.capacity() == 0 {
                    // Sized at once: a second has at most as many first completions as
                    // completion records.
                    let records = self.completions_per_s.get(second).copied().unwrap_or(0);
                    list.reserve_exact(records as usize);
                }
                list.push(latency_ms);
                Heard::Something
            } else if slot.dead {
                dead_lettered += 1;
                Heard::Something
            } else {
                unaccounted += 1;
                let id = id();
                let mut heard = Heard::Nothing;
                if let Some(listed) = &listed {
                    if listed.contains(id.as_str()) {
                        queued_listed += 1;
                        heard = Heard::Something;
                    } else {
                        keep_smallest(&mut lost_sample, id.clone());
                    }
                }
                keep_smallest(&mut sample, id);
                heard
            }
        };
        let mut names: Vec<(&String, &usize)> = self.prefixes.iter().collect();
        names.sort_by_key(|(_, f)| **f);
        // Per stream: messages accepted, whether any was heard of, its families.
        let mut by_stream: Vec<(u64, bool, Vec<String>)> =
            vec![(0, false, Vec::new()); self.streams.len()];
        for (prefix, f) in names {
            let (mut accepted, mut heard) = (0u64, false);
            for (n, slot) in self.families[*f].iter().enumerate() {
                match tally(slot, &|| format!("{prefix}-{n}")) {
                    Heard::NotAccepted => {}
                    Heard::Something => (accepted, heard) = (accepted + 1, true),
                    Heard::Nothing => accepted += 1,
                }
            }
            if let Some(s) = by_stream.get_mut(self.family_stream[*f] as usize) {
                s.0 += accepted;
                s.1 |= heard;
                s.2.push(prefix.clone());
            }
        }
        let silent: Vec<Silent> = self
            .streams
            .iter()
            .zip(by_stream)
            .filter(|(_, (accepted, heard, _))| *accepted > 0 && !heard)
            .map(|(stream, (accepted, _, families))| Silent {
                stream: stream.clone(),
                accepted,
                families,
            })
            .collect();
        for (id, slot) in &self.others {
            tally(slot, &|| id.clone());
        }
        for (ms, &n) in per_ms.iter().enumerate() {
            if n > 0 {
                let _ = e2e_us.record_n((ms as u64 * 1000).max(1), n);
            }
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
            silent,
            completions_per_s: self.completions_per_s,
            e2e_us,
            e2e_ms_by_done_s,
        }
    }
}

/// Adds `id` to `set`, keeping only the [`LOST_SAMPLE`] smallest.
fn keep_smallest(set: &mut BTreeSet<String>, id: String) {
    set.insert(id);
    if set.len() > LOST_SAMPLE {
        set.pop_last();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let joined: Vec<(u64, u64)> = b.joined().collect();
            let l = b.finish(Some(QueueCensus::single(0)));
            let (acc, completed, dead, missing, dup, unknown, sample, per_s, max_latency) =
                reference(&accepted, &completions);
            proptest::prop_assert_eq!(joined.len() as u64, completed);
            let joined_max = joined.iter().map(|(a, d)| d.saturating_sub(*a)).max();
            proptest::prop_assert_eq!(joined_max.unwrap_or(0), max_latency);
            let charted: Vec<u32> = l.e2e_ms_by_done_s.iter().flatten().copied().collect();
            proptest::prop_assert_eq!(charted.len() as u64, completed);
            // The histogram and the per-second lists hold exactly the joined latencies.
            let mut e2e_us = crate::metrics::new_histogram();
            let mut by_second: Vec<Vec<u32>> = Vec::new();
            for (a, d) in &joined {
                e2e_us.record((d.saturating_sub(*a) * 1000).max(1)).unwrap();
                let s = (d / 1000) as usize;
                by_second.resize(by_second.len().max(s + 1), Vec::new());
                by_second[s].push(d.saturating_sub(*a) as u32);
            }
            proptest::prop_assert_eq!(&l.e2e_us, &e2e_us);
            let mut charted_by_second = l.e2e_ms_by_done_s.clone();
            for v in charted_by_second.iter_mut().chain(by_second.iter_mut()) {
                v.sort_unstable();
            }
            proptest::prop_assert_eq!(charted_by_second, by_second);
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
    fn latencies_past_the_dense_count_are_recorded_alike() {
        let mut b = LedgerBuilder::default();
        for (n, done) in [(0, 1_000), (1, 1_000), (2, 2_000_000), (3, 5_000_000_000)] {
            b.accept(&format!("run-0-{n}"), 0);
            b.complete(&format!("run-0-{n}"), done, Outcome::Completed);
        }
        let l = b.finish(None);
        let mut expected = crate::metrics::new_histogram();
        for ms in [1_000u64, 1_000, 2_000_000, u64::from(Slot::NONE - 1)] {
            expected.record(ms * 1000).unwrap();
        }
        assert_eq!(l.e2e_us, expected);
        // A wild completion time is kept at the slots' last millisecond: the per-second lists
        // end there instead of growing with the timestamp.
        let last_second = (Slot::NONE - 1) as usize / 1000;
        assert_eq!(l.completions_per_s.len(), last_second + 1);
        assert_eq!(l.e2e_ms_by_done_s.len(), last_second + 1);
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
        let charted: u64 = l.e2e_ms_by_done_s.iter().map(|s| s.len() as u64).sum();
        assert_eq!(charted, l.completed, "one latency per completed message");
        let unknown_queue = Ledger {
            still_queued: None,
            ..l
        };
        assert_eq!(unknown_queue.lost(), None);
    }
}
