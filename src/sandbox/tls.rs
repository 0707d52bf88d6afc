//! Certificates made at run time: a certificate authority for one sandbox (or one test),
//! and server certificates it signs, so that https runs end to end without leaving the
//! machine. The balancer listens with one when the sandbox's `tls = true`; the CA's PEM file
//! is written to the sandbox's run directory and printed with the endpoints, for clients to
//! trust (`ca_file`, `--ca-file`, `SSL_CERT_FILE`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The names a sandbox server certificate is for.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate authority made for one run.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A server certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Certificate generation failed.
#[derive(Debug, thiserror::Error)]
#[error("generating a certificate: {0}")]
pub struct CertError(String);

fn err(e: impl std::fmt::Display) -> CertError {
    CertError(e.to_string())
}

impl Authority {
    /// A new CA named `name`, valid from a day ago for ten years.
    pub fn new(name: &str) -> Result<Authority, CertError> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, -86_400, 10 * 365 * 86_400);
        let ca_pem = params.self_signed(&key).map_err(err)?.pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            ca_pem,
        })
    }

    /// The CA's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid now.
    pub fn issue(&self, names: &[&str]) -> Result<Issued, CertError> {
        self.issue_valid(names, -3600, 365 * 86_400)
    }

    /// A server certificate valid from `from_s` to `until_s` seconds from now (negative:
    /// in the past; tests make expired ones this way).
    pub fn issue_valid(
        &self,
        names: &[&str],
        from_s: i64,
        until_s: i64,
    ) -> Result<Issued, CertError> {
        let key = KeyPair::generate().map_err(err)?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "shakedown sandbox server");
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, from_s, until_s);
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Authority {
    /// A client certificate (mutual TLS) for `name`, valid now.
    pub fn issue_client(&self, name: &str) -> Result<Issued, CertError> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, -3600, 365 * 86_400);
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Sets the validity window relative to now.
fn validity(params: &mut CertificateParams, from_s: i64, until_s: i64) {
    let now = std::time::SystemTime::now();
    let at = |s: i64| {
        let t = if s >= 0 {
            now + Duration::from_secs(s as u64)
        } else {
            now - Duration::from_secs(s.unsigned_abs())
        };
        rcgen::date_time_ymd(1970, 1, 1) + time_since_epoch(t)
    };
    params.not_before = at(from_s);
    params.not_after = at(until_s);
}

fn time_since_epoch(t: std::time::SystemTime) -> Duration {
    t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

impl Issued {
    /// A rustls server configuration presenting this certificate, offering HTTP/2 and
    /// HTTP/1.1 (ALPN).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, CertError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(err)?;
        let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(err)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The sandbox's TLS: a fresh CA, its PEM written to `dir/ca.pem`, and the balancer's
/// server configuration for [`LOCAL_NAMES`].
pub fn sandbox_tls(dir: &Path) -> Result<(std::path::PathBuf, Arc<ServerConfig>), CertError> {
    let ca = Authority::new("shakedown sandbox CA")?;
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.ca_pem()).map_err(err)?;
    let config = ca.issue(&LOCAL_NAMES)?.server_config()?;
    Ok((path, config))
}
