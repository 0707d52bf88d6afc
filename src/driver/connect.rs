//! Opening the driver's connections: TCP, then TLS for an https target, each timed (the
//! latency components a request on a new connection pays before its own), within one
//! connect timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::http::{HttpConn, Stream, classify_io};
use crate::metrics::ErrorClass;

/// Where and how the driver connects.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    tls: Option<Tls>,
}

#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// A connection just opened, with what opening it took.
pub struct Opened<S> {
    pub stream: S,
    /// The TCP connect.
    pub tcp: Duration,
    /// The TLS handshake (after the connect), and whether it resumed an earlier session.
    pub tls: Option<(Duration, bool)>,
}

impl Connector {
    /// Plain TCP to `addr`.
    pub fn plain(addr: SocketAddr) -> Connector {
        Connector { addr, tls: None }
    }

    /// TLS to `addr`, presenting `name` (SNI, and the name the certificate must be for).
    /// Connections share `config`'s session cache, so later handshakes can resume.
    pub fn tls(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Connector {
        Connector {
            addr,
            tls: Some(Tls {
                connector: TlsConnector::from(config),
                name,
            }),
        }
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a stream: the TCP connect and the TLS handshake together within `timeout`.
    pub async fn open(&self, timeout: Duration) -> Result<Opened<Stream>, ErrorClass> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + timeout);
        let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(self.addr)).await {
            Err(_) => return Err(ErrorClass::Timeout),
            Ok(Err(e)) => return Err(classify_io(&e)),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let connected = Instant::now();
        let tcp_time = connected - start;
        let Some(tls) = &self.tls else {
            return Ok(Opened {
                stream: Stream::Plain(tcp),
                tcp: tcp_time,
                tls: None,
            });
        };
        let stream =
            match tokio::time::timeout_at(deadline, tls.connector.connect(tls.name.clone(), tcp))
                .await
            {
                Err(_) => return Err(ErrorClass::Timeout),
                Ok(Err(e)) => return Err(classify_io(&e)),
                Ok(Ok(s)) => s,
            };
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Ok(Opened {
            stream: Stream::Tls(Box::new(stream)),
            tcp: tcp_time,
            tls: Some((connected.elapsed(), resumed)),
        })
    }

    /// Opens an HTTP/1.1 connection.
    pub async fn open_http1(&self, timeout: Duration) -> Result<Opened<HttpConn>, ErrorClass> {
        let o = self.open(timeout).await?;
        Ok(Opened {
            stream: HttpConn::new(o.stream),
            tcp: o.tcp,
            tls: o.tls,
        })
    }
}
