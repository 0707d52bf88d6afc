//! TLS for every client that speaks HTTP (the driver's connections, probes, completion
//! and activity sources): one set of trust options, one rustls configuration, and the
//! classification of a failed handshake into an [`ErrorClass`] with a hint a person can act
//! on.
//!
//! Trust, in order: the certificates of `ca_file` (when given) added to the system's roots,
//! which honour the usual `SSL_CERT_FILE` / `SSL_CERT_DIR` (either replaces the platform's
//! store, as OpenSSL does); `insecure = true` trusts any certificate (the handshake's
//! signatures are still checked, so the connection is still encrypted to whoever holds the
//! key), for self-signed staging systems.
//!
//! ```toml
//! [target.tls]
//! ca_file = "staging-ca.pem"       # trusted besides the system's roots
//! insecure = false                 # true: accept any certificate
//! client_cert = "client.pem"       # mutual TLS: the certificate chain ...
//! client_key = "client.key"        # ... and its private key (PEM)
//! server_name = "api.staging.example"  # SNI and the name checked (default: the URL's host)
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Deserialize;

use crate::metrics::ErrorClass;

/// How a client trusts the servers it talks to, and proves who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM file of CA certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (self-signed staging systems).
    #[serde(default)]
    pub insecure: bool,
    /// PEM file of the client certificate chain (mutual TLS); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
    /// The name sent as SNI and checked against the certificate (default: the URL's host).
    pub server_name: Option<String>,
}

/// The trust options on the command line (`load`, `run`): each one given overrides the
/// experiment's `[target.tls]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// https: trust the CA certificates of this PEM file, besides the system's roots
    /// (which honour SSL_CERT_FILE / SSL_CERT_DIR).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// https: accept any server certificate (a self-signed staging system).
    #[arg(long)]
    pub insecure: bool,
    /// https: present this client certificate chain (PEM; needs --client-key).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// https: the client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// https: the name sent as SNI and checked against the certificate (default: the
    /// URL's host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// `base` with every option given here in its place.
    pub fn over(&self, base: &TlsOptions) -> TlsOptions {
        let (client_cert, client_key) = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
            _ => (base.client_cert.clone(), base.client_key.clone()),
        };
        TlsOptions {
            ca_file: self.ca_file.clone().or_else(|| base.ca_file.clone()),
            insecure: self.insecure || base.insecure,
            client_cert,
            client_key,
            server_name: self
                .server_name
                .clone()
                .or_else(|| base.server_name.clone()),
        }
    }
}

/// Which application protocols to offer in the handshake (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
    /// Whatever the client library negotiates itself (reqwest sets its own).
    None,
}

/// A TLS setup that cannot work: a file missing or unreadable, a key that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS: cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS: {path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks)")]
    NoCertificate { path: PathBuf },
    #[error("TLS: the certificate in {path} is not usable as a root: {source}")]
    BadRoot {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "TLS: no trusted root certificate: the system store is empty or unreadable ({detail}); \
         set SSL_CERT_FILE, give a `ca_file`, or use `insecure = true` for a self-signed system"
    )]
    NoRoots { detail: String },
    #[error("TLS: `client_cert` and `client_key` go together (one is missing)")]
    HalfClientIdentity,
    #[error("TLS: the client certificate and key do not fit: {0}")]
    ClientIdentity(rustls::Error),
    #[error("TLS: `{0}` is not a valid server name")]
    ServerName(String),
    #[error("TLS: {0}")]
    Config(rustls::Error),
    #[error("building an HTTP client: {0}")]
    Client(String),
}

/// The crypto provider of every TLS connection we make (aws-lc-rs, as the AWS SDKs use),
/// with X25519 as the preferred key exchange: a handshake then carries one key share, as
/// OpenSSL-based clients (wrk, curl) send, instead of the post-quantum hybrid's larger one
/// plus X25519 (measured: about 10% fewer handshakes per second with the hybrid first). The
/// hybrid stays offered: a server that wants it asks for it.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .kx_groups
        .sort_by_key(|group| group.name() != rustls::NamedGroup::X25519);
    Arc::new(provider)
}

impl TlsOptions {
    /// The rustls client configuration these options describe. Loads the system's roots
    /// (or `SSL_CERT_FILE` / `SSL_CERT_DIR`), so build it once per run, not per connection:
    /// connections made from one configuration share its session cache (resumption).
    pub fn client_config(&self, alpn: Alpn) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Config)?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "client certificate")?;
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Read {
                        what: "client key",
                        path: key.clone(),
                        source,
                    })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(TlsSetupError::ClientIdentity)?
            }
            _ => return Err(TlsSetupError::HalfClientIdentity),
        };
        // The first random bytes of the process seed aws-lc's generator from CPU jitter
        // (about 40 ms here): drawn now, so that the run's first handshake is not timed
        // with them.
        let _ = provider.secure_random.fill(&mut [0u8; 16]);
        config.alpn_protocols = match alpn {
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::Http2 => vec![b"h2".to_vec()],
            Alpn::None => Vec::new(),
        };
        Ok(Arc::new(config))
    }

    /// The name to send as SNI and verify: `server_name`, else `host`.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsSetupError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|_| TlsSetupError::ServerName(name.into()))
    }

    /// The system's roots plus `ca_file`.
    fn roots(&self) -> Result<RootCertStore, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.ca_file {
            for cert in read_certs(path, "CA file")? {
                roots.add(cert).map_err(|source| TlsSetupError::BadRoot {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        if roots.is_empty() {
            let detail = if native.errors.is_empty() {
                format!("{added} certificates found")
            } else {
                native
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(TlsSetupError::NoRoots { detail });
        }
        Ok(roots)
    }
}

/// A reqwest client builder that can build: reqwest's TLS is rustls without a provider of
/// its own, so the process-wide default (aws-lc-rs) is installed first, once. Every reqwest
/// client of the crate (and of its tests) starts here; it does not use proxies from the
/// environment.
pub fn client_builder() -> reqwest::ClientBuilder {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Already installed (by another part of the process) is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
    reqwest::Client::builder().no_proxy()
}

/// An HTTP client (probes, completion and activity sources) that trusts servers as `tls`
/// says, with a whole-request `timeout`; it does not use proxies from the environment.
pub fn http_client(
    tls: &TlsOptions,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, TlsSetupError> {
    let config = tls.client_config(Alpn::Http1)?;
    client_builder()
        .timeout(timeout)
        .use_preconfigured_tls((*config).clone())
        .build()
        .map_err(|e| TlsSetupError::Client(e.to_string()))
}

/// Every certificate of a PEM file (at least one).
fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let read = |source| TlsSetupError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// `insecure = true`: any certificate is accepted, the handshake's signatures are still
/// verified with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The class of a TLS failure, when `e` is one (a handshake or record error that rustls
/// raised, as tokio-rustls passes it on inside an `io::Error`).
pub fn classify(e: &io::Error) -> Option<ErrorClass> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(classify_rustls(tls))
}

/// The class of a rustls error.
pub fn classify_rustls(e: &rustls::Error) -> ErrorClass {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            // A signature that does not verify is a chain to a trusted CA's *name* but not its
            // key: the wrong CA file (a staging CA made anew), the same fix as an unknown one.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                ErrorClass::TlsUnknownIssuer
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                ErrorClass::TlsBadName
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => ErrorClass::TlsExpired,
            _ => ErrorClass::TlsProtocol,
        },
        _ => ErrorClass::TlsProtocol,
    }
}

/// A one-line hint for a TLS error class (empty for the others).
pub fn hint(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::TlsUnknownIssuer => {
            "the server's certificate is signed by a CA this machine does not trust: give its CA \
             with `ca_file` (or --ca-file, or SSL_CERT_FILE), or `insecure = true` (--insecure) \
             for a self-signed staging system"
        }
        ErrorClass::TlsBadName => {
            "the server's certificate is not for the name in the URL: use the name it was issued \
             for, or set `server_name`"
        }
        ErrorClass::TlsExpired => {
            "the server's certificate is expired or not yet valid (check the server, and this \
             machine's clock)"
        }
        ErrorClass::TlsProtocol => {
            "the TLS handshake failed: is the target really https (and http2 only if it speaks \
             it)? A server asking for a client certificate needs `client_cert` and `client_key`"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_have_their_own_classes() {
        let cert = |c| rustls::Error::InvalidCertificate(c);
        assert_eq!(
            classify_rustls(&cert(CertificateError::UnknownIssuer)),
            ErrorClass::TlsUnknownIssuer
        );
        assert_eq!(
            classify_rustls(&cert(CertificateError::BadSignature)),
            ErrorClass::TlsUnknownIssuer
        );
        assert_eq!(
            classify_rustls(&cert(CertificateError::NotValidForName)),
            ErrorClass::TlsBadName
        );
        assert_eq!(
            classify_rustls(&cert(CertificateError::Expired)),
            ErrorClass::TlsExpired
        );
        assert_eq!(
            classify_rustls(&rustls::Error::HandshakeNotComplete),
            ErrorClass::TlsProtocol
        );
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            cert(CertificateError::UnknownIssuer),
        );
        assert_eq!(classify(&io), Some(ErrorClass::TlsUnknownIssuer));
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::ConnectionReset)),
            None
        );
        assert!(hint(ErrorClass::TlsUnknownIssuer).contains("SSL_CERT_FILE"));
    }

    #[test]
    fn setup_errors_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsOptions {
            ca_file: Some(dir.path().join("nope.pem")),
            ..TlsOptions::default()
        };
        let e = missing.client_config(Alpn::Http1).unwrap_err().to_string();
        assert!(e.contains("CA file") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsOptions {
            ca_file: Some(empty),
            ..TlsOptions::default()
        }
        .client_config(Alpn::Http1)
        .unwrap_err()
        .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let half = TlsOptions {
            client_cert: Some(dir.path().join("c.pem")),
            insecure: true,
            ..TlsOptions::default()
        };
        let e = half.client_config(Alpn::Http1).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let config = insecure.client_config(Alpn::Http2).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(insecure.server_name("bad name!").is_err());
        assert!(insecure.server_name("127.0.0.1").is_ok());
    }
}
