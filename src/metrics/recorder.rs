//! The sharded recorder: many tasks record into a few mutex-guarded shards,
//! each holding one [`Window`] per (second, stream); a collector takes the
//! finished seconds and merges the shards with `Histogram::add`.
//!
//! The second a record belongs to is computed while the shard lock is held, so
//! once the collector has taken the seconds before `s`, no later record can
//! land in them: no sample is lost or counted twice at a boundary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::window::Window;

/// All streams of one second, merged over every shard.
#[derive(Debug, Clone)]
pub struct SecondStats {
    /// Seconds since the run's start.
    pub second: u32,
    /// One window per stream, indexed like the profile's streams.
    pub streams: Vec<Window>,
    /// Requests in flight per stream when the second was collected.
    pub in_flight: Vec<i64>,
}

pub struct Recorder {
    start: Instant,
    streams: usize,
    shards: Vec<Mutex<BTreeMap<u32, Vec<Window>>>>,
    in_flight: Vec<AtomicI64>,
}

impl Recorder {
    pub fn new(start: Instant, streams: usize, shards: usize) -> Recorder {
        Recorder {
            start,
            streams,
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(BTreeMap::new()))
                .collect(),
            in_flight: (0..streams).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn streams(&self) -> usize {
        self.streams
    }

    /// Records into the window of the current second for `stream`, on the
    /// shard chosen by `hint` (a task id keeps contention low).
    pub fn record(&self, hint: usize, stream: usize, f: impl FnOnce(&mut Window)) {
        let mut shard = self.shards[hint % self.shards.len()].lock();
        let second = self.start.elapsed().as_secs() as u32;
        let windows = shard
            .entry(second)
            .or_insert_with(|| (0..self.streams).map(|_| Window::default()).collect());
        f(&mut windows[stream]);
    }

    pub fn in_flight_add(&self, stream: usize, delta: i64) {
        self.in_flight[stream].fetch_add(delta, Ordering::Relaxed);
    }

    pub fn in_flight(&self, stream: usize) -> i64 {
        self.in_flight[stream].load(Ordering::Relaxed)
    }

    /// Takes every second strictly before `until` from all shards, merged, in order.
    /// Seconds in which nothing was recorded are returned empty, so the
    /// timeline has no gaps.
    pub fn take_before(&self, from: u32, until: u32) -> Vec<SecondStats> {
        let mut merged: BTreeMap<u32, Vec<Window>> = BTreeMap::new();
        for shard in &self.shards {
            // Only the split happens under the lock: lanes recording into this shard
            // wait for a pointer swap, not for the merge.
            let done = {
                let mut shard = shard.lock();
                let rest = shard.split_off(&until);
                std::mem::replace(&mut *shard, rest)
            };
            for (second, windows) in done {
                match merged.get_mut(&second) {
                    Some(acc) => acc.iter_mut().zip(&windows).for_each(|(a, w)| a.merge(w)),
                    None => {
                        merged.insert(second, windows);
                    }
                }
            }
        }
        let in_flight: Vec<i64> = (0..self.streams).map(|s| self.in_flight(s)).collect();
        (from..until)
            .map(|second| SecondStats {
                second,
                streams: merged
                    .remove(&second)
                    .unwrap_or_else(|| (0..self.streams).map(|_| Window::default()).collect()),
                in_flight: in_flight.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorClass;

    #[test]
    fn shards_merge_and_seconds_are_contiguous() {
        let rec = Recorder::new(Instant::now(), 2, 4);
        for hint in 0..8 {
            rec.record(hint, hint % 2, |w| w.record_response(1000, 500, None));
        }
        rec.record(1, 1, |w| w.record_failure(ErrorClass::Timeout));
        let seconds = rec.take_before(0, 1);
        assert_eq!(seconds.len(), 1);
        assert_eq!(seconds[0].streams[0].counters.ok, 4);
        assert_eq!(seconds[0].streams[1].counters.ok, 4);
        assert_eq!(seconds[0].streams[1].counters.error(ErrorClass::Timeout), 1);
        // Taking again yields empty windows, never the same samples twice.
        let again = rec.take_before(0, 1);
        assert_eq!(again[0].streams[0].counters.ok, 0);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let rec = std::sync::Arc::new(Recorder::new(Instant::now(), 1, 3));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        rec.record(t, 0, |w| w.counters.sent += 1);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let total: u64 = rec
            .take_before(0, 1000)
            .iter()
            .map(|s| s.streams[0].counters.sent)
            .sum();
        assert_eq!(total, 40_000);
    }
}
