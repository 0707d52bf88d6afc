//! [`Tally`]: the traffic of a window of seconds, summed over the chosen streams, and its
//! latency quantiles. Pure.
//!
//! A window's quantile is exact when the run kept the histogram of every second of it
//! (`latency.hlog`): they are merged and the quantile read from the union. Without them it
//! falls back to an upper bound rebuilt from the timeline's per-second percentiles
//! ([`Tally::quantile_bound`]). [`Tally::quantile_source`] says which one a figure is.

use std::cell::OnceCell;

use hdrhistogram::Histogram;

use super::view::{Latency, Second};
use crate::metrics::{Encoded, merge_histograms};

/// [`Tally::quantile_source`] of an exact quantile.
pub const SOURCE_EXACT: &str = "latency.hlog";
/// [`Tally::quantile_source`] of the fallback bound.
pub const SOURCE_BOUND: &str = "timeline bound";

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
    /// The latency histograms of those stream-seconds; `None` unless every one of them has
    /// its histogram.
    pub histograms: Option<Vec<Encoded>>,
    /// The merged histograms, made on first use.
    merged: OnceCell<Option<Histogram<u64>>>,
}

impl Tally {
    /// An empty window of `seconds` that will take histograms ([`Tally::add_with`]).
    pub fn with_histograms(seconds: f64) -> Tally {
        Tally {
            seconds,
            histograms: Some(Vec::new()),
            ..Tally::default()
        }
    }

    /// Adds one stream-second without its histogram: quantiles become bounds.
    pub fn add(&mut self, s: &Second) {
        self.add_with(s, None);
    }

    /// Adds one stream-second with its latency histogram, when there is one.
    pub fn add_with(&mut self, s: &Second, histogram: Option<&Encoded>) {
        self.intended += s.intended;
        self.sent += s.sent;
        self.ok += s.ok;
        self.failed += s.failed();
        self.dropped += s.dropped;
        if let Some(l) = s.latency {
            let n = s.responses().max(1);
            self.latency.push((n, l));
            match (histogram, &mut self.histograms) {
                (Some(h), Some(all)) => all.push(h.clone()),
                _ => self.histograms = None,
            }
            self.merged = OnceCell::new();
        }
    }

    /// The union of the window's histograms, when every stream-second with responses has
    /// one and they decode.
    pub fn merged(&self) -> Option<&Histogram<u64>> {
        self.merged
            .get_or_init(|| {
                let all = self.histograms.as_ref().filter(|v| !v.is_empty())?;
                merge_histograms(all).ok().filter(|h| !h.is_empty())
            })
            .as_ref()
    }

    /// Where [`Tally::quantile`] comes from: [`SOURCE_EXACT`] or [`SOURCE_BOUND`].
    pub fn quantile_source(&self) -> &'static str {
        if self.merged().is_some() {
            SOURCE_EXACT
        } else {
            SOURCE_BOUND
        }
    }

    /// The window's `q` latency quantile (ms): exact from the merged histograms when the run
    /// kept them, else [`Tally::quantile_bound`]. `None` without responses.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match self.merged() {
            Some(h) => Some(h.value_at_quantile(q) as f64 / 1000.0),
            None => self.quantile_bound(q),
        }
    }

    /// `(responses slower than ms, responses)` from the merged histograms; `None` without
    /// them. Slower means beyond the histogram bucket of `ms` (3 significant digits).
    pub fn slower_than(&self, ms: f64) -> Option<(u64, u64)> {
        let h = self.merged()?;
        let us = (ms * 1000.0).max(0.0) as u64;
        let at_most = h.count_between(0, us);
        Some((h.len().saturating_sub(at_most), h.len()))
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

    /// An upper bound of the window's `q` latency quantile (ms), exact for one second at the
    /// timeline's levels (p50, p90, p99, p99.9, max).
    ///
    /// Each stream-second is known only by its percentiles, so its share of responses at or
    /// below `x` is at least the highest level whose percentile is <= `x`. The result is the
    /// smallest `x` where these lower bounds, weighted by response counts, reach `q`: the true
    /// quantile is never above it, and a second with few responses weighs little.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
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

    /// Responses that carry a latency.
    pub fn responses(&self) -> u64 {
        self.latency.iter().map(|(n, _)| n).sum()
    }
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

    /// 200 responses over two seconds: second 0 all at 10 ms, second 1 with 98 at 10 ms and
    /// 2 at 1 s. The true p99 of the window (rank 198 of 200) is 10 ms; the bound from the
    /// per-second percentiles (second 1's p90 is 10 ms but its p99 is 1 s) cannot tell where
    /// second 1's slowest 10% lie and gives 1 s.
    #[test]
    fn window_p99_is_exact_from_merged_histograms_where_the_bound_is_not() {
        use crate::metrics::{Window, encode_histogram};
        let mut fast = Window::default();
        let mut mixed = Window::default();
        for _ in 0..100 {
            fast.record_response(10_000, 10_000, None);
        }
        for i in 0..100 {
            let us = if i < 98 { 10_000 } else { 1_000_000 };
            mixed.record_response(us, us, None);
        }
        let second = |w: &Window| {
            let row = crate::results::timeline::TimelineRow::new(0, "s", w, 0);
            let [p50, p90, p99, p999, max] = row.latency_ms().map(Option::unwrap);
            let mut s = Second::simple(100, 0, 0.0);
            s.latency = Some(Latency {
                p50,
                p90,
                p99,
                p999,
                max,
            });
            s
        };
        let encoded = |w: &Window| Encoded::from(encode_histogram(&w.corrected));
        let mut t = Tally::with_histograms(2.0);
        t.add_with(&second(&fast), Some(&encoded(&fast)));
        t.add_with(&second(&mixed), Some(&encoded(&mixed)));
        let ten = fast.corrected.highest_equivalent(10_000) as f64 / 1000.0;
        assert_eq!(t.quantile(0.99), Some(ten));
        assert_eq!(t.quantile_source(), SOURCE_EXACT);
        assert_eq!(
            t.quantile_bound(0.99),
            Some(mixed.corrected.max() as f64 / 1000.0)
        );
        assert!(t.quantile_bound(0.99).unwrap() > 999.0 && ten < 10.1);
        // One second without its histogram: the whole window falls back to the bound.
        let mut partial = Tally::with_histograms(2.0);
        partial.add_with(&second(&fast), Some(&encoded(&fast)));
        partial.add_with(&second(&mixed), None);
        assert_eq!(partial.quantile(0.99), t.quantile_bound(0.99));
        assert_eq!(partial.quantile_source(), SOURCE_BOUND);
    }
}
