//! The open model's pacer: releases the HTTP streams' arrivals to the lanes at their
//! intended instants, from one dedicated OS thread.
//!
//! Why a thread and not a tokio task: tokio's timer has 1 ms granularity and is only
//! polled when a worker runs out of tasks (or every few dozen polls), so a dispatcher task
//! woke up to a millisecond (and, with busy workers, many milliseconds) late, then released
//! a burst. The pacer instead sleeps with the kernel's high-resolution timer (the thread's
//! timer slack set to 1 us), wakes at the next arrival's instant, and releases **every
//! arrival due by then in one batch** ([`Arrivals::take_due`]): at low rates a batch is one
//! arrival released within tens of microseconds of its time; at high rates, when arrivals
//! are closer together than a wake-up costs, each wake-up releases the few that came due
//! meanwhile. It never spins: a spinning thread would take one of the machine's cores from
//! the target and the lanes, and the sleep's precision is already well under the 1 ms the
//! send lag is held to.
//!
//! Lanes pick the released jobs up from one queue: a busy lane takes the next job when it
//! finishes, without a wake-up; only idle lanes are woken. An arrival is never released
//! before its intended time, and the send lag the lanes record is still the actual start of
//! the send minus the intended time, which includes the pacer's own delay.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Ctx, Job, MAX_CONNECTING, Source, spawn_lane};
use crate::schedule::Schedule;

/// One arrival that is due: its stream, its position in the stream's schedule, and its
/// intended time from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub stream: usize,
    pub seq: u64,
    pub at: Duration,
}

/// The arrivals of several streams merged in time order (ties: the lower stream index,
/// then the lower sequence number first).
pub struct Arrivals {
    schedules: Vec<(usize, Schedule)>,
    /// The next arrival of each schedule, keyed by (time, stream, seq); the payload is
    /// the index into `schedules`.
    heads: BinaryHeap<Reverse<(Duration, usize, u64, usize)>>,
}

impl Arrivals {
    /// Merges `(stream index, schedule)` pairs.
    pub fn new(schedules: Vec<(usize, Schedule)>) -> Arrivals {
        let mut arrivals = Arrivals {
            schedules,
            heads: BinaryHeap::new(),
        };
        for slot in 0..arrivals.schedules.len() {
            arrivals.advance(slot);
        }
        arrivals
    }

    fn advance(&mut self, slot: usize) {
        let (stream, schedule) = &mut self.schedules[slot];
        if let Some(next) = schedule.next() {
            self.heads.push(Reverse((next.at, *stream, next.seq, slot)));
        }
    }

    /// The intended time of the next arrival, `None` once every schedule has ended.
    pub fn next_at(&self) -> Option<Duration> {
        self.heads.peek().map(|Reverse((at, ..))| *at)
    }

    /// Moves every arrival due by `now` (intended time `<= now`) into `out`, in time order.
    /// Nothing later is taken: an arrival is never released early.
    pub fn take_due(&mut self, now: Duration, out: &mut Vec<Due>) {
        while let Some(&Reverse((at, stream, seq, slot))) = self.heads.peek() {
            if at > now {
                break;
            }
            self.heads.pop();
            out.push(Due { stream, seq, at });
            self.advance(slot);
        }
    }
}

/// Most one sleep lasts, so that a stop is noticed promptly even between sparse arrivals.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Asks the kernel to wake this thread's sleeps within 1 us of their deadline (the default
/// timer slack is 50 us). Best effort: without it the pacer is merely less exact.
fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Sleeps until `deadline` (or for [`MAX_SLEEP`], whichever is sooner).
fn sleep_towards(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep((deadline - now).min(MAX_SLEEP));
    }
}

/// Runs the pacer on its own thread until the schedules end or the run stops; resolves
/// when it has released its last arrival. Lanes are spawned on the current runtime.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    arrivals: Arrivals,
    tx: flume::Sender<Job>,
    rx: flume::Receiver<Job>,
) {
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("shakedown-pacer".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            pace(&ctx, arrivals, &tx, &rx);
            drop(tx);
            let _ = done_tx.send(());
        });
    match spawned {
        // A pacer that panicked drops `done_tx`: the run ends either way.
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => tracing::error!("cannot start the pacer thread: {e}"),
    }
}

/// The pacer's loop: sleep until the next arrival, release every due one, grow the lanes.
fn pace(
    ctx: &Arc<Ctx>,
    mut arrivals: Arrivals,
    tx: &flume::Sender<Job>,
    rx: &flume::Receiver<Job>,
) {
    tighten_timer_slack();
    let start = ctx.recorder.start();
    let streams = ctx.plan.profile.streams.len();
    let mut batch: Vec<Due> = Vec::new();
    let mut intended = vec![0u64; streams];
    while let Some(next) = arrivals.next_at() {
        if ctx.stopping.load(Ordering::Relaxed) {
            return;
        }
        let due = start + next;
        if due > Instant::now() {
            sleep_towards(due);
            continue;
        }
        batch.clear();
        arrivals.take_due(Instant::now().saturating_duration_since(start), &mut batch);
        intended.fill(0);
        for d in &batch {
            intended[d.stream] += 1;
        }
        for (stream, &n) in intended.iter().enumerate() {
            if n > 0 {
                ctx.recorder
                    .record(stream, stream, |w| w.counters.intended += n);
            }
        }
        for d in &batch {
            let job = Job {
                stream: d.stream,
                seq: d.seq,
                intended: start + d.at,
            };
            if tx.send(job).is_err() {
                return;
            }
        }
        grow_lanes(ctx, rx, batch.len());
    }
}

/// Opens lanes while queued jobs outnumber idle lanes (at most one per job just released),
/// up to the cap, but never while many lanes are still connecting: when the target is slow
/// to accept, more connections only make it slower (a connect storm); the queued jobs wait
/// instead, and their latency says so.
fn grow_lanes(ctx: &Arc<Ctx>, rx: &flume::Receiver<Job>, released: usize) {
    for _ in 0..released {
        if rx.len() > ctx.idle.load(Ordering::Relaxed)
            && ctx.connecting.load(Ordering::Relaxed) < MAX_CONNECTING
            && ctx.lane_count.load(Ordering::Relaxed) < ctx.plan.settings.max_in_flight
        {
            spawn_lane(ctx, Source::Open(rx.clone()));
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::{Arrival, Stage};
    use crate::schedule::Segment;

    fn schedule(rate: f64, secs: u64, arrival: Arrival, seed: u64) -> Schedule {
        let stages = [Stage {
            duration: Duration::from_secs(secs),
            from: rate,
            to: rate,
        }];
        Schedule::new(&stages, arrival, seed, Segment::ALL)
    }

    #[test]
    fn takes_exactly_the_arrivals_due_and_nothing_early() {
        // 10/s uniform: arrivals at 0.05 s, 0.15 s, 0.25 s...
        let mut a = Arrivals::new(vec![(0, schedule(10.0, 1, Arrival::Uniform, 1))]);
        let mut out = Vec::new();
        a.take_due(Duration::from_millis(49), &mut out);
        assert!(out.is_empty(), "{out:?}");
        a.take_due(Duration::from_millis(50), &mut out);
        assert_eq!(out.len(), 1, "an arrival exactly at `now` is due");
        assert_eq!(out[0].at, Duration::from_millis(50));
        assert_eq!(a.next_at(), Some(Duration::from_millis(150)));
        // A late wake-up releases everything due meanwhile, in one batch, in order.
        out.clear();
        a.take_due(Duration::from_millis(460), &mut out);
        let seqs: Vec<u64> = out.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert!(out.windows(2).all(|w| w[0].at <= w[1].at));
        out.clear();
        a.take_due(Duration::from_secs(5), &mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(a.next_at(), None);
    }

    #[test]
    fn merges_streams_in_time_order_without_losing_any() {
        let streams = vec![
            (0, schedule(300.0, 2, Arrival::Poisson, 7)),
            (1, schedule(50.0, 2, Arrival::Uniform, 1)),
            (2, schedule(1000.0, 1, Arrival::Poisson, 9)),
        ];
        let expected: Vec<usize> = streams.iter().map(|(_, s)| s.clone().count()).collect();
        let mut a = Arrivals::new(streams);
        let mut all = Vec::new();
        // Release in uneven steps, as a pacer waking at irregular times would.
        let mut now = Duration::ZERO;
        while a.next_at().is_some() {
            now += Duration::from_micros(1_700);
            let before = all.len();
            a.take_due(now, &mut all);
            assert!(all[before..].iter().all(|d| d.at <= now));
        }
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
        for (stream, &n) in expected.iter().enumerate() {
            let seqs: Vec<u64> = all
                .iter()
                .filter(|d| d.stream == stream)
                .map(|d| d.seq)
                .collect();
            assert_eq!(seqs.len(), n, "stream {stream}");
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "stream {stream}");
        }
    }

    #[test]
    fn no_schedules_means_no_arrivals() {
        let mut a = Arrivals::new(Vec::new());
        assert_eq!(a.next_at(), None);
        let mut out = Vec::new();
        a.take_due(Duration::from_secs(100), &mut out);
        assert!(out.is_empty());
    }
}
