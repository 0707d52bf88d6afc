//! HTTP/2 on the hot path: requests multiplexed over a few shared connections.
//!
//! Lanes stay what they are over HTTP/1.1 (one request at a time each, as many as
//! requests in flight), but they do not own a connection: they take a stream on the
//! [`H2Pool`]'s least busy connection. A connection takes at most the streams its server
//! allows (`SETTINGS_MAX_CONCURRENT_STREAMS`, read from the connection); a new connection
//! is opened only when every open one is full, so a run uses `ceil(in flight / max streams)`
//! connections. A request waiting for a free stream waits in its lane, and that wait is in
//! its latency (from the intended time), as waiting for an HTTP/1.1 connection is.
//!
//! With `keep_alive = false` every request opens its own connection (and TLS handshake).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderName, Request};

use super::body::Body;
use super::connect::{Connector, Opened};
use super::http::{Response, classify_io};
use super::request::ID_HEADER_NAME;
use crate::metrics::ErrorClass;

/// One shared HTTP/2 connection.
struct H2Conn {
    send: SendRequest<Bytes>,
    /// Streams open on it now (ours).
    in_flight: AtomicUsize,
    /// Its connection task ended (closed, GOAWAY, error).
    dead: Arc<AtomicBool>,
}

impl H2Conn {
    /// Whether it can take another stream now.
    fn has_room(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) < self.send.current_max_send_streams().max(1)
    }
}

/// The shared HTTP/2 connections of a run.
pub struct H2Pool {
    connector: Connector,
    conns: parking_lot::Mutex<Vec<Arc<H2Conn>>>,
    /// Held while a connection is being opened, so that lanes arriving together open one,
    /// not one each.
    opening: tokio::sync::Mutex<()>,
    /// The target's authority and scheme, for the request URIs (`:authority`, `:scheme`).
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
}

/// A stream taken on a connection: released when dropped.
struct Lease(Arc<H2Conn>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What opening a connection cost, for the recorder.
pub type ConnectTimes = (Duration, Option<(Duration, bool)>);

impl H2Pool {
    /// A pool connecting with `connector` (TLS offering `h2` by ALPN, or plain TCP: HTTP/2
    /// with prior knowledge) to the target named by `authority`.
    pub fn new(connector: Connector, https: bool, authority: &str) -> Result<H2Pool, String> {
        Ok(H2Pool {
            connector,
            conns: parking_lot::Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
            scheme: if https {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            authority: authority
                .parse()
                .map_err(|e| format!("`{authority}` is not an authority: {e}"))?,
        })
    }

    /// Connections open now (for tests and the report).
    pub fn connections(&self) -> usize {
        self.conns
            .lock()
            .iter()
            .filter(|c| !c.dead.load(Ordering::Relaxed))
            .count()
    }

    /// A stream on the least busy connection with room, else on a new connection.
    /// `connected` is called with the times of a connection this call opened.
    async fn lease(
        &self,
        timeout: Duration,
        keep_alive: bool,
        connected: &mut impl FnMut(ConnectTimes),
    ) -> Result<Lease, ErrorClass> {
        if !keep_alive {
            let (conn, times) = self.open(timeout).await?;
            connected(times);
            conn.in_flight.fetch_add(1, Ordering::Relaxed);
            return Ok(Lease(conn));
        }
        loop {
            if let Some(conn) = self.least_busy() {
                return Ok(Lease(conn));
            }
            let _opening = self.opening.lock().await;
            // Another lane may have opened one while this one waited.
            if let Some(conn) = self.least_busy() {
                return Ok(Lease(conn));
            }
            let (conn, times) = self.open(timeout).await?;
            connected(times);
            let mut conns = self.conns.lock();
            conns.retain(|c| !c.dead.load(Ordering::Relaxed));
            conns.push(conn);
        }
    }

    /// The live connection with the fewest streams, if it has room; its count taken.
    fn least_busy(&self) -> Option<Arc<H2Conn>> {
        let conns = self.conns.lock();
        let conn = conns
            .iter()
            .filter(|c| c.has_room())
            .min_by_key(|c| c.in_flight.load(Ordering::Relaxed))?;
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(conn.clone())
    }

    async fn open(&self, timeout: Duration) -> Result<(Arc<H2Conn>, ConnectTimes), ErrorClass> {
        let Opened { stream, tcp, tls } = self.connector.open(timeout).await?;
        let handshake = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake::<_, Bytes>(stream);
        let (send, mut connection) = match tokio::time::timeout(timeout, handshake).await {
            Err(_) => return Err(ErrorClass::Timeout),
            Ok(Err(e)) => return Err(classify_h2(&e)),
            Ok(Ok(pair)) => pair,
        };
        let mut ping = connection.ping_pong();
        let dead = Arc::new(AtomicBool::new(false));
        let flag = dead.clone();
        tokio::spawn(async move {
            if let Err(e) = Batched::new(connection).await {
                tracing::debug!("HTTP/2 connection ended: {e}");
            }
            flag.store(true, Ordering::Relaxed);
        });
        // The server's SETTINGS (its stream limit among them) come first on the connection:
        // once a PING is answered they have been read, and the connection is not handed out
        // with the protocol's "unlimited" default (streams over the real limit are refused).
        if let Some(ping) = &mut ping {
            match tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await {
                Err(_) => return Err(ErrorClass::Timeout),
                Ok(Err(e)) => return Err(classify_h2(&e)),
                Ok(Ok(_)) => {}
            }
        }
        Ok((
            Arc::new(H2Conn {
                send,
                in_flight: AtomicUsize::new(0),
                dead,
            }),
            (tcp, tls),
        ))
    }

    /// Sends one request on a stream of the pool and reads the whole response, counting
    /// the body's bytes. The connect timeout bounds opening a connection; the caller bounds
    /// the whole. A connection found closing (GOAWAY) or gone before anything of the request
    /// was sent is marked dead and the request goes on another (at most 3 tries).
    pub async fn send(
        &self,
        req: Request<Body>,
        connect_timeout: Duration,
        keep_alive: bool,
        mut connected: impl FnMut(ConnectTimes),
    ) -> Result<Response, ErrorClass> {
        let (head, body) = self.head(req)?;
        let mut tries = 0;
        loop {
            let lease = self
                .lease(connect_timeout, keep_alive, &mut connected)
                .await?;
            match lease.0.send.clone().ready().await {
                Ok(send) => return exchange(send, head, body).await,
                Err(e) => {
                    lease.0.dead.store(true, Ordering::Relaxed);
                    tries += 1;
                    if tries == 3 {
                        return Err(classify_h2(&e));
                    }
                }
            }
        }
    }

    /// The HTTP/2 request head of `req` (absolute URI; connection-specific headers dropped,
    /// `host` is `:authority`, an empty body's `content-length: 0` is said by END_STREAM),
    /// and its body. The request id is sent as never indexed: it is unique per request, so
    /// indexing it would only churn both sides' HPACK tables.
    fn head(&self, req: Request<Body>) -> Result<(Request<()>, Body), ErrorClass> {
        let (mut parts, body) = req.into_parts();
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = http::Uri::from_parts(uri).map_err(|_| ErrorClass::Other)?;
        parts.headers.remove(http::header::HOST);
        if body.is_empty() {
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        // One pass over the few headers a request has, rather than a lookup per name: the
        // connection-specific ones are rare (a profile's own headers, `keep_alive = false`).
        if parts.headers.keys().any(is_connection_specific) {
            for name in CONNECTION_SPECIFIC {
                parts.headers.remove(name);
            }
        }
        if let Some(id) = parts.headers.get_mut(ID_HEADER_NAME) {
            id.set_sensitive(true);
        }
        Ok((Request::from_parts(parts, ()), body))
    }
}

/// The headers HTTP/2 forbids (RFC 9113 section 8.2.2), `host` aside.
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

fn is_connection_specific(name: &HeaderName) -> bool {
    CONNECTION_SPECIFIC.contains(name)
}

/// One exchange on a stream that is ready: the head, the body within the flow-control
/// window, then the whole response.
async fn exchange(
    mut send: SendRequest<Bytes>,
    head: Request<()>,
    mut body: Body,
) -> Result<Response, ErrorClass> {
    let empty = body.is_empty();
    let (response, mut out) = send
        .send_request(head, empty)
        .map_err(|e| classify_h2(&e))?;
    if !empty {
        let mut ended = false;
        let mut next = body.next_chunk();
        while let Some(mut chunk) = next.take() {
            next = body.next_chunk();
            while !chunk.is_empty() {
                out.reserve_capacity(chunk.len());
                let granted = std::future::poll_fn(|cx| out.poll_capacity(cx))
                    .await
                    .ok_or(ErrorClass::Reset)?
                    .map_err(|e| classify_h2(&e))?;
                let piece = chunk.split_to(granted.min(chunk.len()));
                ended = chunk.is_empty() && next.is_none();
                out.send_data(piece, ended).map_err(|e| classify_h2(&e))?;
            }
        }
        if !ended {
            out.send_data(Bytes::new(), true)
                .map_err(|e| classify_h2(&e))?;
        }
    }
    let response = response.await.map_err(|e| classify_h2(&e))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes_received = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| classify_h2(&e))?;
        bytes_received += chunk.len() as u64;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(Response {
        status,
        bytes_received,
    })
}

/// A connection's task that lets every lane already runnable queue its request before it
/// writes: woken (by a lane's request, by the socket), it first goes to the back of the run
/// queue, then writes all that is queued at once. Polled as soon as it is woken, it would
/// write one request per system call, since the scheduler runs the task a lane just woke
/// before the other lanes (a third of the throughput, measured against nginx).
struct Batched<F> {
    inner: F,
    deferred: bool,
}

impl<F> Batched<F> {
    fn new(inner: F) -> Batched<F> {
        Batched {
            inner,
            deferred: false,
        }
    }
}

impl<F: Future + Unpin> Future for Batched<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        if !self.deferred {
            self.deferred = true;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        self.deferred = false;
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

/// The class of an HTTP/2 failure.
fn classify_h2(e: &h2::Error) -> ErrorClass {
    if let Some(io) = e.get_io() {
        return classify_io(io);
    }
    match e.reason() {
        Some(h2::Reason::REFUSED_STREAM) => ErrorClass::Refused,
        Some(h2::Reason::CANCEL) => ErrorClass::Reset,
        _ if e.is_go_away() => ErrorClass::Reset,
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> H2Pool {
        let connector = Connector::plain("127.0.0.1:1".parse().unwrap());
        H2Pool::new(connector, true, "example.test:8443").unwrap()
    }

    #[test]
    fn the_head_has_an_absolute_uri_and_no_connection_specific_headers() {
        let request = Request::builder()
            .uri("/orders?x=1")
            .header(http::header::HOST, "example.test:8443")
            .header(ID_HEADER_NAME, "run-0-7")
            .header(http::header::CONNECTION, "close")
            .header("keep-alive", "timeout=5")
            .header("x-custom", "kept")
            .header(http::header::CONTENT_LENGTH, "0")
            .body(Body::Empty)
            .unwrap();
        let (head, body) = pool().head(request).unwrap();
        assert!(body.is_empty());
        assert_eq!(head.uri(), "https://example.test:8443/orders?x=1");
        let mut names: Vec<_> = head.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x-custom", "x-shakedown-id"]);
        assert!(head.headers()[ID_HEADER_NAME].is_sensitive());
    }

    #[test]
    fn a_body_keeps_its_content_length() {
        let request = Request::builder()
            .method("POST")
            .uri("/")
            .header(http::header::CONTENT_LENGTH, "2")
            .body(Body::Full(Some(Bytes::from_static(b"{}"))))
            .unwrap();
        let (head, body) = pool().head(request).unwrap();
        assert_eq!(body.len(), 2);
        assert_eq!(head.headers()[http::header::CONTENT_LENGTH], "2");
        assert_eq!(head.uri(), "https://example.test:8443/");
    }
}
