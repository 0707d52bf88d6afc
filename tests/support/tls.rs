//! A local https server for the TLS and HTTP/2 tests: certificates from a CA made for the
//! test ([`shakedown::sandbox::tls::Authority`]), HTTP/1.1 or HTTP/2 as the client asks by
//! ALPN, and counters of what it saw. Binds 127.0.0.1 port 0; lives as long as its runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use shakedown::sandbox::tls::{Authority, Issued};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the server saw.
#[derive(Default, Debug)]
pub struct TlsSeen {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Of those, resumed sessions.
    pub resumed: AtomicU64,
    /// Handshakes that failed (the client refused the certificate, or spoke no TLS).
    pub failed_handshakes: AtomicU64,
    pub http1_requests: AtomicU64,
    pub http2_requests: AtomicU64,
    pub body_bytes: AtomicU64,
}

impl TlsSeen {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A CA written to `dir/ca.pem`, and a certificate it issued for `names`, valid from
/// `from_s` to `until_s` seconds from now.
pub fn authority(dir: &Path, names: &[&str], from_s: i64, until_s: i64) -> (PathBuf, Issued) {
    let ca = Authority::new("shakedown test CA").unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.ca_pem()).unwrap();
    (path, ca.issue_valid(names, from_s, until_s).unwrap())
}

/// How the server behaves beyond presenting its certificate.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// HTTP/2: most streams a client may open at once (default: hyper's, 200).
    pub h2_max_streams: Option<u32>,
    /// Require a client certificate from this CA (PEM).
    pub client_ca: Option<String>,
    /// The body of every answer (default `ok`).
    pub body: Option<&'static str>,
}

/// Starts a server presenting `issued`; every request gets `200 ok` after its body is read.
pub async fn tls_server(issued: &Issued) -> (SocketAddr, Arc<TlsSeen>) {
    tls_server_with(issued, ServerOptions::default()).await
}

/// [`tls_server`] with options.
pub async fn tls_server_with(issued: &Issued, opts: ServerOptions) -> (SocketAddr, Arc<TlsSeen>) {
    let mut config = (*issued.server_config().unwrap()).clone();
    if let Some(ca) = &opts.client_ca {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            shakedown::tls::provider(),
        )
        .build()
        .unwrap();
        let mut with_auth = rustls::ServerConfig::builder_with_provider(shakedown::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                rustls::pki_types::CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
                    .unwrap(),
            )
            .unwrap();
        with_auth.alpn_protocols = config.alpn_protocols.clone();
        config = with_auth;
    }
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let answer: &'static str = opts.body.unwrap_or("ok");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(TlsSeen::default());
    let counters = seen.clone();
    let max_streams = opts.h2_max_streams;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = counters.clone();
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(_) => {
                        seen.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                seen.handshakes.fetch_add(1, Ordering::Relaxed);
                if stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    seen.resumed.fetch_add(1, Ordering::Relaxed);
                }
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let counter = if req.version() == Version::HTTP_2 {
                            &seen.http2_requests
                        } else {
                            &seen.http1_requests
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let n = body.map_or(0, |b| b.len() as u64);
                        seen.body_bytes.fetch_add(n, Ordering::Relaxed);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            answer.as_bytes(),
                        ))))
                    }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if let Some(n) = max_streams {
                    builder.http2().max_concurrent_streams(n);
                }
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}
