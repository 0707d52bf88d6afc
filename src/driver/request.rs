//! Turning (stream, seq) into an HTTP request: the target, the id every
//! request carries, rendered templates and generated bodies.
//!
//! Everything random here comes from [`crate::schedule::request_rng`], so the
//! same seed gives the same requests on every machine and segment.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::body::Body;
use crate::config::profile::{BodySpec, Profile, UploadEncoding, expects_content};
use crate::schedule::request_rng;
use crate::template::{Fields, Template};

/// The header that carries each request's unique id.
pub const ID_HEADER: &str = "x-shakedown-id";

/// [`ID_HEADER`] as a header name, not parsed again per request.
pub const ID_HEADER_NAME: HeaderName = HeaderName::from_static(ID_HEADER);

/// Size of the shared buffer upload bodies are cut from.
const SHARED_BUFFER: usize = 4 * 1024 * 1024;

/// Where the load goes: an `http://` or `https://host:port[/base]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://`: connections are TLS.
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Prefix for every request path, without a trailing slash ("" for none).
    pub base_path: String,
    authority: HeaderValue,
}

impl Target {
    pub fn authority(&self) -> &HeaderValue {
        &self.authority
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.base_path)
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = s.parse().map_err(|e| {
            format!("`{s}` is not a URL ({e}); expected something like http://127.0.0.1:8080")
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "`{s}` needs a scheme: expected something like http://127.0.0.1:8080"
                ));
            }
        };
        let host = uri.host().ok_or_else(|| {
            format!("`{s}` has no host; expected something like http://127.0.0.1:8080")
        })?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority =
            HeaderValue::from_str(uri.authority().map_or(host.as_str(), |a| a.as_str()))
                .map_err(|e| format!("`{s}`: bad host ({e})"))?;
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Target {
            https,
            host,
            port,
            base_path,
            authority,
        })
    }
}

/// Builds the requests of every stream of a profile.
pub struct RequestFactory {
    target: Target,
    streams: Vec<StreamRequests>,
    seed: u64,
    run_tag: String,
    shared: Bytes,
}

struct StreamRequests {
    name: String,
    method: Method,
    path: Template,
    headers: Vec<(HeaderName, Template)>,
    body: BodySpec,
}

/// A request that could not be built (a template rendered to an invalid path or header).
#[derive(Debug, thiserror::Error)]
#[error("stream `{stream}`: {message}")]
pub struct BuildError {
    pub stream: String,
    pub message: String,
}

/// The id of request `seq` of stream `stream` in run `run_tag`: `{run_tag}-{stream}-{seq}`
/// (written without the formatting machinery: this is on every request's path).
pub fn request_id(run_tag: &str, stream: usize, seq: u64) -> String {
    let mut stream_digits = itoa::Buffer::new();
    let mut seq_digits = itoa::Buffer::new();
    let (stream, seq) = (stream_digits.format(stream), seq_digits.format(seq));
    let mut id = String::with_capacity(run_tag.len() + stream.len() + seq.len() + 2);
    id.push_str(run_tag);
    id.push('-');
    id.push_str(stream);
    id.push('-');
    id.push_str(seq);
    id
}

impl RequestFactory {
    pub fn new(profile: &Profile, target: Target, seed: u64, run_tag: String) -> RequestFactory {
        // Only uploads are cut from it: filling 4 MiB takes milliseconds, which a run
        // without uploads should not spend.
        let uploads = profile
            .streams
            .iter()
            .any(|s| matches!(s.body, BodySpec::Upload { .. }));
        let mut shared = vec![0u8; if uploads { SHARED_BUFFER } else { 0 }];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut shared);
        let streams = profile
            .streams
            .iter()
            .map(|s| StreamRequests {
                name: s.name.clone(),
                method: s.request.method.clone(),
                path: s.request.path.clone(),
                headers: s.request.headers.clone(),
                body: s.body.clone(),
            })
            .collect();
        RequestFactory {
            target,
            streams,
            seed,
            run_tag,
            shared: Bytes::from(shared),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn run_tag(&self) -> &str {
        &self.run_tag
    }

    /// The request for arrival `seq` of `stream`; `now_ms` fills `{now_ms}`.
    pub fn build(&self, stream: usize, seq: u64, now_ms: u64) -> Result<Request<Body>, BuildError> {
        let spec = &self.streams[stream];
        let err = |message: String| BuildError {
            stream: spec.name.clone(),
            message,
        };
        let id = request_id(&self.run_tag, stream, seq);
        let fields = Fields {
            id: &id,
            seq,
            stream: &spec.name,
            now_ms,
        };
        let mut rng = request_rng(self.seed, stream, seq);
        let mut buf = Vec::with_capacity(64);

        buf.extend_from_slice(self.target.base_path.as_bytes());
        spec.path.render(&fields, &mut rng, &mut buf);
        let path = http::uri::PathAndQuery::try_from(buf.as_slice()).map_err(|e| {
            err(format!(
                "rendered path {:?} is not valid: {e}",
                String::from_utf8_lossy(&buf)
            ))
        })?;
        // Built in place, not through `Request::builder()`, whose every step moves the whole
        // request (this is on every request's path).
        let mut headers = HeaderMap::with_capacity(4 + spec.headers.len());
        headers.insert(HOST, self.target.authority.clone());
        headers.insert(
            ID_HEADER_NAME,
            HeaderValue::from_str(&id).map_err(|e| err(e.to_string()))?,
        );
        for (name, value) in &spec.headers {
            buf.clear();
            value.render(&fields, &mut rng, &mut buf);
            let value =
                HeaderValue::from_bytes(&buf).map_err(|e| err(format!("header `{name}`: {e}")))?;
            headers.append(name, value);
        }
        let (body, content_type) = self.body(spec, &fields, &mut rng);
        if let Some(ct) = content_type {
            headers.append(CONTENT_TYPE, ct);
        }
        // RFC 9110 (8.6): no `content-length: 0` where the method anticipates no content.
        if !body.is_empty() || expects_content(&spec.method) {
            headers.append(CONTENT_LENGTH, content_length(body.len()));
        }
        let mut request = Request::new(body);
        *request.method_mut() = spec.method.clone();
        *request.uri_mut() = http::Uri::from(path);
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// The id and body of message `seq` of an SQS stream: the stream's `body` template
    /// rendered exactly as the HTTP body would be (same random draws); `now_ms` fills
    /// `{now_ms}`.
    pub fn message(
        &self,
        stream: usize,
        seq: u64,
        now_ms: u64,
    ) -> Result<(String, String), BuildError> {
        let err = |message: &str| BuildError {
            stream: self.streams[stream].name.clone(),
            message: message.into(),
        };
        let body = match self.build(stream, seq, now_ms)?.into_body() {
            Body::Full(Some(bytes)) => bytes,
            Body::Empty | Body::Full(None) => Bytes::new(),
            Body::Generated { .. } => {
                return Err(err(
                    "an SQS stream sends its `body` template as the message body",
                ));
            }
        };
        let body = String::from_utf8(body.to_vec())
            .map_err(|_| err("the rendered body is not UTF-8 text, which SQS requires"))?;
        Ok((request_id(&self.run_tag, stream, seq), body))
    }

    fn body(
        &self,
        spec: &StreamRequests,
        fields: &Fields,
        rng: &mut ChaCha8Rng,
    ) -> (Body, Option<HeaderValue>) {
        match &spec.body {
            BodySpec::None => (Body::Empty, None),
            BodySpec::Template {
                template,
                content_type,
            } => {
                let mut out = Vec::with_capacity(256);
                template.render(fields, rng, &mut out);
                (
                    Body::Full(Some(Bytes::from(out))),
                    header_value(content_type),
                )
            }
            BodySpec::Upload {
                size,
                encoding,
                content_type,
            } => {
                let len = size.sample(rng);
                let offset = rng.random_range(0..self.shared.len());
                match encoding {
                    UploadEncoding::Raw => (
                        Body::generated(None, self.shared.clone(), offset, len, None),
                        header_value(content_type),
                    ),
                    UploadEncoding::Multipart { field, filename } => {
                        let mut name = Vec::new();
                        filename.render(fields, rng, &mut name);
                        let boundary = format!("shakedown-{}", fields.id);
                        let prefix = format!(
                            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
                            String::from_utf8_lossy(&name).replace('"', "'")
                        );
                        let suffix = format!("\r\n--{boundary}--\r\n");
                        (
                            Body::generated(
                                Some(Bytes::from(prefix)),
                                self.shared.clone(),
                                offset,
                                len,
                                Some(Bytes::from(suffix)),
                            ),
                            header_value(&format!("multipart/form-data; boundary={boundary}")),
                        )
                    }
                }
            }
        }
    }
}

/// A `content-length` value; the usual empty body's without an allocation.
fn content_length(len: u64) -> HeaderValue {
    if len == 0 {
        HeaderValue::from_static("0")
    } else {
        HeaderValue::from(len)
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::profile::{
        Arrival, RequestSpec, Settings, SizeDist, Stage, Stream, StreamKind, Transport,
    };
    use http_body_util::BodyExt;

    fn upload_profile(encoding: UploadEncoding) -> Profile {
        Profile {
            name: "p".into(),
            seed: None,
            settings: Settings::default(),
            streams: vec![Stream {
                name: "photos".into(),
                kind: StreamKind::Upload,
                transport: Transport::Http,
                request: RequestSpec {
                    method: Method::PUT,
                    path: Template::literal("/upload/x"),
                    headers: vec![],
                },
                body: BodySpec::Upload {
                    size: SizeDist::Fixed(100_000),
                    encoding,
                    content_type: "image/jpeg".into(),
                },
                arrival: Arrival::Uniform,
                stages: vec![Stage {
                    duration: std::time::Duration::from_secs(1),
                    from: 1.0,
                    to: 1.0,
                }],
                ledger: true,
            }],
            path: None,
        }
    }

    #[tokio::test]
    async fn raw_upload_has_its_size_id_and_headers() {
        let f = RequestFactory::new(
            &upload_profile(UploadEncoding::Raw),
            "http://127.0.0.1:1/base".parse().unwrap(),
            1,
            "run".into(),
        );
        let req = f.build(0, 7, 0).unwrap();
        assert_eq!(req.uri().path(), "/base/upload/x");
        assert_eq!(req.headers()[ID_HEADER], "run-0-7");
        assert_eq!(req.headers()[CONTENT_LENGTH], "100000");
        assert_eq!(req.headers()[CONTENT_TYPE], "image/jpeg");
        assert_eq!(req.headers()[HOST], "127.0.0.1:1");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 100_000);
        // Same seed, same request: reproducible bodies.
        let again = f
            .build(0, 7, 0)
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, again);
    }

    #[tokio::test]
    async fn multipart_upload_is_well_framed() {
        let encoding = UploadEncoding::Multipart {
            field: "file".into(),
            filename: Template::literal("photo.jpg"),
        };
        let f = RequestFactory::new(
            &upload_profile(encoding),
            "http://127.0.0.1:1".parse().unwrap(),
            1,
            "run".into(),
        );
        let req = f.build(0, 3, 0).unwrap();
        let ct = req.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let boundary = ct
            .strip_prefix("multipart/form-data; boundary=")
            .expect(&ct)
            .to_string();
        let declared: u64 = req.headers()[CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len() as u64, declared);
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        assert!(body.starts_with(head.as_bytes()));
        assert!(body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
        assert_eq!(body.len(), head.len() + 100_000 + boundary.len() + 8);
    }

    #[test]
    fn an_empty_body_says_content_length_only_where_the_method_expects_content() {
        let mut profile = upload_profile(UploadEncoding::Raw);
        let stream = &mut profile.streams[0];
        stream.kind = StreamKind::Event;
        stream.body = BodySpec::None;
        for (method, declared) in [
            (Method::GET, None),
            (Method::HEAD, None),
            (Method::DELETE, None),
            (Method::OPTIONS, None),
            (Method::POST, Some("0")),
            (Method::PUT, Some("0")),
            (Method::PATCH, Some("0")),
        ] {
            profile.streams[0].request.method = method.clone();
            let f = RequestFactory::new(
                &profile,
                "http://127.0.0.1:1".parse().unwrap(),
                1,
                "r".into(),
            );
            let req = f.build(0, 1, 0).unwrap();
            assert_eq!(
                req.headers()
                    .get(CONTENT_LENGTH)
                    .map(|v| v.to_str().unwrap()),
                declared,
                "{method}"
            );
        }
        // A body is always declared, whatever the method.
        profile.streams[0].request.method = Method::GET;
        profile.streams[0].body = upload_profile(UploadEncoding::Raw).streams[0].body.clone();
        let f = RequestFactory::new(
            &profile,
            "http://127.0.0.1:1".parse().unwrap(),
            1,
            "r".into(),
        );
        assert_eq!(
            f.build(0, 1, 0).unwrap().headers()[CONTENT_LENGTH],
            "100000"
        );
    }

    #[test]
    fn only_a_profile_with_uploads_pays_for_the_upload_buffer() {
        let target = || "http://127.0.0.1:1".parse().unwrap();
        let uploads = upload_profile(UploadEncoding::Raw);
        assert_eq!(
            RequestFactory::new(&uploads, target(), 1, "r".into())
                .shared
                .len(),
            SHARED_BUFFER
        );
        let mut events = uploads.clone();
        events.streams[0].kind = StreamKind::Event;
        events.streams[0].body = BodySpec::None;
        assert!(
            RequestFactory::new(&events, target(), 1, "r".into())
                .shared
                .is_empty()
        );
    }

    #[test]
    fn target_parsing() {
        let t: Target = "http://127.0.0.1:8080/api/".parse().unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.base_path.as_str()),
            ("127.0.0.1", 8080, "/api")
        );
        assert_eq!(t.authority(), "127.0.0.1:8080");
        let t: Target = "http://[::1]:9000".parse().unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.base_path, "");
        assert!(!t.https);
        assert_eq!(t.to_string(), "http://[::1]:9000");
        let t: Target = "https://api.example/v1".parse().unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("api.example", 443));
        assert_eq!(t.to_string(), "https://api.example:443/v1");
        assert!("ftp://x".parse::<Target>().is_err());
        assert!("127.0.0.1:80".parse::<Target>().is_err());
        assert!("not a url".parse::<Target>().is_err());
    }
}
