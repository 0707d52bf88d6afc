//! A web instance (runs in a child process): what the balancer spreads traffic over.
//!
//! Routes, on `127.0.0.1:<any port>`:
//! - `PUT|POST /upload/{id}`: reads the whole body (streamed and counted, never stored);
//! - `POST /events`: the same for an event (id from `x-shakedown-id`, else generated);
//! - `GET /health`: 200 while the process serves.
//!
//! What an accepted request does depends on the architecture:
//!
//! | arch | upload / event | answer |
//! |---|---|---|
//! | `queued` | sends a [`Job`] to the jobs queue (aws-sdk-sqs) | 202 `{"id","message_id"}`, 503 if the send fails |
//! | `tiered` | nothing more | 200 `{"id"}` |
//! | `monolith` | processes it inline on this instance's processor (a few at a time; the rest wait), reports the completion | 200 `{"id"}` |
//! | `event-driven` | forwards it to the bus's `POST /events` (an event: its body as is; an upload: `{"source": "shakedown.web", "detail-type": "upload", "detail": <job>}`) | 202, 502 if the bus refuses |
//!
//! Every response carries `x-shakedown-instance: <instance id>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::worker::{Job, sqs_client};
use super::{ChildConfig, RoleConfig};
use crate::clock::now_ms;
use crate::sandbox::config::Arch;
use crate::sandbox::feed::{Completion, FeedClient};

/// `source` of the events the web tier makes of uploads in arch `event-driven`.
pub const UPLOAD_EVENT_SOURCE: &str = "shakedown.web";

/// Largest event body forwarded to the bus.
const MAX_EVENT_BYTES: usize = 256 * 1024;

struct WebState {
    config: ChildConfig,
    arch: Arch,
    sqs: aws_sdk_sqs::Client,
    processor: Semaphore,
    feed: FeedClient,
    bus: Option<String>,
    http: reqwest::Client,
    next_id: AtomicU64,
}

/// Runs a web instance until `shutdown`; calls `ready(port)` once it listens.
pub async fn run(
    config: ChildConfig,
    ready: impl FnOnce(u16),
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let RoleConfig::Web {
        arch,
        processor_concurrency,
        bus_url,
    } = config.role.clone()
    else {
        anyhow::bail!("not a web instance configuration");
    };
    let state = Arc::new(WebState {
        arch,
        sqs: sqs_client(&config.sqs_endpoint, &config.region, super::worker::WEB_KEY),
        processor: Semaphore::new(processor_concurrency.max(1) as usize),
        feed: FeedClient::new(&config.feed_url),
        bus: bus_url,
        http: crate::tls::client_builder().build()?,
        next_id: AtomicU64::new(0),
        config,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tracing::info!(
        instance = %state.config.instance_id,
        %arch,
        port,
        "web instance listening"
    );
    ready(port);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/upload/{id}", post(upload).put(upload))
        .route("/events", post(event))
        .route("/health", get(health))
        .with_state(state)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upload,
    Event,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Upload => "upload",
            Kind::Event => "event",
        }
    }
}

async fn health(State(state): State<Arc<WebState>>) -> Response {
    tag(&state, (StatusCode::OK, "ok\n").into_response())
}

async fn upload(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let response = accept(&state, Kind::Upload, id, body).await;
    tag(&state, response)
}

async fn event(State(state): State<Arc<WebState>>, headers: HeaderMap, body: Body) -> Response {
    let id = headers
        .get("x-shakedown-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let n = state.next_id.fetch_add(1, Ordering::Relaxed);
            format!("{}-{n}", state.config.instance_id)
        });
    let response = accept(&state, Kind::Event, id, body).await;
    tag(&state, response)
}

fn tag(state: &WebState, mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&state.config.instance_id) {
        response.headers_mut().insert("x-shakedown-instance", v);
    }
    response
}

/// Reads the body, counting its bytes; keeps the first `keep` bytes.
async fn read_body(body: Body, keep: usize) -> Result<(u64, Vec<u8>), axum::Error> {
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let mut kept = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }
    Ok((size, kept))
}

/// A JSON answer (the body ends with a newline). Shared by every instance role.
pub(super) fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}

/// An error answer for message `id`, logged.
pub(super) fn failure(status: StatusCode, id: &str, message: String) -> Response {
    tracing::warn!(id, "{message}");
    json(status, serde_json::json!({ "id": id, "error": message }))
}

/// The answer to a call forwarded to `what` for message `id`: `ok` with the id when it
/// answered 2xx, else 502 saying what it answered or why it could not be reached.
pub(super) fn forwarded(
    sent: reqwest::Result<reqwest::Response>,
    ok: StatusCode,
    id: &str,
    what: &str,
) -> Response {
    match sent {
        Ok(r) if r.status().is_success() => json(ok, serde_json::json!({ "id": id })),
        Ok(r) => failure(
            StatusCode::BAD_GATEWAY,
            id,
            format!("{what} answered {}", r.status()),
        ),
        Err(e) => failure(
            StatusCode::BAD_GATEWAY,
            id,
            format!("{what} is unreachable: {e}"),
        ),
    }
}

async fn accept(state: &WebState, kind: Kind, id: String, body: Body) -> Response {
    let received_ms = now_ms();
    let keep = if kind == Kind::Event && state.arch == Arch::EventDriven {
        MAX_EVENT_BYTES
    } else {
        0
    };
    let (size, raw) = match read_body(body, keep).await {
        Ok(read) => read,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &id, format!("reading body: {e}")),
    };
    let job = Job {
        id,
        size,
        received_ms,
        kind: kind.name().to_owned(),
    };
    match state.arch {
        Arch::Tiered => store(state, job).await,
        Arch::Queued | Arch::Microservices => enqueue(state, &job).await,
        Arch::Monolith => process_inline(state, job).await,
        Arch::EventDriven => forward(state, &job, kind, raw).await,
    }
}

async fn enqueue(state: &WebState, job: &Job) -> Response {
    let body = serde_json::to_string(job).expect("plain data serializes");
    let sent = state
        .sqs
        .send_message()
        .queue_url(&state.config.queue_url)
        .message_body(body)
        .send()
        .await;
    match sent {
        Ok(out) => json(
            StatusCode::ACCEPTED,
            serde_json::json!({ "id": job.id, "message_id": out.message_id() }),
        ),
        Err(e) => {
            let message = format!(
                "enqueueing the job failed: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            );
            failure(StatusCode::SERVICE_UNAVAILABLE, &job.id, message)
        }
    }
}

/// Tiered: the upload is done once it has been read (stored); reported to the completion
/// feed like any finished job, then answered 200.
async fn store(state: &WebState, job: Job) -> Response {
    let now = now_ms();
    let completion = Completion {
        job_id: job.id.clone(),
        message_id: String::new(),
        receive_count: 1,
        received_ms: job.received_ms,
        started_ms: now,
        done_ms: now,
        worker: state.config.instance_id.clone(),
    };
    let ok = json(StatusCode::OK, serde_json::json!({ "id": job.id }));
    once_reported(&state.feed, &completion, ok).await
}

/// `response` once `completion` is on the completion feed; a 503 if it could not be put
/// there: a 2xx is only ever sent for a request the ledger can account for, even when the
/// instance is ended right after answering (a scale-in).
pub(super) async fn once_reported(
    feed: &FeedClient,
    completion: &Completion,
    response: Response,
) -> Response {
    match feed.post(std::slice::from_ref(completion)).await {
        Ok(()) => response,
        Err(e) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &completion.job_id,
            format!("done, but the completion report failed: {e}"),
        ),
    }
}

async fn process_inline(state: &WebState, job: Job) -> Response {
    let Ok(_permit) = state.processor.acquire().await else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &job.id,
            "processor closed".into(),
        );
    };
    let started_ms = now_ms();
    let spread = rand::random::<f64>() * 2.0 - 1.0;
    let time = state
        .config
        .processing
        .for_size(job.size, state.config.jitter, spread);
    tokio::time::sleep(time).await;
    let completion = Completion {
        job_id: job.id.clone(),
        message_id: String::new(),
        receive_count: 1,
        received_ms: job.received_ms,
        started_ms,
        done_ms: now_ms(),
        worker: state.config.instance_id.clone(),
    };
    let ok = json(StatusCode::OK, serde_json::json!({ "id": job.id }));
    once_reported(&state.feed, &completion, ok).await
}

async fn forward(state: &WebState, job: &Job, kind: Kind, raw: Vec<u8>) -> Response {
    let Some(url) = &state.bus else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &job.id,
            "no event bus configured (set bus.url)".into(),
        );
    };
    let body = match kind {
        Kind::Event => Bytes::from(raw),
        Kind::Upload => {
            let event = serde_json::json!({
                "source": UPLOAD_EVENT_SOURCE,
                "detail-type": "upload",
                "detail": job,
            });
            Bytes::from(event.to_string())
        }
    };
    let sent = state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-shakedown-id", &job.id)
        .body(body)
        .send()
        .await;
    forwarded(sent, StatusCode::ACCEPTED, &job.id, "the bus")
}
