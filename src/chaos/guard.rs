//! `[guardrails]`: blast-radius caps, allow-listed tags, stop conditions and the run lock.
//!
//! ```toml
//! [guardrails]
//! require_tag = "chaos=allowed"   # every AWS resource a fault acts on (instances, FIS templates) must carry it
//! max_instances = 3               # no destructive fault may match more than this
//! stop = [
//!   { metric = "error_rate", above = 0.05 },
//!   { metric = "p99", above = "800ms" },
//!   { probe = "queue_depth", above = 10000 },
//! ]
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::fault::{Impact, Resource};

/// The `[guardrails]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// `KEY=VALUE`: a tag every AWS resource of a destructive fault must carry.
    pub require_tag: Option<String>,
    /// The most resources a destructive fault's selector may match. Required for destructive faults.
    pub max_instances: Option<usize>,
    /// Conditions that abort the run (checked every second): any one true aborts.
    #[serde(default)]
    pub stop: Vec<StopCondition>,
}

/// A blast-radius cap: `count = n` or `percent = p` of what the selector matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    /// Exactly this many.
    Count(usize),
    /// This percentage, rounded up (at least one).
    Percent(f64),
}

impl Cap {
    /// From the spec's optional `count` and `percent` (at most one may be given).
    pub fn from_spec(count: Option<usize>, percent: Option<f64>) -> Result<Option<Cap>, String> {
        match (count, percent) {
            (Some(_), Some(_)) => Err("give `count` or `percent`, not both".into()),
            (Some(0), None) => Err("`count` must be at least 1".into()),
            (Some(n), None) => Ok(Some(Cap::Count(n))),
            (None, Some(p)) if !(p > 0.0 && p <= 100.0) => {
                Err(format!("`percent` must be in (0, 100], got {p}"))
            }
            (None, Some(p)) => Ok(Some(Cap::Percent(p))),
            (None, None) => Ok(None),
        }
    }

    /// How many of `matched` resources the cap allows.
    pub fn of(self, matched: usize) -> usize {
        match self {
            Cap::Count(n) => n,
            Cap::Percent(p) => ((matched as f64) * p / 100.0).ceil().max(1.0) as usize,
        }
    }
}

/// Why a guardrail refused a fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// The selector matched nothing.
    #[error("fault `{fault}`: the selector matched nothing")]
    EmptySelection {
        /// The fault.
        fault: String,
    },
    /// A destructive fault without `count`/`percent`.
    #[error("fault `{fault}` is destructive: it needs `count` or `percent`")]
    NoCap {
        /// The fault.
        fault: String,
    },
    /// A destructive fault while `[guardrails] max_instances` is not set.
    #[error("fault `{fault}` is destructive: `[guardrails] max_instances` must be set")]
    NoMaxInstances {
        /// The fault.
        fault: String,
    },
    /// The selector matched more than `max_instances`.
    #[error(
        "fault `{fault}`: the selector matched {} resources, more than max_instances = {max}: {}",
        matches.len(),
        list(matches)
    )]
    OverCap {
        /// The fault.
        fault: String,
        /// The cap.
        max: usize,
        /// Every match.
        matches: Vec<String>,
    },
    /// `count` larger than what matched.
    #[error("fault `{fault}`: count = {wanted} but the selector matched only {}: {}", matches.len(), list(matches))]
    NotEnough {
        /// The fault.
        fault: String,
        /// The count asked for.
        wanted: usize,
        /// Every match.
        matches: Vec<String>,
    },
    /// AWS resources lacking the allow-listed tag.
    #[error(
        "fault `{fault}`: resources without the allow-listed tag `{tag}`: {}",
        list(missing)
    )]
    MissingTag {
        /// The fault.
        fault: String,
        /// `KEY=VALUE`.
        tag: String,
        /// The resources without it.
        missing: Vec<String>,
    },
    /// A destructive fault on AWS resources while `require_tag` is not set.
    #[error("fault `{fault}` is destructive on AWS: `[guardrails] require_tag` must be set")]
    NoRequiredTag {
        /// The fault.
        fault: String,
    },
    /// `require_tag` is not `KEY=VALUE`.
    #[error("`[guardrails] require_tag` must be KEY=VALUE, got `{0}`")]
    BadTag(String),
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// The resources a fault may act on, and the seed of the random choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Choice {
    /// Everything the selector matched.
    pub matched: Vec<Resource>,
    /// The ones chosen.
    pub chosen: Vec<Resource>,
    /// Seed of the random choice (ChaCha8 over the matches sorted by id).
    pub seed: u64,
}

impl Guardrails {
    /// When the matched resources live on AWS (they have tags): `require_tag` is set and
    /// every one carries it.
    fn check_tags(&self, fault: &str, matched: &[Resource]) -> Result<(), GuardError> {
        let name = || fault.to_owned();
        if matched.iter().any(|r| r.aws_tags.is_some()) {
            let tag = self
                .require_tag
                .as_deref()
                .ok_or_else(|| GuardError::NoRequiredTag { fault: name() })?;
            let (key, value) = tag
                .split_once('=')
                .ok_or_else(|| GuardError::BadTag(tag.to_owned()))?;
            let missing: Vec<String> = matched
                .iter()
                .filter(|r| {
                    r.aws_tags
                        .as_ref()
                        .is_some_and(|t| t.get(key).map(String::as_str) != Some(value))
                })
                .map(|r| r.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(GuardError::MissingTag {
                    fault: name(),
                    tag: tag.to_owned(),
                    missing,
                });
            }
        }
        Ok(())
    }

    /// Applies the guardrails to what a fault's selector matched and picks the targets.
    /// Nothing is touched; the refusal lists the matches.
    pub fn choose(
        &self,
        fault: &str,
        impact: Impact,
        cap: Option<Cap>,
        mut matched: Vec<Resource>,
        seed: u64,
    ) -> Result<Choice, GuardError> {
        let name = || fault.to_owned();
        if matched.is_empty() {
            return Err(GuardError::EmptySelection { fault: name() });
        }
        matched.sort_by(|a, b| a.id.cmp(&b.id));
        let ids = |rs: &[Resource]| rs.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        if !impact.needs_cap() {
            // Whatever the impact, AWS resources a fault acts on carry the opt-in tag (a
            // FIS experiment template).
            self.check_tags(fault, &matched)?;
            return Ok(Choice {
                chosen: matched.clone(),
                matched,
                seed,
            });
        }
        let cap = cap.ok_or_else(|| GuardError::NoCap { fault: name() })?;
        let max = self
            .max_instances
            .ok_or_else(|| GuardError::NoMaxInstances { fault: name() })?;
        if matched.len() > max {
            return Err(GuardError::OverCap {
                fault: name(),
                max,
                matches: ids(&matched),
            });
        }
        self.check_tags(fault, &matched)?;
        let wanted = cap.of(matched.len());
        if wanted > matched.len() {
            return Err(GuardError::NotEnough {
                fault: name(),
                wanted,
                matches: ids(&matched),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut chosen: Vec<Resource> =
            matched.choose_multiple(&mut rng, wanted).cloned().collect();
        chosen.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Choice {
            matched,
            chosen,
            seed,
        })
    }
}

/// A condition that aborts the run when true.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum StopCondition {
    /// A load metric above a bound: `{ metric = "error_rate", above = 0.05 }` (a fraction) or
    /// `{ metric = "p99", above = "800ms" }`.
    Metric {
        /// `error_rate` or `p99`.
        metric: Metric,
        /// The bound (a fraction for `error_rate`, a duration for `p99`).
        above: Bound,
    },
    /// A probe value outside bounds: `{ probe = "queue_depth", above = 10000 }`.
    Probe {
        /// The probe's name.
        probe: String,
        /// Abort when the value is above this.
        above: Option<f64>,
        /// Abort when the value is below this.
        below: Option<f64>,
    },
}

/// Load metrics a stop condition can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Failed requests / requests in the last second.
    ErrorRate,
    /// 99th percentile latency of the last second.
    P99,
}

/// A bound: a number or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// A plain number.
    Number(f64),
    /// A duration (`"800ms"`).
    #[serde(with = "crate::units::serde_duration")]
    Duration(Duration),
}

/// The latest per-second figures the run hands to the evaluator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Error rate of the last window (0..=1), if there was traffic.
    pub error_rate: Option<f64>,
    /// p99 latency of the last window, if there was traffic.
    pub p99: Option<Duration>,
    /// Latest probe values by name.
    pub probes: BTreeMap<String, f64>,
}

impl StopCondition {
    /// Why this condition holds for `snapshot`, or `None`. A missing figure never triggers.
    pub fn breached(&self, snapshot: &Snapshot) -> Option<String> {
        match self {
            StopCondition::Metric {
                metric: Metric::ErrorRate,
                above,
            } => {
                let bound = match above {
                    Bound::Number(n) => *n,
                    Bound::Duration(_) => return Some("error_rate bound must be a number".into()),
                };
                let rate = snapshot.error_rate?;
                (rate > bound).then(|| format!("error_rate {rate:.4} > {bound}"))
            }
            StopCondition::Metric {
                metric: Metric::P99,
                above,
            } => {
                let bound = match above {
                    Bound::Duration(d) => *d,
                    Bound::Number(ms) => Duration::from_secs_f64(ms / 1000.0),
                };
                let p99 = snapshot.p99?;
                (p99 > bound).then(|| format!("p99 {p99:?} > {bound:?}"))
            }
            StopCondition::Probe {
                probe,
                above,
                below,
            } => {
                let v = *snapshot.probes.get(probe)?;
                if above.is_some_and(|a| v > a) {
                    Some(format!(
                        "probe {probe} = {v} > {}",
                        above.unwrap_or_default()
                    ))
                } else if below.is_some_and(|b| v < b) {
                    Some(format!(
                        "probe {probe} = {v} < {}",
                        below.unwrap_or_default()
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// The first breached condition, if any.
pub fn evaluate(conditions: &[StopCondition], snapshot: &Snapshot) -> Option<String> {
    conditions.iter().find_map(|c| c.breached(snapshot))
}

/// Why the run lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("run {run_id} (pid {pid}) holds the chaos lock {}: only one run may hold faults at a time", path.display())]
    Held {
        /// The holder's run.
        run_id: String,
        /// The holder's pid (alive).
        pid: u32,
        /// The lock file.
        path: PathBuf,
    },
    /// The holder is dead: its faults may still be applied.
    #[error(
        "stale chaos lock {}: run {run_id} (pid {pid}, no longer running) did not finish; run `shakedown recover {}` first",
        path.display(), run_dir.display()
    )]
    Stale {
        /// The dead holder's run.
        run_id: String,
        /// Its pid.
        pid: u32,
        /// The lock file.
        path: PathBuf,
        /// The dead run's directory.
        run_dir: PathBuf,
    },
    /// Reading or writing the lock failed.
    #[error("chaos lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// What the lock file says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// Holder's pid.
    pub pid: u32,
    /// Holder's run id.
    pub run_id: String,
}

/// The file name of the lock in the results directory.
pub const LOCK_FILE: &str = "chaos.lock";

/// Only one run may hold faults on a target at a time: a lock file in the results directory
/// (the parent of the runs' journal directories), removed on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock for `run_id`. A lock whose holder is dead is reported, never taken.
    pub fn acquire(results_dir: &Path, run_id: &str) -> Result<RunLock, LockError> {
        let path = results_dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(results_dir).map_err(io_err)?;
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                let info = LockInfo {
                    pid: std::process::id(),
                    run_id: run_id.to_owned(),
                };
                let text = serde_json::to_string(&info).expect("plain struct");
                file.write_all(text.as_bytes()).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok(RunLock { path })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let info = read_lock(&path).map_err(io_err)?;
                Err(if super::local::pid_alive(info.pid) {
                    LockError::Held {
                        run_id: info.run_id,
                        pid: info.pid,
                        path,
                    }
                } else {
                    LockError::Stale {
                        run_dir: results_dir.join(&info.run_id),
                        run_id: info.run_id,
                        pid: info.pid,
                        path,
                    }
                })
            }
            Err(e) => Err(io_err(e)),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Reads a lock file.
pub fn read_lock(path: &Path) -> io::Result<LockInfo> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(id: &str, tags: Option<&[(&str, &str)]>) -> Resource {
        Resource {
            id: id.into(),
            label: String::new(),
            aws_tags: tags.map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
        }
    }

    fn rails(max: usize) -> Guardrails {
        Guardrails {
            require_tag: Some("chaos=allowed".into()),
            max_instances: Some(max),
            stop: vec![],
        }
    }

    #[test]
    fn over_cap_is_refused_with_the_list() {
        let matched = vec![res("i-1", None), res("i-2", None), res("i-3", None)];
        let err = rails(2)
            .choose("stop", Impact::Destructive, Some(Cap::Count(1)), matched, 7)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("i-1, i-2, i-3"), "{text}");
        assert!(text.contains("max_instances = 2"), "{text}");
    }

    #[test]
    fn destructive_needs_cap_and_tag() {
        let m = || {
            vec![
                res("i-1", Some(&[("chaos", "allowed")])),
                res("i-2", Some(&[])),
            ]
        };
        let g = rails(5);
        assert!(matches!(
            g.choose("f", Impact::Irreversible, None, m(), 1),
            Err(GuardError::NoCap { .. })
        ));
        match g.choose("f", Impact::Irreversible, Some(Cap::Count(1)), m(), 1) {
            Err(GuardError::MissingTag { missing, .. }) => assert_eq!(missing, vec!["i-2"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            g.choose("f", Impact::Destructive, Some(Cap::Count(1)), vec![], 1),
            Err(GuardError::EmptySelection { .. })
        ));
    }

    #[test]
    fn choice_is_reproducible_from_the_seed() {
        let m: Vec<_> = (0..10).map(|i| res(&format!("p{i}"), None)).collect();
        let g = rails(10);
        let a = g
            .choose(
                "f",
                Impact::Destructive,
                Some(Cap::Percent(30.0)),
                m.clone(),
                42,
            )
            .unwrap();
        let b = g
            .choose("f", Impact::Destructive, Some(Cap::Percent(30.0)), m, 42)
            .unwrap();
        assert_eq!(a.chosen.len(), 3);
        assert_eq!(a, b);
    }

    #[test]
    fn stop_conditions_evaluate_over_a_snapshot() {
        let conds: Vec<StopCondition> = toml::from_str::<Guardrails>(
            r#"stop = [ { metric = "error_rate", above = 0.05 }, { metric = "p99", above = "800ms" }, { probe = "depth", above = 100.0 } ]"#,
        )
        .unwrap()
        .stop;
        let mut s = Snapshot::default();
        assert_eq!(evaluate(&conds, &s), None);
        s.error_rate = Some(0.01);
        s.p99 = Some(Duration::from_millis(900));
        assert!(evaluate(&conds, &s).unwrap().starts_with("p99"));
        s.p99 = None;
        s.probes.insert("depth".into(), 101.0);
        assert!(evaluate(&conds, &s).unwrap().contains("depth"));
        s.error_rate = Some(0.5);
        assert!(evaluate(&conds, &s).unwrap().starts_with("error_rate"));
    }
}
