//! The gate's statistics: a one-sided Mann–Whitney rank test and a one-sided
//! two-proportion z test, each against a null hypothesis shifted by the tolerance. Pure.
//! The rule and its false-alarm rate: `docs/ci.md#the-rule`.

/// One-sided Mann–Whitney U test of "`candidate` tends to be larger than `baseline`".
///
/// Returns the p-value from the normal approximation with the tie correction and a
/// continuity correction (close to the exact test from five values a side on). `1.0` when
/// either side is empty or every value is tied (no evidence either way).
pub fn mann_whitney_greater(candidate: &[f64], baseline: &[f64]) -> f64 {
    let (n1, n2) = (candidate.len(), baseline.len());
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    // Pool, sort, rank with mid-ranks for ties.
    let mut pooled: Vec<(f64, bool)> = candidate
        .iter()
        .map(|&v| (v, true))
        .chain(baseline.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut rank_sum_candidate = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        // Ranks i+1 ..= j, mid-rank (i + 1 + j) / 2.
        let mid = (i + 1 + j) as f64 / 2.0;
        for item in &pooled[i..j] {
            if item.1 {
                rank_sum_candidate += mid;
            }
        }
        tie_term += t * t * t - t;
        i = j;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_candidate - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    normal_sf(z)
}

/// One-sided test of "the candidate's proportion exceeds the baseline's by more than
/// `margin`": `(pc - pb - margin) / se`, with the unpooled standard error (the null is a
/// difference of `margin`, not of zero). `failed_*` out of `total_*`. When both
/// proportions are 0 or 1 (no variance), the p-value is 0 if the difference exceeds the
/// margin, else 1.
pub fn proportion_greater(
    failed_c: u64,
    total_c: u64,
    failed_b: u64,
    total_b: u64,
    margin: f64,
) -> f64 {
    if total_c == 0 || total_b == 0 {
        return 1.0;
    }
    let pc = failed_c as f64 / total_c as f64;
    let pb = failed_b as f64 / total_b as f64;
    let diff = pc - pb - margin;
    let se = (pc * (1.0 - pc) / total_c as f64 + pb * (1.0 - pb) / total_b as f64).sqrt();
    if se == 0.0 {
        return if diff > 0.0 { 0.0 } else { 1.0 };
    }
    normal_sf(diff / se)
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`: fractional error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(2.326_348) - 0.01).abs() < 1e-6);
        assert!((normal_sf(-1.644_854) - 0.95).abs() < 1e-6);
    }

    #[test]
    fn mann_whitney_matches_a_known_case() {
        // Every candidate above every baseline, 5 a side: U = 25, exact p = 1/252 = 0.004;
        // the continuity-corrected normal approximation gives 0.0061.
        let p = mann_whitney_greater(&[6.0, 7.0, 8.0, 9.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p - 0.0061).abs() < 2e-4, "{p}");
        // The other way round: no evidence at all.
        let p = mann_whitney_greater(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!(p > 0.99, "{p}");
        // All tied.
        assert_eq!(mann_whitney_greater(&[1.0; 6], &[1.0; 6]), 1.0);
        assert_eq!(mann_whitney_greater(&[], &[1.0]), 1.0);
    }

    #[test]
    fn the_proportion_test_respects_its_margin() {
        // 0 of 1000 vs 50 of 1000 (5%): far beyond a 0.1pp margin.
        assert!(proportion_greater(50, 1000, 0, 1000, 0.001) < 1e-6);
        // One error in 200 is within noise of none.
        assert!(proportion_greater(1, 200, 0, 200, 0.001) > 0.1);
        // No errors either side: no regression.
        assert_eq!(proportion_greater(0, 10, 0, 10, 0.001), 1.0);
        // All failed vs none: certain.
        assert_eq!(proportion_greater(10, 10, 0, 10, 0.001), 0.0);
    }
}
