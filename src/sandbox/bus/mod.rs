//! The sandbox's event bus (the EventBridge role) and function-style consumers (the Lambda
//! role), for the `event-driven` architecture.
//!
//! Producers post events (`POST /events`, or EventBridge's `PutEvents` over the AWS JSON
//! protocol); [`Rule`]s matching on `source` and `detail-type` deliver each event to their
//! [`Target`]s: SQS queues (`SendMessage` through `aws-sdk-sqs`, body = the event envelope) or
//! in-process functions ([`FunctionSpec`]) that hold an execution slot only while handling an
//! event. Delivery is asynchronous and at-least-once, with bounded retries ([`RetryPolicy`]).
//! Every invocation is accounted (duration billed per started millisecond, GB-seconds,
//! throttles, cold starts, concurrency) and reported to the caller as a [`Completion`].
//!
//! Layout: [`rules`] (matching), [`event`] (parsing, envelope) and [`account`] (slots and
//! billing) are pure; delivery and the HTTP endpoint do the IO.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use shakedown::sandbox::bus::{Bus, BusConfig, FunctionSpec, Rule, Target};
//!
//! let config = BusConfig {
//!     rules: vec![Rule {
//!         name: "thumbnails".into(),
//!         source: vec!["uploads".into()],
//!         detail_type: vec![],
//!         targets: vec![Target::Function { name: "thumbnail".into() }],
//!     }],
//!     functions: vec![FunctionSpec::new("thumbnail", Duration::from_millis(30))],
//!     ..BusConfig::default()
//! };
//! let bus = Bus::new(config, Arc::new(|c| println!("{c:?}")))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! bus.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod account;
pub mod config;
mod deliver;
pub mod event;
pub mod rules;
mod server;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use account::{BusStats, FunctionLedger, FunctionStats, RuleStats};
pub use config::{BusConfig, ConfigError, FunctionSpec, RetryPolicy};
pub use deliver::DeliveryError;
pub use event::{Event, EventError};
pub use rules::{Route, Rule, Target};
pub use server::ID_HEADER;

/// One finished function invocation, reported through the [`CompletionSink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completion {
    /// The event's id.
    pub event_id: String,
    /// The function that handled it.
    pub function: String,
    /// When the invocation got its slot (before any cold start), ms since the Unix epoch.
    pub started_ms: u64,
    /// When the handler finished, ms since the Unix epoch.
    pub done_ms: u64,
    /// Whether the invocation initialised a new slot.
    pub cold: bool,
    /// Whether the handler succeeded; a failed invocation is retried and reported again.
    pub ok: bool,
    /// Which attempt of this delivery this was (1-based).
    pub attempt: u32,
}

/// Receives every [`Completion`]. Called on the invoking task: keep it quick (e.g. send on an
/// unbounded channel).
pub type CompletionSink = Arc<dyn Fn(Completion) + Send + Sync>;

/// The bus refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// [`Bus::shutdown`] has begun; no new events are accepted.
    #[error("the bus is shutting down")]
    Closed,
}

/// What [`Bus::publish`] accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The event's id.
    pub id: String,
    /// Deliveries scheduled (one per target of each matching rule).
    pub deliveries: usize,
}

/// A function target: its spec and its ledger.
struct Function {
    spec: FunctionSpec,
    ledger: Mutex<FunctionLedger>,
}

#[derive(Default)]
struct Counters {
    accepted: u64,
    rejected: u64,
    unmatched: u64,
    retries: u64,
    abandoned: u64,
    rules: Vec<RuleStats>,
}

/// Counts unfinished deliveries and wakes waiters when none are left.
#[derive(Default)]
struct InFlight {
    n: AtomicU64,
    zero: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.n.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.n.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// The event bus: rules, functions, SQS clients and counters. Cheap to share (`Arc`).
pub struct Bus {
    config: BusConfig,
    functions: HashMap<String, Function>,
    /// SQS client per queue URL (clients are shared per endpoint).
    queues: HashMap<String, aws_sdk_sqs::Client>,
    counters: Mutex<Counters>,
    on_complete: CompletionSink,
    in_flight: Arc<InFlight>,
    cancel: CancellationToken,
    closed: AtomicBool,
}

impl Bus {
    /// Validates `config` and builds the bus. `on_complete` receives every function
    /// invocation's [`Completion`].
    ///
    /// When a rule targets a queue, this sets `AWS_EC2_METADATA_DISABLED=true` (if unset)
    /// before building the SQS clients, so the SDK never probes the instance-metadata
    /// address. Programs that build a bus from several threads should set it at startup.
    pub fn new(config: BusConfig, on_complete: CompletionSink) -> Result<Arc<Bus>, ConfigError> {
        config.validate()?;
        let now = Instant::now();
        let functions = config
            .functions
            .iter()
            .map(|spec| {
                let ledger =
                    FunctionLedger::new(spec.memory_mb, spec.reserved_concurrency, spec.keep_warm)
                        .with_provisioned(spec.provisioned_concurrency, now);
                let f = Function {
                    spec: spec.clone(),
                    ledger: Mutex::new(ledger),
                };
                (spec.name.clone(), f)
            })
            .collect();
        let mut by_endpoint: HashMap<String, aws_sdk_sqs::Client> = HashMap::new();
        let mut queues = HashMap::new();
        for target in config.rules.iter().flat_map(|r| &r.targets) {
            if let Target::Queue { queue_url } = target {
                let endpoint = config.endpoint_for(queue_url)?;
                let client = by_endpoint
                    .entry(endpoint.clone())
                    .or_insert_with(|| deliver::sqs_client(&endpoint))
                    .clone();
                queues.insert(queue_url.clone(), client);
            }
        }
        let counters = Counters {
            rules: vec![RuleStats::default(); config.rules.len()],
            ..Counters::default()
        };
        Ok(Arc::new(Bus {
            config,
            functions,
            queues,
            counters: Mutex::new(counters),
            on_complete,
            in_flight: Arc::default(),
            cancel: CancellationToken::new(),
            closed: AtomicBool::new(false),
        }))
    }

    /// The configuration the bus runs with.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Accepts an event and schedules its deliveries (asynchronously: this returns at once).
    /// Must be called within a tokio runtime.
    pub fn publish(self: &Arc<Self>, event: Event) -> Result<Accepted, PublishError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PublishError::Closed);
        }
        let routes: Vec<(usize, Target)> =
            rules::route(&self.config.rules, &event.source, &event.detail_type)
                .into_iter()
                .map(|r| (r.rule, r.target.clone()))
                .collect();
        {
            let mut c = self.counters.lock();
            c.accepted += 1;
            let mut any = false;
            for (i, rule) in self.config.rules.iter().enumerate() {
                if rule.matches(&event.source, &event.detail_type) {
                    c.rules[i].matched += 1;
                    any = true;
                }
            }
            if !any {
                c.unmatched += 1;
            }
        }
        let accepted = Accepted {
            id: event.id.clone(),
            deliveries: routes.len(),
        };
        if routes.is_empty() {
            return Ok(accepted);
        }
        let body: Arc<str> = event.envelope().to_string().into();
        let event = Arc::new(event);
        let accepted_at = Instant::now();
        for (rule, target) in routes {
            let job = deliver::Job {
                event: event.clone(),
                body: body.clone(),
                rule,
                target,
                accepted_at,
            };
            let guard = self.in_flight.enter();
            let bus = self.clone();
            tokio::spawn(async move {
                let _guard = guard;
                bus.deliver(job).await;
            });
        }
        Ok(accepted)
    }

    fn count_rejected(&self) {
        self.counters.lock().rejected += 1;
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> BusStats {
        let now = Instant::now();
        let c = self.counters.lock();
        let rules: std::collections::BTreeMap<_, _> = self
            .config
            .rules
            .iter()
            .zip(&c.rules)
            .map(|(r, s)| (r.name.clone(), s.clone()))
            .collect();
        let functions: std::collections::BTreeMap<_, _> = self
            .functions
            .iter()
            .map(|(name, f)| (name.clone(), f.ledger.lock().stats(now)))
            .collect();
        BusStats {
            concurrent: functions.values().map(|f| f.concurrent).sum(),
            gb_seconds: functions.values().map(|f| f.gb_seconds).sum(),
            billed_gb_seconds: functions.values().map(|f| f.billed_gb_seconds).sum(),
            accepted: c.accepted,
            rejected: c.rejected,
            unmatched: c.unmatched,
            delivered: c.rules.iter().map(|r| r.delivered).sum(),
            failed_deliveries: c.rules.iter().map(|r| r.failed).sum(),
            retries: c.retries,
            abandoned: c.abandoned,
            in_flight: self.in_flight.n.load(Ordering::SeqCst),
            rules,
            functions,
        }
    }

    /// Waits until no delivery is in flight (every accepted event delivered or given up), or
    /// `timeout` passes; returns whether it became idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.in_flight.wait_zero())
            .await
            .is_ok()
    }

    /// The HTTP routes (`POST /events`, `POST /` for `PutEvents`, `GET /stats`), for
    /// embedding in another server.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        server::router(self.clone())
    }

    /// Serves the routes on `listener` (bind `127.0.0.1:0` for a free port) until `shutdown`
    /// completes, then stops accepting and drains in-flight deliveries within
    /// [`BusConfig::drain_timeout`] (see [`Bus::shutdown`]).
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        self.shutdown(self.config.drain_timeout).await;
        Ok(())
    }

    /// Stops accepting events and lets in-flight deliveries (including retries and running
    /// invocations) finish for up to `deadline`; whatever is left is then abandoned and
    /// counted in [`BusStats::abandoned`]. Returns whether everything finished in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        if self.wait_idle(deadline).await {
            return true;
        }
        self.cancel.cancel();
        self.in_flight.wait_zero().await;
        false
    }
}
