//! The bus's configuration: rules, functions, delivery policy. Durations are human-readable
//! (`"30ms"`, `"5m"`), every table refuses unknown keys.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{Rule, Target};

/// Everything the bus needs.
///
/// ```toml
/// sqs_endpoint = "http://127.0.0.1:9324"
///
/// [[rules]]
/// name = "thumbnails"
/// source = ["uploads"]
/// detail_type = ["ImageUploaded"]
/// targets = [{ type = "function", name = "thumbnail" }]
///
/// [[functions]]
/// name = "thumbnail"
/// base = "30ms"
/// cpu = "40ms"
/// jitter = "10ms"
/// memory_mb = 256
/// reserved_concurrency = 10
/// cold_start = "150ms"
/// keep_warm = "5m"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Routing rules, evaluated in order; an event goes to the targets of every rule it matches.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Function-style consumers that rules may target by name.
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    /// Endpoint for every SQS call (e.g. the sandbox queue's `http://127.0.0.1:PORT`).
    /// When absent, each queue target is reached at its queue URL's own scheme, host and port.
    #[serde(default)]
    pub sqs_endpoint: Option<String>,
    /// How failed and throttled deliveries are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// On shutdown, how long in-flight deliveries and invocations may take to finish before
    /// they are abandoned (and counted as such).
    #[serde(default = "default_drain", with = "crate::units::serde_duration")]
    pub drain_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            rules: Vec::new(),
            functions: Vec::new(),
            sqs_endpoint: None,
            retry: RetryPolicy::default(),
            drain_timeout: default_drain(),
        }
    }
}

fn default_drain() -> Duration {
    Duration::from_secs(10)
}

/// A function-style consumer (the Lambda role): it holds an execution slot only while
/// handling an event. Each invocation's handler waits `base` plus a uniform draw in
/// `[0, jitter]` (I/O, downstream calls: not sped up by memory) and computes for `cpu` at
/// one full vCPU, stretched by the CPU share of `memory_mb` (`memory_mb / 1769`, at most 1:
/// memory buys CPU, see [`super::account::handler_duration`]). The first invocation on a
/// new slot first spends `cold_start` initialising it. A slot left idle for longer than
/// `keep_warm` is reclaimed, so the next invocation is cold again; `provisioned_concurrency`
/// slots are initialised at start, never reclaimed, and billed all the time.
///
/// Each invocation is billed its drawn handler duration rounded up to the millisecond (the
/// real timer may overrun it by ~1 ms; that simulation artefact is not billed), times
/// `memory_mb`. Cold-start time is reported apart (`init_ms`), not billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Unique name, referenced by `{ type = "function", name = ... }` targets.
    pub name: String,
    /// Fixed waiting part of each invocation's handler duration (not sped up by memory).
    #[serde(with = "crate::units::serde_duration")]
    pub base: Duration,
    /// CPU-bound part of each invocation at one full vCPU (default `0s`); it runs
    /// `cpu / cpu_share(memory_mb)`, e.g. `400ms` takes 5.5 s at 128 MB.
    #[serde(default, with = "crate::units::serde_duration")]
    pub cpu: Duration,
    /// Upper bound of the uniformly drawn extra duration (default `0s`).
    #[serde(default, with = "crate::units::serde_duration")]
    pub jitter: Duration,
    /// Memory size in MB (default 128), which prices GB-seconds.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Maximum concurrent executions; invocations beyond it are throttled and retried later.
    /// Absent means unlimited. `0` throttles everything, like a disabled Lambda function.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// Slots kept initialised from the bus's start (default 0): taken first, never cold,
    /// never reclaimed, and billed continuously (`provisioned_gb_seconds`), as AWS bills
    /// provisioned concurrency. At most `reserved_concurrency` when that is set.
    #[serde(default)]
    pub provisioned_concurrency: u32,
    /// Initialisation delay of a new execution slot (default `0s`). Reported separately from
    /// the billed handler duration.
    #[serde(default, with = "crate::units::serde_duration")]
    pub cold_start: Duration,
    /// How long an idle slot stays warm (default `5m`).
    #[serde(default = "default_keep_warm", with = "crate::units::serde_duration")]
    pub keep_warm: Duration,
    /// Probability in `[0, 1]` that an invocation fails after running (default 0); failed
    /// invocations are billed, counted as errors and retried per the retry policy.
    #[serde(default)]
    pub error_rate: f64,
}

impl FunctionSpec {
    /// A function with `base` duration and every other setting at its default.
    pub fn new(name: impl Into<String>, base: Duration) -> Self {
        FunctionSpec {
            name: name.into(),
            base,
            cpu: Duration::ZERO,
            jitter: Duration::ZERO,
            memory_mb: default_memory(),
            reserved_concurrency: None,
            provisioned_concurrency: 0,
            cold_start: Duration::ZERO,
            keep_warm: default_keep_warm(),
            error_rate: 0.0,
        }
    }
}

fn default_memory() -> u32 {
    128
}

fn default_keep_warm() -> Duration {
    Duration::from_secs(300)
}

/// Retries: at-least-once delivery with bounded attempts and a bounded event age.
///
/// A failed attempt (SQS error, function error) is retried after a backoff that starts at
/// `initial_backoff` and doubles up to `max_backoff` (each wait drawn in `[d/2, d]`), until
/// `max_attempts` attempts were made. Throttled invocations use the same backoff but do not
/// use up attempts. Either way, an event older than `max_event_age` is no longer retried:
/// the delivery is counted as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per delivery, including the first (default 3, at least 1).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff (default `50ms`).
    #[serde(default = "default_initial", with = "crate::units::serde_duration")]
    pub initial_backoff: Duration,
    /// Backoff ceiling (default `2s`).
    #[serde(default = "default_max_backoff", with = "crate::units::serde_duration")]
    pub max_backoff: Duration,
    /// Give up on an event this long after it was accepted (default `60s`).
    #[serde(default = "default_age", with = "crate::units::serde_duration")]
    pub max_event_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_attempts(),
            initial_backoff: default_initial(),
            max_backoff: default_max_backoff(),
            max_event_age: default_age(),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry number `retry` (1-based): `initial_backoff x 2^(retry-1)`,
    /// capped at `max_backoff`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_initial() -> Duration {
    Duration::from_millis(50)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(2)
}
fn default_age() -> Duration {
    Duration::from_secs(60)
}

/// A configuration the bus refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two rules share a name.
    #[error("rule `{0}` is defined twice")]
    DuplicateRule(String),
    /// Two functions share a name.
    #[error("function `{0}` is defined twice")]
    DuplicateFunction(String),
    /// A rule targets a function that is not declared.
    #[error("rule `{rule}` targets function `{function}`, which is not declared in `functions`")]
    UnknownFunction {
        /// The rule.
        rule: String,
        /// The missing function.
        function: String,
    },
    /// A queue URL (or the SQS endpoint) is not an absolute http(s) URL.
    #[error("`{0}` is not an absolute http(s) URL")]
    BadUrl(String),
    /// A function setting is out of range.
    #[error("function `{function}`: {problem}")]
    BadFunction {
        /// The function.
        function: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// `retry.max_attempts` is 0.
    #[error("retry.max_attempts must be at least 1")]
    NoAttempts,
}

impl BusConfig {
    /// Checks names, references, URLs and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for f in &self.functions {
            if !names.insert(f.name.as_str()) {
                return Err(ConfigError::DuplicateFunction(f.name.clone()));
            }
            let bad = |problem| ConfigError::BadFunction {
                function: f.name.clone(),
                problem,
            };
            if !(0.0..=1.0).contains(&f.error_rate) {
                return Err(bad("error_rate must be within [0, 1]"));
            }
            if f.memory_mb == 0 {
                return Err(bad("memory_mb must be positive"));
            }
            if f.reserved_concurrency
                .is_some_and(|r| f.provisioned_concurrency > r)
            {
                return Err(bad(
                    "provisioned_concurrency must not exceed reserved_concurrency",
                ));
            }
        }
        let mut rules = BTreeSet::new();
        for r in &self.rules {
            if !rules.insert(r.name.as_str()) {
                return Err(ConfigError::DuplicateRule(r.name.clone()));
            }
            for t in &r.targets {
                match t {
                    Target::Function { name } if !names.contains(name.as_str()) => {
                        return Err(ConfigError::UnknownFunction {
                            rule: r.name.clone(),
                            function: name.clone(),
                        });
                    }
                    Target::Queue { queue_url } => {
                        origin(queue_url)?;
                    }
                    Target::Function { .. } => {}
                }
            }
        }
        if let Some(e) = &self.sqs_endpoint {
            origin(e)?;
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::NoAttempts);
        }
        Ok(())
    }

    /// The SQS endpoint used for a queue URL.
    pub fn endpoint_for(&self, queue_url: &str) -> Result<String, ConfigError> {
        match &self.sqs_endpoint {
            Some(e) => Ok(e.trim_end_matches('/').to_string()),
            None => origin(queue_url),
        }
    }
}

/// `scheme://authority` of an absolute http(s) URL.
fn origin(url: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadUrl(url.to_string());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let scheme = uri.scheme_str().ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<BusConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_and_human_durations() {
        let c = parse(
            r#"{"functions":[{"name":"f","base":"30ms","jitter":"1s 5ms"}],
                "rules":[{"name":"r","targets":[{"type":"function","name":"f"}]}]}"#,
        )
        .unwrap();
        let f = &c.functions[0];
        assert_eq!(f.base, Duration::from_millis(30));
        assert_eq!(f.jitter, Duration::from_millis(1005));
        assert_eq!(f.memory_mb, 128);
        assert_eq!(f.reserved_concurrency, None);
        assert_eq!(f.keep_warm, Duration::from_secs(300));
        assert_eq!((f.cpu, f.provisioned_concurrency), (Duration::ZERO, 0));
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.drain_timeout, Duration::from_secs(10));
        c.validate().unwrap();
        // Round trip through serialisation keeps every value.
        let again: BusConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        assert!(parse(r#"{"rulez":[]}"#).is_err());
        assert!(parse(r#"{"functions":[{"name":"f","base":"30ms","memory":1}]}"#).is_err());
        let e = parse(r#"{"functions":[{"name":"f","base":"thirty"}]}"#).unwrap_err();
        assert!(e.to_string().contains("found `thirty`"), "{e}");
        assert!(parse(r#"{"retry":{"max_attempts":2,"backof":"1s"}}"#).is_err());
    }

    #[test]
    fn validation_catches_each_mistake() {
        let rule = |name: &str, t: Target| Rule {
            name: name.into(),
            source: vec![],
            detail_type: vec![],
            targets: vec![t],
        };
        let f = || Target::Function { name: "f".into() };
        let mut c = BusConfig {
            functions: vec![FunctionSpec::new("f", Duration::from_millis(1))],
            rules: vec![rule("a", f())],
            ..BusConfig::default()
        };
        c.validate().unwrap();

        let mut dup = c.clone();
        dup.rules.push(rule("a", f()));
        assert_eq!(dup.validate(), Err(ConfigError::DuplicateRule("a".into())));

        let mut dupf = c.clone();
        dupf.functions.push(FunctionSpec::new("f", Duration::ZERO));
        assert_eq!(
            dupf.validate(),
            Err(ConfigError::DuplicateFunction("f".into()))
        );

        let mut unknown = c.clone();
        unknown
            .rules
            .push(rule("b", Target::Function { name: "g".into() }));
        assert!(matches!(
            unknown.validate(),
            Err(ConfigError::UnknownFunction { .. })
        ));

        let mut url = c.clone();
        url.rules.push(rule(
            "q",
            Target::Queue {
                queue_url: "jobs".into(),
            },
        ));
        assert_eq!(url.validate(), Err(ConfigError::BadUrl("jobs".into())));

        let mut over = c.clone();
        over.functions[0].reserved_concurrency = Some(2);
        over.functions[0].provisioned_concurrency = 3;
        assert!(matches!(
            over.validate(),
            Err(ConfigError::BadFunction { problem, .. }) if problem.contains("provisioned")
        ));

        let mut rate = c.clone();
        rate.functions[0].error_rate = 1.5;
        assert!(matches!(
            rate.validate(),
            Err(ConfigError::BadFunction { .. })
        ));

        c.retry.max_attempts = 0;
        assert_eq!(c.validate(), Err(ConfigError::NoAttempts));
    }

    #[test]
    fn endpoints_come_from_config_or_queue_url() {
        let mut c = BusConfig::default();
        assert_eq!(
            c.endpoint_for("http://127.0.0.1:4566/000000000000/jobs")
                .unwrap(),
            "http://127.0.0.1:4566"
        );
        c.sqs_endpoint = Some("http://localhost:9324/".into());
        assert_eq!(
            c.endpoint_for("http://x/1/q").unwrap(),
            "http://localhost:9324"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(50));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(6), Duration::from_millis(1600));
        assert_eq!(p.backoff_ceiling(7), Duration::from_secs(2));
        assert_eq!(p.backoff_ceiling(1000), Duration::from_secs(2));
    }
}
