//! [`LiveMetrics`]: what the run's finished seconds add up to, per stream, for the
//! exporter: cumulative counters, the cumulative latency histogram in fixed buckets, and
//! the last complete second. Pure: fed [`SecondStats`] by the collector.

use crate::metrics::{Counters, SecondStats};

/// Upper bounds of the latency histogram's buckets, microseconds (1 ms to 30 s; `+Inf`
/// follows). Documented in `docs/metrics.md`.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// The quantiles of the last second's latency that are exported (1 = the maximum).
pub const LAST_SECOND_QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// The latency histogram of a stream over the run so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Responses per bucket (not cumulative), one per bound of [`LATENCY_BUCKETS_US`]
    /// and a last one for larger values.
    pub counts: [u64; LATENCY_BUCKETS_US.len() + 1],
    /// Sum of the latencies, microseconds.
    pub sum_us: u128,
}

impl Buckets {
    /// Responses counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts, one per bound and a last one (`+Inf`) equal to [`Buckets::count`].
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }

    /// Adds every value of an HDR histogram (microseconds): each recorded value goes to the
    /// first bucket whose bound is at or above it (HDR's own value, 3 significant digits:
    /// the counts are the histogram's, not an estimate).
    pub fn add(&mut self, h: &hdrhistogram::Histogram<u64>) {
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let count = v.count_at_value();
            let i = LATENCY_BUCKETS_US.partition_point(|b| *b < value);
            self.counts[i] += count;
            self.sum_us += u128::from(h.median_equivalent(value)) * u128::from(count);
        }
    }
}

/// The last complete second of a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastSecond {
    /// Arrivals due in that second.
    pub intended: u64,
    /// Requests started in it.
    pub sent: u64,
    /// Requests in flight when it was collected.
    pub in_flight: i64,
    /// Latency (from the intended time) at [`LAST_SECOND_QUANTILES`], microseconds; none
    /// when no response came in that second.
    pub quantiles_us: Option<[u64; LAST_SECOND_QUANTILES.len()]>,
}

/// One stream's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamLive {
    pub name: String,
    /// Over the run so far.
    pub totals: Counters,
    /// Latency from the intended time, over the run so far.
    pub latency: Buckets,
    pub last: LastSecond,
}

/// Every stream's figures, as the seconds end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveMetrics {
    pub streams: Vec<StreamLive>,
    /// Seconds collected so far.
    pub seconds: u32,
}

impl LiveMetrics {
    /// Empty figures for the streams `names` (in the recorder's order).
    pub fn new(names: &[String]) -> LiveMetrics {
        LiveMetrics {
            streams: names
                .iter()
                .map(|n| StreamLive {
                    name: n.clone(),
                    ..StreamLive::default()
                })
                .collect(),
            seconds: 0,
        }
    }

    /// Adds one finished second.
    pub fn record_second(&mut self, s: &SecondStats) {
        for (i, (live, w)) in self.streams.iter_mut().zip(&s.streams).enumerate() {
            live.totals.merge(&w.counters);
            live.latency.add(&w.corrected);
            live.last = LastSecond {
                intended: w.counters.intended,
                sent: w.counters.sent,
                in_flight: s.in_flight.get(i).copied().unwrap_or(0),
                quantiles_us: (!w.corrected.is_empty())
                    .then(|| LAST_SECOND_QUANTILES.map(|q| w.corrected.value_at_quantile(q))),
            };
        }
        self.seconds = self.seconds.max(s.second + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ErrorClass, Window};

    fn second(n: u32, latencies_us: &[u64]) -> SecondStats {
        let mut w = Window::default();
        w.counters.intended = latencies_us.len() as u64;
        for &l in latencies_us {
            w.record_send(10, 0, false);
            w.record_response(l, l, None);
        }
        w.record_failure(ErrorClass::Refused);
        SecondStats {
            second: n,
            streams: vec![w],
            in_flight: vec![3],
        }
    }

    #[test]
    fn buckets_count_every_response_once_and_accumulate() {
        let mut m = LiveMetrics::new(&["a".into()]);
        m.record_second(&second(0, &[500, 1_000, 1_001, 40_000]));
        m.record_second(&second(1, &[60_000_000]));
        let a = &m.streams[0];
        assert_eq!(m.seconds, 2);
        assert_eq!(a.totals.sent, 5);
        assert_eq!(a.totals.error(ErrorClass::Refused), 2);
        // 500 and 1000 <= 1 ms; 1001 <= 2.5 ms; 40 ms <= 50 ms; 60 s over every bound.
        let c = a.latency.cumulative();
        assert_eq!(c[0], 2);
        assert_eq!(c[1], 3);
        assert_eq!(c[5], 4);
        assert_eq!(c[LATENCY_BUCKETS_US.len() - 1], 4);
        assert_eq!(*c.last().unwrap(), 5);
        assert_eq!(a.latency.count(), 5);
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
        let sum = a.latency.sum_us as f64;
        let exact = (500 + 1_000 + 1_001 + 40_000 + 60_000_000) as f64;
        assert!((sum - exact).abs() / exact < 0.001, "{sum} vs {exact}");
        assert_eq!(a.last.sent, 1);
        assert_eq!(a.last.in_flight, 3);
        assert!(a.last.quantiles_us.unwrap()[4] >= 59_000_000);
    }

    #[test]
    fn a_second_without_responses_has_no_quantiles() {
        let mut m = LiveMetrics::new(&["a".into()]);
        m.record_second(&second(0, &[]));
        assert_eq!(m.streams[0].last.quantiles_us, None);
        assert_eq!(m.streams[0].latency.count(), 0);
    }
}
