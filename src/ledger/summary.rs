//! The end-of-run accounting (`ledger.json`): a pure function of the accepted ids, the
//! completion records and, for latency, the times messages were meant to be sent.
//!
//! Memory stays bounded whatever the number of messages: bitsets per stream for completed,
//! dead-lettered and duplicated ids, one HDR histogram, and bounded samples of ids.

use std::collections::HashSet;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::bits::AtomicBitSet;
use super::census::QueueCensus;
use super::ids::{AcceptedEntry, AcceptedIds, IdFormat};
use crate::config::profile::Profile;
use crate::schedule::{Schedule, Segment, derive_seed};

/// Format version of `ledger.json`.
pub const LEDGER_FORMAT_VERSION: u32 = 1;
/// Most ids kept in each sample list of the summary.
pub const SAMPLE_IDS: usize = 100;
/// Highest latency the histogram tracks (one day, in ms); larger values are clamped.
const MAX_LATENCY_MS: u64 = 24 * 3600 * 1000;

/// How a message ended, as a completion source saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The system finished it.
    Completed,
    /// It ended in a dead-letter queue.
    DeadLettered,
}

/// One line of `completions.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionRecord {
    /// The message id (`<run_tag>-<stream>-<seq>`).
    pub id: String,
    /// When it was finished (or found dead-lettered), ms since the Unix epoch.
    pub done_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// How many times it had been received (1 when the source does not say).
    pub receive_count: u32,
}

/// When each message was meant to be (or was) sent, in ms since the Unix epoch.
pub trait SendTimes {
    /// What the times are (`intended` or `accepted`), for the summary.
    fn origin(&self) -> &'static str;
    /// The time of `(stream, seq)`, if known.
    fn sent_ms(&mut self, stream: usize, seq: u64) -> Option<u64>;
}

/// Positions between schedule checkpoints: lookup cost is at most this many steps and
/// memory about one `Schedule` (a few hundred bytes) per this many arrivals.
const CHECKPOINT_EVERY: u64 = 1024;

/// Intended send times recomputed from the profile and seed (the schedule is a pure
/// function of them), with checkpoints so that any `seq` is found in a bounded number of
/// steps and lookups in increasing order cost one step each.
#[derive(Debug, Clone)]
pub struct IntendedTimes {
    start_ms: u64,
    streams: Vec<StreamTimes>,
}

#[derive(Debug, Clone)]
struct StreamTimes {
    /// `checkpoints[i]` yields `seq = i * CHECKPOINT_EVERY` next.
    checkpoints: Vec<Schedule>,
    /// A schedule positioned to yield `next` next.
    cursor: Option<(u64, Schedule)>,
    /// The schedule has fewer arrivals than the next checkpoint would need.
    ended: bool,
}

impl IntendedTimes {
    /// The schedules of every stream of `profile` as the driver computes them with `seed`,
    /// for a run that started at `start_ms` (ms since the Unix epoch).
    pub fn new(profile: &Profile, seed: u64, start_ms: u64) -> Self {
        let streams = profile
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                let seed = derive_seed(seed, &[index as u64]);
                StreamTimes {
                    checkpoints: vec![Schedule::new(
                        &stream.stages,
                        stream.arrival,
                        seed,
                        Segment::ALL,
                    )],
                    cursor: None,
                    ended: false,
                }
            })
            .collect();
        IntendedTimes { start_ms, streams }
    }

    /// The intended time of `(stream, seq)` from the start of the run.
    pub fn offset(&mut self, stream: usize, seq: u64) -> Option<std::time::Duration> {
        let s = self.streams.get_mut(stream)?;
        let block = (seq / CHECKPOINT_EVERY) as usize;
        while s.checkpoints.len() <= block && !s.ended {
            let mut next = s.checkpoints.last()?.clone();
            let mut steps = 0;
            while steps < CHECKPOINT_EVERY && next.next().is_some() {
                steps += 1;
            }
            if steps < CHECKPOINT_EVERY {
                s.ended = true;
            } else {
                s.checkpoints.push(next);
            }
        }
        let usable = matches!(&s.cursor, Some((next, _)) if *next <= seq && seq / CHECKPOINT_EVERY == *next / CHECKPOINT_EVERY);
        if !usable {
            let start = s.checkpoints.get(block)?.clone();
            s.cursor = Some((block as u64 * CHECKPOINT_EVERY, start));
        }
        let (next, schedule) = s.cursor.as_mut()?;
        while *next <= seq {
            let send = schedule.next()?;
            *next = send.seq + 1;
            if send.seq == seq {
                return Some(send.at);
            }
        }
        None
    }
}

impl SendTimes for IntendedTimes {
    fn origin(&self) -> &'static str {
        "intended"
    }
    fn sent_ms(&mut self, stream: usize, seq: u64) -> Option<u64> {
        let at = self.offset(stream, seq)?;
        Some(self.start_ms + at.as_millis() as u64)
    }
}

/// Accept times read back from `accepted.jsonl`, for runs without a schedule (closed
/// model). Costs 4 bytes per sequence number up to the highest one, per stream.
#[derive(Debug, Clone, Default)]
pub struct AcceptTimes {
    base_ms: Option<u64>,
    /// ms after `base_ms`; `u32::MAX` = unknown.
    streams: Vec<Vec<u32>>,
}

impl AcceptTimes {
    /// Records one accepted entry (entries may come in any order).
    pub fn add(&mut self, e: &AcceptedEntry) {
        let base = *self.base_ms.get_or_insert(e.t_ms.saturating_sub(3_600_000));
        if self.streams.len() <= e.stream {
            self.streams.resize_with(e.stream + 1, Vec::new);
        }
        let times = &mut self.streams[e.stream];
        let Ok(seq) = usize::try_from(e.seq) else {
            return;
        };
        if times.len() <= seq {
            times.resize(seq + 1, u32::MAX);
        }
        times[seq] = u32::try_from(e.t_ms.saturating_sub(base)).unwrap_or(u32::MAX - 1);
    }
}

impl SendTimes for AcceptTimes {
    fn origin(&self) -> &'static str {
        "accepted"
    }
    fn sent_ms(&mut self, stream: usize, seq: u64) -> Option<u64> {
        let t = *self.streams.get(stream)?.get(usize::try_from(seq).ok()?)?;
        (t != u32::MAX).then(|| self.base_ms.unwrap_or(0) + u64::from(t))
    }
}

/// What `ledger.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerSummary {
    /// [`LEDGER_FORMAT_VERSION`].
    pub format_version: u32,
    /// Distinct messages the target accepted.
    pub accepted: u64,
    /// Accepted messages completed at least once.
    pub completed: u64,
    /// Accepted messages found dead-lettered and never completed.
    pub dead_lettered: u64,
    /// Messages possibly still in the queue at the end (visible + in flight + delayed: the
    /// largest read of the end-of-run census, or the ids it listed), if measured.
    pub still_queued: Option<u64>,
    /// The end-of-run queue census `still_queued` comes from ([`QueueCensus`]), if taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueCensus>,
    /// Accepted messages neither completed nor dead-lettered.
    pub missing: u64,
    /// Up to [`SAMPLE_IDS`] of the missing ids, lowest stream and seq first.
    pub missing_sample: Vec<String>,
    /// Messages the system lost: when the census listed the queue's ids, the missing ids not
    /// in it (exact); otherwise `missing - still_queued` (0 at least: a lower bound).
    pub lost: u64,
    /// Up to [`SAMPLE_IDS`] of the lost ids, when the census listed the queue's ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_sample: Vec<String>,
    /// Accepted messages completed more than once.
    pub duplicates: u64,
    /// Completion records beyond the first for the same message.
    pub duplicate_completions: u64,
    /// Up to [`SAMPLE_IDS`] of the duplicated ids.
    pub duplicate_sample: Vec<String>,
    /// Completions of ids of this run the driver never saw accepted (e.g. the response
    /// was lost but the message went through).
    pub completed_not_accepted: u64,
    /// Completion records whose id is not of this run.
    pub foreign: u64,
    /// Up to [`SAMPLE_IDS`] of those ids.
    pub foreign_sample: Vec<String>,
    /// End-to-end latency of completed messages (first completion).
    pub latency: LatencySummary,
    /// The same counts per stream, in profile order.
    pub streams: Vec<StreamLedger>,
}

/// End-to-end latency figures, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencySummary {
    /// `intended` (from the schedule), `accepted` (from the accept time) or null (none).
    pub origin: Option<String>,
    /// Completed messages with a known send time.
    pub count: u64,
    /// Completions stamped before their send time (clock skew), counted as 0 ms.
    pub negative: u64,
    /// Smallest.
    pub min_ms: Option<u64>,
    /// Median.
    pub p50_ms: Option<u64>,
    /// 90th percentile.
    pub p90_ms: Option<u64>,
    /// 99th percentile.
    pub p99_ms: Option<u64>,
    /// 99.9th percentile.
    pub p999_ms: Option<u64>,
    /// Largest.
    pub max_ms: Option<u64>,
    /// Mean.
    pub mean_ms: Option<f64>,
}

/// Per-stream counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLedger {
    /// Stream name.
    pub name: String,
    /// Distinct accepted.
    pub accepted: u64,
    /// Accepted and completed.
    pub completed: u64,
    /// Accepted, dead-lettered, never completed.
    pub dead_lettered: u64,
    /// Accepted, neither.
    pub missing: u64,
    /// Completed more than once.
    pub duplicates: u64,
}

/// What the summary is computed from, besides the completion records.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    /// The accepted ids.
    pub accepted: &'a AcceptedIds,
    /// The run's id format.
    pub ids: &'a IdFormat,
    /// Stream names by index (the summary has one entry per accepted-ids stream).
    pub stream_names: &'a [String],
    /// Messages still queued at the end, if measured.
    pub still_queued: Option<u64>,
    /// The ids still in the queue at the end, when the queue could list them: then `lost`
    /// is exact (the missing ids not among these).
    pub queued_ids: Option<&'a HashSet<String>>,
}

struct StreamTally {
    completed: AtomicBitSet,
    dead: AtomicBitSet,
    duplicated: AtomicBitSet,
}

/// Computes the summary and the end-to-end latency histogram (ms). `completions` may come
/// in any order; `send_times` is `None` when no latency can be computed.
pub fn summarize(
    input: SummaryInput<'_>,
    completions: impl IntoIterator<Item = CompletionRecord>,
    mut send_times: Option<&mut dyn SendTimes>,
) -> (LedgerSummary, Histogram<u64>) {
    let n = input.accepted.streams();
    let mut tallies: Vec<StreamTally> = (0..n)
        .map(|_| StreamTally {
            completed: AtomicBitSet::new(),
            dead: AtomicBitSet::new(),
            duplicated: AtomicBitSet::new(),
        })
        .collect();
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_MS, 3).expect("valid histogram bounds");
    let mut s = LedgerSummary {
        format_version: LEDGER_FORMAT_VERSION,
        accepted: input.accepted.len(),
        completed: 0,
        dead_lettered: 0,
        still_queued: input.still_queued,
        queue: None,
        missing: 0,
        missing_sample: Vec::new(),
        lost: 0,
        lost_sample: Vec::new(),
        duplicates: 0,
        duplicate_completions: 0,
        duplicate_sample: Vec::new(),
        completed_not_accepted: 0,
        foreign: 0,
        foreign_sample: Vec::new(),
        latency: LatencySummary {
            origin: send_times.as_ref().map(|t| t.origin().to_owned()),
            ..LatencySummary::default()
        },
        streams: Vec::new(),
    };
    for record in completions {
        let Some((stream, seq)) = input.ids.parse(&record.id).filter(|(st, _)| *st < n) else {
            s.foreign += 1;
            push_sample(&mut s.foreign_sample, &record.id);
            continue;
        };
        if !input.accepted.contains(stream, seq) {
            s.completed_not_accepted += 1;
            continue;
        }
        let tally = &mut tallies[stream];
        match record.outcome {
            Outcome::DeadLettered => {
                // In range: `contains` held, so `seq` is below the capacity.
                let _ = tally.dead.insert(seq);
            }
            Outcome::Completed => {
                if tally.completed.insert(seq) == Ok(true) {
                    if let Some(sent) = send_times.as_mut().and_then(|t| t.sent_ms(stream, seq)) {
                        if record.done_ms < sent {
                            s.latency.negative += 1;
                        }
                        histogram.saturating_record(record.done_ms.saturating_sub(sent));
                    }
                } else {
                    s.duplicate_completions += 1;
                    if tally.duplicated.insert(seq) == Ok(true) {
                        push_sample(&mut s.duplicate_sample, &record.id);
                    }
                }
            }
        }
    }
    for (index, tally) in tallies.iter().enumerate() {
        let accepted = input.accepted.stream(index).expect("index below streams()");
        let mut row = StreamLedger {
            name: input
                .stream_names
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            accepted: accepted.len(),
            completed: tally.completed.len(),
            dead_lettered: 0,
            missing: 0,
            duplicates: tally.duplicated.len(),
        };
        for seq in accepted.iter() {
            if tally.completed.contains(seq) {
                continue;
            }
            if tally.dead.contains(seq) {
                row.dead_lettered += 1;
            } else {
                row.missing += 1;
                if let Some(queued) = input.queued_ids {
                    let id = input.ids.format(index, seq);
                    if !queued.contains(&id) {
                        s.lost += 1;
                        push_sample(&mut s.lost_sample, &id);
                    }
                }
                if s.missing_sample.len() < SAMPLE_IDS {
                    s.missing_sample.push(input.ids.format(index, seq));
                }
            }
        }
        s.completed += row.completed;
        s.dead_lettered += row.dead_lettered;
        s.missing += row.missing;
        s.duplicates += row.duplicates;
        s.streams.push(row);
    }
    if input.queued_ids.is_none() {
        s.lost = s.missing.saturating_sub(input.still_queued.unwrap_or(0));
    }
    s.latency.count = histogram.len();
    if !histogram.is_empty() {
        s.latency.min_ms = Some(histogram.min());
        s.latency.p50_ms = Some(histogram.value_at_quantile(0.5));
        s.latency.p90_ms = Some(histogram.value_at_quantile(0.9));
        s.latency.p99_ms = Some(histogram.value_at_quantile(0.99));
        s.latency.p999_ms = Some(histogram.value_at_quantile(0.999));
        s.latency.max_ms = Some(histogram.max());
        s.latency.mean_ms = Some(histogram.mean());
    }
    (s, histogram)
}

fn push_sample(sample: &mut Vec<String>, id: &str) {
    if sample.len() < SAMPLE_IDS {
        sample.push(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, done_ms: u64, outcome: Outcome) -> CompletionRecord {
        CompletionRecord {
            id: id.into(),
            done_ms,
            outcome,
            receive_count: 1,
        }
    }

    #[test]
    fn lost_duplicates_dead_letters_and_foreign_ids_are_told_apart() {
        let ids = IdFormat::new("run");
        let accepted = AcceptedIds::new(2);
        let mut times = AcceptTimes::default();
        for seq in 0..5 {
            accepted.accept_at(0, seq, 1_000 + seq).unwrap();
            times.add(&AcceptedEntry {
                stream: 0,
                seq,
                t_ms: 1_000 + seq,
            });
        }
        accepted.accept_at(1, 0, 1_000).unwrap();
        times.add(&AcceptedEntry {
            stream: 1,
            seq: 0,
            t_ms: 1_000,
        });
        let records = vec![
            done("run-0-0", 1_100, Outcome::Completed),
            done("run-0-1", 1_201, Outcome::Completed),
            done("run-0-1", 1_300, Outcome::Completed),
            done("run-0-2", 1_300, Outcome::DeadLettered),
            done("run-1-0", 1_050, Outcome::Completed),
            done("run-1-7", 1_050, Outcome::Completed),
            done("other-0-0", 1_050, Outcome::Completed),
        ];
        let names = ["a".to_owned(), "b".to_owned()];
        let input = SummaryInput {
            accepted: &accepted,
            ids: &ids,
            stream_names: &names,
            still_queued: Some(1),
            queued_ids: None,
        };
        let (s, h) = summarize(input, records, Some(&mut times));
        assert_eq!((s.accepted, s.completed, s.dead_lettered), (6, 3, 1));
        assert_eq!(s.missing, 2);
        assert_eq!(s.missing_sample, ["run-0-3", "run-0-4"]);
        assert_eq!(s.lost, 1);
        assert_eq!((s.duplicates, s.duplicate_completions), (1, 1));
        assert_eq!(s.duplicate_sample, ["run-0-1"]);
        assert_eq!((s.completed_not_accepted, s.foreign), (1, 1));
        assert_eq!(s.latency.origin.as_deref(), Some("accepted"));
        assert_eq!(s.latency.count, 3);
        assert_eq!((h.min(), h.max()), (50, 200));
        assert_eq!(s.streams[1].name, "b");
        assert_eq!(s.streams[0].missing + s.streams[1].missing, 2);
    }
}
