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
//! in either is an error naming the field, at its place ([`FaultSpec::from_table`]).
//! Durations are read in the one grammar of [`crate::units`] (`45s`, `1.5s`, `1h30m`).

use std::time::Duration;

use serde::Deserialize;

use crate::config::Table;
use crate::config::diag::{Collector, closest_name};

use super::fault::Fault;
use super::faults::{
    asg::SuspendProcesses,
    command::CommandFault,
    delay::DelayQueue,
    fis::FisExperiment,
    kill::KillProcess,
    service::ServiceLatency,
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
    #[serde(with = "crate::units::serde_duration")]
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
    #[serde(default, with = "crate::units::serde_duration")]
    pub offset: Duration,
}

/// The keys every fault has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timing {
    name: Option<String>,
    at: Start,
    #[serde(default, with = "crate::units::serde_duration::option")]
    duration: Option<Duration>,
    #[serde(default, with = "crate::units::serde_duration::option")]
    every: Option<Duration>,
    times: Option<u32>,
}

const TIMING_KEYS: [&str; 5] = ["name", "at", "duration", "every", "times"];

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

/// The fault types: `"type" => Variant(Parameters)`, one line each (with its doc). Generates
/// [`FaultKind`], [`FAULT_TYPES`], [`FaultKind::fault`] and the reading of a table's
/// type-specific keys (`read_kind`).
macro_rules! fault_types {
    ($($(#[$doc:meta])* $name:literal => $variant:ident($ty:ty)),* $(,)?) => {
        /// The fault types, chosen by the `type` key.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(tag = "type")]
        pub enum FaultKind {
            $($(#[$doc])* #[serde(rename = $name)] $variant($ty),)*
        }

        /// Every `type` of `[[fault]]`.
        pub const FAULT_TYPES: &[&str] = &[$($name),*];

        impl FaultKind {
            /// The fault behind the spec.
            pub fn fault(&self) -> &dyn Fault {
                match self {
                    $(FaultKind::$variant(f) => f,)*
                }
            }
        }

        /// The type-specific keys of one `[[fault]]` table, read as the type's struct.
        fn read_kind(type_name: &str, table: Table<'_>, c: &mut Collector<'_>) -> Option<FaultKind> {
            match type_name {
                $($name => table.read::<$ty>(c, &unknown_key).map(FaultKind::$variant),)*
                _ => None,
            }
        }
    };
}

fault_types! {
    /// EC2 TerminateInstances (irreversible).
    "terminate-instances" => TerminateInstances(TerminateInstances),
    /// EC2 StopInstances, StartInstances after the duration.
    "stop-instances" => StopInstances(StopInstances),
    /// Consumers stop taking work for the duration.
    "stall-consumers" => StallConsumers(StallConsumers),
    /// Queue DelaySeconds raised for the duration.
    "delay-queue" => DelayQueue(DelayQueue),
    /// Auto Scaling processes suspended for the duration (scaling broken on purpose).
    "suspend-processes" => SuspendProcesses(SuspendProcesses),
    /// An AWS FIS experiment template started for the duration, stopped as the undo.
    "fis" => Fis(FisExperiment),
    /// Latency (with jitter) on a built-in TCP proxy.
    "latency" => Latency(Latency),
    /// A built-in TCP proxy accepts and discards everything.
    "blackhole" => Blackhole(Blackhole),
    /// A built-in TCP proxy resets connections.
    "reset-peer" => ResetPeer(ResetPeer),
    /// A built-in TCP proxy limits bandwidth.
    "bandwidth" => Bandwidth(Bandwidth),
    /// A signal (SIGKILL by default) to local processes or containers (irreversible).
    "kill-process" => KillProcess(KillProcess),
    /// Shell commands that apply and undo a change (and verify the undo).
    "command" => Command(CommandFault),
    /// A sandbox microservice made slow: an added delay on each of its requests.
    "service-latency" => ServiceLatency(ServiceLatency),
}

impl FaultKind {
    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        self.fault().type_name()
    }
}

impl FaultSpec {
    /// One `[[fault]]` table of an experiment file, every error at its key or value: an
    /// unknown `type` at the type's value, a key the type does not take at the key (with
    /// the closest key of the type, or of the timing keys, as a hint), a wrong value at the
    /// value. `None` when it has errors (recorded in `c`).
    pub fn from_table(mut table: Table<'_>, c: &mut Collector<'_>) -> Option<FaultSpec> {
        let type_name = table.tag("type", FAULT_TYPES, c);
        let timing = table.split_off(&TIMING_KEYS);
        let times_span = timing.key_span("times");
        let label = table.label().to_owned();
        let timing: Option<Timing> = timing.read(c, &|_, _, _| None);
        let kind = type_name.and_then(|t| read_kind(t, table, c));
        let timing = timing?;
        let repeat = match (timing.every, timing.times) {
            (None, None) => None,
            (Some(every), times) => Some(Repeat {
                every,
                times: times.unwrap_or(1),
            }),
            (None, Some(_)) => {
                c.error(
                    times_span.unwrap_or(0..0),
                    format!("{label}: `times` needs `every`"),
                );
                return None;
            }
        };
        let kind = kind?;
        Some(FaultSpec {
            name: timing.name,
            at: timing.at,
            duration: timing.duration,
            repeat,
            kind,
        })
    }
}

/// A misspelt timing key in the type-specific part is reported as one, not as a key the
/// type does not take.
fn unknown_key(key: &str, _: &[&str], closest: Option<&str>) -> Option<(String, String)> {
    let timing = closest_name(key, TIMING_KEYS).filter(|_| closest.is_none())?;
    Some((
        format!("unknown field `{key}`"),
        format!("did you mean `{timing}`?"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<FaultSpec>, crate::config::diag::Diagnostics> {
        let mut c = Collector::new(std::path::Path::new("f.toml"), text);
        let mut doc = crate::config::Document::parse(&mut c).unwrap();
        let faults = crate::chaos::plan::read_faults(&mut doc, &mut c);
        c.finish(()).map(|()| faults.specs.unwrap())
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

    /// Several bad faults in one file: each error at its line and column.
    #[test]
    fn every_error_of_every_fault_at_its_place() {
        let text = "[[fault]]\nname = \"a\"\ntype = \"delay-queue\"\nat = \"1.5s\"\nqueue = \"q\"\ndelay = \"soon\"\ndealy = 1\n\n[[fault]]\ntype = \"explode\"\nat = \"1s\"\n\n[[fault]]\ntype = \"kill-process\"\nat = \"1s\"\ntimes = 2\nduraton = \"1s\"\ncount = \"x\"\n";
        let path = std::path::Path::new("f.toml");
        let mut c = Collector::new(path, text);
        let mut doc = crate::config::Document::parse(&mut c).unwrap();
        let faults: Vec<_> = doc
            .take_tables("fault", &mut c)
            .into_iter()
            .map(|t| FaultSpec::from_table(t, &mut c))
            .collect();
        assert!(faults.iter().all(Option::is_none));
        let d = c.finish(()).unwrap_err();
        let got: Vec<String> = d
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(
            got,
            [
                "6:9 expected a duration like `30s`, `1h30m` or `250ms`, found `soon` for `[[fault]] \"a\".delay`",
                "7:1 unknown field `dealy` in [[fault]] \"a\"",
                "10:8 unknown fault type `explode`",
                "16:1 [[fault]] #3: `times` needs `every`",
                "17:1 unknown field `duraton`",
                "18:9 `count` must be a whole number (0 or more), got the string \"x\" (in [[fault]] #3)",
            ],
            "{d}"
        );
        let hints: Vec<_> = d
            .iter()
            .map(|d| d.hint.clone().unwrap_or_default())
            .collect();
        assert_eq!(hints[1], "did you mean `delay`?");
        assert_eq!(hints[4], "did you mean `duration`?");
    }
}
