//! The `[[fault]]` tables of an experiment file.
//!
//! ```toml
//! [[fault]]
//! name = "stall-workers"          # optional; defaults to the type and index
//! type = "stall-consumers"        # which fault; the other keys depend on it
//! at = "45s"                      # from run start, or { phase = "stages[2]", offset = "10s" }
//! duration = "30s"                # omitted for instant faults (terminate, kill)
//! every = "2m"                    # optional repeat: period ...
//! times = 3                       # ... and number of occurrences (default 1)
//! processes = { command = "worker", process_group = 4242 }
//! count = 2
//! ```
//!
//! The common keys (`name`, `at`, `duration`, `every`, `times`) are split from the
//! type-specific ones before each part is deserialized with `deny_unknown_fields`, so a typo
//! in either is an error naming the field.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::config::diag::{Diagnostic, name_hint};
use crate::config::{RawTable, parse_table};

use super::fault::Fault;
use super::faults::{
    command::CommandFault,
    delay::DelayQueue,
    kill::KillProcess,
    stall::StallConsumers,
    stop::StopInstances,
    terminate::TerminateInstances,
    toxic::{Bandwidth, Blackhole, Latency, ResetPeer},
};

/// When a fault starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    deny_unknown_fields,
    expecting = "a time like `45s`, or { phase = \"stages[2]\", offset = \"10s\" }"
)]
pub enum Start {
    /// An offset from the start of the run (`at = "45s"`).
    #[serde(with = "humantime_serde")]
    Offset(Duration),
    /// An offset into a phase of the load profile (`at = { phase = "stages[2]", offset = "10s" }`);
    /// the run resolves the phase against its profile.
    Phase(PhaseRef),
}

/// A reference to a phase of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseRef {
    /// The phase, as the profile names it (e.g. `stages[2]`, `photos.stages[1]`).
    pub phase: String,
    /// How long after the phase starts (default 0s).
    #[serde(default, with = "humantime_serde")]
    pub offset: Duration,
}

/// The keys every fault has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timing {
    name: Option<String>,
    at: Start,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    every: Option<Duration>,
    times: Option<u32>,
}

const TIMING_KEYS: [&str; 5] = ["name", "at", "duration", "every", "times"];

/// Every `type` of `[[fault]]` (the variants of [`FaultKind`]; a test keeps them equal).
pub const FAULT_TYPES: [&str; 10] = [
    "terminate-instances",
    "stop-instances",
    "stall-consumers",
    "delay-queue",
    "latency",
    "blackhole",
    "reset-peer",
    "bandwidth",
    "kill-process",
    "command",
];

/// How often a fault repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Period between occurrence starts.
    pub every: Duration,
    /// Number of occurrences (at least 1).
    pub times: u32,
}

/// One `[[fault]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// A name for the journal and reports.
    pub name: Option<String>,
    /// When the (first occurrence of the) fault starts.
    pub at: Start,
    /// How long it lasts before its undo; `None` for instant faults.
    pub duration: Option<Duration>,
    /// Optional repetition.
    pub repeat: Option<Repeat>,
    /// The fault type and its parameters.
    pub kind: FaultKind,
}

/// The fault types, chosen by the `type` key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FaultKind {
    /// EC2 TerminateInstances (irreversible).
    TerminateInstances(TerminateInstances),
    /// EC2 StopInstances, StartInstances after the duration.
    StopInstances(StopInstances),
    /// Consumers stop taking work for the duration.
    StallConsumers(StallConsumers),
    /// Queue DelaySeconds raised for the duration.
    DelayQueue(DelayQueue),
    /// Latency (with jitter) on a built-in TCP proxy.
    Latency(Latency),
    /// A built-in TCP proxy accepts and discards everything.
    Blackhole(Blackhole),
    /// A built-in TCP proxy resets connections.
    ResetPeer(ResetPeer),
    /// A built-in TCP proxy limits bandwidth.
    Bandwidth(Bandwidth),
    /// A signal (SIGKILL by default) to local processes or containers (irreversible).
    KillProcess(KillProcess),
    /// Shell commands that apply and undo a change (and verify the undo).
    Command(CommandFault),
}

impl FaultKind {
    /// The fault behind the spec.
    pub fn fault(&self) -> &dyn Fault {
        match self {
            FaultKind::TerminateInstances(f) => f,
            FaultKind::StopInstances(f) => f,
            FaultKind::StallConsumers(f) => f,
            FaultKind::DelayQueue(f) => f,
            FaultKind::Latency(f) => f,
            FaultKind::Blackhole(f) => f,
            FaultKind::ResetPeer(f) => f,
            FaultKind::Bandwidth(f) => f,
            FaultKind::KillProcess(f) => f,
            FaultKind::Command(f) => f,
        }
    }

    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        self.fault().type_name()
    }
}

impl FaultSpec {
    /// One `[[fault]]` table of an experiment file (`header`: the span of its `[[fault]]`,
    /// `index`: its position), every error at its key or value: an unknown `type` at the
    /// type's value, a key the type does not take at the key, a wrong value at the value.
    pub fn from_table(
        text: &str,
        path: &Path,
        header: Range<usize>,
        table: &RawTable,
        index: usize,
    ) -> Result<FaultSpec, Vec<Diagnostic>> {
        let label = match table.str("name") {
            Some(n) => format!("[[fault]] {n:?}"),
            None => format!("[[fault]] #{}", index + 1),
        };
        let mut errors = Vec::new();
        let type_name = match table.get("type") {
            None => {
                errors.push(
                    Diagnostic::at(path, text, header.clone(), format!("{label} has no `type`"))
                        .with_hint(format!(
                            "add `type = \"...\"`: {}",
                            name_hint("", &FAULT_TYPES)
                        )),
                );
                None
            }
            Some((_, v)) => match v.get_ref().as_str() {
                Some(t) if FAULT_TYPES.contains(&t) => Some(t),
                Some(t) => {
                    errors.push(
                        Diagnostic::at(path, text, v.span(), format!("unknown fault type `{t}`"))
                            .with_hint(name_hint(t, &FAULT_TYPES)),
                    );
                    None
                }
                None => {
                    errors.push(
                        Diagnostic::at(path, text, v.span(), "`type` must be a string")
                            .with_hint(name_hint("", &FAULT_TYPES)),
                    );
                    None
                }
            },
        };
        let is_timing = |k: &str| TIMING_KEYS.contains(&k);
        let (timing, d) = parse_table::<Timing>(
            text,
            path,
            "fault",
            header.clone(),
            table,
            &label,
            &is_timing,
        );
        errors.extend(d);
        let kind = type_name.and_then(|t| {
            let (kind, d) = parse_kind(t, text, path, header.clone(), table, &label);
            errors.extend(d);
            kind
        });
        let (Some(timing), Some(kind)) = (timing, kind) else {
            return Err(errors);
        };
        let repeat = match (timing.every, timing.times) {
            (None, None) => None,
            (Some(every), times) => Some(Repeat {
                every,
                times: times.unwrap_or(1),
            }),
            (None, Some(_)) => {
                let span = table.get("times").map_or(header, |(k, _)| k.span());
                errors.push(Diagnostic::at(
                    path,
                    text,
                    span,
                    format!("{label}: `times` needs `every`"),
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(FaultSpec {
            name: timing.name,
            at: timing.at,
            duration: timing.duration,
            repeat,
            kind,
        })
    }
}

/// The type-specific keys of one `[[fault]]` table, read as the type's struct.
fn parse_kind(
    type_name: &str,
    text: &str,
    path: &Path,
    header: Range<usize>,
    table: &RawTable,
    label: &str,
) -> (Option<FaultKind>, Vec<Diagnostic>) {
    let keep = |k: &str| k != "type" && !TIMING_KEYS.contains(&k);
    macro_rules! kinds {
        ($($name:literal => $variant:ident($ty:ty)),* $(,)?) => {
            match type_name {
                $($name => {
                    let (v, d) = parse_table::<$ty>(text, path, "fault", header, table, label, &keep);
                    (v.map(FaultKind::$variant), d)
                })*
                _ => (None, vec![]),
            }
        };
    }
    kinds! {
        "terminate-instances" => TerminateInstances(TerminateInstances),
        "stop-instances" => StopInstances(StopInstances),
        "stall-consumers" => StallConsumers(StallConsumers),
        "delay-queue" => DelayQueue(DelayQueue),
        "latency" => Latency(Latency),
        "blackhole" => Blackhole(Blackhole),
        "reset-peer" => ResetPeer(ResetPeer),
        "bandwidth" => Bandwidth(Bandwidth),
        "kill-process" => KillProcess(KillProcess),
        "command" => Command(CommandFault),
    }
}

impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        match table.get("type").and_then(|v| v.as_str()) {
            Some(t) if !FAULT_TYPES.contains(&t) => {
                return Err(D::Error::custom(format!(
                    "unknown fault type `{t}` ({})",
                    name_hint(t, &FAULT_TYPES)
                )));
            }
            None => return Err(D::Error::custom("a `[[fault]]` has no `type`")),
            _ => {}
        }
        let (timing, params): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| TIMING_KEYS.contains(&k.as_str()));
        let kind_name = params
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned();
        let timing: Timing = toml::Value::Table(timing)
            .try_into()
            .map_err(|e| D::Error::custom(format!("fault `{kind_name}`: {e}")))?;
        let kind: FaultKind = toml::Value::Table(params)
            .try_into()
            .map_err(|e| D::Error::custom(format!("fault `{kind_name}`: {e}")))?;
        let repeat = match (timing.every, timing.times) {
            (None, None) => None,
            (Some(every), times) => Some(Repeat {
                every,
                times: times.unwrap_or(1),
            }),
            (None, Some(_)) => {
                return Err(D::Error::custom(format!(
                    "fault `{kind_name}`: `times` needs `every`"
                )));
            }
        };
        Ok(FaultSpec {
            name: timing.name,
            at: timing.at,
            duration: timing.duration,
            repeat,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        fault: Vec<FaultSpec>,
    }

    fn parse(text: &str) -> Result<Vec<FaultSpec>, toml::de::Error> {
        toml::from_str::<File>(text).map(|f| f.fault)
    }

    #[test]
    fn parses_offsets_phases_and_repeats() {
        let faults = parse(
            r#"
            [[fault]]
            type = "delay-queue"
            at = "45s"
            duration = "30s"
            queue = "jobs"
            delay = "20s"

            [[fault]]
            name = "stall"
            type = "stall-consumers"
            at = { phase = "stages[2]", offset = "10s" }
            duration = "1m"
            every = "5m"
            times = 3
            processes = { pid_file = "/tmp/w.pid" }
            count = 1
            "#,
        )
        .unwrap();
        assert_eq!(faults[0].at, Start::Offset(Duration::from_secs(45)));
        assert!(matches!(faults[0].kind, FaultKind::DelayQueue(_)));
        assert_eq!(
            faults[1].at,
            Start::Phase(PhaseRef {
                phase: "stages[2]".into(),
                offset: Duration::from_secs(10)
            })
        );
        assert_eq!(
            faults[1].repeat,
            Some(Repeat {
                every: Duration::from_secs(300),
                times: 3
            })
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse(
            r#"
            [[fault]]
            type = "delay-queue"
            at = "1s"
            duration = "3s"
            queue = "jobs"
            delay = "2s"
            dealy = "2s"
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("dealy"), "{err}");
        let err = parse("[[fault]]\ntype = \"explode\"\nat = \"1s\"\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown fault type `explode`"),
            "{err}"
        );
        let err = parse("[[fault]]\ntype = \"delay-queue\"\nat = \"1s\"\ntimes = 2\nqueue = \"q\"\ndelay = \"1s\"\n").unwrap_err();
        assert!(err.to_string().contains("`times` needs `every`"), "{err}");
    }

    #[test]
    fn fault_types_are_the_variants() {
        let kind = |t: &str| {
            let mut table = toml::Table::new();
            table.insert("type".into(), t.into());
            toml::Value::Table(table)
                .try_into::<FaultKind>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        for t in FAULT_TYPES {
            let err = kind(t);
            assert!(!err.contains("unknown variant"), "{t}: {err}");
        }
        let err = kind("zzz");
        assert_eq!(err.matches("`, `").count() + 1, FAULT_TYPES.len(), "{err}");
    }
}
