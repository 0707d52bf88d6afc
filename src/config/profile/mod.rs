//! Traffic profiles (`profiles/*.toml`): the validated plan the driver runs.
//!
//! Parsing goes raw TOML -> these types once; everything downstream trusts them.
//! The file format is documented in `docs/profiles.md`.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the validated plan and what the driver asks of it |
//! | `raw.rs` | the file format: one raw struct per table, whose docs are the user docs |
//! | `check.rs` | loading, the profile, its streams, requests and stages |
//! | `body.rs` | bodies: sizes, encodings, templates |
//! | `leaves.rs` | durations, sizes, rates, choices, templates: one value each |

use std::path::PathBuf;
use std::time::Duration;

use crate::template::Template;

mod body;
mod check;
mod leaves;
mod raw;

pub use check::{load, parse};

/// A whole profile: one or more streams that run at the same time.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Seed for arrivals, sizes and random template fields; `None` = pick one and record it.
    pub seed: Option<u64>,
    pub settings: Settings,
    pub streams: Vec<Stream>,
    /// The file it came from, when it came from one.
    pub path: Option<PathBuf>,
}

/// Driver settings a profile may set; the CLI may override each.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Cap on requests in flight at once (open model); arrivals beyond it wait and count as late.
    pub max_in_flight: usize,
    /// A send that could not start within this of its intended time is dropped, not sent.
    pub max_lateness: Duration,
    /// A send that started more than this after its intended time counts as late.
    pub late_after: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from send to the end of the response (`timeout` in files).
    pub request_timeout: Duration,
    /// Reuse connections (default); `false` opens a new connection (and, over https, a new
    /// TLS handshake) for every request and asks the server to close it.
    pub keep_alive: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_in_flight: 10_000,
            max_lateness: Duration::from_secs(1),
            late_after: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keep_alive: true,
        }
    }
}

/// One stream of requests (or queue messages) with its own rate curve and payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub name: String,
    pub kind: StreamKind,
    pub transport: Transport,
    pub request: RequestSpec,
    pub body: BodySpec,
    pub arrival: Arrival,
    pub stages: Vec<Stage>,
    /// Whether each request the target accepts (a 2xx answer, a message sent) is a message
    /// the system must then complete: in an experiment it enters the message ledger, which
    /// `no-loss` and the end-to-end latency account for. By default every stream but an
    /// HTTP one whose method anticipates no content (`GET`, `HEAD`, `DELETE`, `OPTIONS`): a
    /// read's answer is its completion, and a system never reports it.
    pub ledger: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// An HTTP request with a generated body of a drawn size.
    Upload,
    /// A small JSON document rendered from a template.
    Event,
}

/// How a stream's requests reach the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Http,
    /// Straight into an SQS queue; `queue` is a name or URL resolved against the target.
    Sqs {
        queue: String,
    },
    /// Into an EventBridge event bus with PutEvents: the rendered body is each event's
    /// `Detail` (a JSON object carrying the event's `{id}`).
    EventBridge {
        /// The bus's name or ARN.
        bus: String,
        /// Each event's `Source`.
        source: String,
        /// Each event's `DetailType`.
        detail_type: String,
    },
}

impl Transport {
    /// Whether the stream sends through an AWS API (batched, open model only) rather than HTTP.
    pub fn is_aws(&self) -> bool {
        !matches!(self, Transport::Http)
    }

    /// Its name in profiles and `run.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Sqs { .. } => "sqs",
            Transport::EventBridge { .. } => "eventbridge",
        }
    }
}

/// The HTTP request line and headers of a stream (unused by the SQS transport).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: http::Method,
    /// Path and query, may contain template fields such as `{id}`.
    pub path: Template,
    pub headers: Vec<(http::HeaderName, Template)>,
}

/// Whether requests of `method` anticipate content (RFC 9110): `GET`, `HEAD`, `DELETE`,
/// `OPTIONS`, `TRACE` and `CONNECT` do not, so an event stream of them may go without a
/// `body`, and an empty one is sent without `content-length: 0`. Every other method does
/// (unknown ones included).
pub fn expects_content(method: &http::Method) -> bool {
    use http::Method;
    ![
        Method::GET,
        Method::HEAD,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ]
    .contains(method)
}

/// What each request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum BodySpec {
    None,
    /// Generated bytes of a drawn size, raw or wrapped in multipart/form-data.
    Upload {
        size: SizeDist,
        encoding: UploadEncoding,
        content_type: String,
    },
    /// A rendered template (JSON events).
    Template {
        template: Template,
        content_type: String,
    },
}

/// How upload bytes are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum UploadEncoding {
    Raw,
    Multipart { field: String, filename: Template },
}

/// Body size distributions, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeDist {
    Fixed(u64),
    Uniform {
        min: u64,
        max: u64,
    },
    /// Lognormal given its median and 99th percentile (p99 > median).
    LogNormal {
        median: u64,
        p99: u64,
    },
    /// A weighted mix, e.g. photos 70% / videos 30%.
    Table(Vec<SizeClass>),
}

/// One weighted class of a [`SizeDist::Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct SizeClass {
    pub name: String,
    pub weight: f64,
    pub dist: SizeDist,
}

/// How arrivals are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced in the integrated rate.
    Uniform,
    /// A (non-homogeneous) Poisson process following the rate curve.
    Poisson,
}

/// One piece of the rate curve: linear from `from` to `to` (per second) over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

// ---------------------------------------------------------------------------------------------
// What the driver asks of a plan.
// ---------------------------------------------------------------------------------------------

/// z such that P(Z <= z) = 0.99 for a standard normal Z.
const Z_P99: f64 = 2.326_347_874_0;
/// z for the 99.99th percentile: lognormal draws are clamped here so bodies stay bounded.
const Z_P9999: f64 = 3.719_016_485_5;

impl Profile {
    /// How long the profile runs: its longest stream.
    pub fn duration(&self) -> Duration {
        self.streams
            .iter()
            .map(Stream::duration)
            .max()
            .unwrap_or_default()
    }

    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.name == name)
    }
}

impl Stream {
    /// The sum of its stages.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The intended rate (per second) at `t` seconds after the start; 0 outside the stages.
    pub fn rate_at(&self, t: f64) -> f64 {
        if t.is_nan() || t < 0.0 {
            return 0.0;
        }
        let mut start = 0.0;
        for stage in &self.stages {
            let length = stage.duration.as_secs_f64();
            if t < start + length {
                return stage.rate_at(t - start);
            }
            start += length;
        }
        0.0
    }

    /// How many arrivals the stages add up to (the integral of the rate curve).
    pub fn expected_requests(&self) -> f64 {
        self.stages.iter().map(Stage::expected_requests).sum()
    }

    /// The average rate over the whole stream, per second.
    pub fn mean_rate(&self) -> f64 {
        let secs = self.duration().as_secs_f64();
        if secs > 0.0 {
            self.expected_requests() / secs
        } else {
            0.0
        }
    }

    /// The highest rate the stream reaches, per second.
    pub fn peak_rate(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.from.max(s.to))
            .fold(0.0, f64::max)
    }
}

impl Stage {
    /// The rate `t` seconds into this stage (linear from `from` to `to`).
    pub fn rate_at(&self, t: f64) -> f64 {
        let length = self.duration.as_secs_f64();
        if length <= 0.0 {
            return self.to;
        }
        let fraction = (t / length).clamp(0.0, 1.0);
        self.from + (self.to - self.from) * fraction
    }

    /// Arrivals in this stage: the area under its rate line.
    pub fn expected_requests(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }
}

impl SizeDist {
    /// Draws one body size in bytes.
    ///
    /// Lognormal: `mu = ln(median)`, `sigma = (ln(p99) - ln(median)) / 2.3263478740`, clamped at
    /// the 99.99th percentile ([`SizeDist::max_bytes`]). Table: a class picked by weight, then its size.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> u64 {
        match self {
            SizeDist::Fixed(size) => *size,
            SizeDist::Uniform { min, max } => rng.random_range(*min..=(*max).max(*min)),
            SizeDist::LogNormal { median, p99 } => {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                lognormal_quantile(*median, *p99, z.min(Z_P9999))
                    .round()
                    .max(1.0) as u64
            }
            SizeDist::Table(classes) => match pick_class(classes, rng) {
                Some(class) => class.dist.sample(rng),
                None => 0,
            },
        }
    }

    /// The largest size [`SizeDist::sample`] can return: what a shared body buffer must hold.
    pub fn max_bytes(&self) -> u64 {
        match self {
            SizeDist::Fixed(size) => *size,
            SizeDist::Uniform { min, max } => (*max).max(*min),
            SizeDist::LogNormal { median, p99 } => {
                lognormal_quantile(*median, *p99, Z_P9999).round().max(1.0) as u64
            }
            SizeDist::Table(classes) => classes
                .iter()
                .map(|c| c.dist.max_bytes())
                .max()
                .unwrap_or(0),
        }
    }
}

/// The value of the lognormal with the given median and p99 at standard-normal quantile `z`.
fn lognormal_quantile(median: u64, p99: u64, z: f64) -> f64 {
    let mu = (median as f64).ln();
    let sigma = ((p99 as f64).ln() - mu) / Z_P99;
    (mu + sigma * z).exp()
}

fn pick_class<'c>(classes: &'c [SizeClass], rng: &mut impl rand::Rng) -> Option<&'c SizeClass> {
    let total: f64 = classes.iter().map(|c| c.weight).sum();
    let mut x = rng.random::<f64>() * total;
    for class in classes {
        if x < class.weight {
            return Some(class);
        }
        x -= class.weight;
    }
    classes.last()
}
