//! The file format: raw structs, one per TOML table. Their docs are the user docs
//! (docs/profiles.md says the same at more length).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Scalar;

/// A profile file: a name, optional settings, and one or more `[[stream]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    /// Required. Names the profile in reports.
    pub(super) name: Option<Spanned<String>>,
    /// Seed for arrivals, sizes and random template fields; omitted = random, recorded in the run.
    pub(super) seed: Option<Spanned<i64>>,
    /// Cap on requests in flight (default 10000).
    pub(super) max_in_flight: Option<Spanned<i64>>,
    /// A send later than this is dropped (default `1s`).
    pub(super) max_lateness: Option<Spanned<Scalar>>,
    /// A send later than this counts as late (default `10ms`).
    pub(super) late_after: Option<Spanned<Scalar>>,
    /// Connect timeout (default `5s`).
    pub(super) connect_timeout: Option<Spanned<Scalar>>,
    /// Whole-request timeout (default `30s`).
    pub(super) timeout: Option<Spanned<Scalar>>,
    /// Reuse connections (default `true`); `false`: a new connection per request.
    pub(super) keep_alive: Option<Spanned<bool>>,
    /// The streams, `[[stream]]` tables.
    pub(super) stream: Option<Vec<Spanned<RawStream>>>,
}

/// A `[[stream]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    /// Required, unique in the profile.
    pub(super) name: Option<Spanned<String>>,
    /// Required: `"upload"` or `"event"`.
    pub(super) kind: Option<Spanned<String>>,
    /// `"http"` (default), `"sqs"` (events only, needs `queue`) or `"eventbridge"` (events only).
    pub(super) transport: Option<Spanned<String>>,
    /// The queue name or URL, with `transport = "sqs"`.
    pub(super) queue: Option<Spanned<String>>,
    /// The event bus name or ARN, with `transport = "eventbridge"` (default `default`).
    pub(super) bus: Option<Spanned<String>>,
    /// The events' `Source`, with `transport = "eventbridge"` (default `shakedown`).
    pub(super) source: Option<Spanned<String>>,
    /// The events' `DetailType`, with `transport = "eventbridge"` (default: the stream name).
    pub(super) detail_type: Option<Spanned<String>>,
    /// `{ method, path, headers }`, HTTP only.
    pub(super) request: Option<Spanned<RawRequest>>,
    /// `"uniform"` (default) or `"poisson"`.
    pub(super) arrival: Option<Spanned<String>>,
    /// Required, non-empty: the rate curve.
    pub(super) stages: Option<Spanned<Vec<Spanned<RawStage>>>>,
    /// Uploads only, required: the body size distribution.
    pub(super) size: Option<Spanned<RawSize>>,
    /// Uploads only: `"raw"` (default) or `"multipart"`.
    pub(super) encoding: Option<Spanned<String>>,
    /// Multipart only: the form field name (default `file`).
    pub(super) field: Option<Spanned<String>>,
    /// Multipart only: the file name template (default `{id}.bin`).
    pub(super) filename: Option<Spanned<String>>,
    /// Default `application/octet-stream` for uploads, `application/json` for events.
    pub(super) content_type: Option<Spanned<String>>,
    /// Events only, required: `{ template = "..." }` or `{ file = "..." }`.
    pub(super) body: Option<Spanned<RawBody>>,
    /// Whether each accepted request is a message the system must complete (default: every
    /// stream but HTTP requests whose method anticipates no content).
    pub(super) ledger: Option<Spanned<bool>>,
}

/// `request = { method = "PUT", path = "/upload/{id}", headers = { "x-a" = "b" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequest {
    /// Default `PUT` for uploads, `POST` for events.
    pub(super) method: Option<Spanned<String>>,
    /// A template; default `/upload/{id}` for uploads, `/events` for events.
    pub(super) path: Option<Spanned<String>>,
    /// Header name -> value template.
    pub(super) headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

/// One stage: `{ for = "30s", rate = "50/s" }` or `{ for = "10s", from = "10/s", to = "1000/s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    /// Required, more than zero.
    #[serde(rename = "for")]
    pub(super) duration: Option<Spanned<Scalar>>,
    /// A constant rate.
    pub(super) rate: Option<Spanned<Scalar>>,
    /// Ramp start; default the previous stage's end rate (0 for the first stage).
    pub(super) from: Option<Spanned<Scalar>>,
    /// Ramp end.
    pub(super) to: Option<Spanned<Scalar>>,
}

/// `size = { dist = "...", ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSize {
    /// `"fixed"`, `"uniform"`, `"lognormal"` or `"table"`.
    pub(super) dist: Option<Spanned<String>>,
    pub(super) size: Option<Spanned<Scalar>>,
    pub(super) min: Option<Spanned<Scalar>>,
    pub(super) max: Option<Spanned<Scalar>>,
    pub(super) median: Option<Spanned<Scalar>>,
    pub(super) p99: Option<Spanned<Scalar>>,
    pub(super) classes: Option<Spanned<Vec<Spanned<RawClass>>>>,
}

/// A class of a `table` distribution: `{ name, weight, min, max }` or `{ name, weight, size }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub(super) name: Option<Spanned<String>>,
    pub(super) weight: Option<Spanned<f64>>,
    pub(super) size: Option<Spanned<Scalar>>,
    pub(super) min: Option<Spanned<Scalar>>,
    pub(super) max: Option<Spanned<Scalar>>,
}

/// `body = { template = "..." }` or `body = { file = "events/click.json" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBody {
    pub(super) template: Option<Spanned<String>>,
    /// Relative to the profile file's directory; read when the profile is loaded.
    pub(super) file: Option<Spanned<String>>,
}
