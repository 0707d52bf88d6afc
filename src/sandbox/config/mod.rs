//! The sandbox's configuration: one TOML file (every field optional), the
//! architecture to run and its deliberately broken variants.
//!
//! A broken variant is configuration, not code: [`Variant::apply`] only sets
//! ordinary fields (the balancer's health checks off, a fixed worker policy,
//! delete-before-process, a lossy queue capacity, a capped fleet, a slow boot,
//! no cooldowns), so every flaw can also be written by hand. Loading a file applies its `variant`, so the effective
//! configuration printed by `--print-config` reads back to itself. The command line of
//! `shakedown sandbox` is in [`crate::cmd::sandbox`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::asg::config::WorkersConfig;
use super::asg::policy::Policy;
pub use arch::{
    Arch, ArchChoice, CAPPED_FLEET_MAX, LOSSY_QUEUE_DEFAULT_CAPACITY, SLOW_SCALER_WARMUP, Variant,
};

pub use services::{
    GroupSize, ManageConfig, ProcessCall, ScalingMode, ServicesConfig, StoreConfig, UploadConfig,
};

mod arch;
mod services;

/// The whole sandbox. Every field has a default, so an empty file is a valid
/// `queued` sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Which architecture to run: `queued`, `tiered`, `monolith`, `event-driven` or
    /// `microservices`.
    pub arch: Arch,
    /// A deliberate flaw: `no-health-checks`, `fixed-fleet`, `ack-before-process`,
    /// `lossy-queue`, `capped-fleet`, `slow-scaler`, `flapping`, or for `microservices`
    /// `distributed-monolith`, `shared-fleet`, `no-timeouts`. It only sets other fields of
    /// this file (see the docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
    /// Processing time of one job (workers, or monolith web instances):
    /// `BASE + PER/MiB`, e.g. `"20ms + 5ms/MiB"`.
    pub processing: ProcessingTime,
    /// Random spread of each processing time, as a fraction: 0.1 means +-10%.
    pub jitter: f64,
    /// An instance stopped (EC2 StopInstances) for this long is terminated and replaced.
    #[serde(with = "crate::units::serde_duration")]
    pub replace_stopped_after: Duration,
    /// How long a scaled-in or shut-down instance may take to finish its work
    /// after SIGTERM before it is killed.
    #[serde(with = "crate::units::serde_duration")]
    pub drain_timeout: Duration,
    /// The web tier behind the balancer.
    pub web: WebConfig,
    /// The worker Auto Scaling group (arch `queued`).
    pub workers: WorkersConfig,
    /// The jobs queue and its dead-letter queue.
    pub queue: QueueConfig,
    /// The completion feed.
    pub feed: FeedConfig,
    /// The event bus the web tier forwards events to (arch `event-driven`).
    pub bus: BusConfig,
    /// The services of arch `microservices` (`process` is `[workers]`).
    pub services: ServicesConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            arch: Arch::Queued,
            variant: None,
            processing: ProcessingTime {
                base: Duration::from_millis(20),
                per_mib: Duration::from_millis(5),
            },
            jitter: 0.1,
            replace_stopped_after: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            web: WebConfig::default(),
            workers: WorkersConfig::default(),
            queue: QueueConfig::default(),
            feed: FeedConfig::default(),
            bus: BusConfig::default(),
            services: ServicesConfig::default(),
        }
    }
}

/// The web tier: a fixed number of instances behind the balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Web instances to keep running (terminated ones are replaced).
    pub instances: u32,
    /// Balancer port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many uploads one monolith instance processes at once; more wait for it.
    pub processor_concurrency: u32,
    /// The balancer's active health checks.
    pub health_check: HealthCheckConfig,
    /// The balancer listens with TLS (https; HTTP/2 for clients that ask by ALPN), with a
    /// certificate from a CA made for the run (its PEM file: `ca_file` in the endpoints).
    pub tls: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            instances: 2,
            port: 0,
            processor_concurrency: 2,
            health_check: HealthCheckConfig::default(),
            tls: false,
        }
    }
}

/// Active health checks: `GET path` on every target each `interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Off means the balancer keeps sending to dead targets (the `no-health-checks` flaw).
    pub enabled: bool,
    /// Path probed on each target.
    pub path: String,
    /// Time between probes of one target.
    #[serde(with = "crate::units::serde_duration")]
    pub interval: Duration,
    /// A probe not answered 2xx within this fails.
    #[serde(with = "crate::units::serde_duration")]
    pub timeout: Duration,
    /// Consecutive successes that make a target healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            path: "/health".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// When a worker deletes a job from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack {
    /// Delete after processing and reporting: at-least-once.
    #[default]
    AfterProcess,
    /// Delete first, then process: a worker killed mid-job loses it (at-most-once).
    BeforeProcess,
}

/// What a full queue does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// SendMessage fails: the web tier answers 503 and the client sees it.
    #[default]
    Reject,
    /// SendMessage succeeds but the message is discarded (the `lossy-queue` flaw).
    Drop,
}

/// The jobs queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Jobs queue name.
    pub name: String,
    /// Dead-letter queue name.
    pub dead_letter_name: String,
    /// A job received this many times without being deleted moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Visibility timeout after a receive (whole seconds).
    #[serde(with = "crate::units::serde_duration")]
    pub visibility_timeout: Duration,
    /// Most messages the jobs queue holds; unset = unbounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
    /// What a send to a full queue does: `reject` or `drop` (the flaw).
    pub overflow: Overflow,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            name: "jobs".to_owned(),
            dead_letter_name: "jobs-dlq".to_owned(),
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(30),
            capacity: None,
            overflow: Overflow::Reject,
        }
    }
}

/// The completion feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Most completions kept; older ones are dropped (and counted) beyond it.
    pub capacity: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            capacity: 2_000_000,
        }
    }
}

/// The event bus of arch `event-driven` (see docs/bus.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// An external bus's `POST /events` URL. Unset: the sandbox runs its own bus
    /// (`[bus.embedded]`) and the web tier forwards to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The embedded bus's rules and functions (docs/bus.md). Unset: one rule delivering
    /// every event to a function `handler` taking the `processing` base time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded: Option<super::bus::BusConfig>,
}

impl SandboxConfig {
    /// The embedded bus's configuration: `[bus.embedded]`, else one rule `all` delivering
    /// every event to a function `handler` that takes the `processing` base time.
    pub fn embedded_bus(&self) -> super::bus::BusConfig {
        use super::bus::{FunctionSpec, Rule, Target};
        self.bus
            .embedded
            .clone()
            .unwrap_or_else(|| super::bus::BusConfig {
                rules: vec![Rule {
                    name: "all".into(),
                    source: Vec::new(),
                    detail_type: Vec::new(),
                    targets: vec![Target::Function {
                        name: "handler".into(),
                    }],
                }],
                functions: vec![FunctionSpec::new("handler", self.processing.base)],
                ..super::bus::BusConfig::default()
            })
    }
}

/// Processing time of one job of `size` bytes: `base + per_mib x size / MiB`.
///
/// Written `"20ms + 5ms/MiB"`; either term may be left out (`"50ms"`, `"2ms/MiB"`),
/// the per-size unit may be `KiB`, `MiB` or `GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessingTime {
    /// Time for any job, whatever its size.
    pub base: Duration,
    /// Extra time per MiB of payload.
    pub per_mib: Duration,
}

const MIB: f64 = 1024.0 * 1024.0;

impl ProcessingTime {
    /// Processing time of a job of `size` bytes with `spread` in `[-1, 1]` times
    /// `jitter` (a fraction) added: `spread = 0` is the model's exact value.
    pub fn for_size(&self, size: u64, jitter: f64, spread: f64) -> Duration {
        let exact = self.base.as_secs_f64() + self.per_mib.as_secs_f64() * size as f64 / MIB;
        let factor = (1.0 + jitter * spread.clamp(-1.0, 1.0)).max(0.0);
        Duration::from_secs_f64(exact * factor)
    }
}

/// Why a processing-time expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessingTimeError {
    /// Nothing was written.
    #[error("empty processing time; expected e.g. \"20ms + 5ms/MiB\"")]
    Empty,
    /// A term is not a duration.
    #[error("`{term}` is not a duration ({reason}); expected e.g. \"20ms\" or \"5ms/MiB\"")]
    BadDuration {
        /// The term.
        term: String,
        /// humantime's explanation.
        reason: String,
    },
    /// The per-size unit is not KiB, MiB or GiB.
    #[error("unknown size unit `{0}` in a per-size term; use KiB, MiB or GiB")]
    BadUnit(String),
    /// The same kind of term appears twice.
    #[error("`{0}` repeats a term; write at most one base and one per-size term")]
    Repeated(String),
}

impl FromStr for ProcessingTime {
    type Err = ProcessingTimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(ProcessingTimeError::Empty);
        }
        let mut base = None;
        let mut per_mib = None;
        for term in s.split('+').map(str::trim) {
            let duration = |text: &str| {
                crate::units::parse_duration(text.trim()).map_err(|e| {
                    ProcessingTimeError::BadDuration {
                        term: term.to_owned(),
                        reason: e.to_string(),
                    }
                })
            };
            if let Some((time, unit)) = term.split_once('/') {
                let per_unit = duration(time)?;
                let per = match unit.trim() {
                    "KiB" => per_unit.saturating_mul(1024),
                    "MiB" => per_unit,
                    "GiB" => per_unit / 1024,
                    other => return Err(ProcessingTimeError::BadUnit(other.to_owned())),
                };
                if per_mib.replace(per).is_some() {
                    return Err(ProcessingTimeError::Repeated(term.to_owned()));
                }
            } else if base.replace(duration(term)?).is_some() {
                return Err(ProcessingTimeError::Repeated(term.to_owned()));
            }
        }
        Ok(ProcessingTime {
            base: base.unwrap_or_default(),
            per_mib: per_mib.unwrap_or_default(),
        })
    }
}

impl fmt::Display for ProcessingTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} + {}/MiB",
            humantime::format_duration(self.base),
            humantime::format_duration(self.per_mib)
        )
    }
}

impl Serialize for ProcessingTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProcessingTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped fields.
    #[error("{origin}: {message}")]
    Parse {
        /// The file name, or `<config>`.
        origin: String,
        /// toml's message, with line, column and a snippet.
        message: String,
    },
    /// Values that parse but do not make sense, all of them at once.
    #[error("invalid sandbox configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl SandboxConfig {
    /// Parses TOML text (`origin` names it in errors), applies its variant and validates.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: SandboxConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.finish()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The default configuration of an `--arch` choice.
    pub fn for_arch(choice: ArchChoice) -> Self {
        let mut config = SandboxConfig::default();
        config.select(choice);
        config
    }

    /// Switches to an `--arch` choice (keeping the other fields) and applies its variant.
    pub fn select(&mut self, choice: ArchChoice) {
        self.arch = choice.arch;
        if choice.variant.is_some() {
            self.variant = choice.variant;
        }
        if let Some(v) = self.variant {
            v.apply(self);
        }
    }

    /// Applies the variant, then validates.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        if let Some(v) = self.variant {
            v.apply(self);
        }
        self.validate()
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration is always representable as TOML")
    }

    /// Checks every value; reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: String| {
            if !ok {
                problems.push(problem);
            }
        };
        let w = &self.workers;
        check(
            self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter),
            format!("jitter = {} must be between 0 and 1", self.jitter),
        );
        check(
            self.web.instances >= 1,
            "web.instances must be at least 1".into(),
        );
        check(
            self.web.processor_concurrency >= 1,
            "web.processor_concurrency must be at least 1".into(),
        );
        let hc = &self.web.health_check;
        check(
            !hc.enabled || !hc.interval.is_zero(),
            "web.health_check.interval must be positive".into(),
        );
        check(
            !hc.enabled || !hc.timeout.is_zero(),
            "web.health_check.timeout must be positive".into(),
        );
        check(
            !hc.enabled || (hc.healthy_threshold >= 1 && hc.unhealthy_threshold >= 1),
            "web.health_check thresholds must be at least 1".into(),
        );
        check(
            hc.path.starts_with('/'),
            format!("web.health_check.path `{}` must start with /", hc.path),
        );
        check(
            w.min <= w.max,
            format!("workers.min = {} is above workers.max = {}", w.min, w.max),
        );
        check(
            (w.min..=w.max).contains(&w.desired),
            format!(
                "workers.desired = {} is outside min..=max ({}..={})",
                w.desired, w.min, w.max
            ),
        );
        check(
            (1..=10).contains(&w.concurrency),
            format!("workers.concurrency = {} must be 1..=10", w.concurrency),
        );
        check(
            w.wait_time <= Duration::from_secs(20) && w.wait_time.subsec_nanos() == 0,
            "workers.wait_time must be whole seconds, at most 20s".into(),
        );
        check(
            w.wait_time < self.drain_timeout,
            format!(
                "workers.wait_time ({}) must be shorter than drain_timeout ({}): a worker \
                 drained mid long poll would be killed before the poll ends, stranding what \
                 it returns for the visibility timeout",
                humantime::format_duration(w.wait_time),
                humantime::format_duration(self.drain_timeout)
            ),
        );
        if let Policy::TargetTracking {
            backlog_per_instance,
        } = w.policy
        {
            check(
                backlog_per_instance.is_finite() && backlog_per_instance > 0.0,
                "workers.policy.backlog_per_instance must be positive".into(),
            );
        }
        let q = &self.queue;
        check(
            q.visibility_timeout.subsec_nanos() == 0
                && q.visibility_timeout <= Duration::from_secs(43_200),
            "queue.visibility_timeout must be whole seconds, at most 12h".into(),
        );
        check(
            (1..=1000).contains(&q.max_receive_count),
            format!(
                "queue.max_receive_count = {} must be 1..=1000",
                q.max_receive_count
            ),
        );
        check(
            q.capacity != Some(0),
            "queue.capacity must be at least 1 (or left out)".into(),
        );
        check(
            !q.name.is_empty() && q.name != q.dead_letter_name,
            "queue.name must be set and differ from queue.dead_letter_name".into(),
        );
        check(
            self.feed.capacity >= 1,
            "feed.capacity must be at least 1".into(),
        );
        if let Some(url) = &self.bus.url {
            check(
                url.starts_with("http://"),
                format!("bus.url `{url}` must be an http:// URL"),
            );
        }
        check(
            self.arch != Arch::Microservices || !self.web.tls,
            "web.tls is not supported with arch microservices (the services call each other \
             through the balancer over plain HTTP); set web.tls = false"
                .into(),
        );
        problems.extend(self.services.problems());
        if let Some(Err(e)) = self.bus.embedded.as_ref().map(|b| b.validate()) {
            problems.push(format!("bus.embedded: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests;
