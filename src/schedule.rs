//! The arrival schedule: exact intended send times as a pure function of
//! a stream's rate curve, its arrival process and a seed.
//!
//! The rate curve is piecewise linear (one piece per stage), so its integral
//! `Λ(t)` (the expected number of arrivals by time `t`) is piecewise quadratic
//! and can be inverted in closed form. Arrivals are then placed in "count
//! space" and mapped back through `Λ⁻¹`:
//!
//! - `uniform`: the k-th arrival (k = 0, 1, ...) is at `Λ⁻¹(k + ½)`, so the number of
//!   sends in any interval differs from the integral by less than one;
//! - `poisson`: unit-rate exponential gaps in count space give a non-homogeneous
//!   Poisson process following the curve exactly (the time-rescaling theorem).
//!
//! The same profile and seed give the same schedule on every machine, which is
//! what lets a distributed run split it into disjoint [`Segment`]s.

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};

use crate::config::profile::{Arrival, Stage};

/// The integrated rate curve of one stream.
#[derive(Debug, Clone)]
pub struct RateCurve {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    start: f64,
    duration: f64,
    from: f64,
    to: f64,
    /// Λ at the start of the piece.
    count_before: f64,
}

impl Piece {
    fn slope(&self) -> f64 {
        (self.to - self.from) / self.duration
    }
    fn count(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration
    }
}

impl RateCurve {
    pub fn new(stages: &[Stage]) -> RateCurve {
        let mut pieces = Vec::with_capacity(stages.len());
        let (mut start, mut count_before) = (0.0, 0.0);
        for stage in stages {
            let duration = stage.duration.as_secs_f64();
            if duration <= 0.0 {
                continue;
            }
            let piece = Piece {
                start,
                duration,
                from: stage.from.max(0.0),
                to: stage.to.max(0.0),
                count_before,
            };
            start += duration;
            count_before += piece.count();
            pieces.push(piece);
        }
        RateCurve { pieces }
    }

    /// Length of the curve in seconds.
    pub fn duration(&self) -> f64 {
        self.pieces.last().map_or(0.0, |p| p.start + p.duration)
    }

    /// Expected number of arrivals over the whole curve.
    pub fn total(&self) -> f64 {
        self.pieces
            .last()
            .map_or(0.0, |p| p.count_before + p.count())
    }

    /// Intended rate (per second) at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        match self.piece_at_time(t) {
            Some(p) => p.from + p.slope() * (t - p.start),
            None => 0.0,
        }
    }

    /// `Λ(t)`: expected arrivals in `[0, t]`.
    pub fn integral(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        match self.piece_at_time(t) {
            Some(p) => {
                let s = t - p.start;
                p.count_before + p.from * s + p.slope() * s * s / 2.0
            }
            None => self.total(),
        }
    }

    /// `Λ⁻¹(x)`: the time by which `x` arrivals are expected; `None` past the end.
    pub fn inverse(&self, x: f64) -> Option<f64> {
        if x < 0.0 || x > self.total() {
            return None;
        }
        // The first piece whose cumulative count reaches x, skipping zero-rate pieces.
        let idx = self
            .pieces
            .partition_point(|p| p.count_before + p.count() < x);
        let p = self.pieces.get(idx)?;
        let u = x - p.count_before;
        if u <= 0.0 {
            return Some(p.start);
        }
        // Solve from*s + slope*s²/2 = u in the cancellation-free form.
        let a = p.from;
        let disc = (a * a + 2.0 * p.slope() * u).max(0.0);
        let denom = a + disc.sqrt();
        if denom <= 0.0 {
            return Some(p.start);
        }
        Some(p.start + (2.0 * u / denom).min(p.duration))
    }

    fn piece_at_time(&self, t: f64) -> Option<&Piece> {
        if t < 0.0 {
            return None;
        }
        let idx = self.pieces.partition_point(|p| p.start + p.duration <= t);
        self.pieces.get(idx)
    }
}

/// One stripe of a schedule split across `count` drivers: arrival `seq` belongs
/// to segment `seq % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

impl Segment {
    /// The whole schedule.
    pub const ALL: Segment = Segment { index: 0, count: 1 };

    pub fn contains(&self, seq: u64) -> bool {
        seq % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Segment {
    type Err = String;
    /// Parses `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint =
            || format!("expected a segment like `0/4` (index/count, index < count), got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(hint)?;
        let index: u32 = i.trim().parse().map_err(|_| hint())?;
        let count: u32 = n.trim().parse().map_err(|_| hint())?;
        if count == 0 || index >= count {
            return Err(hint());
        }
        Ok(Segment { index, count })
    }
}

/// One intended send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledSend {
    /// Position in the stream's global schedule (0-based), the same on every segment.
    pub seq: u64,
    /// Intended send time from the start of the run.
    pub at: Duration,
}

/// The arrivals of one stream, in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    curve: RateCurve,
    arrival: Process,
    segment: Segment,
    next_seq: u64,
    /// Position in count space of the next arrival.
    next_x: f64,
}

#[derive(Debug, Clone)]
enum Process {
    Uniform,
    Poisson(Box<ChaCha8Rng>),
}

impl Schedule {
    pub fn new(stages: &[Stage], arrival: Arrival, seed: u64, segment: Segment) -> Schedule {
        let mut process = match arrival {
            Arrival::Uniform => Process::Uniform,
            Arrival::Poisson => Process::Poisson(Box::new(ChaCha8Rng::seed_from_u64(seed))),
        };
        let next_x = Self::step(&mut process, None);
        Schedule {
            curve: RateCurve::new(stages),
            arrival: process,
            segment,
            next_seq: 0,
            next_x,
        }
    }

    pub fn curve(&self) -> &RateCurve {
        &self.curve
    }

    fn step(process: &mut Process, prev: Option<f64>) -> f64 {
        match process {
            Process::Uniform => prev.map_or(0.5, |x| x + 1.0),
            Process::Poisson(rng) => {
                let gap: f64 = Exp1.sample(rng.as_mut());
                prev.unwrap_or(0.0) + gap
            }
        }
    }
}

impl Iterator for Schedule {
    type Item = ScheduledSend;

    fn next(&mut self) -> Option<ScheduledSend> {
        loop {
            let t = self.curve.inverse(self.next_x)?;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.next_x = Self::step(&mut self.arrival, Some(self.next_x));
            if self.segment.contains(seq) {
                return Some(ScheduledSend {
                    seq,
                    at: Duration::from_secs_f64(t),
                });
            }
        }
    }
}

/// A seed derived from a run seed and a list of parts (stream index, seq...),
/// so every random choice is reproducible and independent of the others.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed;
    for &p in parts {
        x = splitmix64(x ^ splitmix64(p.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    x
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for per-request random choices (size, template fields).
pub fn request_rng(seed: u64, stream: usize, seq: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, &[stream as u64, seq]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: u64, from: f64, to: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            from,
            to,
        }
    }

    fn per_second(schedule: Schedule, secs: usize) -> Vec<u64> {
        let mut counts = vec![0u64; secs];
        for a in schedule {
            counts[(a.at.as_secs() as usize).min(secs - 1)] += 1;
        }
        counts
    }

    #[test]
    fn ramp_sends_per_second_match_the_integral_within_one() {
        let stages = [stage(10, 0.0, 1000.0)];
        let s = Schedule::new(&stages, Arrival::Uniform, 1, Segment::ALL);
        let curve = s.curve().clone();
        let counts = per_second(s, 10);
        for (sec, &n) in counts.iter().enumerate() {
            let expected = curve.integral(sec as f64 + 1.0) - curve.integral(sec as f64);
            assert!(
                (n as f64 - expected).abs() <= 1.0,
                "second {sec}: {n} sends, integral {expected}"
            );
        }
        assert_eq!(counts.iter().sum::<u64>(), 5000);
    }

    #[test]
    fn multi_stage_curve_with_ramps_down_and_steps() {
        let stages = [
            stage(2, 100.0, 100.0),
            stage(3, 100.0, 10.0),
            stage(2, 0.0, 0.0),
            stage(1, 50.0, 50.0),
        ];
        let s = Schedule::new(&stages, Arrival::Uniform, 1, Segment::ALL);
        let curve = s.curve().clone();
        assert!((curve.total() - (200.0 + 165.0 + 50.0)).abs() < 1e-9);
        let counts = per_second(s, 8);
        for (sec, &n) in counts.iter().enumerate() {
            let expected = curve.integral(sec as f64 + 1.0) - curve.integral(sec as f64);
            assert!(
                (n as f64 - expected).abs() <= 1.0,
                "second {sec}: {n} vs {expected}"
            );
        }
        assert_eq!(counts[5], 0);
        assert_eq!(counts[6], 0);
    }

    #[test]
    fn inverse_undoes_integral() {
        let curve = RateCurve::new(&[stage(5, 3.0, 700.0), stage(5, 700.0, 0.0)]);
        for i in 1..100 {
            let t = i as f64 * 0.1;
            let x = curve.integral(t);
            let back = curve.inverse(x).unwrap();
            assert!((back - t).abs() < 1e-6, "t={t} x={x} back={back}");
        }
    }

    #[test]
    fn poisson_mean_rate_within_two_percent() {
        let stages = [stage(100, 100.0, 100.0)];
        let s = Schedule::new(&stages, Arrival::Poisson, 42, Segment::ALL);
        let arrivals: Vec<_> = s.collect();
        let n = arrivals.len() as f64;
        assert!((n - 10_000.0).abs() / 10_000.0 < 0.02, "{n} arrivals");
        // Gaps are exponential: their coefficient of variation is ~1 (uniform would be 0).
        let gaps: Vec<f64> = arrivals
            .windows(2)
            .map(|w| (w[1].at - w[0].at).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
    }

    #[test]
    fn seeded_schedule_reproduces_exactly_and_seeds_differ() {
        let stages = [stage(10, 10.0, 500.0)];
        let a: Vec<_> = Schedule::new(&stages, Arrival::Poisson, 7, Segment::ALL).collect();
        let b: Vec<_> = Schedule::new(&stages, Arrival::Poisson, 7, Segment::ALL).collect();
        let c: Vec<_> = Schedule::new(&stages, Arrival::Poisson, 8, Segment::ALL).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn segments_partition_the_schedule() {
        let stages = [stage(5, 0.0, 300.0)];
        let all: Vec<_> = Schedule::new(&stages, Arrival::Poisson, 3, Segment::ALL).collect();
        let mut merged: Vec<_> = (0..3)
            .flat_map(|i| {
                Schedule::new(&stages, Arrival::Poisson, 3, Segment { index: i, count: 3 })
            })
            .collect();
        merged.sort_by_key(|a| a.seq);
        assert_eq!(all, merged);
    }

    #[test]
    fn segment_parsing() {
        assert_eq!("1/4".parse::<Segment>(), Ok(Segment { index: 1, count: 4 }));
        assert!("4/4".parse::<Segment>().is_err());
        assert!("0/0".parse::<Segment>().is_err());
        assert!("x".parse::<Segment>().is_err());
    }

    #[test]
    fn zero_rate_curve_has_no_arrivals() {
        let stages = [stage(10, 0.0, 0.0)];
        assert_eq!(
            Schedule::new(&stages, Arrival::Uniform, 1, Segment::ALL).count(),
            0
        );
        assert_eq!(
            Schedule::new(&stages, Arrival::Poisson, 1, Segment::ALL).count(),
            0
        );
    }
}
