//! The listener side: accept loop, per-connection serving (HTTP/1.1; over TLS, HTTP/2 too
//! when the client asks for it by ALPN), graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Balancer;
use super::proxy;

/// Pause after an accept error that may clear up (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest TLS handshake a client gets.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    balancer: Arc<Balancer>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    let outcome = accept_loop(
        &balancer,
        &listener,
        tls.as_ref(),
        shutdown,
        &stop,
        &mut connections,
    )
    .await;
    drop(listener);
    stop.cancel();
    finish_connections(&mut connections, balancer.config.drain_timeout).await;
    balancer.close().await;
    outcome
}

async fn accept_loop(
    balancer: &Arc<Balancer>,
    listener: &TcpListener,
    tls: Option<&TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    stop: &CancellationToken,
    connections: &mut JoinSet<()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let balancer = Arc::clone(balancer);
                let stop = stop.clone();
                connections.spawn(connection(balancer, tls.cloned(), stream, peer, stop));
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "lb accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "lb accept failed; shutting down");
                return Err(e);
            }
        }
    }
}

/// Errors that concern one connection attempt or a passing resource shortage.
fn is_transient(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    )
}

/// Serves one client connection until it closes, or until `stop`: then finishes the
/// request in progress and closes (idle keep-alive connections close at once). Over TLS the
/// handshake comes first, then HTTP/2 or HTTP/1.1 as the client chose by ALPN.
async fn connection(
    balancer: Arc<Balancer>,
    tls: Option<TlsAcceptor>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| proxy::handle(Arc::clone(&balancer), request, peer));
    let result = match tls {
        None => {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            until_stopped(conn, &stop, |c| c.graceful_shutdown()).await
        }
        Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(stream)) => {
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                until_stopped(conn, &stop, |c| c.graceful_shutdown()).await
            }
            Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
            Err(_) => Err("TLS handshake timed out".to_owned()),
        },
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "lb client connection ended with an error");
    }
}

/// Serves `conn` until it ends, or until `stop`: then `graceful` lets it finish the request
/// in progress (idle keep-alive connections close at once).
async fn until_stopped<C, E>(
    mut conn: std::pin::Pin<&mut C>,
    stop: &CancellationToken,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) -> Result<(), String>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
    .map_err(|e| e.to_string())
}

/// Waits up to `limit` for open connections to finish, then aborts the rest.
async fn finish_connections(connections: &mut JoinSet<()>, limit: Duration) {
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limit, all_done).await.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "lb drain timeout at shutdown; closing remaining connections"
        );
        connections.shutdown().await;
    }
}
