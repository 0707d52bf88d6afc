//! The open model's pacer: releases the HTTP streams' arrivals to the lanes at their
//! intended instants, from one dedicated OS thread.
//!
//! Why a thread and not a tokio task: tokio's timer has 1 ms granularity and is only polled
//! when a worker runs out of tasks (or every few dozen polls), so a dispatcher task woke up
//! to a millisecond (and, with busy workers, many milliseconds) late, then released a
//! burst. The pacer instead sleeps with the kernel's high-resolution timer (the thread's
//! timer slack set to 1 us), wakes at the next arrival's instant, and releases **every
//! arrival due by then in one batch** ([`Arrivals::take_due`]): at low rates a batch is one
//! arrival released within tens of microseconds of its time; at high rates the pacer wakes
//! at most every [`QUANTUM`] (200 us) and releases the few that came due meanwhile. It
//! never spins: a spinning thread would take one of the machine's cores from the target and
//! the lanes, and the sleep's precision is already well under the 1 ms the send lag is held
//! to.
//!
//! Lanes pick the released jobs up from one queue (`jobs.rs`): a busy lane takes the next
//! job when it finishes, without a wake-up; only idle lanes are woken, the most recently
//! idle first. Lanes are added only when a job has waited [`GROW_AFTER`] for one. An
//! arrival is never released before its intended time, and the send lag the lanes record is
//! still the actual start of the send minus the intended time, which includes the pacer's
//! own delay.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::jobs::JobQueue;
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
pub(super) async fn run(ctx: Arc<Ctx>, arrivals: Arrivals, queue: Arc<JobQueue>) {
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("shakedown-pacer".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            // Closed however the pacer ends (a panic too), so waiting lanes stop.
            struct CloseOnDrop(Arc<JobQueue>);
            impl Drop for CloseOnDrop {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let queue = CloseOnDrop(queue);
            pace(&ctx, arrivals, &queue.0);
            drop(queue);
            let _ = done_tx.send(());
        });
    match spawned {
        // A pacer that panicked drops `done_tx`: the run ends either way (the lanes still
        // waiting then end with the runtime's drain).
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => tracing::error!("cannot start the pacer thread: {e}"),
    }
}

/// The pacer's loop: sleep until the next arrival (or until the oldest queued job has
/// waited long enough to need another lane), release every due arrival, grow the lanes.
/// After the last arrival it keeps growing the lanes while jobs still wait for one.
fn pace(ctx: &Arc<Ctx>, mut arrivals: Arrivals, jobs: &Arc<JobQueue>) {
    tighten_timer_slack();
    let start = ctx.recorder.start();
    let streams = ctx.plan.profile.streams.len();
    let mut batch: Vec<Due> = Vec::new();
    let mut intended = vec![0u64; streams];
    let mut next_growth = start;
    let mut woke = Instant::now();
    loop {
        if ctx.stopping.load(Ordering::Relaxed) {
            return;
        }
        let next = arrivals.next_at().map(|at| start + at);
        let now = Instant::now();
        if next.is_some_and(|due| due <= now) {
            batch.clear();
            arrivals.take_due(now.saturating_duration_since(start), &mut batch);
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
            jobs.push(batch.iter().map(|d| Job {
                stream: d.stream,
                seq: d.seq,
                intended: start + d.at,
            }));
        }
        let (queued, head) = jobs.waiting();
        let now = Instant::now();
        let growth = Growth {
            queued,
            idle: ctx.idle.load(Ordering::Relaxed),
            lanes: ctx.lane_count.load(Ordering::Relaxed),
            connecting: ctx.connecting.load(Ordering::Relaxed),
            max_lanes: ctx.plan.settings.max_in_flight,
            head_wait: head.map_or(Duration::ZERO, |h| now.saturating_duration_since(h)),
        };
        let mut check_growth_at = None;
        if growth.wanted() {
            if now >= next_growth {
                let open = growth.lanes_to_open();
                for _ in 0..open {
                    spawn_lane(ctx, Source::open(jobs));
                }
                if open > 0 && growth.lanes > 0 {
                    next_growth = now + GROW_AFTER;
                }
            }
            // Look again when the oldest job will have waited long enough (at the soonest
            // a step after the last growth, so a capped queue does not spin the pacer).
            let head = head.unwrap_or(now);
            check_growth_at = Some((head + GROW_AFTER).max(next_growth).max(now + MIN_NAP));
        }
        let wake = match (next, check_growth_at) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            // Every arrival released and none waiting for a lane to be opened.
            (None, None) => return,
        };
        sleep_towards(wake.max(woke + QUANTUM));
        woke = Instant::now();
    }
}

/// How long the oldest released job may wait for a lane before the pacer opens more. A
/// shorter wait is the lanes' own jitter (a worker thread descheduled for a moment, one
/// slow response), which the busy lanes absorb within it; opening a connection for each
/// such job costs the target and this machine more than the wait, and used to snowball at
/// high rates (a 5 s run at 20,000/s against a local nginx opened 841 connections where
/// about ten are busy at once).
pub(super) const GROW_AFTER: Duration = Duration::from_micros(500);

/// Shortest time between two wake-ups of the pacer. Arrivals closer together than this
/// are released together, up to this much after their time: at 20,000/s four per wake-up
/// instead of one, so the pacer and the lanes it wakes switch in and out of the CPU a
/// quarter as often (each wake-up of a thread costs this 2-core VM about as much CPU as
/// the request it releases). Sparser arrivals are released at their own instants.
const QUANTUM: Duration = Duration::from_micros(200);

/// Shortest sleep between two growth checks when nothing else is due.
const MIN_NAP: Duration = Duration::from_micros(100);

/// What the pacer knows when deciding whether to open lanes.
#[derive(Debug, Clone, Copy)]
struct Growth {
    /// Jobs released and not yet taken.
    queued: usize,
    /// Lanes waiting for a job (or just born).
    idle: usize,
    lanes: usize,
    /// Lanes opening their connection.
    connecting: usize,
    max_lanes: usize,
    /// How long the oldest queued job has waited.
    head_wait: Duration,
}

impl Growth {
    /// Whether more jobs wait than idle lanes can take (so more lanes may be needed).
    fn wanted(&self) -> bool {
        self.queued > self.idle && self.lanes < self.max_lanes
    }

    /// Lanes to open now. The first lane opens at once. After that, only when the oldest
    /// job has waited [`GROW_AFTER`]: one lane per job beyond the idle lanes, but at most an
    /// eighth of the lanes open (at least one) per step, and never while
    /// [`MAX_CONNECTING`] lanes are still connecting: when the target is slow to accept,
    /// more connections only make it slower (a connect storm); the jobs wait instead, and
    /// their latency says so.
    fn lanes_to_open(&self) -> usize {
        if !self.wanted() || self.connecting >= MAX_CONNECTING {
            return 0;
        }
        if self.lanes == 0 {
            return 1;
        }
        if self.head_wait < GROW_AFTER {
            return 0;
        }
        let step = (self.lanes / 8).max(1);
        (self.queued - self.idle)
            .min(step)
            .min(MAX_CONNECTING - self.connecting)
            .min(self.max_lanes - self.lanes)
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

    fn growth(queued: usize, idle: usize, lanes: usize, wait_us: u64) -> Growth {
        Growth {
            queued,
            idle,
            lanes,
            connecting: 0,
            max_lanes: 1000,
            head_wait: Duration::from_micros(wait_us),
        }
    }

    #[test]
    fn the_first_lane_opens_at_once_and_later_ones_only_for_a_job_kept_waiting() {
        assert_eq!(growth(1, 0, 0, 0).lanes_to_open(), 1);
        // Idle lanes can take every queued job: nothing to open, however long they waited.
        assert_eq!(growth(3, 3, 10, 5_000).lanes_to_open(), 0);
        assert!(!growth(3, 3, 10, 5_000).wanted());
        // Busy lanes and a fresh backlog: their jitter, not a need for connections.
        assert_eq!(growth(20, 0, 10, 499).lanes_to_open(), 0);
        assert!(growth(20, 0, 10, 499).wanted());
        // Kept waiting: one step, an eighth of the lanes (at least one), no more than needed.
        assert_eq!(growth(20, 0, 10, 500).lanes_to_open(), 1);
        assert_eq!(growth(200, 0, 80, 900).lanes_to_open(), 10);
        assert_eq!(growth(5, 2, 80, 900).lanes_to_open(), 3);
    }

    #[test]
    fn growth_stays_within_the_caps() {
        let capped = Growth {
            max_lanes: 82,
            ..growth(200, 0, 80, 900)
        };
        assert_eq!(capped.lanes_to_open(), 2);
        let full = Growth {
            max_lanes: 80,
            ..growth(200, 0, 80, 900)
        };
        assert_eq!(full.lanes_to_open(), 0);
        assert!(!full.wanted());
        let storm = Growth {
            connecting: MAX_CONNECTING,
            ..growth(200, 0, 80, 900)
        };
        assert_eq!(storm.lanes_to_open(), 0);
        let some_connecting = Growth {
            connecting: MAX_CONNECTING - 4,
            ..growth(200, 0, 80, 900)
        };
        assert_eq!(some_connecting.lanes_to_open(), 4);
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
