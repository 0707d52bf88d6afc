//! Local HTTP targets with chosen misbehaviours, for the driver's tests.
//! Every server binds 127.0.0.1 port 0 and lives as long as its runtime.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// How the server answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 200 at once, after reading the whole body.
    Ok,
    /// 503 at once.
    Unavailable,
    /// Holds every request that arrives during a stall: stalls last `stall`
    /// and start every `every`, the first one `every` after the server starts.
    Stalls { every: Duration, stall: Duration },
}

/// Counters the tests read back.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
    pub with_id_header: AtomicU64,
}

/// Starts an HTTP/1.1 server; returns its address and its counters.
pub async fn http_server(behaviour: Behaviour) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let started = Instant::now();
    let counters = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = counters.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(answer(req, behaviour, started, &seen).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn answer(
    req: Request<Incoming>,
    behaviour: Behaviour,
    started: Instant,
    seen: &Seen,
) -> Response<Full<Bytes>> {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    if req.headers().contains_key("x-shakedown-id") {
        seen.with_id_header.fetch_add(1, Ordering::Relaxed);
    }
    let mut body = req.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            seen.body_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
    }
    match behaviour {
        Behaviour::Ok => Response::new(Full::new(Bytes::from_static(b"ok"))),
        Behaviour::Unavailable => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"busy")));
            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            r
        }
        Behaviour::Stalls { every, stall } => {
            let t = started.elapsed();
            let period = every + stall;
            let phase = Duration::from_nanos((t.as_nanos() % period.as_nanos()) as u64);
            if phase >= every {
                tokio::time::sleep(period - phase).await;
            }
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    }
}

/// A port with nothing listening (bound, then closed).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Accepts, reads the request head, then resets the connection (RST).
pub async fn resetting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                // Zero linger makes close() send RST at once (no blocking on drop).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
            });
        }
    });
    addr
}

/// Accepts and never answers (connections are held until the runtime ends).
pub async fn hanging_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            held.push(stream);
        }
    });
    addr
}
