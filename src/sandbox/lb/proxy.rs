//! Forwarding one request: header rewriting, dispatch, retry, error responses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Balancer;
use super::target::{Target, TrackedBody};
use crate::errors::error_chain;

/// Body type of requests sent upstream and of responses sent to clients.
pub(super) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// The pooled keep-alive client used to reach targets.
pub(super) type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// Response header naming the target that answered (or failed).
pub const UPSTREAM_HEADER: &str = "x-shakedown-upstream";

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Why an upstream exchange produced no response head.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    /// No response head within the request timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or reading the head failed.
    #[error("{0}")]
    Failed(String),
}

pub(super) fn upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// Proxies one client request; never fails (errors become 502/503/504 responses).
pub(super) async fn handle(
    balancer: Arc<Balancer>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<ProxyBody>, Infallible> {
    let (mut parts, body) = request.into_parts();
    rewrite_request_headers(&mut parts.headers, peer);
    let bodiless = body.is_end_stream();
    let replayable = balancer.config.retry_idempotent && bodiless && is_idempotent(&parts.method);

    let routed = balancer.route(parts.uri.path());
    if routed == super::Routed::NoRule {
        return Ok(error_response(
            StatusCode::NOT_FOUND,
            None,
            "no listener rule matches the path",
        ));
    }
    let Some(first) = balancer.pick(routed, None) else {
        return Ok(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "no healthy target",
        ));
    };
    let first_body = if bodiless {
        empty()
    } else {
        body.boxed_unsync()
    };
    let error = match forward(&balancer, &first, &parts, first_body).await {
        Ok(response) => return Ok(response),
        Err(error) => error,
    };
    let retry = match &error {
        UpstreamError::Failed(_) if replayable => balancer.pick(routed, Some(&first.id)),
        _ => None,
    };
    let Some(second) = retry else {
        return Ok(failure_response(&first, &error));
    };
    tracing::debug!(from = %first.id, to = %second.id, %error, "lb retrying idempotent request");
    Ok(forward(&balancer, &second, &parts, empty())
        .await
        .unwrap_or_else(|error| failure_response(&second, &error)))
}

/// One attempt against one target.
async fn forward(
    balancer: &Balancer,
    target: &Arc<Target>,
    parts: &request::Parts,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let guard = target.dispatch();
    let request = upstream_request(parts, &target.authority, body)?;
    let timeout = balancer.config.request_timeout;
    let result = tokio::time::timeout(timeout, balancer.client.request(request)).await;
    let response = match result {
        Err(_) => Err(UpstreamError::Timeout(timeout)),
        Ok(Err(e)) => Err(UpstreamError::Failed(error_chain(&e))),
        Ok(Ok(response)) => Ok(response),
    }
    .inspect_err(|e| {
        target.record_failure();
        tracing::debug!(target_id = %target.id, error = %e, "lb upstream failure");
    })?;
    let (mut head, upstream_body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    head.headers
        .insert(UPSTREAM_HEADER, target.id_header.clone());
    let body = TrackedBody::new(upstream_body, guard).boxed_unsync();
    Ok(Response::from_parts(head, body))
}

/// The request to send upstream: the client's method, path, query and (rewritten) headers,
/// addressed to `authority`. Built from parts, without formatting and re-parsing a URI.
fn upstream_request(
    parts: &request::Parts,
    authority: &http::uri::Authority,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, UpstreamError> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    let uri = http::Uri::from_parts(uri)
        .map_err(|e| UpstreamError::Failed(format!("bad upstream uri: {e}")))?;
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    Ok(request)
}

/// Drops hop-by-hop headers, appends the client address to `x-forwarded-for`, sets
/// `x-forwarded-proto`. `host` and everything else pass through unchanged.
pub(super) fn rewrite_request_headers(headers: &mut HeaderMap, peer: SocketAddr) {
    strip_hop_by_hop(headers);
    let client_ip = peer.ip().to_string();
    let forwarded = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {client_ip}"),
        None => client_ip,
    };
    headers.insert(X_FORWARDED_FOR, header_value(&forwarded));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

/// Removes the fixed hop-by-hop headers and any header the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

fn is_idempotent(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::DELETE].contains(method)
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn failure_response(target: &Target, error: &UpstreamError) -> Response<ProxyBody> {
    let status = match error {
        UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::Failed(_) => StatusCode::BAD_GATEWAY,
    };
    let text = format!("upstream {}: {error}", target.id);
    error_response(status, Some(&target.id), &text)
}

fn error_response(status: StatusCode, upstream: Option<&str>, text: &str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(id) = upstream {
        headers.insert(UPSTREAM_HEADER, header_value(id));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.1.2.3:5555".parse().expect("addr")
    }

    #[test]
    fn request_headers_drop_hop_by_hop_and_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("s"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-app", HeaderValue::from_static("kept"));
        rewrite_request_headers(&mut h, peer());
        assert_eq!(h.get(header::HOST).unwrap(), "shop.example");
        assert_eq!(h.get("x-app").unwrap(), "kept");
        for gone in ["connection", "keep-alive", "x-secret", "te"] {
            assert!(h.get(gone).is_none(), "{gone} forwarded");
        }
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.2.3");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.7"));
        rewrite_request_headers(&mut h, peer());
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7, 10.1.2.3");
    }

    #[test]
    fn the_upstream_request_keeps_method_path_query_and_headers() {
        let (mut parts, ()) = Request::builder()
            .method(Method::PUT)
            .uri("/upload/7?size=3")
            .header("x-app", "kept")
            .body(())
            .unwrap()
            .into_parts();
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("shop"));
        let authority: http::uri::Authority = "127.0.0.1:8080".parse().unwrap();
        let request = upstream_request(&parts, &authority, empty()).unwrap();
        assert_eq!(request.method(), Method::PUT);
        assert_eq!(request.uri(), "http://127.0.0.1:8080/upload/7?size=3");
        assert_eq!(request.headers().get("x-app").unwrap(), "kept");
        assert_eq!(request.headers().get(header::HOST).unwrap(), "shop");
    }

    #[test]
    fn only_safe_retry_methods_are_idempotent() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::DELETE));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
