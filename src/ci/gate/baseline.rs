//! [`RunSummary`]: what the gate needs of one run, small enough to commit as a baseline
//! (`shakedown gate RUN_DIR --save FILE`), and the identity check between two runs. Pure:
//! [`crate::ci::read`] makes it from a run directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::Quantile;

/// Version of the baseline JSON format.
pub const FORMAT_VERSION: u32 = 1;
/// The `kind` field of a baseline file.
pub const KIND: &str = "shakedown-gate-baseline";

/// One run as the gate compares it: its identity and, per stream and for the end-to-end
/// latency, per-second figures. Format: `docs/ci.md#baseline-files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub format_version: u32,
    /// Always [`KIND`] (so a wrong JSON file is refused with a clear message).
    pub kind: String,
    pub run_id: String,
    pub identity: Identity,
    pub streams: BTreeMap<String, StreamSeries>,
    /// End-to-end latency (accepted -> first completion); absent without a message ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<QuantileSeries>,
}

/// What makes two runs comparable: the same experiment (its file less `[target]`), the
/// same traffic (profile and mode) and the same seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `run` (an experiment: `shakedown run` / `demo`) or `load`.
    pub run_kind: String,
    /// The experiment's `name` (`run` runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// FNV-1a 64 of the experiment file without its `[target]` table, comments and layout
    /// (`run` runs): the system under test may change between the two runs, nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_digest: Option<String>,
    pub profile: String,
    /// FNV-1a 64 of the streams (kind, transport, arrival, stages) and the mode.
    pub profile_digest: String,
    pub seed: u64,
    /// The shakedown version that recorded the run (shown, not compared).
    pub tool_version: String,
}

impl Identity {
    /// How `self` (the candidate) differs from `baseline`, one line each; empty when the
    /// runs are comparable.
    pub fn differences(&self, baseline: &Identity) -> Vec<String> {
        let mut out = Vec::new();
        let show = |v: &Option<String>| v.as_deref().unwrap_or("none").to_string();
        if self.run_kind != baseline.run_kind {
            out.push(format!(
                "kind of run: {} vs {} in the baseline",
                self.run_kind, baseline.run_kind
            ));
        }
        if self.experiment != baseline.experiment {
            out.push(format!(
                "experiment: {} vs {} in the baseline",
                show(&self.experiment),
                show(&baseline.experiment)
            ));
        } else if self.experiment_digest != baseline.experiment_digest {
            out.push(format!(
                "experiment file (less [target]): digest {} vs {} in the baseline: faults, probes, promises or settings differ",
                show(&self.experiment_digest),
                show(&baseline.experiment_digest)
            ));
        }
        if self.profile != baseline.profile {
            out.push(format!(
                "profile: {} vs {} in the baseline",
                self.profile, baseline.profile
            ));
        } else if self.profile_digest != baseline.profile_digest {
            out.push(format!(
                "profile {}: streams or mode differ (digest {} vs {})",
                self.profile, self.profile_digest, baseline.profile_digest
            ));
        }
        if self.seed != baseline.seed {
            out.push(format!(
                "seed: {} vs {} in the baseline",
                self.seed, baseline.seed
            ));
        }
        out
    }
}

/// One stream's traffic over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSeries {
    /// Successful responses.
    pub ok: u64,
    /// Failed requests, every error class (the error rate is failed / (ok + failed)).
    pub failed: u64,
    /// Latency from the intended send time.
    pub latency: QuantileSeries,
}

/// Whole-run quantiles and the same quantiles second by second, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantileSeries {
    /// Values measured.
    pub count: u64,
    /// Whole-run quantiles by name (`p50` ... `p999`).
    pub whole_ms: BTreeMap<String, f64>,
    /// Per-second quantiles by name: one entry per second of the run, `null` for a second
    /// without values.
    pub seconds_ms: BTreeMap<String, Vec<Option<f64>>>,
}

impl QuantileSeries {
    /// The whole-run value of `q`.
    pub fn whole(&self, q: Quantile) -> Option<f64> {
        self.whole_ms.get(q.name()).copied()
    }

    /// The per-second values of `q`, gaps left out.
    pub fn seconds(&self, q: Quantile) -> Vec<f64> {
        self.seconds_ms
            .get(q.name())
            .map(|v| v.iter().flatten().copied().collect())
            .unwrap_or_default()
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable digest for identities (not a security hash).
pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Rounds milliseconds to the microsecond (what the histograms resolve), for compact JSON.
pub fn round_ms(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            run_kind: "run".into(),
            experiment: Some("e".into()),
            experiment_digest: Some("aa".into()),
            profile: "p".into(),
            profile_digest: "bb".into(),
            seed: 1,
            tool_version: "0.1.0".into(),
        }
    }

    #[test]
    fn identities_differ_by_experiment_profile_and_seed() {
        let a = identity();
        assert!(a.differences(&a).is_empty());
        let mut b = a.clone();
        b.tool_version = "9".into();
        assert!(a.differences(&b).is_empty(), "the version is not compared");
        b.seed = 2;
        b.experiment_digest = Some("cc".into());
        b.profile = "q".into();
        let d = a.differences(&b);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].contains("experiment file"));
        assert!(d[1].contains("profile: p vs q"));
        assert!(d[2].contains("seed: 1 vs 2"));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
    }
}
