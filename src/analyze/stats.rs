//! Is a share measured over a window beyond a limit, or within what chance gives a window
//! of that size? A p99 over 500 responses is its 5th slowest one; two or three unlucky
//! requests move it. So a promise that caps a share (responses slower than its limit,
//! failed requests) calls it broken only when the share measured is beyond the limit with
//! [`CONFIDENCE`]: a one-sided binomial test of `k` events out of `n` against the limit's
//! share. Above the limit but not significantly so is neither a pass nor a fail: the run
//! could not tell (`docs/promises.md#how-sure-a-fail-is`).
//!
//! The test treats requests as independent draws. Slow requests that come in a burst (one
//! stall) are not, and make the test readier to fail than its confidence says; what
//! stalls the harness itself is caught by the starved-harness guard
//! (`analyze::promises::evaluate`).

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
    if n == 0 || k as f64 <= limit * n as f64 {
        return Share::Within;
    }
    let p_value = binomial_tail(n, limit, k);
    if p_value <= 1.0 - CONFIDENCE {
        Share::Beyond { p_value }
    } else {
        Share::Undecided { p_value }
    }
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
