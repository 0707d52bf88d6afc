//! HTTP/1.1 keep-alive connections on the hot path, and the classification
//! of every failure into an [`ErrorClass`].
//!
//! A lean client rather than a general one: the request head is encoded into
//! a reused buffer and written with the body in as few writes as possible
//! (one for small bodies); the response head is parsed with `httparse` from a
//! reused read buffer; bodies are counted and dropped (content-length,
//! chunked, or until close). No task, channel or waker per request: this is
//! what lets the driver approach wrk's rate on one core.
//!
//! The same client runs over plain TCP or TLS ([`Stream`]); [`super::connect`] opens
//! either.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::{Method, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::body::Body;
use crate::metrics::ErrorClass;

/// A connection's byte stream: plain TCP, or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Bodies up to this size are sent in the same write as the head.
const COALESCE: u64 = 64 * 1024;
/// Longest response head or chunk-size line accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Room made in the read buffer for a response head (most fit; a longer one grows it).
/// Small on purpose: every open connection keeps its buffer, and 10,000 connections with
/// 16 KiB each cost 160 MiB.
const READ_HEAD: usize = 2 * 1024;
/// Most room made at once for a body being skipped (fewer reads for a large download).
const READ_BODY: usize = 64 * 1024;
/// A connection idle for longer is checked for a close by the peer before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// One keep-alive connection.
pub struct HttpConn {
    stream: Stream,
    read: BytesMut,
    write: Vec<u8>,
    open: bool,
    last_used: Instant,
}

/// What came back.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub status: u16,
    pub bytes_received: u64,
}

impl Response {
    /// `None` for a success, else the class of the failing status: 429 Too Many Requests
    /// is `throttled` (the service refused for rate or concurrency, as an API Gateway or
    /// Lambda function URL over its limit does), any other 4xx `4xx`.
    pub fn error_class(&self) -> Option<ErrorClass> {
        match self.status {
            429 => Some(ErrorClass::Throttled),
            400..=499 => Some(ErrorClass::Status4xx),
            500..=599 => Some(ErrorClass::Status5xx),
            _ => None,
        }
    }
}

/// How the response body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl HttpConn {
    /// A client on an open stream (see [`super::connect::Connector`]).
    pub fn new(stream: Stream) -> HttpConn {
        HttpConn {
            stream,
            // Allocated by the first request, sized by what it needs.
            read: BytesMut::new(),
            write: Vec::new(),
            open: true,
            last_used: Instant::now(),
        }
    }

    /// Whether the connection can take another request. A connection idle for
    /// a while is checked for a close by the peer (a keep-alive timeout), so
    /// that a stale connection does not turn into a spurious reset. The check is one
    /// poll of a read that must not be ready: over TLS it also takes in what the server
    /// sent meanwhile that is not data (session tickets), and sees a `close_notify`.
    pub fn is_open(&mut self) -> bool {
        if self.open && self.last_used.elapsed() > IDLE_CHECK {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            self.read.reserve(1024);
            let before = self.read.len();
            let ready = {
                let mut probe = std::pin::pin!(self.stream.read_buf(&mut self.read));
                probe.as_mut().poll(&mut cx).is_ready()
            };
            // EOF, an error, or bytes nobody asked for.
            if ready || self.read.len() > before {
                self.open = false;
            }
        }
        self.open
    }

    /// Sends one request and reads the whole response (so the connection can
    /// be reused), counting the body's bytes.
    pub async fn send(&mut self, req: Request<Body>) -> Result<Response, ErrorClass> {
        let result = self.exchange(req).await;
        self.last_used = Instant::now();
        if result.is_err() {
            self.open = false;
        }
        result
    }

    async fn exchange(&mut self, req: Request<Body>) -> Result<Response, ErrorClass> {
        let (parts, mut body) = req.into_parts();
        self.encode_head(&parts);
        let small = body.len() <= COALESCE;
        if small {
            while let Some(chunk) = body.next_chunk() {
                self.write.extend_from_slice(&chunk);
            }
        }
        self.stream
            .write_all(&self.write)
            .await
            .map_err(|e| classify_io(&e))?;
        if !small {
            while let Some(chunk) = body.next_chunk() {
                self.stream
                    .write_all(&chunk)
                    .await
                    .map_err(|e| classify_io(&e))?;
            }
        }
        if let Stream::Tls(_) = self.stream {
            // TLS records still buffered in the session go out now (plain TCP has none).
            self.stream.flush().await.map_err(|e| classify_io(&e))?;
        }
        let (status, framing) = self.read_head(parts.method == Method::HEAD).await?;
        let bytes_received = match framing {
            Framing::None => 0,
            Framing::Length(n) => self.skip(n).await?,
            Framing::Chunked => self.skip_chunked().await?,
            Framing::UntilClose => {
                self.open = false;
                self.skip_to_eof().await?
            }
        };
        Ok(Response {
            status,
            bytes_received,
        })
    }

    fn encode_head(&mut self, parts: &http::request::Parts) {
        let w = &mut self.write;
        w.clear();
        w.extend_from_slice(parts.method.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
        );
        w.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
    }

    /// Reads more bytes into the read buffer; the peer closing is a reset.
    async fn fill(&mut self) -> Result<(), ErrorClass> {
        self.fill_with(READ_HEAD).await
    }

    /// [`Self::fill`], with room for at least `room` bytes.
    async fn fill_with(&mut self, room: usize) -> Result<(), ErrorClass> {
        self.read.reserve(room);
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Err(ErrorClass::Reset),
            Ok(_) => Ok(()),
            Err(e) => Err(classify_io(&e)),
        }
    }

    /// Parses the response head (skipping interim 1xx responses).
    async fn read_head(&mut self, head_request: bool) -> Result<(u16, Framing), ErrorClass> {
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.read) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        Some((
                            len,
                            status,
                            framing_of(status, head_request, resp.headers),
                            !persistent(resp.version, resp.headers),
                        ))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(ErrorClass::Other),
                }
            };
            match parsed {
                Some((len, status, framing, close)) => {
                    self.read.advance(len);
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    if close {
                        self.open = false;
                    }
                    return Ok((status, framing?));
                }
                None if self.read.len() > MAX_HEAD => return Err(ErrorClass::Other),
                None => self.fill().await?,
            }
        }
    }

    /// Consumes `n` body bytes.
    async fn skip(&mut self, n: u64) -> Result<u64, ErrorClass> {
        let mut left = n;
        while left > 0 {
            if self.read.is_empty() {
                let room = usize::try_from(left).unwrap_or(usize::MAX);
                self.fill_with(room.clamp(READ_HEAD, READ_BODY)).await?;
            }
            let take = left.min(self.read.len() as u64) as usize;
            self.read.advance(take);
            left -= take as u64;
        }
        Ok(n)
    }

    async fn skip_to_eof(&mut self) -> Result<u64, ErrorClass> {
        let mut total = self.read.len() as u64;
        self.read.clear();
        loop {
            match self.fill_with(READ_BODY).await {
                Ok(()) => {
                    total += self.read.len() as u64;
                    self.read.clear();
                }
                Err(ErrorClass::Reset) => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Result<BytesMut, ErrorClass> {
        loop {
            if let Some(pos) = self.read.windows(2).position(|w| w == b"\r\n") {
                let mut line = self.read.split_to(pos + 2);
                line.truncate(pos);
                return Ok(line);
            }
            if self.read.len() > MAX_HEAD {
                return Err(ErrorClass::Other);
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> Result<u64, ErrorClass> {
        let mut total = 0;
        loop {
            let line = self.line().await?;
            let size = chunk_size(&line).ok_or(ErrorClass::Other)?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            total += self.skip(size).await?;
            if !self.line().await?.is_empty() {
                return Err(ErrorClass::Other);
            }
        }
    }
}

/// How the body of a response with these headers is delimited (RFC 9112 6.3).
fn framing_of(
    status: u16,
    head_request: bool,
    headers: &[httparse::Header],
) -> Result<Framing, ErrorClass> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let mut length = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if std::str::from_utf8(h.value)
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                return Ok(Framing::Chunked);
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            length = Some(n.ok_or(ErrorClass::Other)?);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Whether the connection stays open after this response (RFC 9112, 9.3): an HTTP/1.1
/// response unless `Connection: close`; an HTTP/1.0 one only with `Connection: keep-alive`
/// (an HTTP/1.0 server closes after each response otherwise, and reusing its connection
/// would fail the next request).
fn persistent(version: Option<u8>, headers: &[httparse::Header]) -> bool {
    let connection = |token: &str| {
        headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && std::str::from_utf8(h.value)
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    match version {
        Some(0) => connection("keep-alive"),
        _ => !connection("close"),
    }
}

/// The size on a chunk-size line (hex, optional `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let hex = text.split(';').next()?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Maps an I/O error to its class (a TLS failure to its own).
pub fn classify_io(e: &io::Error) -> ErrorClass {
    use io::ErrorKind::*;
    if let Some(class) = crate::tls::classify(e) {
        return class;
    }
    match e.kind() {
        ConnectionRefused => ErrorClass::Refused,
        TimedOut | WouldBlock => ErrorClass::Timeout,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            ErrorClass::Reset
        }
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::net::SocketAddr;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that answers each request with `reply` (raw bytes), after reading its head.
    async fn raw_server(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for reply in replies {
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                s.write_all(reply).await.unwrap();
            }
        });
        addr
    }

    /// A plain-TCP connection to `addr`, opened as the driver opens one.
    async fn connect(addr: SocketAddr) -> HttpConn {
        super::super::connect::Connector::plain(addr)
            .open_http1(Duration::from_secs(1))
            .await
            .unwrap()
            .stream
    }

    fn get() -> Request<Body> {
        Request::builder()
            .uri("/x")
            .header("host", "t")
            .body(Body::Empty)
            .unwrap()
    }

    #[tokio::test]
    async fn lengths_chunks_interim_and_keep_alive() {
        let addr = raw_server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ])
        .await;
        let mut c = connect(addr).await;
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (200, 5));
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (503, 5));
        assert_eq!(r.error_class(), Some(ErrorClass::Status5xx));
        let throttled = |status| Response {
            status,
            bytes_received: 0,
        };
        assert_eq!(throttled(429).error_class(), Some(ErrorClass::Throttled));
        assert_eq!(throttled(404).error_class(), Some(ErrorClass::Status4xx));
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (204, 0));
        assert!(c.is_open());
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (200, 13));
        assert!(!c.is_open(), "connection: close ends the connection");
    }

    /// An HTTP/1.0 server (Python's `http.server`) closes after each response unless it
    /// says keep-alive: the connection is not reused, so the next request does not fail.
    #[tokio::test]
    async fn an_http_1_0_response_ends_the_connection_unless_it_says_keep_alive() {
        let addr = raw_server(vec![
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ])
        .await;
        let mut c = connect(addr).await;
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (200, 2));
        assert!(c.is_open(), "HTTP/1.0 with keep-alive stays open");
        let r = c.send(get()).await.unwrap();
        assert_eq!((r.status, r.bytes_received), (200, 2));
        assert!(!c.is_open(), "plain HTTP/1.0 closes");
    }

    #[tokio::test]
    async fn a_peer_closing_mid_response_is_a_reset_and_garbage_is_other() {
        let addr = raw_server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"]).await;
        let mut c = connect(addr).await;
        assert_eq!(c.send(get()).await.unwrap_err(), ErrorClass::Reset);
        assert!(!c.is_open());
        let addr = raw_server(vec![b"NOT HTTP AT ALL\r\n\r\n"]).await;
        let mut c = connect(addr).await;
        assert_eq!(c.send(get()).await.unwrap_err(), ErrorClass::Other);
    }

    #[tokio::test]
    async fn request_head_and_body_on_the_wire() {
        let head: &[u8] = b"PUT /u/1?a=b HTTP/1.1\r\ncontent-length: 100000\r\n\r\n";
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < head.len() + 100_000 {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            got
        });
        let shared = Bytes::from(vec![7u8; 4096]);
        let req = Request::builder()
            .method("PUT")
            .uri("/u/1?a=b")
            .header("content-length", "100000")
            .body(Body::generated(None, shared, 0, 100_000, None))
            .unwrap();
        let mut c = connect(addr).await;
        let r = c.send(req).await.unwrap();
        assert_eq!(r.status, 201);
        let got = server.await.unwrap();
        assert!(
            got.starts_with(head),
            "{:?}",
            String::from_utf8_lossy(&got[..60])
        );
        assert_eq!(got.len(), head.len() + 100_000);
        assert!(got[head.len()..].iter().all(|b| *b == 7));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1A"), Some(26));
        assert_eq!(chunk_size(b"0;ext"), Some(0));
        assert_eq!(chunk_size(b"zz"), None);
    }
}
