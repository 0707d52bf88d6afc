//! Integration tests of the sandbox load balancer against in-process hyper backends.
//! Everything binds and connects to 127.0.0.1 only; every loop is bounded in count and time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shakedown::sandbox::lb::{
    Balancer, BalancerConfig, HealthCheck, LbError, TargetState, TargetStatus, UPSTREAM_HEADER,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Test data: a deterministic byte pattern and a streaming digest (length + FNV-1a 64).

fn pattern_chunk(index: usize, len: usize) -> Bytes {
    let seed = index.wrapping_mul(0x9E37_79B9);
    (0..len)
        .map(|j| (seed.wrapping_add(j.wrapping_mul(31)) ^ (j >> 7)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    len: u64,
    fnv: u64,
}

impl Digest {
    fn new() -> Self {
        Digest {
            len: 0,
            fnv: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        for &b in data {
            self.fnv = (self.fnv ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of_pattern(total: usize) -> Self {
        let mut d = Digest::new();
        for (i, start) in (0..total).step_by(CHUNK).enumerate() {
            d.update(&pattern_chunk(i, CHUNK.min(total - start)));
        }
        d
    }

    fn to_text(self) -> String {
        format!("{} {:016x}", self.len, self.fnv)
    }
}

// ---------------------------------------------------------------------------------------------
// Backends.

type BackendBody = UnsyncBoxBody<Bytes, io::Error>;

struct BackendState {
    id: String,
    health_hits: AtomicU64,
    health_ok: AtomicBool,
    upload_started: Notify,
    download_gate: Notify,
}

/// An in-process web instance: `/health` -> 200 (or 503 when told), `/slow?ms=N`,
/// `/headers` (JSON of request headers), `POST /upload` (streamed digest),
/// `/download?bytes=N` (streamed, gated after the first chunk), anything else -> its id.
struct Backend {
    state: Arc<BackendState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Backend {
    async fn start(id: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let state = Arc::new(BackendState {
            id: id.to_string(),
            health_hits: AtomicU64::new(0),
            health_ok: AtomicBool::new(true),
            upload_started: Notify::new(),
            download_gate: Notify::new(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Backend { state, addr, task }
    }

    fn id(&self) -> &str {
        &self.state.id
    }

    fn health_hits(&self) -> u64 {
        self.state.health_hits.load(Ordering::SeqCst)
    }

    /// Aborts the accept loop; dropping it closes the listener and aborts every connection,
    /// so the port refuses new connections and pooled ones see EOF.
    async fn kill(&self) {
        self.task.abort();
        while !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<BackendState>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        while connections.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |req| backend_handle(Arc::clone(&state), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<BackendBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

async fn backend_handle(
    state: Arc<BackendState>,
    req: Request<Incoming>,
) -> Result<Response<BackendBody>, Infallible> {
    let response = match req.uri().path() {
        "/health" => {
            state.health_hits.fetch_add(1, Ordering::SeqCst);
            if state.health_ok.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ok".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "sick".into())
            }
        }
        "/slow" => {
            let ms = query_param(&req, "ms").unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, state.id.clone())
        }
        "/headers" => {
            let map: HashMap<String, String> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                .collect();
            text(StatusCode::OK, serde_json::to_string(&map).expect("json"))
        }
        "/upload" => upload(&state, req.into_body()).await,
        "/download" => download(Arc::clone(&state), query_param(&req, "bytes").unwrap_or(0)),
        _ => text(StatusCode::OK, state.id.clone()),
    };
    Ok(response)
}

async fn upload(state: &BackendState, mut body: Incoming) -> Response<BackendBody> {
    let mut digest = Digest::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return text(StatusCode::BAD_REQUEST, "body error".into());
        };
        if let Ok(data) = frame.into_data() {
            if digest.len == 0 && !data.is_empty() {
                state.upload_started.notify_one();
            }
            digest.update(&data);
        }
    }
    text(StatusCode::OK, digest.to_text())
}

/// Streams `total` pattern bytes; after the first chunk, waits for the client to signal it
/// has received it (so a proxy that buffers whole responses would deadlock).
fn download(state: Arc<BackendState>, total: u64) -> Response<BackendBody> {
    let total = usize::try_from(total).expect("size");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(2);
    tokio::spawn(async move {
        for (i, start) in (0..total).step_by(CHUNK).enumerate() {
            if i == 1 {
                let gate =
                    tokio::time::timeout(Duration::from_secs(10), state.download_gate.notified());
                if gate.await.is_err() {
                    let _ = tx
                        .send(Err(io::Error::other("client never saw chunk 0")))
                        .await;
                    return;
                }
            }
            let chunk = pattern_chunk(i, CHUNK.min(total - start));
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::new(StreamBody::new(stream).boxed_unsync())
}

// ---------------------------------------------------------------------------------------------
// Balancer harness.

struct Lb {
    balancer: Arc<Balancer>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Lb {
    async fn start(config: BalancerConfig, backends: &[&Backend]) -> Lb {
        let balancer = Balancer::new(config);
        for b in backends {
            balancer.register(b.id(), b.addr).expect("register");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind lb");
        let addr = listener.local_addr().expect("lb addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(Arc::clone(&balancer).serve(listener, async {
            let _ = stopped.await;
        }));
        Lb {
            balancer,
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn status(&self, id: &str) -> Option<TargetStatus> {
        self.balancer.targets().into_iter().find(|t| t.id == id)
    }

    /// Polls every 5 ms until `id` is in `state`; panics after `within`.
    async fn wait_state(&self, id: &str, state: TargetState, within: Duration) {
        let deadline = Instant::now() + within;
        while self.status(id).map(|t| t.state) != Some(state) {
            assert!(
                Instant::now() < deadline,
                "{id} not {state} within {within:?}: {:?}",
                self.status(id)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
    }
}

fn fast_checks() -> HealthCheck {
    HealthCheck {
        path: "/health".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(200),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    }
}

fn config(health: Option<HealthCheck>) -> BalancerConfig {
    BalancerConfig {
        health,
        retry_idempotent: false,
        drain_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        routes: Vec::new(),
    }
}

fn client() -> reqwest::Client {
    shakedown::tls::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// GET `url`; returns status and the `x-shakedown-upstream` header ("" when absent).
async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client
        .get(url)
        .send()
        .await
        .expect("request reaches the lb");
    let status = response.status();
    let upstream = response
        .headers()
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.text().await.expect("body");
    if status == StatusCode::OK && !url.contains("/headers") {
        assert_eq!(body, upstream, "body names the backend that answered");
    }
    (status, upstream)
}

async fn all_healthy(lb: &Lb, backends: &[&Backend]) {
    for b in backends {
        lb.wait_state(b.id(), TargetState::Healthy, Duration::from_secs(3))
            .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_across_three_backends() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let lb = Lb::start(config(Some(fast_checks())), &[&a, &b, &c]).await;
    all_healthy(&lb, &[&a, &b, &c]).await;
    let http = client();
    let mut seen = Vec::new();
    for _ in 0..30 {
        let (status, upstream) = get(&http, &lb.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        seen.push(upstream);
    }
    for window in seen.windows(3) {
        let mut w = window.to_vec();
        w.sort();
        assert_eq!(w, ["a", "b", "c"], "round robin order broken: {seen:?}");
    }
    for t in lb.balancer.targets() {
        assert_eq!(t.requests, 10, "{t:?}");
        assert_eq!(t.in_flight, 0);
    }
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_leaves_rotation_within_health_check_bounds() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let checks = fast_checks();
    let bound = checks.interval * checks.unhealthy_threshold + checks.timeout;
    let slack = Duration::from_millis(600);
    let lb = Lb::start(config(Some(checks)), &[&a, &b, &c]).await;
    all_healthy(&lb, &[&a, &b, &c]).await;

    // ~50 req/s for 3 s; `c` dies after 1 s.
    let http = client();
    let mut pacer = tokio::time::interval(Duration::from_millis(20));
    let mut results: Vec<(Instant, StatusCode, String)> = Vec::new();
    let mut killed: Option<(Instant, SystemTime)> = None;
    let test_end = Instant::now() + Duration::from_secs(10);
    for i in 0..150 {
        pacer.tick().await;
        if i == 50 {
            c.kill().await;
            killed = Some((Instant::now(), SystemTime::now()));
        }
        let started = Instant::now();
        let (status, upstream) = get(&http, &lb.url("/")).await;
        results.push((started, status, upstream));
        assert!(Instant::now() < test_end, "steady loop overran");
    }
    let (killed_at, killed_wall) = killed.expect("kill happened");

    let status = lb.status("c").expect("c still registered");
    assert_eq!(status.state, TargetState::Unhealthy, "{status:?}");
    assert!(status.reason.contains("failed"), "{}", status.reason);
    let detection = status
        .since
        .duration_since(killed_wall)
        .expect("transition after the kill");
    println!("failover: c left rotation {detection:?} after death (bound {bound:?})");
    assert!(
        detection <= bound + slack,
        "took {detection:?}, bound {bound:?}"
    );

    let out_at = killed_at + detection;
    let after: Vec<_> = results.iter().filter(|(t, ..)| *t > out_at).collect();
    assert!(
        after.len() >= 50,
        "too few requests after failover: {}",
        after.len()
    );
    for (_, status, upstream) in &after {
        assert_eq!(
            *status,
            StatusCode::OK,
            "request failed after failover ({upstream})"
        );
        assert_ne!(upstream, "c");
    }
    let failed = results
        .iter()
        .filter(|(_, s, _)| *s != StatusCode::OK)
        .count();
    println!(
        "failover: {failed} of {} requests failed in the detection window",
        results.len()
    );
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_health_checks_the_dead_backend_keeps_its_share_of_failures() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let lb = Lb::start(config(None), &[&a, &b, &c]).await;
    for t in lb.balancer.targets() {
        assert_eq!(t.state, TargetState::Healthy, "in rotation at once: {t:?}");
    }
    c.kill().await;
    let http = client();
    for batch in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut failures = 0;
        for _ in 0..30 {
            let (status, upstream) = get(&http, &lb.url("/")).await;
            if status == StatusCode::BAD_GATEWAY {
                assert_eq!(upstream, "c", "502 names the dead target");
                failures += 1;
            } else {
                assert_eq!(status, StatusCode::OK);
                assert_ne!(upstream, "c");
            }
        }
        assert_eq!(
            failures, 10,
            "batch {batch}: the dead target's third of requests fails"
        );
    }
    let c_status = lb.status("c").expect("c registered");
    assert_eq!(c_status.state, TargetState::Healthy);
    assert_eq!(c_status.failures, 20);
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_target_joins_only_after_healthy_threshold_and_flaps_with_its_health() {
    let a = Backend::start("a").await;
    let n = Backend::start("n").await;
    let checks = HealthCheck {
        healthy_threshold: 3,
        ..fast_checks()
    };
    let lb = Lb::start(config(Some(checks)), &[&a]).await;
    all_healthy(&lb, &[&a]).await;
    let mut changes = lb.balancer.subscribe();
    changes.mark_unchanged();

    lb.balancer.register("n", n.addr).expect("register n");
    assert_eq!(
        lb.balancer.register("n", n.addr),
        Err(LbError::DuplicateTarget("n".into()))
    );
    assert_eq!(lb.status("n").map(|t| t.state), Some(TargetState::Initial));
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut checked_while_initial = 0;
    loop {
        let (status, upstream) = get(&http, &lb.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        let state = lb.status("n").map(|t| t.state);
        if state == Some(TargetState::Initial) {
            assert_eq!(upstream, "a", "an initial target got traffic");
            checked_while_initial += 1;
            assert!(
                n.health_hits() < 4,
                "still initial after {} checks",
                n.health_hits()
            );
        } else {
            assert_eq!(state, Some(TargetState::Healthy));
            assert!(
                n.health_hits() >= 3,
                "joined after {} checks",
                n.health_hits()
            );
            break;
        }
        assert!(Instant::now() < deadline, "n never joined");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(checked_while_initial > 0);
    assert!(
        changes.has_changed().expect("sender alive"),
        "subscribers see changes"
    );
    let json = lb.balancer.targets_json();
    let entry = &json["targets"][1];
    assert_eq!(entry["id"], "n");
    assert_eq!(entry["state"], "healthy");
    assert_eq!(entry["reason"], "3 consecutive health checks passed");
    assert!(entry["since_ms"].as_u64().expect("since_ms") > 1_600_000_000_000);

    n.state.health_ok.store(false, Ordering::SeqCst);
    lb.wait_state("n", TargetState::Unhealthy, Duration::from_secs(2))
        .await;
    let reason = lb.status("n").expect("n").reason;
    assert!(reason.contains("status 503"), "{reason}");
    n.state.health_ok.store(true, Ordering::SeqCst);
    lb.wait_state("n", TargetState::Healthy, Duration::from_secs(2))
        .await;
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_drains_in_flight_requests_and_stops_checks() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let lb = Lb::start(config(Some(fast_checks())), &[&a]).await;
    all_healthy(&lb, &[&a]).await;
    let http = client();
    let slow = tokio::spawn({
        let (http, url) = (http.clone(), lb.url("/slow?ms=800"));
        async move { get(&http, &url).await }
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while lb.status("a").expect("a").in_flight != 1 {
        assert!(Instant::now() < deadline, "slow request never reached a");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lb.balancer.register("b", b.addr).expect("register b");
    lb.wait_state("b", TargetState::Healthy, Duration::from_secs(2))
        .await;

    lb.balancer.deregister("a").expect("deregister a");
    let hits_at_deregistration = a.health_hits();
    assert_eq!(lb.status("a").map(|t| t.state), Some(TargetState::Draining));
    assert_eq!(
        lb.balancer.deregister("a"),
        Err(LbError::UnknownTarget("a".into()))
    );
    for _ in 0..6 {
        assert_eq!(get(&http, &lb.url("/")).await, (StatusCode::OK, "b".into()));
    }
    assert_eq!(slow.await.expect("slow task"), (StatusCode::OK, "a".into()));
    let deadline = Instant::now() + Duration::from_secs(1);
    while lb.status("a").is_some() {
        assert!(Instant::now() < deadline, "drained target not removed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        a.health_hits() <= hits_at_deregistration + 1,
        "health checks continued after deregistration"
    );
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_removes_a_busy_target() {
    let a = Backend::start("a").await;
    let lb = Lb::start(
        BalancerConfig {
            drain_timeout: Duration::from_millis(200),
            ..config(None)
        },
        &[&a],
    )
    .await;
    let http = client();
    let slow = tokio::spawn({
        let (http, url) = (http.clone(), lb.url("/slow?ms=2000"));
        async move { http.get(&url).send().await.map(|r| r.status()) }
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while lb.status("a").expect("a").in_flight != 1 {
        assert!(Instant::now() < deadline, "slow request never reached a");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    lb.balancer.deregister("a").expect("deregister");
    while lb.status("a").is_some() {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "not removed at drain timeout"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert!(
        !slow.is_finished(),
        "removed because of the timeout, not completion"
    );
    slow.abort();
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_target_gives_503() {
    let http = client();
    let empty = Lb::start(config(Some(fast_checks())), &[]).await;
    let response = http.get(empty.url("/")).send().await.expect("lb answers");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("no healthy target")
    );
    empty.shutdown().await.expect("clean shutdown");

    let a = Backend::start("a").await;
    let lb = Lb::start(config(Some(fast_checks())), &[&a]).await;
    all_healthy(&lb, &[&a]).await;
    a.kill().await;
    lb.wait_state("a", TargetState::Unhealthy, Duration::from_secs(2))
        .await;
    assert_eq!(
        get(&http, &lb.url("/")).await,
        (StatusCode::SERVICE_UNAVAILABLE, String::new())
    );
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_timeout_gives_504() {
    let a = Backend::start("a").await;
    let lb = Lb::start(
        BalancerConfig {
            request_timeout: Duration::from_millis(300),
            ..config(None)
        },
        &[&a],
    )
    .await;
    let started = Instant::now();
    let (status, upstream) = get(&client(), &lb.url("/slow?ms=3000")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, upstream.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "a")
    );
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let a_status = lb.status("a").expect("a");
    assert_eq!((a_status.failures, a_status.in_flight), (1, 0));
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_20_mib_streams_through_byte_exact() {
    let a = Backend::start("a").await;
    let lb = Lb::start(config(None), &[&a]).await;
    let total = 20 * MIB;
    let state = Arc::clone(&a.state);
    // The second chunk is only produced once the backend has seen the first: a proxy that
    // buffered the request body before forwarding it would never deliver, and this times out.
    let chunks = futures::stream::unfold(0usize, move |i| {
        let state = Arc::clone(&state);
        async move {
            let start = i * CHUNK;
            if start >= total {
                return None;
            }
            if i == 1 {
                let seen =
                    tokio::time::timeout(Duration::from_secs(10), state.upload_started.notified());
                if seen.await.is_err() {
                    return Some((Err(io::Error::other("backend never saw chunk 0")), i + 1));
                }
            }
            Some((
                Ok::<_, io::Error>(pattern_chunk(i, CHUNK.min(total - start))),
                i + 1,
            ))
        }
    });
    let response = client()
        .post(lb.url("/upload"))
        .header("content-length", total.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload through the lb");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.expect("body"),
        Digest::of_pattern(total).to_text()
    );
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_of_20_mib_streams_through_byte_exact() {
    let a = Backend::start("a").await;
    let lb = Lb::start(config(None), &[&a]).await;
    let total = 20 * MIB;
    let mut response = client()
        .get(lb.url(&format!("/download?bytes={total}")))
        .send()
        .await
        .expect("download through the lb");
    assert_eq!(response.status(), StatusCode::OK);
    let mut digest = Digest::new();
    // The backend sends the rest only after we have the first bytes (see `download`).
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.expect("body streams") {
        if digest.len == 0 {
            a.state.download_gate.notify_one();
        }
        digest.update(&chunk);
        chunks += 1;
        assert!(chunks < 100_000, "runaway body");
    }
    assert_eq!(digest, Digest::of_pattern(total));
    assert_eq!(
        lb.status("a").expect("a").in_flight,
        0,
        "guard released at body end"
    );
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_idempotent_turns_a_dead_backend_into_success() {
    // Checks so slow that the dead backend stays `healthy` during the test.
    let lazy_checks = HealthCheck {
        interval: Duration::from_secs(60),
        healthy_threshold: 1,
        ..fast_checks()
    };
    for retry in [true, false] {
        let (a, b, c) = (
            Backend::start("a").await,
            Backend::start("b").await,
            Backend::start("c").await,
        );
        let lb = Lb::start(
            BalancerConfig {
                retry_idempotent: retry,
                ..config(Some(lazy_checks.clone()))
            },
            &[&a, &b, &c],
        )
        .await;
        all_healthy(&lb, &[&a, &b, &c]).await;
        let http = client();
        for _ in 0..6 {
            assert_eq!(get(&http, &lb.url("/")).await.0, StatusCode::OK, "warm-up");
        }
        b.kill().await;
        let mut failures = 0;
        for _ in 0..12 {
            let (status, upstream) = get(&http, &lb.url("/")).await;
            if status == StatusCode::OK {
                assert_ne!(upstream, "b");
            } else {
                assert_eq!((status, upstream.as_str()), (StatusCode::BAD_GATEWAY, "b"));
                failures += 1;
            }
        }
        assert_eq!(lb.status("b").map(|t| t.state), Some(TargetState::Healthy));
        assert!(lb.status("b").expect("b").failures >= 1, "b was tried");
        if retry {
            assert_eq!(failures, 0, "retries hide the dead target");
        } else {
            assert_eq!(failures, 4, "without retry, b's share fails");
        }
        lb.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_rewritten_like_a_reverse_proxy() {
    let a = Backend::start("a").await;
    let lb = Lb::start(config(None), &[&a]).await;
    let response = client()
        .get(lb.url("/headers?x=1"))
        .header("host", "shop.example")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .header("x-app", "kept")
        .header("x-forwarded-for", "192.0.2.9")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers().get(UPSTREAM_HEADER).unwrap(), "a");
    let seen: HashMap<String, String> = response.json().await.expect("json");
    assert_eq!(seen.get("host").map(String::as_str), Some("shop.example"));
    assert_eq!(seen.get("x-app").map(String::as_str), Some("kept"));
    assert_eq!(
        seen.get("x-forwarded-for").map(String::as_str),
        Some("192.0.2.9, 127.0.0.1")
    );
    assert_eq!(
        seen.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
    assert!(!seen.contains_key("x-hop"), "{seen:?}");
    lb.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_stops_health_checks() {
    let a = Backend::start("a").await;
    let lb = Lb::start(config(Some(fast_checks())), &[&a]).await;
    all_healthy(&lb, &[&a]).await;
    let http = client();
    let slow = tokio::spawn({
        let (http, url) = (http.clone(), lb.url("/slow?ms=600"));
        async move { get(&http, &url).await }
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while lb.status("a").expect("a").in_flight != 1 {
        assert!(Instant::now() < deadline, "slow request never reached a");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = lb.addr;
    lb.shutdown().await.expect("clean shutdown");
    assert_eq!(slow.await.expect("slow task"), (StatusCode::OK, "a".into()));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
    let hits = a.health_hits();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(a.health_hits(), hits, "health checks outlived serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_overhead_on_a_trivial_request() {
    let a = Backend::start("a").await;
    let lb = Lb::start(config(None), &[&a]).await;
    let http = client();
    let direct = format!("http://{}/", a.addr);
    let proxied = lb.url("/");
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let measure = async |url: &str| {
        for _ in 0..20 {
            http.get(url).send().await.expect("warm-up");
        }
        let mut samples = Vec::with_capacity(300);
        for _ in 0..300 {
            let t = Instant::now();
            let response = http.get(url).send().await.expect("request");
            response.bytes().await.expect("body");
            samples.push(t.elapsed());
        }
        samples
    };
    let direct_median = median(&mut measure(&direct).await);
    let proxied_median = median(&mut measure(&proxied).await);
    println!(
        "proxy overhead: direct median {direct_median:?}, via lb median {proxied_median:?}, \
         added {:?}",
        proxied_median.saturating_sub(direct_median)
    );
    assert!(
        proxied_median < Duration::from_millis(100),
        "{proxied_median:?}"
    );
    lb.shutdown().await.expect("clean shutdown");
}
