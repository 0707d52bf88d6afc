//! Is a share measured over a window beyond a limit, or within what chance gives a window
//! of that size? A p99 over 500 responses is its 5th slowest one; two or three unlucky
//! requests move it. So a promise that caps a share (responses slower than its limit,
//! failed requests) calls it broken only when the share measured is beyond the limit with
//! [`CONFIDENCE`]: a one-sided binomial test of `k` events out of `n` against the limit's
//! share. Above the limit but not significantly so is neither a pass nor a fail: the run
//! could not tell (`docs/promises.md#how-sure-a-fail-is`).
//!
//! The test treats requests as independent draws. Slow or failed requests that come in a
//! burst (one stall of a shared machine, one hiccup) are not: ten slow requests in one
//! second are closer to one event than to ten. So the counts are first spread by their
//! [`dispersion`] over the window's seconds (the quasi-binomial correction): bunched events
//! count as fewer independent ones, and only a share beyond the limit *throughout* the
//! window, or far beyond it, is called broken. The correction never makes the test readier
//! to fail (the dispersion is at least 1). What stalls the harness itself is caught by the
//! starved-harness guard (`analyze::promises::evaluate`).

/// How sure a share must be beyond its limit to be called broken.
pub const CONFIDENCE: f64 = 0.95;

/// `P(X >= k)` for `X ~ Binomial(n, p)`.
pub fn binomial_tail(n: u64, p: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // ln P(X = i), from i = 0 upwards: ln C(n, i) + i ln p + (n - i) ln(1 - p).
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut ln_pmf = n as f64 * lq;
    let mut tail = 0.0;
    let mode = ((n + 1) as f64 * p).floor() as u64;
    for i in 0..=n {
        if i >= k {
            let term = ln_pmf.exp();
            tail += term;
            // Past the mode the terms only shrink: stop once they no longer count.
            if i > mode && term < tail * 1e-17 {
                break;
            }
        }
        if i < n {
            ln_pmf += ((n - i) as f64 / (i + 1) as f64).ln() + lp - lq;
        }
    }
    tail.min(1.0)
}

/// What `k` events out of `n` say about a share capped at `limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// `k / n` is at or under the limit.
    Within,
    /// Above the limit with [`CONFIDENCE`]: `p_value` is the chance of `k` or more events
    /// were the true share exactly the limit.
    Beyond { p_value: f64 },
    /// Above the limit, but as likely as `p_value` by chance at the limit.
    Undecided { p_value: f64 },
}

/// Judges `k` events out of `n` against a share capped at `limit` (a fraction).
pub fn judge_share(k: u64, n: u64, limit: f64) -> Share {
    judge_dispersed(k, n, limit, 1.0)
}

/// [`judge_share`] for events whose per-second counts have `dispersion` (>= 1): the test
/// runs on `k / dispersion` events out of `n / dispersion`, the effective number of
/// independent draws (rounded towards not failing). Whether the share is over the limit at
/// all is read from the counts themselves: a correction never turns an excess into a pass.
pub fn judge_dispersed(k: u64, n: u64, limit: f64, dispersion: f64) -> Share {
    if n == 0 || k as f64 <= limit * n as f64 {
        return Share::Within;
    }
    let d = if dispersion.is_finite() {
        dispersion.max(1.0)
    } else {
        1.0
    };
    let k = ((k as f64 / d).floor() as u64).max(1);
    let n = ((n as f64 / d).round() as u64).max(k);
    let p_value = binomial_tail(n, limit, k);
    if p_value <= 1.0 - CONFIDENCE {
        Share::Beyond { p_value }
    } else {
        Share::Undecided { p_value }
    }
}

/// How much more events bunch in time than independent draws would: per second `(k, n)`
/// (events, draws), Pearson's chi-square of the counts against their pooled share, over its
/// degrees of freedom; at least 1 (never less bunched than independent draws), and 1 when
/// there is too little to tell (fewer than two seconds with draws, or no event or only
/// events).
pub fn dispersion(seconds: &[(u64, u64)]) -> f64 {
    let (k, n) = seconds
        .iter()
        .fold((0u64, 0u64), |(k, n), s| (k + s.0, n + s.1));
    let busy = seconds.iter().filter(|s| s.1 > 0).count();
    if busy < 2 || k == 0 || k >= n {
        return 1.0;
    }
    let p = k as f64 / n as f64;
    let chi2: f64 = seconds
        .iter()
        .filter(|s| s.1 > 0)
        .map(|&(k, n)| {
            let expected = n as f64 * p;
            (k as f64 - expected).powi(2) / (expected * (1.0 - p))
        })
        .sum();
    (chi2 / (busy - 1) as f64).max(1.0)
}

/// `p_value` for people: `0.13`, `0.0021`, `< 0.0001`.
pub fn show_p(p_value: f64) -> String {
    if p_value < 1e-4 {
        "< 0.0001".into()
    } else if p_value < 0.01 {
        format!("{p_value:.4}")
    } else {
        format!("{p_value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 + 1e-6 * b.abs()
    }

    #[test]
    fn the_tail_matches_exact_sums() {
        // Binomial(10, 0.5): P(X >= 8) = (45 + 10 + 1) / 1024.
        assert!(close(binomial_tail(10, 0.5, 8), 56.0 / 1024.0));
        // P(X >= 1) = 1 - 0.99^500.
        assert!(close(binomial_tail(500, 0.01, 1), 1.0 - 0.99f64.powi(500)));
        assert_eq!(binomial_tail(500, 0.01, 0), 1.0);
        assert_eq!(binomial_tail(5, 0.2, 6), 0.0);
        assert_eq!(binomial_tail(5, 0.0, 1), 0.0);
        // A large n: the sum neither underflows nor runs off (mean 100 000, sd ~315).
        let t = binomial_tail(10_000_000, 0.01, 100_000);
        assert!((0.45..0.55).contains(&t), "{t}");
        assert!(binomial_tail(10_000_000, 0.01, 102_000) < 1e-9);
    }

    #[test]
    fn bunched_events_count_as_fewer_independent_ones() {
        // 25 seconds of 20 requests. 12 slow ones spread one per second: as independent as
        // draws get (dispersion 1), and 2% against 1% is a breach (p ~0.02).
        let spread: Vec<(u64, u64)> = (0..25).map(|s| (u64::from(s < 12), 20)).collect();
        assert_eq!(dispersion(&spread), 1.0);
        let d = dispersion(&spread);
        assert!(matches!(
            judge_dispersed(12, 500, 0.01, d),
            Share::Beyond { .. }
        ));
        // The same 12 in two seconds (a stall): dispersion ~6, about 2 events in 85.
        let bunched: Vec<(u64, u64)> = (0..25).map(|s| (if s < 2 { 6 } else { 0 }, 20)).collect();
        let d = dispersion(&bunched);
        assert!((5.0..7.0).contains(&d), "{d}");
        match judge_dispersed(12, 500, 0.01, d) {
            Share::Undecided { p_value } => assert!(p_value > 0.1, "{p_value}"),
            other => panic!("{other:?}"),
        }
        // A share far beyond its limit stays a breach however it bunches: 200 of 500 failed
        // in 10 whole seconds.
        let outage: Vec<(u64, u64)> = (0..25).map(|s| (if s < 10 { 20 } else { 0 }, 20)).collect();
        let d = dispersion(&outage);
        assert!(matches!(
            judge_dispersed(200, 500, 0.01, d),
            Share::Beyond { .. }
        ));
        // Within the limit is within, whatever the dispersion; over it never becomes within.
        assert_eq!(judge_dispersed(5, 500, 0.01, 50.0), Share::Within);
        assert!(matches!(
            judge_dispersed(6, 500, 0.01, 50.0),
            Share::Undecided { .. }
        ));
        // Too little to tell: 1.
        assert_eq!(dispersion(&[(3, 20)]), 1.0);
        assert_eq!(dispersion(&[(0, 20), (0, 20)]), 1.0);
        assert_eq!(dispersion(&[]), 1.0);
    }

    #[test]
    fn a_few_slow_requests_in_a_small_window_are_not_a_breach() {
        // 8 of 500 above the p99 limit: 1.6%, but 13% likely at exactly 1%.
        match judge_share(8, 500, 0.01) {
            Share::Undecided { p_value } => assert!((0.1..0.2).contains(&p_value)),
            other => panic!("{other:?}"),
        }
        // 20 of 500: 4%, beyond any doubt.
        assert!(matches!(judge_share(20, 500, 0.01), Share::Beyond { .. }));
        // The same 1.6% over 50 000 responses is a breach.
        assert!(matches!(
            judge_share(800, 50_000, 0.01),
            Share::Beyond { .. }
        ));
        assert_eq!(judge_share(5, 500, 0.01), Share::Within);
        assert_eq!(judge_share(0, 0, 0.01), Share::Within);
        // A zero limit: any event is beyond it.
        assert!(matches!(judge_share(1, 10, 0.0), Share::Beyond { .. }));
    }

    #[test]
    fn p_values_read_well() {
        assert_eq!(show_p(0.1312), "0.13");
        assert_eq!(show_p(0.00213), "0.0021");
        assert_eq!(show_p(0.00001), "< 0.0001");
    }
}
