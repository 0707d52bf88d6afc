//! https and HTTP/2 targets: trust (a CA file, `SSL_CERT_FILE`, `--insecure`), each TLS
//! failure in its own class with its hint, handshake times and resumption, a connection per
//! request, and HTTP/2 multiplexing. Every server is a local one with certificates made for
//! the test.

use std::sync::atomic::Ordering;

use shakedown::cmd::Outcome;
use shakedown::sandbox::tls::Authority;
use shakedown::tls::TlsOptions;

use super::support::cli::{shakedown, text};
use super::support::tls::{ServerOptions, TlsSeen, authority, tls_server, tls_server_with};
use super::{load, only};

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// `load --target https://<addr> --ca-file <ca> <rest>` (the CA trusted that way).
async fn load_https(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    rest: &[&str],
) -> (
    Outcome,
    shakedown::results::RunMeta,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let url = format!("https://{addr}");
    let mut args = vec!["--target", url.as_str(), "--ca-file", ca.to_str().unwrap()];
    args.extend_from_slice(rest);
    load(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_makes_an_https_target_trusted_and_handshakes_are_timed() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let (addr, seen) = tls_server(&issued).await;
    let (outcome, meta, run, _keep) =
        load_https(addr, &ca, &["--rate", "100/s", "--duration", "2s"]).await;
    assert_eq!(outcome, Outcome::Ok);
    let s = only(&meta);
    assert_eq!((s.sent, s.ok), (200, 200), "{:?}", s.errors);
    assert_eq!(TlsSeen::get(&seen.http1_requests), 200);
    // Keep-alive: a handful of connections, each with a timed handshake.
    let c = s.connections.as_ref().expect("connections opened");
    let handshakes = TlsSeen::get(&seen.handshakes);
    assert_eq!(c.opened, handshakes);
    assert!(c.opened >= 1 && c.opened < 50, "{c:?}");
    let tls = c.tls_handshake_ms.as_ref().expect("handshake times");
    assert_eq!(tls.count, c.opened);
    assert!(tls.p50 > 0.0, "{tls:?}");
    // The timeline has the same connections, second by second.
    let csv = std::fs::read_to_string(run.join("timeline.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let connects: u64 = lines
        .map(|l| {
            l.split(',')
                .nth(col("connects"))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(connects, c.opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_its_own_error_class_with_a_hint_and_insecure_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let (addr, seen) = tls_server(&issued).await;
    let url = format!("https://{addr}");
    // Neither the system's roots nor another CA given have the test's CA: every request
    // fails the handshake. (The other CA keeps the trust store non-empty on a machine
    // without system roots; it has the same name as the test's, which is also "unknown
    // issuer": the wrong CA file.)
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = authority(other.path(), &NAMES, -60, 3600);
    let out = shakedown()
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["load", "--quiet", "--results"])
        .arg(dir.path().join("r1"))
        .args([
            "--target",
            &url,
            "--rate",
            "20/s",
            "--duration",
            "1s",
            "--ca-file",
        ])
        .arg(&other_ca)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("tls_unknown_issuer=20"), "{t}");
    assert!(t.contains("hint (tls_unknown_issuer)"), "{t}");
    assert!(t.contains("--ca-file"), "{t}");
    assert_eq!(TlsSeen::get(&seen.http1_requests), 0);
    // --insecure: accepted as it is.
    let (outcome, meta, ..) = load(&[
        "--target",
        &url,
        "--insecure",
        "--rate",
        "20/s",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(only(&meta).ok, 20, "{:?}", only(&meta).errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_cert_file_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let (addr, _seen) = tls_server(&issued).await;
    let out = shakedown()
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR")
        .args(["load", "--quiet", "--results"])
        .arg(dir.path().join("r"))
        .args([
            "--target",
            &format!("https://{addr}"),
            "--rate",
            "20/s",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains("get: errors"), "{t}");
    assert!(t.contains("TLS handshake p50"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_name_and_an_expired_certificate_have_their_own_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other_name) = authority(dir.path(), &["other.example"], -60, 3600);
    let (addr, _) = tls_server(&other_name).await;
    let ca = ca.to_str().unwrap().to_owned();
    let (_, meta, ..) = load_https(
        addr,
        std::path::Path::new(&ca),
        &["--rate", "10/s", "--duration", "1s"],
    )
    .await;
    assert_eq!(
        only(&meta).errors.get("tls_bad_name"),
        Some(&10),
        "{:?}",
        only(&meta).errors
    );
    // The right name through --server-name (SNI and the name checked).
    let (_, meta, ..) = load_https(
        addr,
        std::path::Path::new(&ca),
        &[
            "--server-name",
            "other.example",
            "--rate",
            "10/s",
            "--duration",
            "1s",
        ],
    )
    .await;
    assert_eq!(only(&meta).ok, 10, "{:?}", only(&meta).errors);

    let dir = tempfile::tempdir().unwrap();
    let (ca, expired) = authority(dir.path(), &NAMES, -7200, -3600);
    let (addr, _) = tls_server(&expired).await;
    let (_, meta, ..) = load_https(addr, &ca, &["--rate", "10/s", "--duration", "1s"]).await;
    assert_eq!(
        only(&meta).errors.get("tls_expired"),
        Some(&10),
        "{:?}",
        only(&meta).errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_per_request_resumes_tls_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let (addr, seen) = tls_server(&issued).await;
    let (outcome, meta, ..) = load_https(
        addr,
        &ca,
        &["--no-keep-alive", "--rate", "50/s", "--duration", "2s"],
    )
    .await;
    assert_eq!(outcome, Outcome::Ok);
    let s = only(&meta);
    assert_eq!(s.ok, 100, "{:?}", s.errors);
    let c = s.connections.as_ref().unwrap();
    assert_eq!(c.opened, 100, "one connection per request");
    assert_eq!(TlsSeen::get(&seen.handshakes), 100);
    // After the first full handshakes, the client resumes (and both sides agree on how often).
    assert!(c.tls_resumed >= 50, "{c:?}");
    assert_eq!(c.tls_resumed, seen.resumed.load(Ordering::Relaxed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexes_requests_over_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let (addr, seen) = tls_server(&issued).await;
    let (outcome, meta, ..) = load_https(
        addr,
        &ca,
        &[
            "--http2",
            "--concurrency",
            "20",
            "--requests",
            "400",
            "--duration",
            "20s",
        ],
    )
    .await;
    assert_eq!(outcome, Outcome::Ok);
    let s = only(&meta);
    assert_eq!(s.ok, 400, "{:?}", s.errors);
    assert_eq!(TlsSeen::get(&seen.http2_requests), 400);
    assert_eq!(TlsSeen::get(&seen.http1_requests), 0);
    // 20 at once fit the server's stream limit: one connection.
    assert_eq!(s.connections.as_ref().unwrap().opened, 1);
    assert_eq!(TlsSeen::get(&seen.handshakes), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_asks_for_a_client_certificate_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("shakedown test CA").unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let server = ca.issue(&NAMES).unwrap();
    let client = ca.issue_client("loadgen").unwrap();
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, &client.key_pem).unwrap();
    let opts = ServerOptions {
        client_ca: Some(ca.ca_pem().to_owned()),
        ..ServerOptions::default()
    };
    let (addr, seen) = tls_server_with(&server, opts).await;
    // Without one: refused in the handshake, a TLS failure with the hint that says so.
    let (_, meta, ..) = load_https(addr, &ca_file, &["--rate", "10/s", "--duration", "1s"]).await;
    let s = only(&meta);
    assert_eq!(s.ok, 0);
    assert_eq!(s.errors.get("tls_protocol"), Some(&10), "{:?}", s.errors);
    assert!(
        shakedown::tls::hint(shakedown::metrics::ErrorClass::TlsProtocol).contains("client_cert")
    );
    // With it: every request served.
    let (outcome, meta, ..) = load_https(
        addr,
        &ca_file,
        &[
            "--client-cert",
            cert.to_str().unwrap(),
            "--client-key",
            key.to_str().unwrap(),
            "--rate",
            "10/s",
            "--duration",
            "1s",
        ],
    )
    .await;
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(only(&meta).ok, 10, "{:?}", only(&meta).errors);
    assert_eq!(TlsSeen::get(&seen.http1_requests), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_opens_a_connection_per_stream_limit_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let opts = ServerOptions {
        h2_max_streams: Some(10),
        ..ServerOptions::default()
    };
    let (addr, seen) = tls_server_with(&issued, opts).await;
    let (outcome, meta, ..) = load_https(
        addr,
        &ca,
        &[
            "--http2",
            "--concurrency",
            "25",
            "--requests",
            "500",
            "--duration",
            "20s",
        ],
    )
    .await;
    assert_eq!(outcome, Outcome::Ok);
    let s = only(&meta);
    assert_eq!(s.ok, 500, "{:?}", s.errors);
    assert_eq!(TlsSeen::get(&seen.http2_requests), 500);
    // Up to 25 at once, 10 streams per connection: a new connection only when every open
    // one is full, so never more than three; and more than one, since the server refuses
    // streams over its limit (none was: all 500 ok) and 25 lanes start together. Whether
    // 21 or more requests were ever in flight at one instant (a third connection) depends
    // on how fast the first ones complete.
    let opened = s.connections.as_ref().unwrap().opened;
    assert!((2..=3).contains(&opened), "{opened} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_read_https_with_the_runs_trust() {
    use shakedown::probe::spec::{HttpProbe, ProbeKind};
    use shakedown::probe::{ProbeContext, Prober};
    let dir = tempfile::tempdir().unwrap();
    let (ca, issued) = authority(dir.path(), &NAMES, -60, 3600);
    let opts = ServerOptions {
        body: Some(r#"{"depth": 7}"#),
        ..ServerOptions::default()
    };
    let (addr, _) = tls_server_with(&issued, opts).await;
    let kind = ProbeKind::Http(HttpProbe {
        url: format!("https://{addr}/stats"),
        pointer: "/depth".into(),
    });
    let ctx = |tls: &TlsOptions| ProbeContext {
        aws: None,
        control_url: None,
        http: shakedown::tls::http_client(tls, std::time::Duration::from_secs(5)).unwrap(),
    };
    let trusted = TlsOptions {
        ca_file: Some(ca),
        ..TlsOptions::default()
    };
    let value = Prober::new(&kind, &ctx(&trusted))
        .unwrap()
        .sample()
        .await
        .unwrap();
    assert_eq!(value, 7.0);
    // Not trusted (a CA of another name, besides the system's roots, if any): the sample
    // fails, naming the certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other.pem");
    std::fs::write(&other_ca, Authority::new("another CA").unwrap().ca_pem()).unwrap();
    let untrusted = TlsOptions {
        ca_file: Some(other_ca),
        ..TlsOptions::default()
    };
    let err = Prober::new(&kind, &ctx(&untrusted))
        .unwrap()
        .sample()
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );
}

#[test]
fn the_sandbox_serves_https_and_http2_with_a_ca_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("events.toml");
    std::fs::write(
        &profile,
        "name = \"p\"\n[[stream]]\nname = \"ev\"\nkind = \"event\"\nrequest = { method = \"POST\", path = \"/events\" }\nbody = { template = '{\"id\":\"{id}\"}' }\nstages = [ { for = \"2s\", rate = \"20/s\" } ]\n",
    )
    .unwrap();
    for extra in [&[][..], &["--http2"][..]] {
        let out = shakedown()
            .args(["load", "--quiet", "--sandbox", "--tls", "--results"])
            .arg(dir.path())
            .arg(&profile)
            .args(extra)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert!(t.contains("sandbox CA (trusted for this run):"), "{t}");
        assert!(t.contains("-> https://127.0.0.1:"), "{t}");
        assert!(!t.contains(": errors"), "{t}");
        assert!(t.contains("TLS handshake p50"), "{t}");
    }
}
