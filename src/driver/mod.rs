//! The load driver: sends a profile's traffic at a target and records what
//! happened into a [`Recorder`].
//!
//! One mechanism serves both load models. A *lane* is one keep-alive
//! connection that takes jobs one at a time; lanes differ only in where jobs
//! come from:
//!
//! - **open model** (default): the pacer (`pace.rs`), on its own thread, walks
//!   the HTTP streams' [`Schedule`]s and queues every arrival at its intended
//!   time (all those due at a wake-up in one batch) whether or not the target
//!   keeps up; busy lanes take the next job as they finish, idle lanes are
//!   woken, and new lanes open when a job has waited half a millisecond for
//!   one, up to `max_in_flight`. Latency is measured from the intended time,
//!   so waiting for a connection shows up in it (no coordinated omission). A job picked up more than `late_after` behind schedule counts
//!   as late, one more than `max_lateness` behind is dropped (counted, never sent);
//! - **closed model** (`concurrency`): a fixed number of lanes send back to back.
//!
//! Streams with `transport = "sqs"` ([`sqs`]) or `transport = "eventbridge"`
//! ([`eventbridge`]) follow the same open-model schedule but send batched calls
//! (`SendMessageBatch`, `PutEvents`: [`batch`]) instead of taking lanes.

pub mod batch;
mod body;
pub mod connect;
pub mod eventbridge;
mod http;
pub mod http2;
mod jobs;
mod pace;
mod request;
pub mod sqs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::body::Body;
pub use self::connect::Connector;
pub use self::http::{HttpConn, Response, classify_io};
use self::jobs::JobQueue;
pub use self::request::{BuildError, ID_HEADER, RequestFactory, Target, request_id};
use crate::clock::now_ms;
use crate::config::profile::{Profile, Settings, Transport};
use crate::ledger::AcceptedIds;
use crate::metrics::{ErrorClass, Recorder};
use crate::schedule::{Schedule, Segment, derive_seed};

/// How the load is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Arrivals follow the profile's schedule.
    Open,
    /// `concurrency` connections send back to back for `duration`, or until
    /// `requests` have been started.
    Closed {
        concurrency: usize,
        duration: Duration,
        requests: Option<u64>,
    },
}

/// Everything the driver needs, validated.
pub struct DriverPlan {
    pub profile: Arc<Profile>,
    pub factory: Arc<RequestFactory>,
    /// How to reach the target: its resolved address, and TLS for https.
    pub connector: Connector,
    /// Speak HTTP/2 (multiplexed: [`http2`]) instead of HTTP/1.1. The connector's TLS must
    /// offer `h2` (ALPN); over plain TCP it is HTTP/2 with prior knowledge.
    pub http2: bool,
    pub seed: u64,
    pub mode: Mode,
    pub segment: Segment,
    pub settings: Settings,
    /// After Ctrl-C/SIGTERM, how long in-flight requests may still finish.
    pub grace: Duration,
    /// When set, every message the target accepted (a 2xx answer, an SQS send that
    /// succeeded) is recorded here, for the end-to-end ledger.
    pub accepted: Option<Arc<AcceptedIds>>,
    /// Where streams with an AWS transport (`sqs`, `eventbridge`) send (required when the
    /// profile has one; see [`batch::Sinks::resolve`]). Open model only.
    pub sinks: Option<batch::Sinks>,
}

/// How the driver ended.
#[derive(Debug, Clone, Default)]
pub struct DriverReport {
    /// Lanes at most at once: the most requests in flight (over HTTP/1.1 with keep-alive,
    /// also the most connections open).
    pub lanes: usize,
    /// Whether sending was stopped before the schedule ended.
    pub stopped_early: bool,
    /// In-flight requests cut off at the drain deadline.
    pub aborted: u64,
}

/// Most connections being opened at once by the open model's lane growth.
const MAX_CONNECTING: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Job {
    stream: usize,
    seq: u64,
    intended: Instant,
}

struct Ctx {
    plan: DriverPlan,
    /// The shared HTTP/2 connections, when the plan speaks HTTP/2.
    h2: Option<http2::H2Pool>,
    recorder: Arc<Recorder>,
    /// Stop taking new jobs (Ctrl-C, SIGTERM, a guardrail).
    stop: CancellationToken,
    /// Mirrors `stop` as a plain flag for the hot path (the token's own check takes a lock).
    stopping: AtomicBool,
    lanes: TaskTracker,
    /// To cut off lanes still busy at the drain deadline.
    lane_handles: parking_lot::Mutex<Vec<tokio::task::AbortHandle>>,
    lane_count: AtomicUsize,
    idle: AtomicUsize,
    /// Lanes in the middle of opening their connection.
    connecting: AtomicUsize,
    aborted: AtomicU64,
}

impl Ctx {
    /// Records that the target accepted message `seq` of `stream` (a 2xx answer, a message
    /// sent), when the run keeps a ledger and the stream is in it (its `ledger` key).
    fn accepted(&self, stream: usize, seq: u64) {
        if self.plan.profile.streams[stream].ledger
            && let Some(accepted) = &self.plan.accepted
            && let Err(e) = accepted.accept(stream, seq)
        {
            tracing::warn!("ledger: {e}");
        }
    }
}

/// Runs the load until the schedule (or duration) ends or `stop` fires, then
/// drains in-flight requests: up to their whole connect + request timeout
/// after a normal end, up to `grace` after a stop.
pub async fn run(
    plan: DriverPlan,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
) -> DriverReport {
    let h2 = if plan.http2 {
        let target = plan.factory.target();
        let authority = target.authority().to_str().unwrap_or_default().to_owned();
        match http2::H2Pool::new(plan.connector.clone(), target.https, &authority) {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::error!("HTTP/2: {e}");
                return DriverReport::default();
            }
        }
    } else {
        None
    };
    let ctx = Arc::new(Ctx {
        h2,
        plan,
        recorder,
        stop: stop.clone(),
        stopping: AtomicBool::new(false),
        lanes: TaskTracker::new(),
        lane_handles: parking_lot::Mutex::new(Vec::new()),
        lane_count: AtomicUsize::new(0),
        idle: AtomicUsize::new(0),
        connecting: AtomicUsize::new(0),
        aborted: AtomicU64::new(0),
    });
    let flag = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.stop.cancelled().await;
            ctx.stopping.store(true, Ordering::Relaxed);
        })
    };
    let leftover = match ctx.plan.mode {
        Mode::Open => run_open(&ctx).await,
        Mode::Closed {
            concurrency,
            duration,
            requests,
        } => {
            let feed = Arc::new(ClosedFeed::new(&ctx, duration, requests));
            for _ in 0..concurrency.max(1) {
                spawn_lane(&ctx, Source::Closed(feed.clone()));
            }
            // No lane is added later: waiting on the tracker ends when the last lane does.
            ctx.lanes.close();
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep_until((feed.deadline).into()) => {}
                _ = ctx.lanes.wait() => {}
            }
            None
        }
    };
    ctx.lanes.close();
    // After a normal end every in-flight request gets its whole budget
    // (connect + request timeout, plus timer slack) before it is cut off.
    let drain = if stop.is_cancelled() {
        ctx.plan.grace
    } else {
        ctx.plan.settings.connect_timeout
            + ctx.plan.settings.request_timeout
            + Duration::from_millis(100)
    };
    if tokio::time::timeout(drain, ctx.lanes.wait()).await.is_err() {
        abort_lanes(&ctx).await;
    }
    flag.abort();
    // Arrivals queued but never picked up: they were due, so they count as dropped.
    if let Some(queue) = leftover {
        for job in queue.drain() {
            ctx.recorder
                .record(0, job.stream, |w| w.counters.dropped += 1);
        }
    }
    DriverReport {
        lanes: ctx.lane_count.load(Ordering::Relaxed),
        stopped_early: stop.is_cancelled(),
        aborted: ctx.aborted.load(Ordering::Relaxed),
    }
}

async fn run_open(ctx: &Arc<Ctx>) -> Option<Arc<JobQueue>> {
    let queue = Arc::new(JobQueue::default());
    let dispatchers = TaskTracker::new();
    let mut http = Vec::new();
    for (index, stream) in ctx.plan.profile.streams.iter().enumerate() {
        let seed = derive_seed(ctx.plan.seed, &[index as u64]);
        let schedule = Schedule::new(&stream.stages, stream.arrival, seed, ctx.plan.segment);
        match stream.transport {
            Transport::Http => http.push((index, schedule)),
            Transport::Sqs { .. } | Transport::EventBridge { .. } => {
                dispatchers.spawn(batch::dispatch(ctx.clone(), index, schedule));
            }
        };
    }
    if !http.is_empty() {
        dispatchers.spawn(pace::run(
            ctx.clone(),
            pace::Arrivals::new(http),
            queue.clone(),
        ));
    } else {
        queue.close();
    }
    dispatchers.close();
    dispatchers.wait().await;
    Some(queue)
}

/// Cuts off every lane still running; what was in flight counts as aborted.
async fn abort_lanes(ctx: &Ctx) {
    for handle in ctx.lane_handles.lock().drain(..) {
        handle.abort();
    }
    ctx.lanes.wait().await;
    for stream in 0..ctx.recorder.streams() {
        let cut = ctx.recorder.in_flight(stream).max(0);
        if cut > 0 {
            ctx.recorder.in_flight_add(stream, -cut);
            ctx.aborted.fetch_add(cut as u64, Ordering::Relaxed);
            ctx.recorder.record(stream, stream, |w| {
                for _ in 0..cut {
                    w.record_failure(ErrorClass::Aborted);
                }
            });
        }
    }
}

/// The closed model's endless supply of jobs, bounded by time and count.
struct ClosedFeed {
    next: AtomicU64,
    limit: u64,
    deadline: Instant,
    /// Stream of each slot, repeated in proportion to the streams' mean rates.
    wheel: Vec<usize>,
}

impl ClosedFeed {
    fn new(ctx: &Ctx, duration: Duration, requests: Option<u64>) -> ClosedFeed {
        let weights: Vec<f64> = ctx
            .plan
            .profile
            .streams
            .iter()
            .map(|s| crate::schedule::RateCurve::new(&s.stages))
            .map(|c| {
                if c.duration() > 0.0 {
                    c.total() / c.duration()
                } else {
                    0.0
                }
            })
            .collect();
        ClosedFeed {
            next: AtomicU64::new(0),
            limit: requests.unwrap_or(u64::MAX),
            deadline: ctx.recorder.start() + duration,
            wheel: weighted_wheel(&weights, 100),
        }
    }

    fn next(&self, ctx: &Ctx) -> Option<Job> {
        let now = Instant::now();
        if ctx.stopping.load(Ordering::Relaxed) || now >= self.deadline {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if seq >= self.limit {
            return None;
        }
        let stream = self.wheel[(seq % self.wheel.len() as u64) as usize];
        Some(Job {
            stream,
            seq,
            intended: now,
        })
    }
}

/// A list of stream indexes in which each appears in proportion to its weight
/// (equal shares when no weight is positive).
fn weighted_wheel(weights: &[f64], slots: usize) -> Vec<usize> {
    let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total <= 0.0 {
        return (0..weights.len().max(1)).collect();
    }
    let mut wheel = Vec::with_capacity(slots);
    for (i, w) in weights.iter().enumerate() {
        let n = ((w.max(0.0) / total) * slots as f64).round() as usize;
        wheel.extend(std::iter::repeat_n(i, n.max(usize::from(*w > 0.0))));
    }
    // Interleave so that streams alternate rather than come in runs.
    let mut interleaved: Vec<(f64, usize)> = Vec::with_capacity(wheel.len());
    let mut seen = vec![0usize; weights.len()];
    let counts: Vec<usize> = (0..weights.len())
        .map(|i| wheel.iter().filter(|&&s| s == i).count())
        .collect();
    for &s in &wheel {
        interleaved.push(((seen[s] as f64 + 0.5) / counts[s] as f64, s));
        seen[s] += 1;
    }
    interleaved.sort_by(|a, b| a.0.total_cmp(&b.0));
    interleaved.into_iter().map(|(_, s)| s).collect()
}

enum Source {
    /// The pacer's queue, and this lane's wake-up while it waits on it.
    Open(Arc<JobQueue>, Arc<Notify>),
    Closed(Arc<ClosedFeed>),
}

impl Source {
    /// A new lane's source on the open model's queue.
    fn open(queue: &Arc<JobQueue>) -> Source {
        Source::Open(queue.clone(), Arc::new(Notify::new()))
    }

    async fn next(&self, ctx: &Ctx) -> Option<Job> {
        match self {
            Source::Open(queue, me) => {
                let job = queue.next(me).await?;
                if ctx.stopping.load(Ordering::Relaxed) {
                    // Due but not started when the run was stopped.
                    ctx.recorder
                        .record(job.seq as usize, job.stream, |w| w.counters.dropped += 1);
                    return None;
                }
                Some(job)
            }
            // Counted as intended by `serve`, in the same record as the send.
            Source::Closed(feed) => feed.next(ctx),
        }
    }
}

fn spawn_lane(ctx: &Arc<Ctx>, source: Source) {
    let id = ctx.lane_count.fetch_add(1, Ordering::Relaxed);
    // A new lane counts as idle from birth: until it is waiting for work the
    // dispatcher must not open yet another one for the same backlog (that
    // feedback opened thousands of connections when the machine was overloaded).
    ctx.idle.fetch_add(1, Ordering::Relaxed);
    let handle = ctx.lanes.spawn(lane(ctx.clone(), id, source));
    ctx.lane_handles.lock().push(handle.abort_handle());
}

/// One connection taking jobs one at a time until its source runs dry.
/// The lane counts as idle while it waits for a job (and from its birth: see
/// [`spawn_lane`]).
async fn lane(ctx: Arc<Ctx>, id: usize, source: Source) {
    let open = matches!(source, Source::Open(..));
    let mut conn: Option<HttpConn> = None;
    loop {
        let job = source.next(&ctx).await;
        ctx.idle.fetch_sub(1, Ordering::Relaxed);
        let Some(job) = job else { break };
        serve(&ctx, id, open, &mut conn, job).await;
        ctx.idle.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends one job's request on the lane's connection and records the outcome.
async fn serve(ctx: &Ctx, id: usize, open: bool, conn: &mut Option<HttpConn>, job: Job) {
    let settings = &ctx.plan.settings;
    let sent_at = Instant::now();
    let lateness = sent_at.saturating_duration_since(job.intended);
    if open && lateness > settings.max_lateness {
        ctx.recorder
            .record(id, job.stream, |w| w.counters.dropped += 1);
        return;
    }
    // The open model counts arrivals as intended when the pacer releases them; the closed
    // model's jobs are intended when taken, counted here with the send (one record, not two).
    let intended = u64::from(!open);
    let request = match ctx.plan.factory.build(job.stream, job.seq, now_ms()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("{e}");
            ctx.recorder.record(id, job.stream, |w| {
                w.counters.intended += intended;
                w.record_failure(ErrorClass::Other)
            });
            return;
        }
    };
    let mut request = request;
    if !settings.keep_alive {
        request.headers_mut().insert(
            ::http::header::CONNECTION,
            ::http::HeaderValue::from_static("close"),
        );
    }
    let body_len = request.body().len();
    let late = lateness > settings.late_after;
    ctx.recorder.record(id, job.stream, |w| {
        w.counters.intended += intended;
        w.record_send(body_len, micros(lateness), late)
    });
    ctx.recorder.in_flight_add(job.stream, 1);
    let outcome = match &ctx.h2 {
        Some(pool) => {
            let budget = settings.connect_timeout + settings.request_timeout;
            let sent = pool.send(
                request,
                settings.connect_timeout,
                settings.keep_alive,
                |(tcp, tls)| {
                    ctx.recorder.record(id, job.stream, |w| {
                        w.record_connect(micros(tcp), tls.map(|(t, resumed)| (micros(t), resumed)))
                    })
                },
            );
            tokio::time::timeout(budget, sent)
                .await
                .unwrap_or(Err(ErrorClass::Timeout))
        }
        None => exchange(ctx, id, job.stream, conn, request).await,
    };
    if !settings.keep_alive {
        *conn = None;
    }
    ctx.recorder.in_flight_add(job.stream, -1);
    let done = Instant::now();
    let corrected = micros(done - job.intended);
    let uncorrected = micros(done - sent_at);
    match outcome {
        Ok(resp) => {
            if (200..300).contains(&resp.status) {
                ctx.accepted(job.stream, job.seq);
            }
            ctx.recorder.record(id, job.stream, |w| {
                w.counters.bytes_received += resp.bytes_received;
                w.record_response(corrected, uncorrected, resp.error_class());
            })
        }
        Err(class) => {
            *conn = None;
            ctx.recorder
                .record(id, job.stream, |w| w.record_failure(class));
        }
    }
}

/// Connects if needed (recording the connect and handshake times), then sends within the
/// request timeout.
async fn exchange(
    ctx: &Ctx,
    id: usize,
    stream: usize,
    conn: &mut Option<HttpConn>,
    request: ::http::Request<Body>,
) -> Result<Response, ErrorClass> {
    let settings = &ctx.plan.settings;
    if !conn.as_mut().is_some_and(HttpConn::is_open) {
        ctx.connecting.fetch_add(1, Ordering::Relaxed);
        let opened = ctx
            .plan
            .connector
            .open_http1(settings.connect_timeout)
            .await;
        ctx.connecting.fetch_sub(1, Ordering::Relaxed);
        let opened = opened?;
        ctx.recorder.record(id, stream, |w| {
            w.record_connect(
                micros(opened.tcp),
                opened.tls.map(|(t, resumed)| (micros(t), resumed)),
            )
        });
        *conn = Some(opened.stream);
    }
    let c = conn.as_mut().expect("connected above");
    match tokio::time::timeout(settings.request_timeout, c.send(request)).await {
        Ok(r) => r,
        Err(_) => Err(ErrorClass::Timeout),
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_follows_weights_and_interleaves() {
        let wheel = weighted_wheel(&[70.0, 30.0], 100);
        assert_eq!(wheel.len(), 100);
        assert_eq!(wheel.iter().filter(|&&s| s == 0).count(), 70);
        // No long runs of one stream.
        let longest = wheel
            .chunk_by(|a, b| a == b)
            .map(|r| r.len())
            .max()
            .unwrap();
        assert!(longest <= 3, "{wheel:?}");
        assert_eq!(weighted_wheel(&[0.0, 0.0], 100), vec![0, 1]);
        // A tiny but positive weight still gets a slot.
        assert!(weighted_wheel(&[1000.0, 0.001], 100).contains(&1));
    }
}
