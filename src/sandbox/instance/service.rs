//! A microservice instance (runs in a child process): `upload`, `process`, `store` or
//! `manage` of arch `microservices`. Services call each other through the balancer (its
//! path rules are the service discovery: `/store/...` reaches a healthy `store` instance,
//! `/process/...` a healthy `process` instance), as services behind an internal ALB do.
//!
//! | service | routes | calls |
//! |---|---|---|
//! | `upload` | `PUT\|POST /upload/{id}` | `store` (PUT, `store_timeout`, breaker), then the jobs queue; or `process` synchronously (`process = "sync"`) |
//! | `process` | the jobs queue (a worker, [`super::worker`]); `POST /process/{id}` | `store` for spooled uploads |
//! | `store` | see [`super::store`] | - |
//! | `manage` | `GET /objects?limit=N`, `DELETE /objects/{id}` | `store` (`store_timeout`, breaker; else no timeout) |
//!
//! A read has no job behind it: its work is done when it is answered. So `manage` reports
//! each request it answers 2xx (by its `x-shakedown-id`, when the client sent one) to the
//! completion feed (`worker` = `manage:<instance>`): a read stream that opts into the
//! message ledger (`ledger = true`, as `profiles/microservices.toml` does; reads stay out
//! by default) is then accounted like the uploads.
//!
//! Resilience of the reference design: `upload` gives `store` `store_timeout`; on a
//! timeout or a failure the object is *spooled*: the job goes on the queue with kind
//! [`SPOOLED_KIND`] and `process` writes it to `store` later, so uploads keep succeeding
//! while `store` is slow. `manage` gives `store` `store_timeout` and answers a listing from
//! its last good one (`"degraded": true`) when `store` is slow; a delete it cannot make
//! fails (503). Both open a [`Breaker`] on the first failure, so while `store` is in
//! trouble callers take their fallback at once. Every service has bounded request slots
//! ([`Slots`]): no queue grows without bound. Each API request (not `/health`) waits the
//! service's added latency first (the `service-latency` fault).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::guard::{Breaker, Latency, Slots};
use super::store::{Listing, StoreClient, StoreError};
use super::web::{failure, forwarded, json, once_reported};
use super::worker::{Hooks, Job, SPOOLED_KIND, WEB_KEY, sqs_client};
use super::{ChildConfig, RoleConfig};
use crate::clock::now_ms;
use crate::sandbox::config::{ProcessCall, ServicesConfig};
use crate::sandbox::feed::{Completion, FeedClient};

/// Runs a service instance until `shutdown`; calls `ready(port)` once it listens.
pub async fn run(
    config: ChildConfig,
    ready: impl FnOnce(u16),
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let RoleConfig::Service {
        service,
        lb_url,
        control_url,
        objects_dir,
        services,
        worker,
    } = config.role.clone()
    else {
        anyhow::bail!("not a service configuration");
    };
    let latency = Latency::default();
    latency.follow(&control_url, &service, shutdown.clone());
    let store = StoreClient::new(&lb_url);
    let mut tasks = Vec::new();
    let router = match service.as_str() {
        "store" => {
            std::fs::create_dir_all(&objects_dir)?;
            let s = &services.store;
            super::store::router(
                objects_dir,
                Slots::new(s.concurrency, s.waiting),
                s.service_time,
                latency,
            )
        }
        "upload" => upload_router(&config, &lb_url, &services, store, latency, &shutdown),
        "manage" => manage_router(&config, &services, store, latency, &shutdown),
        "process" => {
            let Some(worker) = worker else {
                anyhow::bail!("process needs its worker settings");
            };
            let hooks = Hooks {
                added_delay_ms: latency.shared(),
                store: Some(store.clone()),
            };
            let worker_config = ChildConfig {
                role: *worker,
                ..config.clone()
            };
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                super::worker::run_with(worker_config, |_| {}, stop, hooks).await
            }));
            process_router(&config, store, latency)
        }
        other => anyhow::bail!("unknown service `{other}`"),
    };
    let id = config.instance_id.clone();
    let router = router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let id = id.clone();
            async move {
                if let Ok(v) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert("x-shakedown-instance", v);
                }
                response
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tracing::info!(instance = %config.instance_id, %service, port, "service listening");
    ready(port);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn busy() -> Response {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "error": "every request slot is taken" }),
    )
}

async fn count_body(body: Body) -> Result<u64, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        size += chunk?.len() as u64;
    }
    Ok(size)
}

// --- upload ------------------------------------------------------------------------------

struct Upload {
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    store: StoreClient,
    breaker: Breaker,
    store_timeout: Option<std::time::Duration>,
    process: ProcessCall,
    process_url: String,
    http: reqwest::Client,
    slots: Slots,
    latency: Latency,
    stop: CancellationToken,
}

fn upload_router(
    config: &ChildConfig,
    lb_url: &str,
    services: &ServicesConfig,
    store: StoreClient,
    latency: Latency,
    stop: &CancellationToken,
) -> Router {
    let u = &services.upload;
    let state = Arc::new(Upload {
        queue_url: config.queue_url.clone(),
        sqs: sqs_client(&config.sqs_endpoint, &config.region, WEB_KEY),
        store,
        breaker: Breaker::default(),
        store_timeout: u.store_timeout,
        process: u.process,
        process_url: format!("{}/process", lb_url.trim_end_matches('/')),
        http: crate::tls::client_builder()
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds"),
        slots: Slots::new(u.slots, u.waiting),
        latency,
        stop: stop.clone(),
    });
    Router::new()
        .route("/upload/{id}", post(upload).put(upload))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn upload(State(s): State<Arc<Upload>>, Path(id): Path<String>, body: Body) -> Response {
    let received_ms = now_ms();
    let Some(_slot) = s.slots.acquire().await else {
        return busy();
    };
    tokio::time::sleep(s.latency.added()).await;
    if !super::store::valid_id(&id) {
        return failure(StatusCode::BAD_REQUEST, &id, "bad object id".into());
    }
    let size = match count_body(body).await {
        Ok(size) => size,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &id, format!("reading body: {e}")),
    };
    let stored = store_or_spool(&s, &id, size).await;
    let job = Job {
        id: id.clone(),
        size,
        received_ms,
        kind: if stored { "upload" } else { SPOOLED_KIND }.to_owned(),
    };
    match s.process {
        ProcessCall::Queue => enqueue(&s, &job, stored).await,
        ProcessCall::Sync => call_process(&s, &job).await,
    }
}

/// Stores the object within `store_timeout` if the breaker is closed; `false` = spooled
/// (the job carries it to `process`).
async fn store_or_spool(s: &Upload, id: &str, size: u64) -> bool {
    if s.breaker.is_open() {
        return false;
    }
    match s.store.put(id, size, s.store_timeout).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(id, "store: {e}; spooling the object with its job");
            let (store, timeout) = (s.store.clone(), s.store_timeout);
            s.breaker.trip(&s.stop, move || {
                let store = store.clone();
                async move { store.list(0, timeout).await.is_ok() }
            });
            false
        }
    }
}

async fn enqueue(s: &Upload, job: &Job, stored: bool) -> Response {
    let body = serde_json::to_string(job).expect("plain data serializes");
    let sent = s
        .sqs
        .send_message()
        .queue_url(&s.queue_url)
        .message_body(body)
        .send()
        .await;
    match sent {
        Ok(out) => json(
            StatusCode::ACCEPTED,
            serde_json::json!({ "id": job.id, "message_id": out.message_id(), "stored": stored }),
        ),
        Err(e) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &job.id,
            format!(
                "enqueueing the job failed: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ),
        ),
    }
}

/// The distributed monolith: the upload waits for `process` (no timeout of its own).
async fn call_process(s: &Upload, job: &Job) -> Response {
    let sent = s
        .http
        .post(format!("{}/{}", s.process_url, job.id))
        .json(job)
        .send()
        .await;
    forwarded(sent, StatusCode::OK, &job.id, "process")
}

// --- process (its HTTP side) -------------------------------------------------------------

struct ProcessHttp {
    config: ChildConfig,
    store: StoreClient,
    feed: FeedClient,
    slots: Slots,
    latency: Latency,
}

fn process_router(config: &ChildConfig, store: StoreClient, latency: Latency) -> Router {
    let concurrency = match &config.role {
        RoleConfig::Service {
            worker: Some(w), ..
        } => match w.as_ref() {
            RoleConfig::Worker { concurrency, .. } => *concurrency,
            _ => 1,
        },
        _ => 1,
    };
    let state = Arc::new(ProcessHttp {
        feed: FeedClient::new(&config.feed_url),
        config: config.clone(),
        store,
        slots: Slots::new(concurrency, 256),
        latency,
    });
    Router::new()
        .route("/process/{id}", post(process_now))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Processes one job now and answers when it is done (what `distributed-monolith`'s
/// `upload` waits on).
async fn process_now(
    State(s): State<Arc<ProcessHttp>>,
    axum::Json(job): axum::Json<Job>,
) -> Response {
    let Some(_slot) = s.slots.acquire().await else {
        return busy();
    };
    let started_ms = now_ms();
    let spread = rand::random::<f64>() * 2.0 - 1.0;
    let time = s
        .config
        .processing
        .for_size(job.size, s.config.jitter, spread)
        + s.latency.added();
    tokio::time::sleep(time).await;
    if job.kind == SPOOLED_KIND
        && let Err(e) = s.store.put(&job.id, job.size, None).await
    {
        return failure(StatusCode::BAD_GATEWAY, &job.id, format!("store: {e}"));
    }
    let completion = Completion {
        job_id: job.id.clone(),
        message_id: String::new(),
        receive_count: 1,
        received_ms: job.received_ms,
        started_ms,
        done_ms: now_ms(),
        worker: s.config.instance_id.clone(),
    };
    if let Err(e) = s.feed.post(std::slice::from_ref(&completion)).await {
        return failure(StatusCode::BAD_GATEWAY, &job.id, e.to_string());
    }
    json(StatusCode::OK, serde_json::json!({ "id": job.id }))
}

// --- manage ------------------------------------------------------------------------------

struct Manage {
    instance_id: String,
    feed: FeedClient,
    store: StoreClient,
    breaker: Breaker,
    store_timeout: Option<std::time::Duration>,
    list_limit: u32,
    cache: Mutex<Option<Listing>>,
    slots: Slots,
    latency: Latency,
    stop: CancellationToken,
}

fn manage_router(
    config: &ChildConfig,
    services: &ServicesConfig,
    store: StoreClient,
    latency: Latency,
    stop: &CancellationToken,
) -> Router {
    let m = &services.manage;
    let state = Arc::new(Manage {
        instance_id: config.instance_id.clone(),
        feed: FeedClient::new(&config.feed_url),
        store,
        breaker: Breaker::default(),
        store_timeout: m.store_timeout,
        list_limit: m.list_limit,
        cache: Mutex::new(None),
        slots: Slots::new(m.slots, m.waiting),
        latency,
        stop: stop.clone(),
    });
    Router::new()
        .route("/objects", get(list_objects))
        .route("/objects/{id}", axum::routing::delete(delete_object))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

impl Manage {
    /// Opens the breaker (with timeouts only: without, there is no fallback to take).
    fn failed(&self, e: &StoreError) {
        tracing::warn!("store: {e}");
        if self.store_timeout.is_none() {
            return;
        }
        let (store, timeout) = (self.store.clone(), self.store_timeout);
        self.breaker.trip(&self.stop, move || {
            let store = store.clone();
            async move { store.list(0, timeout).await.is_ok() }
        });
    }

    /// Sends `response` to the request with `headers` through [`answered`].
    async fn answer(&self, headers: &HeaderMap, received_ms: u64, response: Response) -> Response {
        let worker = format!("manage:{}", self.instance_id);
        answered(
            &self.feed,
            worker,
            request_id(headers),
            received_ms,
            response,
        )
        .await
    }

    fn cached(&self, why: &str) -> Response {
        match self.cache.lock().clone() {
            Some(l) => json(
                StatusCode::OK,
                serde_json::json!({ "objects": l.objects, "total": l.total, "degraded": true }),
            ),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": format!("{why}, and no listing cached yet") }),
            ),
        }
    }
}

/// Reports a 2xx answer to request `id` (if it has one) to the completion feed before it
/// is sent ([`once_reported`]): a read has no job behind it, its answer is its completion.
async fn answered(
    feed: &FeedClient,
    worker: String,
    id: Option<&str>,
    received_ms: u64,
    response: Response,
) -> Response {
    let Some(id) = id.filter(|_| response.status().is_success()) else {
        return response;
    };
    let done_ms = now_ms();
    let completion = Completion {
        job_id: id.to_owned(),
        message_id: String::new(),
        receive_count: 1,
        received_ms,
        started_ms: received_ms,
        done_ms,
        worker,
    };
    once_reported(feed, &completion, response).await
}

fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-shakedown-id").and_then(|v| v.to_str().ok())
}

async fn list_objects(
    State(s): State<Arc<Manage>>,
    headers: HeaderMap,
    Query(q): Query<Limit>,
) -> Response {
    let received_ms = now_ms();
    let response = list(&s, q).await;
    s.answer(&headers, received_ms, response).await
}

async fn list(s: &Manage, q: Limit) -> Response {
    let Some(_slot) = s.slots.acquire().await else {
        return busy();
    };
    tokio::time::sleep(s.latency.added()).await;
    if s.breaker.is_open() {
        return s.cached("store is slow or failing");
    }
    let limit = q.limit.unwrap_or(s.list_limit).min(s.list_limit);
    match s.store.list(limit, s.store_timeout).await {
        Ok(l) => {
            let answer = json(
                StatusCode::OK,
                serde_json::json!({ "objects": l.objects, "total": l.total, "degraded": false }),
            );
            *s.cache.lock() = Some(l);
            answer
        }
        Err(e) => {
            s.failed(&e);
            if s.store_timeout.is_some() {
                s.cached(&e.to_string())
            } else {
                json(
                    StatusCode::BAD_GATEWAY,
                    serde_json::json!({ "error": e.to_string() }),
                )
            }
        }
    }
}

async fn delete_object(
    State(s): State<Arc<Manage>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let received_ms = now_ms();
    let response = delete(&s, id).await;
    s.answer(&headers, received_ms, response).await
}

async fn delete(s: &Manage, id: String) -> Response {
    let Some(_slot) = s.slots.acquire().await else {
        return busy();
    };
    tokio::time::sleep(s.latency.added()).await;
    if s.breaker.is_open() {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &id,
            "store is slow or failing; try again".into(),
        );
    }
    match s.store.delete(&id, s.store_timeout).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(StoreError::NotFound) => failure(StatusCode::NOT_FOUND, &id, "no such object".into()),
        Err(e) => {
            s.failed(&e);
            failure(StatusCode::SERVICE_UNAVAILABLE, &id, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::feed::Feed;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_read_is_answered_2xx_only_once_the_feed_has_it() {
        let feed = Feed::new(10);
        let client = FeedClient::new(&serve(feed.router()).await);
        let ok = || json(StatusCode::OK, serde_json::json!({ "objects": [] }));
        let r = answered(&client, "manage:i-1".into(), Some("run-1-7"), 5, ok()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(feed.completions_since(0).len(), 1);
        // No id, or a failed answer: nothing to report.
        let r = answered(&client, "manage:i-1".into(), None, 5, ok()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let bad = json(StatusCode::BAD_GATEWAY, serde_json::json!({}));
        let r = answered(&client, "manage:i-1".into(), Some("run-1-8"), 5, bad).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(feed.completions_since(0).len(), 1);
        // The feed unreachable: the client sees a failure, not an unaccounted 2xx.
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let r = answered(
            &FeedClient::new(&gone),
            "manage:i-1".into(),
            Some("run-1-9"),
            5,
            ok(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
