//! The `[[probe]]` tables of an experiment file.
//!
//! ```toml
//! [[probe]]
//! name = "queue_depth"       # the probes.csv column; letters, digits, `_ . : -`
//! every = "1s"               # whole seconds (default 1s)
//! timeout = "2s"             # a sample taking longer is a gap (default 2s)
//! kind = "sqs"               # which probe; the other keys depend on it
//! queue = "jobs"
//! metric = "visible"
//! ```
//!
//! The common keys (`name`, `every`, `timeout`) are split from the kind's keys before each
//! part is deserialized with `deny_unknown_fields`, so a typo in either is an error naming
//! the field.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::aws::{InstanceSelector, QueueRef};

/// One `[[probe]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    /// Column name in `probes.csv` and the name stop conditions use.
    pub name: String,
    /// Sampling period, a whole number of seconds (default 1 s).
    pub every: Duration,
    /// Longest a sample may take; a late sample is a gap (default 2 s).
    pub timeout: Duration,
    /// What to sample.
    pub kind: ProbeKind,
}

/// The keys every probe has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    #[serde(default = "one_second", with = "humantime_serde")]
    every: Duration,
    #[serde(default = "two_seconds", with = "humantime_serde")]
    timeout: Duration,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

const COMMON_KEYS: [&str; 3] = ["name", "every", "timeout"];

/// What a probe samples, chosen by the `kind` key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProbeKind {
    /// A queue attribute (SQS API; the experiment's AWS target).
    Sqs(SqsProbe),
    /// Instances in a state, by tags or Auto Scaling group (EC2 API).
    Ec2(Ec2Probe),
    /// The sandbox balancer's targets in a state (`GET /targets` of the control endpoint).
    Balancer(BalancerProbe),
    /// A sandbox group's size or activity count (`GET /groups`, `GET /activities`).
    SandboxActivities(ActivitiesProbe),
    /// A number in a JSON document served over HTTP.
    Http(HttpProbe),
    /// A local command printing a number.
    Command(CommandProbe),
}

/// `kind = "sqs"`.
///
/// ```toml
/// queue = "jobs"                 # name or URL
/// metric = "visible"             # visible | in_flight | delayed | oldest_age | dlq_visible
/// dlq = "jobs-dlq"               # for dlq_visible
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsProbe {
    /// The queue, by name or URL.
    pub queue: QueueRef,
    /// Which figure.
    pub metric: SqsMetric,
    /// The dead-letter queue (needed by `dlq_visible`).
    #[serde(default)]
    pub dlq: Option<QueueRef>,
}

/// Figures of an SQS probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqsMetric {
    /// `ApproximateNumberOfMessages`: ready to be received.
    Visible,
    /// `ApproximateNumberOfMessagesNotVisible`: received, not deleted yet.
    InFlight,
    /// `ApproximateNumberOfMessagesDelayed`.
    Delayed,
    /// Seconds since the probe last saw the queue empty (visible + in flight + delayed = 0):
    /// an upper bound of the oldest message's age at the probe's resolution (the SQS API
    /// has no age attribute). A gap until the queue has been seen empty once.
    OldestAge,
    /// `ApproximateNumberOfMessages` of `dlq`.
    DlqVisible,
}

/// `kind = "ec2"`.
///
/// ```toml
/// instances = { tags = { tier = "web" } }   # or { asg = "workers" }
/// state = "running"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Probe {
    /// Which instances: tags and/or an Auto Scaling group (`aws:autoscaling:groupName`).
    pub instances: InstanceSelector,
    /// The state counted (default `running`).
    #[serde(default = "running")]
    pub state: String,
}

fn running() -> String {
    "running".into()
}

/// EC2 instance state names.
pub const EC2_STATES: [&str; 6] = [
    "pending",
    "running",
    "shutting-down",
    "terminated",
    "stopping",
    "stopped",
];

/// `kind = "balancer"`.
///
/// ```toml
/// url = "http://127.0.0.1:4001"  # the sandbox control endpoint (default: the target's)
/// state = "healthy"              # initial | healthy | unhealthy | draining
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerProbe {
    /// The sandbox control endpoint's base URL (default: the experiment target's).
    #[serde(default)]
    pub url: Option<String>,
    /// The target state counted (default `healthy`).
    #[serde(default = "healthy")]
    pub state: String,
}

fn healthy() -> String {
    "healthy".into()
}

/// Balancer target states.
pub const TARGET_STATES: [&str; 4] = ["initial", "healthy", "unhealthy", "draining"];

/// `kind = "sandbox-activities"`.
///
/// ```toml
/// url = "http://127.0.0.1:4001"  # the sandbox control endpoint (default: the target's)
/// group = "workers"
/// metric = "desired"             # desired | instances | scalings | launches | terminations
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesProbe {
    /// The sandbox control endpoint's base URL (default: the experiment target's).
    #[serde(default)]
    pub url: Option<String>,
    /// The group (`web`, `workers`).
    pub group: String,
    /// Which figure.
    pub metric: ActivitiesMetric,
}

/// Figures of a `sandbox-activities` probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitiesMetric {
    /// Desired capacity (`GET /groups`).
    Desired,
    /// Members counting towards desired (`GET /groups`).
    Instances,
    /// Desired-capacity changes since the probe started (`GET /activities`).
    Scalings,
    /// Instance launches since the probe started.
    Launches,
    /// Instance terminations since the probe started.
    Terminations,
}

/// `kind = "http"`.
///
/// ```toml
/// url = "http://127.0.0.1:9000/stats"
/// pointer = "/queue/depth"       # JSON pointer (RFC 6901) to a number
/// ```
///
/// The value may be a number, a string holding one, or a boolean (1 / 0).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// The URL (GET).
    pub url: String,
    /// JSON pointer to the value (`""`: the whole document).
    pub pointer: String,
}

/// `kind = "command"`.
///
/// ```toml
/// command = "redis-cli llen jobs"        # run by `sh -c`; or an argv list: ["redis-cli", "llen", "jobs"]
/// ```
///
/// The first word of standard output must be a number; a non-zero exit is a gap. The
/// command is killed when the timeout expires.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    /// The command line.
    pub command: CommandLine,
}

/// A shell command line or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run by `sh -c`.
    Shell(String),
    /// Run directly (first element is the program).
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for ProbeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        let (common, params): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let common: Common = toml::Value::Table(common)
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        let kind: ProbeKind = toml::Value::Table(params)
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(ProbeSpec {
            name: common.name,
            every: common.every,
            timeout: common.timeout,
            kind,
        })
    }
}

impl ProbeSpec {
    /// The sampling period in whole seconds.
    pub fn every_secs(&self) -> u64 {
        self.every.as_secs().max(1)
    }

    /// Every problem of this probe alone (name, timing, kind-specific keys).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
        if self.name.is_empty() || !self.name.chars().all(valid_char) {
            out.push(format!(
                "probe name `{}` must be letters, digits, `_`, `.`, `:` or `-` (it is a CSV column)",
                self.name
            ));
        }
        if self.name == "second" {
            out.push("probe name `second` is taken by the first column of probes.csv".into());
        }
        if self.every < one_second() || self.every.subsec_nanos() != 0 {
            out.push(format!(
                "probe `{}`: `every` must be a whole number of seconds, at least 1s",
                self.name
            ));
        }
        if self.timeout.is_zero() {
            out.push(format!("probe `{}`: `timeout` must be above 0", self.name));
        }
        match &self.kind {
            ProbeKind::Sqs(p) => {
                if p.metric == SqsMetric::DlqVisible && p.dlq.is_none() {
                    out.push(format!(
                        "probe `{}`: metric `dlq_visible` needs `dlq`",
                        self.name
                    ));
                }
                if p.metric != SqsMetric::DlqVisible && p.dlq.is_some() {
                    out.push(format!(
                        "probe `{}`: `dlq` is only read by metric `dlq_visible`",
                        self.name
                    ));
                }
            }
            ProbeKind::Ec2(p) => {
                if let Err(e) = p.instances.filters(&p.state) {
                    out.push(format!("probe `{}`: {e}", self.name));
                }
                if !EC2_STATES.contains(&p.state.as_str()) {
                    out.push(format!(
                        "probe `{}`: unknown state `{}`; expected one of {}",
                        self.name,
                        p.state,
                        EC2_STATES.join(", ")
                    ));
                }
            }
            ProbeKind::Balancer(p) => {
                if !TARGET_STATES.contains(&p.state.as_str()) {
                    out.push(format!(
                        "probe `{}`: unknown target state `{}`; expected one of {}",
                        self.name,
                        p.state,
                        TARGET_STATES.join(", ")
                    ));
                }
            }
            ProbeKind::SandboxActivities(_) => {}
            ProbeKind::Http(p) => {
                if !p.pointer.is_empty() && !p.pointer.starts_with('/') {
                    out.push(format!(
                        "probe `{}`: pointer `{}` must be empty or start with `/` (RFC 6901)",
                        self.name, p.pointer
                    ));
                }
                if !p.url.starts_with("http://") {
                    out.push(format!(
                        "probe `{}`: url `{}` must start with http://",
                        self.name, p.url
                    ));
                }
            }
            ProbeKind::Command(p) => {
                let empty = match &p.command {
                    CommandLine::Shell(s) => s.trim().is_empty(),
                    CommandLine::Argv(v) => v.first().is_none_or(|s| s.is_empty()),
                };
                if empty {
                    out.push(format!("probe `{}`: empty command", self.name));
                }
            }
        }
        out
    }
}

/// Every problem of a list of probes: each probe's own, and duplicate names.
pub fn problems(probes: &[ProbeSpec]) -> Vec<String> {
    let mut out: Vec<String> = probes.iter().flat_map(ProbeSpec::problems).collect();
    for (i, p) in probes.iter().enumerate() {
        if probes[..i].iter().any(|q| q.name == p.name) {
            out.push(format!("two probes are named `{}`", p.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        probe: Vec<ProbeSpec>,
    }

    fn parse(text: &str) -> Result<Vec<ProbeSpec>, toml::de::Error> {
        toml::from_str::<File>(text).map(|f| f.probe)
    }

    #[test]
    fn parses_every_kind_with_defaults() {
        let probes = parse(
            r#"
            [[probe]]
            name = "depth"
            kind = "sqs"
            queue = "jobs"
            metric = "visible"

            [[probe]]
            name = "workers"
            every = "5s"
            timeout = "500ms"
            kind = "ec2"
            instances = { asg = "workers" }

            [[probe]]
            name = "healthy"
            kind = "balancer"

            [[probe]]
            name = "desired"
            kind = "sandbox-activities"
            group = "workers"
            metric = "desired"

            [[probe]]
            name = "lag"
            kind = "http"
            url = "http://127.0.0.1:1/x"
            pointer = "/a/0"

            [[probe]]
            name = "cmd"
            kind = "command"
            command = ["echo", "1"]
            "#,
        )
        .unwrap();
        assert_eq!(probes.len(), 6);
        assert_eq!(probes[0].every, Duration::from_secs(1));
        assert_eq!(probes[0].timeout, Duration::from_secs(2));
        assert_eq!(probes[1].every_secs(), 5);
        assert_eq!(probes[1].timeout, Duration::from_millis(500));
        match &probes[1].kind {
            ProbeKind::Ec2(p) => {
                assert_eq!(p.state, "running");
                assert_eq!(p.instances.asg.as_deref(), Some("workers"));
            }
            other => panic!("{other:?}"),
        }
        match &probes[2].kind {
            ProbeKind::Balancer(p) => assert_eq!(p.state, "healthy"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &probes[5].kind,
            ProbeKind::Command(CommandProbe { command: CommandLine::Argv(v) }) if v.len() == 2
        ));
        assert!(problems(&probes).is_empty(), "{:?}", problems(&probes));
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors_naming_them() {
        let err = parse("[[probe]]\nname = \"d\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"visible\"\nmetrc = 1\n")
            .unwrap_err();
        assert!(err.to_string().contains("metrc"), "{err}");
        let err =
            parse("[[probe]]\nname = \"d\"\nevry = \"1s\"\nkind = \"command\"\ncommand = \"x\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("evry"), "{err}");
        let err = parse("[[probe]]\nname = \"d\"\nkind = \"kafka\"\n").unwrap_err();
        assert!(err.to_string().contains("kafka"), "{err}");
        let err =
            parse("[[probe]]\nname = \"d\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"depth\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("depth"), "{err}");
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let probes = parse(
            r#"
            [[probe]]
            name = "a,b"
            every = "1500ms"
            kind = "sqs"
            queue = "q"
            metric = "dlq_visible"

            [[probe]]
            name = "a,b"
            kind = "ec2"
            instances = {}
            state = "runing"
            "#,
        )
        .unwrap();
        let all = problems(&probes).join("\n");
        for needle in [
            "CSV column",
            "whole number",
            "needs `dlq`",
            "needs `tags` or `asg`",
            "runing",
            "two probes",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }
}

#[cfg(test)]
mod diagnostics {
    use super::*;
    use std::path::Path;

    #[derive(Debug, Deserialize)]
    struct File {
        #[allow(dead_code)]
        probe: Vec<ProbeSpec>,
    }

    /// The kind's error message passes through unchanged, so the config pass recognises an
    /// unknown field and hints the right name. (Its location is the `[[probe]]` table: the
    /// split into common and kind keys loses the key's own span.)
    #[test]
    fn unknown_fields_reach_the_config_diagnostics_with_a_hint() {
        let text = "[[probe]]\nname = \"d\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"visible\"\nmetrc = 1\n";
        let (_, diags) = crate::config::parse_toml::<File>(text, Path::new("x.toml"));
        let first = diags.first().expect("a diagnostic");
        assert_eq!(first.message, "unknown field `metrc`");
        assert_eq!(first.hint.as_deref(), Some("did you mean `metric`?"));
        assert_eq!((first.line, first.column), (1, 1));
    }
}
