//! HTTP/1.1 keep-alive connections straight on hyper (the hot path), and the
//! classification of every failure into an [`ErrorClass`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::Body;
use crate::metrics::ErrorClass;

/// One keep-alive connection. The connection's I/O is driven inside the
/// lane's own task while a request is in flight (no separate connection task
/// and no cross-task wake-ups per request: that halves the per-request overhead).
pub struct HttpConn {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>,
    /// The connection future has finished (closed by the peer or failed).
    finished: bool,
}

/// What came back.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub status: u16,
    pub bytes_received: u64,
}

impl Response {
    /// `None` for a success, else the class of the failing status.
    pub fn error_class(&self) -> Option<ErrorClass> {
        match self.status {
            400..=499 => Some(ErrorClass::Status4xx),
            500..=599 => Some(ErrorClass::Status5xx),
            _ => None,
        }
    }
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<HttpConn, ErrorClass> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ErrorClass::Timeout),
            Ok(Err(e)) => return Err(classify_io(&e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify_hyper(&e))?;
        Ok(HttpConn {
            sender,
            driver: Box::pin(driver),
            finished: false,
        })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.finished && !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response body (so the
    /// connection can be reused), counting its bytes. Drives the connection
    /// meanwhile.
    pub async fn send(&mut self, req: Request<Body>) -> Result<Response, ErrorClass> {
        let HttpConn {
            sender,
            driver,
            finished,
        } = self;
        let exchange = exchange(sender, req);
        tokio::pin!(exchange);
        loop {
            tokio::select! {
                biased;
                result = &mut exchange => return result,
                ended = driver.as_mut(), if !*finished => {
                    *finished = true;
                    if let Err(e) = ended {
                        return Err(classify_hyper(&e));
                    }
                    // Closed cleanly: the exchange now finishes (or fails) on its own.
                }
            }
        }
    }
}

async fn exchange(
    sender: &mut http1::SendRequest<Body>,
    req: Request<Body>,
) -> Result<Response, ErrorClass> {
    sender.ready().await.map_err(|e| classify_hyper(&e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| classify_hyper(&e))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes_received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify_hyper(&e))?;
        if let Some(data) = frame.data_ref() {
            bytes_received += data.len() as u64;
        }
    }
    Ok(Response {
        status,
        bytes_received,
    })
}

/// Maps an I/O error to its class.
pub fn classify_io(e: &io::Error) -> ErrorClass {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => ErrorClass::Refused,
        TimedOut | WouldBlock => ErrorClass::Timeout,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            ErrorClass::Reset
        }
        _ => ErrorClass::Other,
    }
}

/// Maps a hyper error (looking through its causes) to its class.
pub fn classify_hyper(e: &hyper::Error) -> ErrorClass {
    if e.is_timeout() {
        return ErrorClass::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return classify_io(io);
        }
        source = s.source();
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return ErrorClass::Reset;
    }
    ErrorClass::Other
}
