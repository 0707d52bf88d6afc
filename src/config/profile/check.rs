//! Loading a profile: the structural pass, then one semantic pass ([`Checker`]) that
//! records every error. This file checks the profile, its streams, requests and stages;
//! `body.rs` the bodies and `leaves.rs` the single values.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawProfile, RawRequest, RawStage, RawStream};
use super::{Arrival, Profile, RequestSpec, Settings, Stage, Stream, StreamKind, Transport};
use crate::config::diag::{Collector, Diagnostic, Diagnostics, name_hint};
use crate::config::{Scalar, parse_toml, read_config};
use crate::template::Template;
use crate::units;

pub(super) const KINDS: [&str; 2] = ["upload", "event"];
pub(super) const TRANSPORTS: [&str; 3] = ["http", "sqs", "eventbridge"];
pub(super) const ARRIVALS: [&str; 2] = ["uniform", "poisson"];
pub(super) const ENCODINGS: [&str; 2] = ["raw", "multipart"];
pub(super) const DISTS: [&str; 4] = ["fixed", "uniform", "lognormal", "table"];
pub(super) const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Reads and parses a profile file; every problem (including an unreadable file) is a diagnostic.
pub fn load(path: &Path) -> Result<Profile, Diagnostics> {
    let text = read_config(path)?;
    parse(&text, path)
}

/// Parses profile text that came from `path` (used in messages and to find body files).
/// `${env:NAME}` in string values is expanded first ([`crate::config::vars`]).
pub fn parse(text: &str, path: &Path) -> Result<Profile, Diagnostics> {
    let expanded = crate::config::vars::expand(text, path)?;
    let text: &str = &expanded;
    let (raw, structural) = parse_toml::<RawProfile>(text, path);
    let mut checker = Checker {
        out: Collector::new(path, text),
        base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    for diagnostic in structural {
        checker.out.push(diagnostic);
    }
    let profile = raw.and_then(|raw| checker.profile(raw));
    match (checker.out.finish(()), profile) {
        (Err(diagnostics), _) => Err(diagnostics),
        (Ok(()), Some(profile)) => Ok(profile),
        (Ok(()), None) => Err(Diagnostics::single(Diagnostic::whole_file(
            path,
            "the profile could not be built",
        ))),
    }
}

/// The semantic pass: each method checks one part, records what is wrong, and returns the
/// validated part only when it is right.
pub(super) struct Checker<'a> {
    pub(super) out: Collector<'a>,
    pub(super) base_dir: PathBuf,
}

impl Checker<'_> {
    pub(super) fn profile(&mut self, raw: RawProfile) -> Option<Profile> {
        let name = match &raw.name {
            None => {
                self.out.error_with_hint(
                    0..0,
                    "the profile has no `name`",
                    "add `name = \"...\"` at the top",
                );
                None
            }
            Some(name) => self.non_empty(name, "`name`"),
        };
        let seed = raw
            .seed
            .as_ref()
            .and_then(|seed| match u64::try_from(*seed.get_ref()) {
                Ok(seed) => Some(seed),
                Err(_) => {
                    self.out.error(seed.span(), "`seed` must be zero or more");
                    None
                }
            });
        let settings = self.settings(&raw);
        let streams = self.streams(raw.stream.unwrap_or_default());
        Some(Profile {
            name: name?,
            seed,
            settings: settings?,
            streams: streams?,
            path: Some(self.out.path().to_path_buf()),
        })
    }

    pub(super) fn settings(&mut self, raw: &RawProfile) -> Option<Settings> {
        let defaults = Settings::default();
        let max_in_flight = match &raw.max_in_flight {
            None => Some(defaults.max_in_flight),
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.out.error(
                        v.span(),
                        format!("`max_in_flight` must be 1 or more, found {}", v.get_ref()),
                    );
                    None
                }
            },
        };
        let mut duration =
            |field: &Option<Spanned<Scalar>>, name: &str, default: Duration| match field {
                None => Some(default),
                Some(v) => self.duration(v, name),
            };
        let max_lateness = duration(&raw.max_lateness, "max_lateness", defaults.max_lateness);
        let late_after = duration(&raw.late_after, "late_after", defaults.late_after);
        let connect_timeout = duration(
            &raw.connect_timeout,
            "connect_timeout",
            defaults.connect_timeout,
        );
        let request_timeout = duration(&raw.timeout, "timeout", defaults.request_timeout);
        if let (Some(late), Some(drop)) = (late_after, max_lateness)
            && late > drop
        {
            let span = raw
                .late_after
                .as_ref()
                .or(raw.max_lateness.as_ref())
                .map_or(0..0, Spanned::span);
            self.out.error_with_hint(
                span,
                format!(
                    "`late_after` ({}) is longer than `max_lateness` ({})",
                    units::format_duration(late),
                    units::format_duration(drop)
                ),
                "a send later than `max_lateness` is dropped, so it could never count as late",
            );
        }
        Some(Settings {
            max_in_flight: max_in_flight?,
            max_lateness: max_lateness?,
            late_after: late_after?,
            connect_timeout: connect_timeout?,
            request_timeout: request_timeout?,
            keep_alive: raw
                .keep_alive
                .as_ref()
                .map_or(defaults.keep_alive, |k| *k.get_ref()),
        })
    }

    pub(super) fn streams(&mut self, raw: Vec<Spanned<RawStream>>) -> Option<Vec<Stream>> {
        if raw.is_empty() {
            let end = self.out.source().len();
            self.out.error_with_hint(
                end..end,
                "the profile has no streams",
                "add at least one `[[stream]]` table with `name`, `kind` and `stages`",
            );
            return None;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for stream in &raw {
            if let Some(name) = &stream.get_ref().name {
                let line = Diagnostic::at(self.out.path(), self.out.source(), name.span(), "").line;
                if let Some(first) = seen.insert(name.get_ref().clone(), line) {
                    seen.insert(name.get_ref().clone(), first);
                    self.out.error_with_hint(
                        name.span(),
                        format!("duplicate stream name {:?}", name.get_ref()),
                        format!("the first stream with this name is on line {first}; stream names must be unique"),
                    );
                }
            }
        }
        let streams: Vec<Option<Stream>> = raw.into_iter().map(|s| self.stream(s)).collect();
        streams.into_iter().collect()
    }

    pub(super) fn stream(&mut self, raw: Spanned<RawStream>) -> Option<Stream> {
        let header = raw.span();
        let raw = raw.into_inner();
        let name = self.required(
            &raw.name,
            header.clone(),
            "the stream has no `name`",
            "add `name = \"...\"`",
        );
        let name = name.and_then(|n| self.non_empty(n, "the stream `name`"));
        let kind = self
            .required(
                &raw.kind,
                header.clone(),
                "the stream has no `kind`",
                "add `kind = \"upload\"` or `kind = \"event\"`",
            )
            .and_then(|k| self.choice(k, "stream kind", &KINDS))
            .map(|k| {
                if k == "upload" {
                    StreamKind::Upload
                } else {
                    StreamKind::Event
                }
            });
        let transport = self.transport(&raw, kind);
        // With an unknown kind, still check the request with upload defaults: more errors at once.
        let request = self.request(
            raw.request.as_ref(),
            kind.unwrap_or(StreamKind::Upload),
            transport.as_ref(),
        );
        let arrival = match &raw.arrival {
            None => Some(Arrival::Uniform),
            Some(a) => self.choice(a, "arrival", &ARRIVALS).map(|a| {
                if a == "poisson" {
                    Arrival::Poisson
                } else {
                    Arrival::Uniform
                }
            }),
        };
        let stages = self.stages(raw.stages.as_ref(), header);
        // A read: an HTTP request whose method anticipates no content. It may go without a
        // body, and stays out of the message ledger unless the stream says otherwise.
        let read = matches!(transport, Some(Transport::Http))
            && request
                .as_ref()
                .is_some_and(|r| !super::expects_content(&r.method));
        let body = match kind {
            Some(StreamKind::Upload) => self.upload_body(&raw),
            Some(StreamKind::Event) => self.event_body(&raw, read),
            None => {
                // Check what is there; which of the two belongs is unknown until `kind` is fixed.
                if let Some(size) = &raw.size {
                    self.size_dist(size);
                }
                if let Some(body) = &raw.body {
                    self.body(body);
                }
                None
            }
        };
        if let (Some(Transport::EventBridge { .. }), Some(body), Some(raw_body)) =
            (&transport, &body, &raw.body)
        {
            self.eventbridge_body(body, raw_body.span());
        }
        let ledger = raw.ledger.as_ref().map_or(!read, |l| *l.get_ref());
        Some(Stream {
            name: name?,
            kind: kind?,
            transport: transport?,
            request: request?,
            body: body?,
            arrival: arrival?,
            stages: stages?,
            ledger,
        })
    }

    pub(super) fn transport(
        &mut self,
        raw: &RawStream,
        kind: Option<StreamKind>,
    ) -> Option<Transport> {
        let transport = match &raw.transport {
            None => "http",
            Some(t) => self.choice(t, "transport", &TRANSPORTS)?,
        };
        // Keys that belong to another transport.
        let mut ok = true;
        let keys: [(&str, Option<&Spanned<String>>, &str); 4] = [
            ("queue", raw.queue.as_ref(), "sqs"),
            ("bus", raw.bus.as_ref(), "eventbridge"),
            ("source", raw.source.as_ref(), "eventbridge"),
            ("detail_type", raw.detail_type.as_ref(), "eventbridge"),
        ];
        for (key, value, owner) in keys {
            if let Some(value) = value
                && owner != transport
            {
                self.out.error_with_hint(
                    value.span(),
                    format!("`{key}` only applies to `transport = \"{owner}\"`"),
                    format!("remove `{key}`, or set `transport = \"{owner}\"`"),
                );
                ok = false;
            }
        }
        let span = raw.transport.as_ref().map_or(0..0, Spanned::span);
        if transport != "http" && kind == Some(StreamKind::Upload) {
            self.out.error_with_hint(
                span.clone(),
                format!(
                    "uploads go over HTTP; `transport = \"{transport}\"` is for `kind = \"event\"`"
                ),
                "remove `transport`, or make this an event stream",
            );
            ok = false;
        }
        match transport {
            "http" => ok.then_some(Transport::Http),
            "sqs" => {
                let Some(queue) = &raw.queue else {
                    self.out.error_with_hint(
                        span,
                        "`transport = \"sqs\"` needs a `queue`",
                        "add `queue = \"name-or-url\"` to the stream",
                    );
                    return None;
                };
                let queue = self.non_empty(queue, "`queue`")?;
                ok.then_some(Transport::Sqs { queue })
            }
            _ => {
                let mut text = |v: &Option<Spanned<String>>, what: &str, default: String| match v {
                    None => Some(default),
                    Some(v) => self.non_empty(v, what),
                };
                let bus = text(&raw.bus, "`bus`", "default".into());
                let source = text(&raw.source, "`source`", "shakedown".into());
                let stream_name = raw
                    .name
                    .as_ref()
                    .map(|n| n.get_ref().clone())
                    .unwrap_or_default();
                let detail_type = text(&raw.detail_type, "`detail_type`", stream_name);
                Some(Transport::EventBridge {
                    bus: bus?,
                    source: source?,
                    detail_type: detail_type?,
                })
                .filter(|_| ok)
            }
        }
    }

    /// An EventBridge event's `Detail` is the rendered body: it must be a JSON object, and
    /// carry the event's `{id}` (EventBridge has no message attributes: the ledger and the
    /// system's completions know an event by the id in its detail).
    fn eventbridge_body(&mut self, body: &super::BodySpec, span: std::ops::Range<usize>) {
        let super::BodySpec::Template { template, .. } = body else {
            return;
        };
        let rendered = template.render_to_string(
            &crate::template::Fields {
                id: "id",
                seq: 0,
                stream: "s",
                now_ms: 0,
            },
            &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0),
        );
        if !matches!(
            serde_json::from_str::<serde_json::Value>(&rendered),
            Ok(serde_json::Value::Object(_))
        ) {
            self.out.error_with_hint(
                span,
                "an EventBridge event's detail must be a JSON object; this body does not render to one",
                "write the body as `{\"id\":\"{id}\", ...}`",
            );
        } else if !template.uses_id() {
            self.out.error_with_hint(
                span,
                "an EventBridge event carries its id in its detail, and this body has no `{id}`",
                "add `\"id\":\"{id}\"` to the body: the ledger and the system's completions match events by it",
            );
        }
    }

    pub(super) fn request(
        &mut self,
        raw: Option<&Spanned<RawRequest>>,
        kind: StreamKind,
        transport: Option<&Transport>,
    ) -> Option<RequestSpec> {
        let (default_method, default_path) = match kind {
            StreamKind::Upload => (http::Method::PUT, "/upload/{id}"),
            StreamKind::Event => (http::Method::POST, "/events"),
        };
        let Some(raw) = raw else {
            let path = Template::parse(default_path).ok()?;
            return Some(RequestSpec {
                method: default_method,
                path,
                headers: Vec::new(),
            });
        };
        if let Some(t) = transport.filter(|t| t.is_aws()) {
            self.out.error_with_hint(
                raw.span(),
                format!("`request` does not apply to `transport = \"{}\"`", t.name()),
                "messages go straight to the queue or bus; remove `request`",
            );
            return None;
        }
        let raw = raw.get_ref();
        let method = match &raw.method {
            None => Some(default_method),
            Some(m) => self.method(m),
        };
        let path = match &raw.path {
            None => Template::parse(default_path).ok(),
            Some(p) if !p.get_ref().starts_with('/') => {
                self.out.error_with_hint(
                    p.span(),
                    "`path` must start with `/`",
                    "e.g. `path = \"/upload/{id}\"`",
                );
                None
            }
            Some(p) => self.template(p),
        };
        let headers = self.headers(raw.headers.as_ref());
        Some(RequestSpec {
            method: method?,
            path: path?,
            headers: headers?,
        })
    }

    pub(super) fn method(&mut self, raw: &Spanned<String>) -> Option<http::Method> {
        let upper = raw.get_ref().to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            self.out.error_with_hint(
                raw.span(),
                format!("unknown HTTP method `{}`", raw.get_ref()),
                name_hint(&upper, &METHODS),
            );
            return None;
        }
        http::Method::from_bytes(upper.as_bytes()).ok()
    }

    pub(super) fn headers(
        &mut self,
        raw: Option<&BTreeMap<Spanned<String>, Spanned<String>>>,
    ) -> Option<Vec<(http::HeaderName, Template)>> {
        let mut headers = Vec::new();
        let mut ok = true;
        for (name, value) in raw.into_iter().flatten() {
            let header = match http::HeaderName::from_bytes(name.get_ref().as_bytes()) {
                Ok(header) => Some(header),
                Err(_) => {
                    self.out.error_with_hint(
                        name.span(),
                        format!("invalid header name `{}`", name.get_ref()),
                        "header names are letters, digits and `-`, like `x-request-id`",
                    );
                    None
                }
            };
            let template = self.template(value);
            if let Some(text) = template.as_ref().and_then(Template::as_static)
                && http::HeaderValue::from_str(text).is_err()
            {
                self.out.error(
                    value.span(),
                    "invalid header value: use visible ASCII characters and spaces",
                );
                ok = false;
            }
            match (header, template) {
                (Some(header), Some(template)) => headers.push((header, template)),
                _ => ok = false,
            }
        }
        ok.then_some(headers)
    }

    pub(super) fn stages(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<RawStage>>>>,
        header: Range<usize>,
    ) -> Option<Vec<Stage>> {
        let Some(raw) = raw else {
            self.out.error_with_hint(
                header,
                "the stream has no `stages`",
                "add e.g. `stages = [ { for = \"1m\", rate = \"10/s\" } ]`",
            );
            return None;
        };
        if raw.get_ref().is_empty() {
            self.out.error_with_hint(
                raw.span(),
                "`stages` is empty",
                "add at least one stage, e.g. `{ for = \"1m\", rate = \"10/s\" }`",
            );
            return None;
        }
        let mut previous_end = Some(0.0);
        let mut stages = Vec::new();
        let mut ok = true;
        for stage in raw.get_ref() {
            match self.stage(stage, previous_end) {
                Some(stage) => {
                    previous_end = Some(stage.to);
                    stages.push(stage);
                }
                None => {
                    previous_end = None;
                    ok = false;
                }
            }
        }
        ok.then_some(stages)
    }

    /// One stage; `previous_end` is `None` when the previous stage was invalid.
    pub(super) fn stage(
        &mut self,
        raw: &Spanned<RawStage>,
        previous_end: Option<f64>,
    ) -> Option<Stage> {
        let span = raw.span();
        let raw = raw.get_ref();
        let duration = self
            .required(
                &raw.duration,
                span.clone(),
                "a stage needs `for` (how long it lasts)",
                "e.g. `for = \"30s\"`",
            )
            .and_then(|d| self.duration(d, "for"));
        let mut rate = |field: &Option<Spanned<Scalar>>| field.as_ref().map(|r| self.rate(r));
        let (constant, from, to) = (rate(&raw.rate), rate(&raw.from), rate(&raw.to));
        let (from, to) = match (&raw.rate, &raw.from, &raw.to) {
            (Some(_), None, None) => {
                let rate = constant??;
                (rate, rate)
            }
            (Some(_), Some(extra), _) | (Some(_), None, Some(extra)) => {
                self.out.error_with_hint(
                    extra.span(),
                    "a stage has either `rate` (constant) or `to` (a ramp), not both",
                    "use `{ for, rate }` to hold a rate, `{ for, to }` or `{ for, from, to }` to ramp",
                );
                return None;
            }
            (None, Some(f), None) => {
                self.out.error_with_hint(
                    f.span(),
                    "`from` needs a `to`",
                    "a ramp is `{ for, from, to }`",
                );
                return None;
            }
            (None, None, None) => {
                self.out.error_with_hint(
                    span,
                    "a stage needs `rate` (constant) or `to` (a ramp)",
                    "e.g. `{ for = \"30s\", rate = \"50/s\" }` or `{ for = \"10s\", to = \"100/s\" }`",
                );
                return None;
            }
            (None, _, Some(_)) => (from.unwrap_or(previous_end)?, to??),
        };
        Some(Stage {
            duration: duration?,
            from,
            to,
        })
    }
}
