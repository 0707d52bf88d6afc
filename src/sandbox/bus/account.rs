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

/// A started invocation: whether its slot was new (cold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The invocation got a new slot and must pay the cold-start delay first.
    pub cold: bool,
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
}

impl FunctionLedger {
    /// An idle function: no slots.
    pub fn new(memory_mb: u32, limit: Option<u32>, keep_warm: Duration) -> Self {
        FunctionLedger {
            memory_mb,
            limit,
            keep_warm,
            idle: Vec::new(),
            running: 0,
            stats: FunctionStats {
                memory_mb,
                ..FunctionStats::default()
            },
            mb_ms: 0,
        }
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
        let cold = self.idle.pop().is_none();
        self.running += 1;
        self.stats.invocations += 1;
        if cold {
            self.stats.cold_starts += 1;
        } else {
            self.stats.warm_starts += 1;
        }
        self.stats.max_concurrent = self.stats.max_concurrent.max(self.running);
        Ok(Start { cold })
    }

    /// Ends an invocation at `now`: bills `handler` (the handler's own run time), records
    /// `init` (cold-start time, unbilled) and returns the slot to the warm pool.
    pub fn finish(&mut self, now: Instant, handler: Duration, init: Duration, ok: bool) {
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
        self.idle.push(now);
    }

    /// Ends an invocation cut short (shutdown): bills what ran, and discards the slot.
    pub fn abort(&mut self, handler: Duration) {
        self.running = self.running.saturating_sub(1);
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
        FunctionStats {
            concurrent: self.running,
            warm_slots: self
                .idle
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) <= keep)
                .count() as u32,
            gb_seconds: mb_ms_to_gb_s(self.mb_ms),
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
    /// Per rule, by name.
    pub rules: BTreeMap<String, RuleStats>,
    /// Per function, by name.
    pub functions: BTreeMap<String, FunctionStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

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
        assert_eq!(l.start(t0), Ok(Start { cold: true }));
        assert_eq!(l.start(t0), Ok(Start { cold: true }));
        assert_eq!(l.start(t0), Err(Throttled { limit: 2 }));
        assert_eq!(l.stats(t0).concurrent, 2);
        l.finish(t0 + 30 * MS, 30 * MS, Duration::ZERO, true);
        assert_eq!(l.start(t0 + 31 * MS), Ok(Start { cold: false }));
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
        l.finish(t0 + MS, MS, 5 * MS, true);
        l.finish(t0 + 9 * MS, MS, 5 * MS, true);
        assert_eq!(l.stats(t0 + 10 * MS).warm_slots, 2);
        // 10 s after the first finish only the second slot is still warm.
        let later = t0 + Duration::from_secs(10) + 5 * MS;
        assert_eq!(l.stats(later).warm_slots, 1);
        assert_eq!(l.start(later), Ok(Start { cold: false }));
        assert_eq!(l.start(later), Ok(Start { cold: true }));
        let s = l.stats(later);
        assert_eq!((s.expired_slots, s.cold_starts, s.init_ms), (1, 3, 10));
        // Long after everything finished, nothing is held.
        l.finish(later, MS, Duration::ZERO, true);
        l.finish(later, MS, Duration::ZERO, false);
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
            l.finish(t0, Duration::from_micros(29_500), Duration::ZERO, true);
        }
        l.start(t0).unwrap();
        l.abort(Duration::from_millis(10));
        let s = l.stats(t0);
        assert_eq!(s.billed_ms, 310);
        assert!(
            (s.gb_seconds - 0.310 * 0.5).abs() < 1e-12,
            "{}",
            s.gb_seconds
        );
        assert_eq!((s.aborted, s.concurrent, s.warm_slots), (1, 0, 0));
    }
}
