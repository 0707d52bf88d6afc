//! `--metrics-addr`: a run's live figures in the Prometheus text format on `GET /metrics`,
//! so that a team can watch a run in its own Prometheus and Grafana while it goes.
//!
//! | file | job | pure? |
//! |---|---|---|
//! | [`state`] | [`LiveMetrics`]: the finished seconds added up per stream (counters, latency histogram, last second) | yes |
//! | [`text`] | [`text::METRICS`] (every metric, documented in `docs/metrics.md`) and the exposition text of a scrape | yes |
//! | `mod.rs` | [`Exporter`]: the listener and its task; [`Live`]: the state the run publishes into | no |
//!
//! What feeds it: the collector adds each finished second ([`Live::record_second`]); the
//! probes' latest values are read from the sampler's watch channel and the faults' state
//! from the run's `journal.jsonl` at each scrape (the journal is the faults' record of
//! truth, so the exporter needs no hook in the chaos runner).

pub mod state;
pub mod text;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::chaos::journal::{self, Event};
use crate::chaos::plan::FaultPlan;
use crate::metrics::SecondStats;
use crate::probe::sampler::ProbeSnapshot;

pub use state::{LATENCY_BUCKETS_US, LiveMetrics};
pub use text::{FaultLive, Phase, Scrape};

/// How long scrapes in progress may still finish when the run ends.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics listener, bound before the run starts, and its task.
pub struct Exporter {
    addr: SocketAddr,
    live: Arc<Live>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Binds `addr` and starts serving `GET /metrics` at once (phase `starting` until the
    /// run's clock starts). A bind error names the flag.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Exporter> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-addr {addr}: cannot listen"))?;
        let addr = listener
            .local_addr()
            .context("--metrics-addr: no local address")?;
        let live = Arc::new(Live::default());
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/", get(index))
            .with_state(live.clone());
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("the metrics listener failed: {e}");
            }
        });
        crate::outln!("live metrics: http://{addr}/metrics");
        Ok(Exporter {
            addr,
            live,
            stop,
            task,
        })
    }

    /// Starts one if `addr` is given.
    pub async fn start_if(addr: Option<SocketAddr>) -> anyhow::Result<Option<Exporter>> {
        match addr {
            Some(a) => Ok(Some(Exporter::start(a).await?)),
            None => Ok(None),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state the run publishes into.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// Stops serving: scrapes in progress get [`STOP_GRACE`] to finish, then the task is
    /// ended.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

async fn metrics(State(live): State<Arc<Live>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], live.render())
}

async fn index() -> impl IntoResponse {
    "shakedown: live metrics at /metrics (docs/metrics.md)\n"
}

/// What a running run publishes: the seconds as they end, where its probes and faults are.
#[derive(Default)]
pub struct Live {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    kind: String,
    run_id: String,
    start: Option<Instant>,
    planned_s: f64,
    phase: Phase,
    metrics: LiveMetrics,
    probes: Option<watch::Receiver<ProbeSnapshot>>,
    faults: Option<Faults>,
}

/// Where the faults' state is read: the journal, and the plan's faults (so that each has a
/// series from the start, at 0).
struct Faults {
    journal: PathBuf,
    planned: Vec<(String, String)>,
}

impl Live {
    /// The run's clock started: its kind (`run`, `load`), id, streams and planned length.
    pub fn begin(&self, kind: &str, run_id: &str, names: &[String], start: Instant, planned: f64) {
        let mut i = self.inner.lock();
        i.kind = kind.to_owned();
        i.run_id = run_id.to_owned();
        i.metrics = LiveMetrics::new(names);
        i.start = Some(start);
        i.planned_s = planned;
        i.phase = Phase::Load;
    }

    /// Adds a finished second.
    pub fn record_second(&self, s: &SecondStats) {
        self.inner.lock().metrics.record_second(s);
    }

    pub fn set_phase(&self, phase: Phase) {
        self.inner.lock().phase = phase;
    }

    /// The probes' latest values are read from here at each scrape.
    pub fn watch_probes(&self, probes: watch::Receiver<ProbeSnapshot>) {
        self.inner.lock().probes = Some(probes);
    }

    /// The faults of `plan`, their state read from the journal at `journal` at each scrape.
    pub fn watch_faults(&self, plan: &FaultPlan, journal: PathBuf) {
        let mut planned: Vec<(String, String)> = plan
            .occurrences
            .iter()
            .map(|o| (o.fault.name.clone(), o.fault.type_name.clone()))
            .collect();
        planned.sort();
        planned.dedup();
        self.inner.lock().faults = Some(Faults { journal, planned });
    }

    /// What a scrape shows now.
    pub fn scrape(&self) -> Scrape {
        let (mut scrape, faults) = {
            let i = self.inner.lock();
            let scrape = Scrape {
                kind: i.kind.clone(),
                run_id: i.run_id.clone(),
                phase: i.phase,
                elapsed_s: i.start.map_or(0.0, |s| s.elapsed().as_secs_f64()),
                planned_s: i.planned_s,
                metrics: i.metrics.clone(),
                probes: i
                    .probes
                    .as_ref()
                    .map(|p| p.borrow().values())
                    .unwrap_or_default(),
                faults: Vec::new(),
            };
            let faults = i
                .faults
                .as_ref()
                .map(|f| (f.journal.clone(), f.planned.clone()));
            (scrape, faults)
        };
        // The file is read outside the lock: the collector never waits on a scrape.
        if let Some((path, planned)) = faults {
            scrape.faults = fault_states(&path, &planned);
        }
        scrape
    }

    /// The exposition text of a scrape now.
    pub fn render(&self) -> String {
        text::render(&self.scrape())
    }
}

/// Each planned fault's state from the journal (a missing or unreadable journal: nothing
/// applied yet).
fn fault_states(path: &std::path::Path, planned: &[(String, String)]) -> Vec<FaultLive> {
    let entries = if path.exists() {
        journal::read(path).unwrap_or_else(|e| {
            tracing::debug!("metrics: {e}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let mut out: BTreeMap<(String, String), FaultLive> = BTreeMap::new();
    fn slot<'a>(
        out: &'a mut BTreeMap<(String, String), FaultLive>,
        name: &str,
        type_name: &str,
    ) -> &'a mut FaultLive {
        out.entry((name.to_owned(), type_name.to_owned()))
            .or_insert_with(|| FaultLive {
                name: name.to_owned(),
                type_name: type_name.to_owned(),
                ..FaultLive::default()
            })
    }
    for (n, t) in planned {
        slot(&mut out, n, t);
    }
    for e in &entries {
        if let Event::Applied { fault, .. } | Event::Irreversible { fault } = &e.event {
            slot(&mut out, &fault.name, &fault.type_name).applied += 1;
        }
    }
    for t in journal::fold(&entries) {
        if t.state.outstanding() {
            slot(&mut out, &t.fault.name, &t.fault.type_name).active = true;
        }
    }
    out.into_values().collect()
}
