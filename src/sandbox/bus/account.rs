//! Accounting: execution slots (concurrency, cold starts, keep-warm) and billing. Pure: the
//! caller passes the clock in, so every rule here is testable without waiting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Billed duration of one invocation: rounded up to the next millisecond, at least 1 ms
/// (Lambda's 1 ms billing granularity).
pub fn billed_ms(handler: Duration) -> u64 {
    let ns = handler.as_nanos();
    (ns.div_ceil(1_000_000) as u64).max(1)
}

/// GB-seconds of `billed_ms` milliseconds at `memory_mb` MB (1 GB = 1024 MB).
pub fn gb_seconds(billed_ms: u64, memory_mb: u32) -> f64 {
    mb_ms_to_gb_s(u128::from(billed_ms) * u128::from(memory_mb))
}

fn mb_ms_to_gb_s(mb_ms: u128) -> f64 {
    mb_ms as f64 / 1024.0 / 1000.0
}

/// A started invocation: whether its slot was new (cold), and whether it is one of the
/// function's provisioned slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The invocation got a new slot and must pay the cold-start delay first.
    pub cold: bool,
    /// The invocation runs on a provisioned (always initialised) slot.
    pub provisioned: bool,
}

impl Start {
    /// An invocation on an on-demand slot, cold or warm.
    pub fn on_demand(cold: bool) -> Self {
        Start {
            cold,
            provisioned: false,
        }
    }
}

/// The CPU share a function gets at `memory_mb`: Lambda allocates CPU in proportion to memory
/// and gives one full vCPU at 1,769 MB; a single-threaded handler gains nothing beyond one
/// vCPU, so the share is capped at 1.
pub fn cpu_share(memory_mb: u32) -> f64 {
    (f64::from(memory_mb) / FULL_VCPU_MB).min(1.0)
}

/// Memory at which Lambda allocates one full vCPU (AWS Lambda developer guide, "Configuring
/// Lambda function memory").
pub const FULL_VCPU_MB: f64 = 1769.0;

/// Handler duration of one invocation: its waiting part (`wait`: I/O, downstream calls, not
/// sped up by memory) plus its CPU-bound part (`cpu`, measured at one full vCPU) stretched by
/// the CPU share of `memory_mb`.
pub fn handler_duration(wait: Duration, cpu: Duration, memory_mb: u32) -> Duration {
    if cpu.is_zero() {
        return wait;
    }
    wait + Duration::from_secs_f64(cpu.as_secs_f64() / cpu_share(memory_mb))
}

/// The invocation was refused: the function is at its concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("throttled: {limit} concurrent executions already running")]
pub struct Throttled {
    /// The limit that was hit.
    pub limit: u32,
}

/// One function's execution slots and counters.
///
/// A slot exists while it runs an invocation or sits warm; a warm slot idle for longer than
/// `keep_warm` is reclaimed, so a function with no events holds no slots.
#[derive(Debug, Clone)]
pub struct FunctionLedger {
    memory_mb: u32,
    /// Provisioned slots: always initialised, never reclaimed, billed from `since`.
    provisioned: u32,
    /// Provisioned slots not running an invocation now.
    provisioned_free: u32,
    /// When the provisioned slots were set up (billing starts).
    since: Option<Instant>,
    limit: Option<u32>,
    keep_warm: Duration,
    /// When each idle warm slot last finished; most recent last (reused first).
    idle: Vec<Instant>,
    running: u32,
    stats: FunctionStats,
    mb_ms: u128,
}

/// Counters of one function, as reported by `stats()` and `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunctionStats {
    /// Memory size in MB.
    pub memory_mb: u32,
    /// Invocations started (not counting throttled attempts).
    pub invocations: u64,
    /// Invocations that finished successfully.
    pub succeeded: u64,
    /// Invocations that failed (and were billed).
    pub errors: u64,
    /// Attempts refused at the concurrency limit.
    pub throttles: u64,
    /// Invocations that had to initialise a new slot.
    pub cold_starts: u64,
    /// Invocations that ran on a warm slot.
    pub warm_starts: u64,
    /// Invocations cut short by shutdown.
    pub aborted: u64,
    /// Executions running now (including those initialising).
    pub concurrent: u32,
    /// Highest `concurrent` seen.
    pub max_concurrent: u32,
    /// Idle slots still warm at the time of the snapshot.
    pub warm_slots: u32,
    /// Idle slots reclaimed after `keep_warm`.
    pub expired_slots: u64,
    /// Sum of billed handler durations (each rounded up to 1 ms).
    pub billed_ms: u64,
    /// Billed GB-seconds: billed seconds x memory in GB.
    pub gb_seconds: f64,
    /// Total time spent in cold-start initialisation (not included in `billed_ms`).
    pub init_ms: u64,
    /// CPU share at this memory size (`memory_mb / 1769`, at most 1).
    pub cpu_share: f64,
    /// Slots kept initialised whether or not events arrive.
    pub provisioned_concurrency: u32,
    /// GB-seconds of the provisioned slots: slots x memory GB x seconds since they were set
    /// up, billed whether or not they run anything.
    pub provisioned_gb_seconds: f64,
    /// Everything billed: `gb_seconds` (invocations) + `provisioned_gb_seconds`.
    pub billed_gb_seconds: f64,
}

impl FunctionLedger {
    /// An idle function: no slots.
    pub fn new(memory_mb: u32, limit: Option<u32>, keep_warm: Duration) -> Self {
        FunctionLedger {
            memory_mb,
            provisioned: 0,
            provisioned_free: 0,
            since: None,
            limit,
            keep_warm,
            idle: Vec::new(),
            running: 0,
            stats: FunctionStats {
                memory_mb,
                cpu_share: cpu_share(memory_mb),
                ..FunctionStats::default()
            },
            mb_ms: 0,
        }
    }

    /// Keeps `slots` slots initialised from `now` on, as AWS provisioned concurrency does:
    /// invocations take them first (warm, never cold), they are never reclaimed, and they
    /// are billed continuously (`provisioned_gb_seconds`) whether or not they run anything.
    pub fn with_provisioned(mut self, slots: u32, now: Instant) -> Self {
        self.provisioned = slots;
        self.provisioned_free = slots;
        self.since = Some(now);
        self.stats.provisioned_concurrency = slots;
        self
    }

    fn expire(&mut self, now: Instant) {
        let keep = self.keep_warm;
        let before = self.idle.len();
        self.idle
            .retain(|&t| now.saturating_duration_since(t) <= keep);
        self.stats.expired_slots += (before - self.idle.len()) as u64;
    }

    /// Starts an invocation at `now` on the most recently used warm slot, or on a new (cold)
    /// slot, or refuses it at the concurrency limit (counting a throttle).
    pub fn start(&mut self, now: Instant) -> Result<Start, Throttled> {
        self.expire(now);
        if let Some(limit) = self.limit
            && self.running >= limit
        {
            self.stats.throttles += 1;
            return Err(Throttled { limit });
        }
        self.running += 1;
        let start = if self.provisioned_free > 0 {
            self.provisioned_free -= 1;
            Start {
                cold: false,
                provisioned: true,
            }
        } else {
            Start::on_demand(self.idle.pop().is_none())
        };
        let cold = start.cold;
        self.stats.invocations += 1;
        if cold {
            self.stats.cold_starts += 1;
        } else {
            self.stats.warm_starts += 1;
        }
        self.stats.max_concurrent = self.stats.max_concurrent.max(self.running);
        Ok(start)
    }

    /// Ends the invocation `start` at `now`: bills `handler` (the handler's own run time),
    /// records `init` (cold-start time, unbilled) and returns the slot to its pool (the
    /// provisioned slots, or the warm pool).
    pub fn finish(
        &mut self,
        now: Instant,
        start: Start,
        handler: Duration,
        init: Duration,
        ok: bool,
    ) {
        self.running = self.running.saturating_sub(1);
        let billed = billed_ms(handler);
        self.stats.billed_ms += billed;
        self.mb_ms += u128::from(billed) * u128::from(self.memory_mb);
        self.stats.init_ms += init.as_millis() as u64;
        if ok {
            self.stats.succeeded += 1;
        } else {
            self.stats.errors += 1;
        }
        if start.provisioned {
            self.provisioned_free += 1;
        } else {
            self.idle.push(now);
        }
    }

    /// Ends the invocation `start` cut short (shutdown): bills what ran, and discards the
    /// slot (a provisioned one is set up again: provisioned slots are always there).
    pub fn abort(&mut self, start: Start, handler: Duration) {
        self.running = self.running.saturating_sub(1);
        if start.provisioned {
            self.provisioned_free += 1;
        }
        if !handler.is_zero() {
            let billed = billed_ms(handler);
            self.stats.billed_ms += billed;
            self.mb_ms += u128::from(billed) * u128::from(self.memory_mb);
        }
        self.stats.aborted += 1;
    }

    /// The counters as of `now`.
    pub fn stats(&self, now: Instant) -> FunctionStats {
        let keep = self.keep_warm;
        let gb_seconds = mb_ms_to_gb_s(self.mb_ms);
        let provisioned_gb_seconds = self.since.map_or(0.0, |since| {
            let secs = now.saturating_duration_since(since).as_secs_f64();
            f64::from(self.provisioned) * f64::from(self.memory_mb) / 1024.0 * secs
        });
        FunctionStats {
            concurrent: self.running,
            warm_slots: self
                .idle
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) <= keep)
                .count() as u32,
            gb_seconds,
            provisioned_gb_seconds,
            billed_gb_seconds: gb_seconds + provisioned_gb_seconds,
            ..self.stats.clone()
        }
    }
}

/// Counters of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// Events that matched the rule.
    pub matched: u64,
    /// Deliveries to its targets that succeeded (one per target per event).
    pub delivered: u64,
    /// Deliveries given up after the retry policy was exhausted.
    pub failed: u64,
}

/// A snapshot of the whole bus, as returned by `stats()` and served at `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BusStats {
    /// Events accepted (matched or not).
    pub accepted: u64,
    /// Events refused as malformed.
    pub rejected: u64,
    /// Accepted events that matched no rule.
    pub unmatched: u64,
    /// Deliveries that succeeded, over all rules.
    pub delivered: u64,
    /// Deliveries given up, over all rules.
    pub failed_deliveries: u64,
    /// Retries after a failed attempt (not counting throttles).
    pub retries: u64,
    /// Deliveries cut short by shutdown.
    pub abandoned: u64,
    /// Deliveries not yet finished.
    pub in_flight: u64,
    /// Executions running now, over all functions.
    pub concurrent: u32,
    /// Invocation GB-seconds so far, over all functions.
    pub gb_seconds: f64,
    /// Everything billed so far, over all functions: invocation GB-seconds plus the
    /// provisioned slots' GB-seconds.
    pub billed_gb_seconds: f64,
    /// Per rule, by name.
    pub rules: BTreeMap<String, RuleStats>,
    /// Per function, by name.
    pub functions: BTreeMap<String, FunctionStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const OD: Start = Start {
        cold: false,
        provisioned: false,
    };

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::from_millis(30)), 30);
        assert_eq!(billed_ms(Duration::from_micros(30_001)), 31);
        assert!((gb_seconds(1000, 1024) - 1.0).abs() < 1e-12);
        assert!((gb_seconds(30, 128) - 0.030 * 0.125).abs() < 1e-12);
    }

    #[test]
    fn concurrency_limit_throttles_and_frees_on_finish() {
        let t0 = Instant::now();
        let mut l = FunctionLedger::new(128, Some(2), Duration::from_secs(60));
        assert_eq!(l.start(t0), Ok(Start::on_demand(true)));
        assert_eq!(l.start(t0), Ok(Start::on_demand(true)));
        assert_eq!(l.start(t0), Err(Throttled { limit: 2 }));
        assert_eq!(l.stats(t0).concurrent, 2);
        l.finish(t0 + 30 * MS, OD, 30 * MS, Duration::ZERO, true);
        assert_eq!(l.start(t0 + 31 * MS), Ok(Start::on_demand(false)));
        let s = l.stats(t0 + 31 * MS);
        assert_eq!(
            (s.invocations, s.throttles, s.cold_starts, s.warm_starts),
            (3, 1, 2, 1)
        );
        assert_eq!((s.concurrent, s.max_concurrent, s.warm_slots), (2, 2, 0));
    }

    #[test]
    fn zero_limit_throttles_everything_and_none_is_unlimited() {
        let t0 = Instant::now();
        let mut off = FunctionLedger::new(128, Some(0), Duration::from_secs(1));
        assert!(off.start(t0).is_err());
        let mut open = FunctionLedger::new(128, None, Duration::from_secs(1));
        for _ in 0..500 {
            open.start(t0).unwrap();
        }
        assert_eq!(open.stats(t0).max_concurrent, 500);
    }

    #[test]
    fn idle_slots_expire_after_keep_warm() {
        let t0 = Instant::now();
        let mut l = FunctionLedger::new(128, None, Duration::from_secs(10));
        l.start(t0).unwrap();
        l.start(t0).unwrap();
        l.finish(t0 + MS, OD, MS, 5 * MS, true);
        l.finish(t0 + 9 * MS, OD, MS, 5 * MS, true);
        assert_eq!(l.stats(t0 + 10 * MS).warm_slots, 2);
        // 10 s after the first finish only the second slot is still warm.
        let later = t0 + Duration::from_secs(10) + 5 * MS;
        assert_eq!(l.stats(later).warm_slots, 1);
        assert_eq!(l.start(later), Ok(Start::on_demand(false)));
        assert_eq!(l.start(later), Ok(Start::on_demand(true)));
        let s = l.stats(later);
        assert_eq!((s.expired_slots, s.cold_starts, s.init_ms), (1, 3, 10));
        // Long after everything finished, nothing is held.
        l.finish(later, OD, MS, Duration::ZERO, true);
        l.finish(later, OD, MS, Duration::ZERO, false);
        let s = l.stats(later + Duration::from_secs(11));
        assert_eq!(
            (s.warm_slots, s.concurrent, s.errors, s.succeeded),
            (0, 0, 1, 3)
        );
    }

    #[test]
    fn gb_seconds_sum_billed_durations() {
        let t0 = Instant::now();
        let mut l = FunctionLedger::new(512, None, Duration::from_secs(1));
        for _ in 0..10 {
            l.start(t0).unwrap();
            l.finish(t0, OD, Duration::from_micros(29_500), Duration::ZERO, true);
        }
        l.start(t0).unwrap();
        l.abort(OD, Duration::from_millis(10));
        let s = l.stats(t0);
        assert_eq!(s.billed_ms, 310);
        assert!(
            (s.gb_seconds - 0.310 * 0.5).abs() < 1e-12,
            "{}",
            s.gb_seconds
        );
        assert_eq!((s.aborted, s.concurrent, s.warm_slots), (1, 0, 0));
    }

    #[test]
    fn memory_buys_cpu_up_to_one_vcpu() {
        assert!((cpu_share(1769) - 1.0).abs() < 1e-12);
        assert!((cpu_share(3008) - 1.0).abs() < 1e-12);
        assert!((cpu_share(128) - 128.0 / 1769.0).abs() < 1e-12);
        let wait = Duration::from_millis(20);
        let cpu = Duration::from_millis(400);
        // 400 ms of CPU at 128 MB (7.2% of a vCPU): 5.53 s; at 1,769 MB and above: 400 ms.
        let slow = handler_duration(wait, cpu, 128);
        assert_eq!(slow.as_millis(), 20 + 5528);
        assert_eq!(handler_duration(wait, cpu, 1769), wait + cpu);
        assert_eq!(handler_duration(wait, cpu, 10240), wait + cpu);
        assert_eq!(handler_duration(wait, Duration::ZERO, 128), wait);
        // Doubling memory below one vCPU halves the CPU part and keeps GB-seconds equal.
        let (a, b) = (
            handler_duration(Duration::ZERO, cpu, 256),
            handler_duration(Duration::ZERO, cpu, 512),
        );
        assert!((a.as_secs_f64() / b.as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((gb_seconds(billed_ms(a), 256) - gb_seconds(billed_ms(b), 512)).abs() < 1e-3);
    }

    #[test]
    fn provisioned_slots_are_warm_and_bill_while_idle() {
        let t0 = Instant::now();
        let mut l =
            FunctionLedger::new(1024, Some(3), Duration::from_secs(1)).with_provisioned(2, t0);
        let s = l.stats(t0);
        assert_eq!((s.provisioned_concurrency, s.concurrent), (2, 0));
        assert_eq!(s.billed_gb_seconds, 0.0);
        let a = l.start(t0).unwrap();
        let b = l.start(t0).unwrap();
        let c = l.start(t0).unwrap();
        assert_eq!((a.provisioned, a.cold), (true, false));
        assert_eq!((b.provisioned, b.cold), (true, false));
        assert_eq!(c, Start::on_demand(true));
        l.finish(t0 + MS, a, Duration::from_millis(500), Duration::ZERO, true);
        l.finish(t0 + MS, c, Duration::from_millis(500), Duration::ZERO, true);
        // The freed provisioned slot is taken before the warm on-demand one.
        let d = l.start(t0 + 2 * MS).unwrap();
        assert!(d.provisioned && !d.cold);
        l.finish(t0 + 3 * MS, d, MS, Duration::ZERO, true);
        l.finish(t0 + 3 * MS, b, MS, Duration::ZERO, true);
        // Ten idle seconds later the on-demand slot is reclaimed, the provisioned ones are
        // not: nothing runs, yet 2 slots x 1 GB x 10 s are billed.
        let later = t0 + Duration::from_secs(10);
        let s = l.stats(later);
        assert_eq!((s.concurrent, s.warm_slots), (0, 0));
        assert!((s.gb_seconds - 1.002).abs() < 1e-9, "{}", s.gb_seconds);
        assert!((s.provisioned_gb_seconds - 20.0).abs() < 1e-9);
        assert!((s.billed_gb_seconds - 21.002).abs() < 1e-9);
        assert!(!l.start(later).unwrap().cold);
    }
}
