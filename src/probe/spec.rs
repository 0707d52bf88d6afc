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
//! the field, at its place ([`ProbeSpec::from_table`]); a value that is wrong for the kind
//! is reported at its key's value too.
//!
//! Adding a probe kind: its struct here (doc comments are the user docs), a line in
//! `probe_kinds!` (the variant of [`ProbeKind`]), its arm in [`ProbeSpec::problems`] when it
//! has checks, a sampler file (`src/probe/<kind>.rs`) with its arm in `Prober::sample`
//! (`src/probe/mod.rs`), and its section in `docs/probes.md`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::aws::{InstanceSelector, QueueRef};
use crate::config::Table;
use crate::config::diag::{Collector, closest_name};
use crate::units;

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    name: Spanned<String>,
    every: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

const COMMON_KEYS: [&str; 3] = ["name", "every", "timeout"];

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

/// `kind = "target-health"`: an ELBv2 target group's targets in one state (ALB, NLB), the
/// AWS counterpart of the sandbox's `balancer` probe.
///
/// ```toml
/// target_group = "web"      # name or ARN
/// state = "healthy"         # healthy (default), unhealthy, draining, initial, unused, unavailable
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetHealthProbe {
    /// The target group: its name, or its ARN.
    pub target_group: String,
    /// The state counted.
    #[serde(default)]
    pub state: TargetState,
}

/// A target's health state, as ELBv2 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Passing health checks: the balancer sends it traffic.
    #[default]
    Healthy,
    /// Failing health checks.
    Unhealthy,
    /// Being deregistered: finishing its requests, getting no new ones.
    Draining,
    /// Just registered, health checks not passed yet.
    Initial,
    /// Not in use (stopped, not registered, or its zone is not enabled).
    Unused,
    /// Health checks disabled, or state unknown.
    Unavailable,
}

impl TargetState {
    /// ELBv2's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
            TargetState::Initial => "initial",
            TargetState::Unused => "unused",
            TargetState::Unavailable => "unavailable",
        }
    }
}

/// `kind = "asg"`: an Auto Scaling group's capacity.
///
/// ```toml
/// group = "workers"         # the group's name
/// metric = "in_service"     # in_service (default), desired, pending, terminating, standby, min, max
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsgProbe {
    /// The group's name.
    pub group: String,
    /// What is counted.
    #[serde(default)]
    pub metric: AsgMetric,
}

/// What an `asg` probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsgMetric {
    /// Instances in the `InService` lifecycle state.
    #[default]
    InService,
    /// The desired capacity.
    Desired,
    /// Instances launching (`Pending` and its `Pending:*` hooks).
    Pending,
    /// Instances leaving (`Terminating` and its hooks).
    Terminating,
    /// Instances in `Standby`.
    Standby,
    /// The group's minimum size.
    Min,
    /// The group's maximum size.
    Max,
}

/// `kind = "cloudwatch"`: one CloudWatch metric's statistic per period (GetMetricData):
/// SQS `ApproximateAgeOfOldestMessage`, ALB `HTTPCode_Target_5XX_Count`, Lambda `Throttles`,
/// `ConcurrentExecutions`, `Duration`, any namespace.
///
/// ```toml
/// namespace = "AWS/SQS"
/// metric = "ApproximateAgeOfOldestMessage"
/// dimensions = { QueueName = "jobs" }
/// stat = "Maximum"          # Average (default), Sum, Minimum, Maximum, SampleCount, IQM, p99, tm90, ...
/// period = "60s"            # 1s, 5s, 10s, 30s (high-resolution metrics) or whole minutes (default 60s)
/// missing = "gap"           # a period without a datapoint: gap (default), or zero (count metrics)
/// settle = "5m"             # after the run, how long to wait for the run's last datapoints (default 5m)
/// scale = 1.0               # each datapoint times this (e.g. Lambda Duration ms -> GB-seconds)
/// cumulative = false        # true: a running total of the periods (Sum or SampleCount only)
/// ```
///
/// CloudWatch publishes minutes late, so the samples taken during the run (every `period`,
/// at least a minute apart unless `every` says otherwise) are the latest complete period
/// CloudWatch had, for stop conditions only. After the run its column of `probes.csv` is
/// rewritten from the settled series: each second holds the statistic of the period it
/// falls in. A probe with periods longer than a second cannot feed a promise, except a
/// `cumulative` one: its column holds the running total only at the instants it is known
/// (the run's start and each period boundary), a counter sampled once a period.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchProbe {
    /// The metric's namespace (`AWS/SQS`, `AWS/ApplicationELB`, `AWS/Lambda`, custom).
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// Its dimensions, by name (all of them: CloudWatch matches the exact set).
    #[serde(default)]
    pub dimensions: std::collections::BTreeMap<String, String>,
    /// The statistic.
    #[serde(default = "average")]
    pub stat: String,
    /// Seconds per datapoint.
    #[serde(default = "one_minute", with = "crate::units::serde_duration")]
    pub period: Duration,
    /// What a period without a datapoint is.
    #[serde(default)]
    pub missing: Missing,
    /// Longest wait after the run for CloudWatch's reporting delay.
    #[serde(default = "five_minutes", with = "crate::units::serde_duration")]
    pub settle: Duration,
    /// Each datapoint is multiplied by this (a unit change: Lambda `Duration` in ms times
    /// memory in GB / 1000 is GB-seconds).
    #[serde(default = "one")]
    pub scale: f64,
    /// A running total of the periods' values instead of each period's value: a counter,
    /// usable wherever a promise wants one (`function`, `cost`, `idle`'s `gb_seconds`).
    #[serde(default)]
    pub cumulative: bool,
}

fn one() -> f64 {
    1.0
}

fn average() -> String {
    "Average".into()
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

/// What a CloudWatch period without a datapoint becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// A gap: nothing is known (CloudWatch has no datapoint when nothing was published).
    #[default]
    Gap,
    /// Zero: right for counts that are only published when non-zero (5XX, throttles).
    Zero,
}

impl CloudWatchProbe {
    /// Reads `value` as this probe's figure (its `scale` applied).
    pub fn scaled(&self, value: f64) -> f64 {
        value * self.scale
    }

    /// The period in whole seconds.
    pub fn period_secs(&self) -> u32 {
        self.period.as_secs().clamp(1, u64::from(u32::MAX)) as u32
    }

    /// The GetMetricData query.
    pub fn query(&self) -> crate::aws::cloudwatch::MetricQuery {
        crate::aws::cloudwatch::MetricQuery {
            namespace: self.namespace.clone(),
            metric: self.metric.clone(),
            dimensions: self
                .dimensions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stat: self.stat.clone(),
            period: self.period_secs(),
        }
    }
}

/// Statistics CloudWatch names in full; percentiles and trimmed statistics (`p99`, `tm90`,
/// `TM(10%:90%)`...) are recognised by their prefix.
const CLOUDWATCH_STATS: [&str; 6] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount", "IQM"];

/// Statistics whose periods add up to the total of a longer span.
const ADDITIVE_STATS: [&str; 2] = ["Sum", "SampleCount"];

fn is_cloudwatch_stat(stat: &str) -> bool {
    if CLOUDWATCH_STATS.contains(&stat) {
        return true;
    }
    let lower = stat.to_ascii_lowercase();
    ["p", "tm", "wm", "tc", "ts", "pr"].iter().any(|prefix| {
        lower
            .strip_prefix(prefix)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_ascii_digit() || c == '(')
    })
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
    /// The URL (GET). A path (`/bus/stats`) is taken relative to the sandbox control
    /// endpoint of the experiment's target.
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

/// The probe kinds: `"kind" => Variant(Parameters)`, one line each (with its doc).
/// Generates [`ProbeKind`], [`PROBE_KINDS`] and the reading of a table's kind keys.
macro_rules! probe_kinds {
    ($($(#[$doc:meta])* $name:literal => $variant:ident($ty:ty)),* $(,)?) => {
        /// What a probe samples, chosen by the `kind` key.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ProbeKind {
            $($(#[$doc])* $variant($ty),)*
        }

        /// Every `kind` of `[[probe]]`.
        pub const PROBE_KINDS: &[&str] = &[$($name),*];

        /// The kind's keys of one `[[probe]]` table, read as the kind's struct.
        fn read_kind(kind: &str, table: Table<'_>, c: &mut Collector<'_>) -> Option<ProbeKind> {
            match kind {
                $($name => table.read::<$ty>(c, &unknown_key).map(ProbeKind::$variant),)*
                _ => None,
            }
        }
    };
}

probe_kinds! {
    /// A queue attribute (SQS API; the experiment's AWS target).
    "sqs" => Sqs(SqsProbe),
    /// Instances in a state, by tags or Auto Scaling group (EC2 API).
    "ec2" => Ec2(Ec2Probe),
    /// An ELBv2 target group's targets in a state (ALB, NLB).
    "target-health" => TargetHealth(TargetHealthProbe),
    /// An Auto Scaling group's desired, in-service, pending... counts.
    "asg" => Asg(AsgProbe),
    /// The sandbox balancer's targets in a state (`GET /targets` of the control endpoint).
    "balancer" => Balancer(BalancerProbe),
    /// A sandbox group's size or activity count (`GET /groups`, `GET /activities`).
    "sandbox-activities" => SandboxActivities(ActivitiesProbe),
    /// A CloudWatch metric's statistic per period (GetMetricData), settled after the run.
    "cloudwatch" => CloudWatch(CloudWatchProbe),
    /// A number in a JSON document served over HTTP.
    "http" => Http(HttpProbe),
    /// A local command printing a number.
    "command" => Command(CommandProbe),
}

impl ProbeKind {
    /// Whether it samples through AWS APIs (read-only): `sqs`, `ec2`, `target-health`, `asg`,
    /// `cloudwatch`.
    pub fn is_aws(&self) -> bool {
        matches!(
            self,
            ProbeKind::Sqs(_)
                | ProbeKind::Ec2(_)
                | ProbeKind::TargetHealth(_)
                | ProbeKind::Asg(_)
                | ProbeKind::CloudWatch(_)
        )
    }

    /// Seconds one value of this probe stands for, when a sample is not one instant of the
    /// run: a CloudWatch period. A promise reads probes second by second, so such a probe
    /// cannot feed one. A `cumulative` one is not coarse: its column holds the exact running
    /// total at each instant it is known, a sparse counter.
    pub fn coarse_period(&self) -> Option<Duration> {
        match self {
            ProbeKind::CloudWatch(p) if p.period > one_second() && !p.cumulative => Some(p.period),
            _ => None,
        }
    }
}

/// A misspelt common key in the kind's part is reported as one.
fn unknown_key(key: &str, _: &[&str], closest: Option<&str>) -> Option<(String, String)> {
    let common = closest_name(key, COMMON_KEYS).filter(|_| closest.is_none())?;
    Some((
        format!("unknown field `{key}`"),
        format!("did you mean `{common}`?"),
    ))
}

impl ProbeSpec {
    /// One `[[probe]]` table of an experiment file, every error at its key or value: an
    /// unknown `kind` at its value, an unknown key at the key (with a hint), a wrong or
    /// inconsistent value at the value ([`ProbeSpec::problems`]). `None` when it has errors
    /// (recorded in `c`).
    pub fn from_table(mut table: Table<'_>, c: &mut Collector<'_>) -> Option<ProbeSpec> {
        let kind = table.tag("kind", PROBE_KINDS, c);
        let places = table.clone();
        let common: Option<RawCommon> = table.split_off(&COMMON_KEYS).read(c, &|_, _, _| None);
        let kind = kind.and_then(|k| read_kind(k, table, c));
        let common = common?;
        let mut duration = |v: &Option<Spanned<String>>, default: Duration| match v {
            None => Some(default),
            Some(s) => units::parse_duration(s.get_ref())
                .map_err(|e| c.error_with_hint(s.span(), e.to_string(), e.hint()))
                .ok(),
        };
        // CloudWatch: a sample a minute is all the service has (and each costs money); its
        // calls cross the internet.
        let (every_default, timeout_default) = match &kind {
            Some(ProbeKind::CloudWatch(p)) => (p.period.max(one_minute()), Duration::from_secs(10)),
            _ => (one_second(), Duration::from_secs(2)),
        };
        let every = duration(&common.every, every_default);
        let timeout = duration(&common.timeout, timeout_default);
        let spec = ProbeSpec {
            name: common.name.get_ref().clone(),
            every: every?,
            timeout: timeout?,
            kind: kind?,
        };
        let mut ok = true;
        for (key, problem) in spec.problems() {
            let span = match key {
                "name" => Some(common.name.span()),
                "every" => common.every.as_ref().map(Spanned::span),
                "timeout" => common.timeout.as_ref().map(Spanned::span),
                key => places.value_span(key),
            };
            c.error(span.unwrap_or_else(|| places.span()), problem);
            ok = false;
        }
        ok.then_some(spec)
    }

    /// The sampling period in whole seconds.
    pub fn every_secs(&self) -> u64 {
        self.every.as_secs().max(1)
    }

    /// Every problem of this probe alone (name, timing, kind-specific keys), each with the
    /// key it is about.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
        if self.name.is_empty() || !self.name.chars().all(valid_char) {
            out.push((
                "name",
                format!(
                    "probe name `{}` must be letters, digits, `_`, `.`, `:` or `-` (it is a CSV column)",
                    self.name
                ),
            ));
        }
        if self.name == "second" {
            out.push((
                "name",
                "probe name `second` is taken by the first column of probes.csv".into(),
            ));
        }
        if self.every < one_second() || self.every.subsec_nanos() != 0 {
            out.push((
                "every",
                format!(
                    "probe `{}`: `every` must be a whole number of seconds, at least 1s",
                    self.name
                ),
            ));
        }
        if self.timeout.is_zero() {
            out.push((
                "timeout",
                format!("probe `{}`: `timeout` must be above 0", self.name),
            ));
        }
        let name = &self.name;
        match &self.kind {
            ProbeKind::Sqs(p) => {
                if p.metric == SqsMetric::DlqVisible && p.dlq.is_none() {
                    out.push((
                        "metric",
                        format!("probe `{name}`: metric `dlq_visible` needs `dlq`"),
                    ));
                }
                if p.metric != SqsMetric::DlqVisible && p.dlq.is_some() {
                    out.push((
                        "dlq",
                        format!("probe `{name}`: `dlq` is only read by metric `dlq_visible`"),
                    ));
                }
            }
            ProbeKind::Ec2(p) => {
                if let Err(e) = p.instances.filters(&p.state) {
                    out.push(("instances", format!("probe `{name}`: {e}")));
                }
                if !EC2_STATES.contains(&p.state.as_str()) {
                    out.push((
                        "state",
                        format!(
                            "probe `{name}`: unknown state `{}`; expected one of {}",
                            p.state,
                            EC2_STATES.join(", ")
                        ),
                    ));
                }
            }
            ProbeKind::TargetHealth(p) => {
                if p.target_group.trim().is_empty() {
                    out.push((
                        "target_group",
                        format!("probe `{name}`: `target_group` is empty: give its name or ARN"),
                    ));
                }
            }
            ProbeKind::Asg(p) => {
                if p.group.trim().is_empty() {
                    out.push((
                        "group",
                        format!(
                            "probe `{name}`: `group` is empty: give the Auto Scaling group's name"
                        ),
                    ));
                }
            }
            ProbeKind::Balancer(p) => {
                if !TARGET_STATES.contains(&p.state.as_str()) {
                    out.push((
                        "state",
                        format!(
                            "probe `{name}`: unknown target state `{}`; expected one of {}",
                            p.state,
                            TARGET_STATES.join(", ")
                        ),
                    ));
                }
            }
            ProbeKind::CloudWatch(p) => {
                for (key, value) in [("namespace", &p.namespace), ("metric", &p.metric)] {
                    if value.trim().is_empty() {
                        out.push((key, format!("probe `{name}`: `{key}` is empty")));
                    }
                }
                if !is_cloudwatch_stat(&p.stat) {
                    out.push((
                        "stat",
                        format!(
                            "probe `{name}`: unknown statistic `{}`; expected {}, or a percentile like p99",
                            p.stat,
                            CLOUDWATCH_STATS.join(", ")
                        ),
                    ));
                }
                let secs = p.period.as_secs();
                if p.period.subsec_nanos() != 0
                    || !(matches!(secs, 1 | 5 | 10 | 30) || (secs >= 60 && secs % 60 == 0))
                {
                    out.push((
                        "period",
                        format!(
                            "probe `{name}`: `period` must be 1s, 5s, 10s, 30s or whole minutes (CloudWatch's periods)"
                        ),
                    ));
                }
                if p.dimensions.len() > 30 {
                    out.push((
                        "dimensions",
                        format!("probe `{name}`: CloudWatch takes at most 30 dimensions"),
                    ));
                }
                if p.settle > Duration::from_secs(3600) {
                    out.push(("settle", format!("probe `{name}`: `settle` is at most 1h")));
                }
                if !(p.scale.is_finite() && p.scale > 0.0) {
                    out.push((
                        "scale",
                        format!(
                            "probe `{name}`: `scale` must be a number > 0, found {}",
                            p.scale
                        ),
                    ));
                }
                if p.cumulative && !ADDITIVE_STATS.contains(&p.stat.as_str()) {
                    out.push((
                        "cumulative",
                        format!(
                            "probe `{name}`: a running total adds periods up, and `{}` does not add up; use `stat = \"Sum\"` (or `SampleCount`), or drop `cumulative`",
                            p.stat
                        ),
                    ));
                }
            }
            ProbeKind::SandboxActivities(_) => {}
            ProbeKind::Http(p) => {
                if !p.pointer.is_empty() && !p.pointer.starts_with('/') {
                    out.push((
                        "pointer",
                        format!(
                            "probe `{name}`: pointer `{}` must be empty or start with `/` (RFC 6901)",
                            p.pointer
                        ),
                    ));
                }
                if !p.url.starts_with("http://") && !p.url.starts_with('/') {
                    out.push((
                        "url",
                        format!(
                            "probe `{name}`: url `{}` must start with http://, or be a path (`/bus/stats`) on the sandbox control endpoint",
                            p.url
                        ),
                    ));
                }
            }
            ProbeKind::Command(p) => {
                let empty = match &p.command {
                    CommandLine::Shell(s) => s.trim().is_empty(),
                    CommandLine::Argv(v) => v.first().is_none_or(|s| s.is_empty()),
                };
                if empty {
                    out.push(("command", format!("probe `{name}`: empty command")));
                }
            }
        }
        out
    }
}

/// Every problem of a list of probes built in code (not read from a file): each probe's own,
/// and duplicate names.
pub fn problems(probes: &[ProbeSpec]) -> Vec<String> {
    let mut out: Vec<String> = probes
        .iter()
        .flat_map(|p| p.problems().into_iter().map(|(_, problem)| problem))
        .collect();
    for (i, p) in probes.iter().enumerate() {
        if probes[..i].iter().any(|q| q.name == p.name) {
            out.push(format!("two probes are named `{}`", p.name));
        }
    }
    out
}

/// Reads the `[[probe]]` tables of an experiment: each on its own, every error at its
/// place, and a second probe with a name already taken at its `name`.
pub fn read_probes(tables: Vec<Table<'_>>, c: &mut Collector<'_>) -> Vec<ProbeSpec> {
    let mut probes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for table in tables {
        let taken = match (table.str("name"), table.value_span("name")) {
            (Some(name), Some(span)) if !seen.insert(name.to_owned()) => {
                c.error(span, format!("two probes are named `{name}`"));
                true
            }
            _ => false,
        };
        if let Some(probe) = ProbeSpec::from_table(table, c)
            && !taken
        {
            probes.push(probe);
        }
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Diagnostics;
    use std::path::Path;

    fn parse(text: &str) -> Result<Vec<ProbeSpec>, Diagnostics> {
        let mut c = Collector::new(Path::new("p.toml"), text);
        let mut doc = crate::config::Document::parse(&mut c).expect("TOML");
        let tables = doc.take_tables("probe", &mut c);
        let probes = read_probes(tables, &mut c);
        c.finish(probes)
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect()
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
    }

    /// Unknown keys and kinds, each at its place with a hint: the kind's keys and the
    /// common ones alike (the split into common and kind keys keeps every span).
    #[test]
    fn unknown_keys_and_kinds_at_their_place() {
        let text = "[[probe]]\nname = \"d\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"visible\"\nmetrc = 1\n\n[[probe]]\nname = \"e\"\nevry = \"1s\"\nkind = \"command\"\ncommand = \"x\"\n\n[[probe]]\nname = \"f\"\nkind = \"kafka\"\n\n[[probe]]\nname = \"g\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"depth\"\n";
        let err = parse(text).unwrap_err();
        let got: Vec<String> = err
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} / {}",
                    d.line,
                    d.column,
                    d.message,
                    d.hint.clone().unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(got.len(), 4, "{err}");
        assert!(
            got[0].starts_with(
                "6:1 unknown field `metrc` in [[probe]] \"d\" / did you mean `metric`?"
            ),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("10:1 unknown field `evry` / did you mean `every`?"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with("16:8 unknown probe kind `kafka`"),
            "{got:#?}"
        );
        assert!(
            got[3].starts_with("22:10 unknown variant `depth`"),
            "{got:#?}"
        );
    }

    /// Several bad probes in one file: every problem at the value it is about.
    #[test]
    fn semantic_problems_are_all_reported_at_their_values() {
        let got = errors(
            "[[probe]]\nname = \"a,b\"\nevery = \"1500ms\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"dlq_visible\"\n\n[[probe]]\nname = \"w\"\nkind = \"ec2\"\ninstances = {}\nstate = \"runing\"\n\n[[probe]]\nname = \"w\"\nkind = \"balancer\"\ntimeout = \"soon\"\n\n[[probe]]\nname = \"w\"\nkind = \"balancer\"\n",
        );
        let want = [
            "2:8 probe name `a,b` must be letters",
            "3:9 probe `a,b`: `every` must be a whole number",
            "6:10 probe `a,b`: metric `dlq_visible` needs `dlq`",
            "11:13 probe `w`: an instance selector needs `tags` or `asg`",
            "12:9 probe `w`: unknown state `runing`",
            "15:8 two probes are named `w`",
            "17:11 expected a duration like",
            "20:8 two probes are named `w`",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.starts_with(w),
                "{g:?} does not start with {w:?}\n{got:#?}"
            );
        }
    }
}
