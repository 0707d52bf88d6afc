//! The sandbox's HTTP load balancer (the ALB role): a streaming reverse proxy over the web
//! instances, with active health checks, connection draining and graceful shutdown.
//!
//! # Behaviour
//!
//! - **Routing**: the listener rules ([`routes`], `BalancerConfig::routes`) pick a target
//!   group by path prefix, first match wins, as ALB path rules do (no rule matches: `404`;
//!   no rules at all: every target is in one pool); then round robin over that group's
//!   targets in state `healthy`, in registration order. No healthy target: `503 Service
//!   Unavailable`.
//! - **Forwarding** (HTTP/1.1): method, path and query, headers (hop-by-hop headers are dropped,
//!   `host` is kept, the client address is appended to `x-forwarded-for`,
//!   `x-forwarded-proto: http` is set). Request and response bodies are streamed frame by frame,
//!   never buffered. Upstream connections are pooled and kept alive.
//! - **Errors**: the upstream cannot be reached or fails before answering: `502 Bad Gateway`;
//!   no response head within `request_timeout`: `504 Gateway Timeout`. With `retry_idempotent`,
//!   a body-less `GET`/`HEAD`/`OPTIONS`/`DELETE` that fails with a 502 cause is retried once on
//!   another healthy target (a timeout is not retried).
//! - Every response that involved a target carries `x-shakedown-upstream: <target id>`.
//! - **Health checks** (see [`HealthCheck`]): `GET <path>` on a fresh connection every
//!   `interval`; a 2xx within `timeout` passes. A target joins rotation after
//!   `healthy_threshold` consecutive passes and leaves it after `unhealthy_threshold`
//!   consecutive failures, so a dead target stops receiving new requests within
//!   `unhealthy_threshold x interval + timeout` of its death. Each transition is recorded
//!   (time and reason, see [`Balancer::targets`]) and logged with `tracing`.
//! - **No health checks** (`health: None`, the broken `no-health-checks` variant): every
//!   registered target is in rotation at once and stays there, dead or alive.
//! - **Draining**: [`Balancer::deregister`] takes a target out of rotation at once; it is
//!   removed when its in-flight requests end or `drain_timeout` passes, whichever is first.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use shakedown::sandbox::lb::{Balancer, BalancerConfig};
//! let lb = Balancer::new(BalancerConfig::default());
//! lb.register("web-1", "127.0.0.1:8081".parse().unwrap()).unwrap();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! lb.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod checker;
pub mod health;
mod proxy;
pub mod routes;
mod serve;
mod target;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use health::TargetState;
pub use proxy::UPSTREAM_HEADER;
pub use routes::{Route, Routed};
pub use target::TargetStatus;

use health::{HealthMachine, Thresholds};
use target::Target;

/// The target group of [`Balancer::register`].
pub const DEFAULT_GROUP: &str = "default";

/// Registered targets in registration order; shared with drain tasks (never with the
/// balancer itself, so tasks do not keep it alive).
type TargetList = Arc<RwLock<Vec<Arc<Target>>>>;

/// Active health-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path requested with `GET` (default `/health`).
    pub path: String,
    /// Time between the starts of two checks of one target (default 1 s).
    pub interval: Duration,
    /// A check with no complete 2xx answer within this time fails (default 500 ms).
    pub timeout: Duration,
    /// Consecutive passes that put a target into rotation (default 2; 0 acts as 1).
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out of rotation (default 2; 0 acts as 1).
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/health".to_string(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// Balancer settings. `BalancerConfig::default()` has health checks on with the defaults
/// of [`HealthCheck`], no retries, 5 s drain and 30 s request timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerConfig {
    /// Active health checks. `None` = no health checks at all (the broken `no-health-checks`
    /// variant): every registered target stays in rotation, dead or alive.
    pub health: Option<HealthCheck>,
    /// Retry a body-less `GET`/`HEAD`/`OPTIONS`/`DELETE` once on another healthy target when
    /// the first target could not be reached or failed before answering.
    pub retry_idempotent: bool,
    /// How long a deregistered target may keep serving its in-flight requests, and how long
    /// [`Balancer::serve`] waits for in-flight requests at shutdown (default 5 s).
    pub drain_timeout: Duration,
    /// Time allowed for an upstream's response head (default 30 s); past it: 504. Streaming
    /// the response body afterwards is not limited.
    pub request_timeout: Duration,
    /// Listener rules: path prefix -> target group, first match wins. Empty (the default):
    /// every target serves every path.
    pub routes: Vec<Route>,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            health: Some(HealthCheck::default()),
            retry_idempotent: false,
            drain_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            routes: Vec::new(),
        }
    }
}

/// Errors of the balancer's control operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LbError {
    /// [`Balancer::register`] with an id that is already registered (possibly draining).
    #[error("target {0:?} is already registered")]
    DuplicateTarget(String),
    /// [`Balancer::deregister`] with an id that is not registered, or already draining.
    #[error("target {0:?} is not registered")]
    UnknownTarget(String),
}

/// The load balancer. Create with [`Balancer::new`], add targets with [`Balancer::register`],
/// run with [`Balancer::serve`]. Health checks run from registration on, whether or not
/// `serve` runs; they stop when `serve` returns or the balancer is dropped.
pub struct Balancer {
    config: BalancerConfig,
    targets: TargetList,
    next: AtomicUsize,
    client: proxy::UpstreamClient,
    checks: Option<checker::CheckClient>,
    changes: Arc<watch::Sender<u64>>,
    root: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Balancer {
    /// A balancer with no targets.
    pub fn new(config: BalancerConfig) -> Arc<Balancer> {
        let checks = config.health.as_ref().map(checker::check_client);
        Arc::new(Balancer {
            config,
            targets: Arc::new(RwLock::new(Vec::new())),
            next: AtomicUsize::new(0),
            client: proxy::upstream_client(),
            checks,
            changes: Arc::new(watch::channel(0).0),
            root: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The configuration this balancer was built with.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    /// Adds a target. With health checks it starts `initial` and joins rotation after
    /// `healthy_threshold` passing checks (the first check runs at once); without, it is
    /// `healthy` immediately. Must be called within a Tokio runtime (it spawns the
    /// target's health-check task).
    pub fn register(&self, id: &str, addr: SocketAddr) -> Result<(), LbError> {
        self.register_in(DEFAULT_GROUP, id, addr)
    }

    /// [`Balancer::register`] in target group `group`, which the listener rules select by
    /// path (see [`routes`]).
    pub fn register_in(&self, group: &str, id: &str, addr: SocketAddr) -> Result<(), LbError> {
        let mut targets = self.targets.write();
        if targets.iter().any(|t| t.id == id) {
            return Err(LbError::DuplicateTarget(id.to_string()));
        }
        let (machine, reason) = match &self.config.health {
            Some(h) => (
                HealthMachine::checked(Thresholds {
                    healthy: h.healthy_threshold,
                    unhealthy: h.unhealthy_threshold,
                }),
                "registered; awaiting health checks",
            ),
            None => (
                HealthMachine::unchecked(),
                "registered; health checks disabled",
            ),
        };
        let target = Arc::new(Target::new(
            id,
            group,
            addr,
            machine,
            reason,
            self.root.child_token(),
        ));
        targets.push(Arc::clone(&target));
        drop(targets);
        tracing::info!(target_id = id, group, %addr, "lb target registered");
        if let (Some(config), Some(client)) = (&self.config.health, &self.checks) {
            let task = checker::run(target, config.clone(), client.clone(), self.changes.clone());
            self.track(tokio::spawn(task));
        }
        self.bump();
        Ok(())
    }

    /// Takes a target out of rotation (`draining`) and stops its health checks; it is removed
    /// from [`Balancer::targets`] once its in-flight requests end or `drain_timeout` passes.
    /// Must be called within a Tokio runtime.
    pub fn deregister(&self, id: &str) -> Result<(), LbError> {
        let target = self
            .find(id)
            .ok_or_else(|| LbError::UnknownTarget(id.to_string()))?;
        let transition = target
            .drain()
            .ok_or_else(|| LbError::UnknownTarget(id.to_string()))?;
        checker::log_transition(id, &transition);
        target.checks.cancel();
        self.bump();
        let drain = drain_then_remove(
            target,
            self.config.drain_timeout,
            self.root.clone(),
            Arc::clone(&self.changes),
            Arc::clone(&self.targets),
        );
        self.track(tokio::spawn(drain));
        Ok(())
    }

    /// A snapshot of every registered target (draining ones included), in registration order.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.targets.read().iter().map(|t| t.status()).collect()
    }

    /// [`Balancer::targets`] as JSON for the control endpoint:
    /// `{"targets": [{"id", "addr", "state", "in_flight", "requests", "failures", "since_ms", "reason"}]}`.
    pub fn targets_json(&self) -> serde_json::Value {
        let targets: Vec<_> = self.targets().iter().map(TargetStatus::to_json).collect();
        serde_json::json!({ "targets": targets })
    }

    /// A change counter: it increases whenever a target is registered, changes state or is
    /// removed. Await `changed()` on the receiver, then read [`Balancer::targets`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Serves clients on `listener` until `shutdown` resolves; then stops accepting, lets
    /// in-flight requests finish (at most `drain_timeout`, after which their connections are
    /// closed), stops all health checks and returns. The balancer is not meant to serve again
    /// afterwards. Fails only on an accept error that is not transient.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve::serve(self, listener, None, shutdown).await
    }

    /// [`Balancer::serve`] over TLS with `config` (HTTP/2 or HTTP/1.1, as each client
    /// asks by ALPN).
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        serve::serve(self, listener, Some(acceptor), shutdown).await
    }

    /// Where the listener rules send `path`.
    fn route(&self, path: &str) -> Routed<'_> {
        routes::select(&self.config.routes, path)
    }

    /// Requests in flight to the targets of `group` (draining ones included): the
    /// per-group load signal a service's scaling policy tracks.
    pub fn in_flight(&self, group: &str) -> u64 {
        self.targets
            .read()
            .iter()
            .filter(|t| t.group == group)
            .map(|t| t.in_flight())
            .sum()
    }

    /// The next healthy target of the routed group in round-robin order, skipping `exclude`.
    fn pick(&self, routed: Routed<'_>, exclude: Option<&str>) -> Option<Arc<Target>> {
        let group = match routed {
            Routed::Any => None,
            Routed::Group(g) => Some(g),
            Routed::NoRule => return None,
        };
        let targets = self.targets.read();
        let healthy: Vec<&Arc<Target>> = targets
            .iter()
            .filter(|t| {
                Some(t.id.as_str()) != exclude
                    && group.is_none_or(|g| t.group == g)
                    && t.state() == TargetState::Healthy
            })
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(healthy[turn % healthy.len()]))
    }

    fn find(&self, id: &str) -> Option<Arc<Target>> {
        self.targets.read().iter().find(|t| t.id == id).cloned()
    }

    fn bump(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Stops health checks and drain tasks and waits for them to end.
    async fn close(&self) {
        self.root.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// Waits until `target` has no request in flight (or `limit` passes), then removes it from
/// the list. Ends early, leaving the list alone, when the balancer shuts down.
async fn drain_then_remove(
    target: Arc<Target>,
    limit: Duration,
    root: CancellationToken,
    changes: Arc<watch::Sender<u64>>,
    targets: TargetList,
) {
    let reason = tokio::select! {
        () = root.cancelled() => return,
        () = target.idle() => "no request in flight",
        () = tokio::time::sleep(limit) => "drain timeout",
    };
    targets.write().retain(|t| !Arc::ptr_eq(t, &target));
    tracing::info!(target_id = %target.id, reason, "lb target removed");
    changes.send_modify(|generation| *generation += 1);
}
