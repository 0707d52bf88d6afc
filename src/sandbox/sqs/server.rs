//! The HTTP side: an axum handler for `POST /` dispatching on `X-Amz-Target`, the shared
//! state around the pure [`Registry`], and long polling woken by per-queue [`Notify`]s.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::model::{Millis, QueueError, QueueSettings, QueueStats, Registry};
use super::policy;
use super::wire::{self, ApiError, ArnContext, ErrorKind, Projection, QueueView, required};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TARGET_PREFIX: &str = "AmazonSQS.";

/// Monotonic milliseconds aligned to the Unix epoch at startup.
#[derive(Debug)]
struct Clock {
    origin: Instant,
    origin_millis: Millis,
}

impl Clock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            origin_millis: crate::clock::now_ms() as Millis,
        }
    }

    fn now(&self) -> Millis {
        self.origin_millis + self.origin.elapsed().as_millis() as Millis
    }

    fn instant(&self, at: Millis) -> Instant {
        self.origin + Duration::from_millis(at.saturating_sub(self.origin_millis))
    }
}

/// State shared by the in-process API and every request.
#[derive(Debug)]
pub(super) struct Shared {
    registry: Mutex<Registry>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    clock: Clock,
    pub(super) arns: ArnContext,
    pub(super) defaults: QueueSettings,
    /// `http://host:port` once serving; used for queue URLs made outside a request.
    pub(super) endpoint: RwLock<Option<String>>,
    stopping: CancellationToken,
}

impl Shared {
    pub(super) fn new(arns: ArnContext, defaults: QueueSettings, seed: u64) -> Self {
        Self {
            registry: Mutex::new(Registry::new(seed)),
            wakers: Mutex::new(HashMap::new()),
            clock: Clock::new(),
            arns,
            defaults,
            endpoint: RwLock::new(None),
            stopping: CancellationToken::new(),
        }
    }

    /// `<base>/<account>/<name>`.
    pub(super) fn queue_url(&self, base: &str, name: &str) -> String {
        format!(
            "{}/{}/{name}",
            base.trim_end_matches('/'),
            self.arns.account_id
        )
    }

    fn waker(&self, name: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    fn wake(&self, name: &str) {
        if let Some(notify) = self.wakers.lock().get(name) {
            notify.notify_waiters();
        }
    }

    /// Creates a queue with exactly `settings` (in-process API).
    pub(super) fn create_queue(
        &self,
        name: &str,
        settings: QueueSettings,
    ) -> Result<(), QueueError> {
        let now = self.clock.now();
        self.registry.lock().create_queue(name, settings, now)?;
        Ok(())
    }

    /// `f` over every message stored in queue `name` (any state), or `None` if it does not
    /// exist.
    pub(super) fn map_messages<T>(
        &self,
        name: &str,
        f: impl FnMut(&super::model::Message) -> T,
    ) -> Option<Vec<T>> {
        let registry = self.registry.lock();
        Some(registry.queue(name).ok()?.messages().map(f).collect())
    }

    pub(super) fn stats(&self, name: &str) -> Option<QueueStats> {
        let now = self.clock.now();
        self.registry.lock().stats(name, now).ok()
    }

    /// Serves until `shutdown` resolves, then wakes long pollers and drains.
    /// (The caller records the bound address in `endpoint`.)
    pub(super) async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.stopping.clone();
        let app = Router::new()
            .route("/", post(handle))
            .with_state(self.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.cancel();
            })
            .await
    }
}

/// Per-request facts the actions need besides the body.
struct Request {
    /// `http://<Host header>`, for the queue URLs we hand out.
    base_url: String,
    /// The caller's principal ARN, from the access key id of its signature.
    principal: Option<String>,
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let base_url = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| format!("http://{host}"))
        .or_else(|| shared.endpoint.read().clone())
        .unwrap_or_else(|| "http://localhost".to_owned());
    let principal = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(policy::access_key_id)
        .map(|key| policy::principal_of_key(key, &shared.arns.account_id));
    let request = Request {
        base_url,
        principal,
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let result = match target.strip_prefix(TARGET_PREFIX) {
        Some(action) => dispatch(&shared, &request, action, &body).await,
        None => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Missing or unknown X-Amz-Target header {target:?}."),
        )),
    };
    match result {
        Ok(json) => reply(StatusCode::OK, json, None),
        Err(error) => reply(error.status(), error.body(), error.query_error_header()),
    }
}

fn reply(status: StatusCode, body: Vec<u8>, query_error: Option<String>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    let request_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Some(value) = query_error.and_then(|code| HeaderValue::from_str(&code).ok()) {
        headers.insert("x-amzn-query-error", value);
    }
    response
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value)
        .map_err(|error| ApiError::new(ErrorKind::Serialization, error.to_string()))
}

async fn dispatch(
    shared: &Shared,
    request: &Request,
    action: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    check_policy(shared, request, action, body)?;
    match action {
        "CreateQueue" => create_queue(shared, request, wire::parse(body)?),
        "GetQueueUrl" => get_queue_url(shared, request, wire::parse(body)?),
        "ListQueues" => list_queues(shared, request, wire::parse(body)?),
        "DeleteQueue" => delete_queue(shared, wire::parse(body)?),
        "SendMessage" => send_message(shared, wire::parse(body)?),
        "SendMessageBatch" => send_message_batch(shared, wire::parse(body)?),
        "ReceiveMessage" => receive_message(shared, request, wire::parse(body)?).await,
        "DeleteMessage" => delete_message(shared, wire::parse(body)?),
        "DeleteMessageBatch" => delete_message_batch(shared, wire::parse(body)?),
        "ChangeMessageVisibility" => change_visibility(shared, wire::parse(body)?),
        "ChangeMessageVisibilityBatch" => change_visibility_batch(shared, wire::parse(body)?),
        "GetQueueAttributes" => get_queue_attributes(shared, wire::parse(body)?),
        "SetQueueAttributes" => set_queue_attributes(shared, wire::parse(body)?),
        "PurgeQueue" => purge_queue(shared, wire::parse(body)?),
        "TagQueue" => tag_queue(shared, wire::parse(body)?),
        "UntagQueue" => untag_queue(shared, wire::parse(body)?),
        "ListQueueTags" => list_queue_tags(shared, wire::parse(body)?),
        other => Err(ApiError::new(
            ErrorKind::UnsupportedOperation,
            format!("The action {other} is not supported by this endpoint."),
        )),
    }
}

/// Refuses the call when the named queue's policy denies `action` to the caller.
fn check_policy(
    shared: &Shared,
    request: &Request,
    action: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "QueueUrl")]
        queue_url: Option<String>,
    }
    let Ok(Named {
        queue_url: Some(url),
    }) = serde_json::from_slice::<Named>(body)
    else {
        return Ok(());
    };
    let Ok(name) = wire::queue_name_from_url(&url) else {
        return Ok(());
    };
    denied(shared, request, action, name)
}

fn denied(shared: &Shared, request: &Request, action: &str, queue: &str) -> Result<(), ApiError> {
    let registry = shared.registry.lock();
    let Ok(q) = registry.queue(queue) else {
        return Ok(());
    };
    match &q.settings().policy {
        Some(p)
            if policy::denies(
                p,
                &format!("sqs:{action}"),
                request.principal.as_deref(),
                &shared.arns.account_id,
            ) =>
        {
            Err(ApiError::new(
                ErrorKind::AccessDenied,
                format!(
                    "Access to the resource {} is denied (a Deny statement of its policy matches {} for sqs:{action}).",
                    shared.arns.arn(queue),
                    request.principal.as_deref().unwrap_or("an unsigned caller")
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn queue_name(url: Option<&String>) -> Result<&str, ApiError> {
    wire::queue_name_from_url(required(url, "QueueUrl")?)
}

fn create_queue(
    shared: &Shared,
    request: &Request,
    input: wire::CreateQueueRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = required(input.queue_name, "QueueName")?;
    let now = shared.clock.now();
    let mut registry = shared.registry.lock();
    let base = match registry.queue(&name) {
        Ok(existing) => existing.settings().clone(),
        Err(_) => shared.defaults.clone(),
    };
    let settings = wire::apply_attributes(&base, &input.attributes)?;
    super::model::with_tags(&BTreeMap::new(), &input.tags, &name)?;
    if registry.create_queue(&name, settings, now)? {
        registry.tag_queue(&name, &input.tags)?;
    }
    json(&wire::QueueUrlResponse {
        queue_url: shared.queue_url(&request.base_url, &name),
    })
}

fn get_queue_url(
    shared: &Shared,
    request: &Request,
    input: wire::GetQueueUrlRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = required(input.queue_name, "QueueName")?;
    shared.registry.lock().queue(&name)?;
    json(&wire::QueueUrlResponse {
        queue_url: shared.queue_url(&request.base_url, &name),
    })
}

fn list_queues(
    shared: &Shared,
    request: &Request,
    input: wire::ListQueuesRequest,
) -> Result<Vec<u8>, ApiError> {
    let limit = input
        .max_results
        .map(|n| wire::in_range("MaxResults", n, 1, 1_000))
        .transpose()?;
    let prefix = input.queue_name_prefix.unwrap_or_default();
    let after = input.next_token.unwrap_or_default();
    let registry = shared.registry.lock();
    let mut names: Vec<&str> = registry
        .names()
        .filter(|name| name.starts_with(&prefix) && *name > after.as_str())
        .take(limit.unwrap_or(1_000) as usize + 1)
        .collect();
    let more = names.len() > limit.unwrap_or(1_000) as usize;
    names.truncate(limit.unwrap_or(1_000) as usize);
    let next_token = (more && limit.is_some())
        .then(|| names.last().map(|name| (*name).to_owned()))
        .flatten();
    json(&wire::ListQueuesResponse {
        queue_urls: names
            .iter()
            .map(|name| shared.queue_url(&request.base_url, name))
            .collect(),
        next_token,
    })
}

fn delete_queue(shared: &Shared, input: wire::QueueUrlRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    shared.registry.lock().delete_queue(name)?;
    if let Some(notify) = shared.wakers.lock().remove(name) {
        notify.notify_waiters();
    }
    json(&wire::Empty {})
}

fn send_one(
    shared: &Shared,
    name: &str,
    input: wire::SendMessageRequest,
) -> Result<wire::SendMessageResponse, ApiError> {
    let id = input.id.clone();
    let message = wire::new_message(input)?;
    let now = shared.clock.now();
    let receipt = shared.registry.lock().send(name, message, now)?;
    Ok(wire::SendMessageResponse {
        id,
        message_id: receipt.message_id,
        md5_of_message_body: receipt.md5_of_body,
        md5_of_message_attributes: receipt.md5_of_attributes,
    })
}

fn send_message(shared: &Shared, input: wire::SendMessageRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?.to_owned();
    let response = send_one(shared, &name, input)?;
    shared.wake(&name);
    json(&response)
}

fn send_message_batch(
    shared: &Shared,
    input: wire::SendMessageBatchRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?.to_owned();
    let limit = shared
        .registry
        .lock()
        .queue(&name)?
        .settings()
        .maximum_message_size;
    wire::check_batch(input.entries.iter().map(|entry| entry.id.as_deref()))?;
    let total: usize = input
        .entries
        .iter()
        .map(|entry| entry.message_body.as_ref().map_or(0, String::len))
        .sum();
    if total > limit as usize {
        return Err(ApiError::new(
            ErrorKind::BatchRequestTooLong,
            format!(
                "Batch requests cannot be longer than {limit} bytes. You have sent {total} bytes."
            ),
        ));
    }
    let mut result = wire::BatchResponse {
        successful: Vec::new(),
        failed: Vec::new(),
    };
    for entry in input.entries {
        let id = entry.id.clone().unwrap_or_default();
        match send_one(shared, &name, entry) {
            Ok(sent) => result.successful.push(sent),
            Err(error) if error.kind == ErrorKind::QueueDoesNotExist => return Err(error),
            Err(error) => result.failed.push(error.batch_entry(&id)),
        }
    }
    shared.wake(&name);
    json(&result)
}

/// ReceiveMessage with long polling: retry whenever the queue is notified or its next
/// message comes due, until something is delivered or the wait ends.
async fn receive_message(
    shared: &Shared,
    request: &Request,
    input: wire::ReceiveMessageRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?.to_owned();
    let limits = input.limits()?;
    let projection = Projection::of(&input);
    let (wait, dead_letter) = {
        let registry = shared.registry.lock();
        let settings = registry.queue(&name)?.settings();
        let wait = limits.wait.unwrap_or(settings.receive_wait_time_seconds);
        let dead_letter = settings
            .redrive_policy
            .as_ref()
            .map(|policy| policy.dead_letter_queue.clone());
        (wait, dead_letter)
    };
    let deadline = Instant::now() + Duration::from_secs(u64::from(wait));
    let notify = shared.waker(&name);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // A long poll that began before a Deny was added delivers nothing after it.
        denied(shared, request, "ReceiveMessage", &name)?;
        let now = shared.clock.now();
        let (deliveries, next_due) = {
            let mut registry = shared.registry.lock();
            let deliveries = registry.receive(&name, limits.max, limits.visibility, now)?;
            (deliveries, registry.next_due(&name, now))
        };
        if let Some(dead_letter) = &dead_letter {
            shared.wake(dead_letter);
        }
        if !deliveries.is_empty() || Instant::now() >= deadline || shared.stopping.is_cancelled() {
            let messages = deliveries
                .into_iter()
                .map(|delivery| projection.render(delivery, &shared.arns.account_id))
                .collect();
            return json(&wire::ReceiveMessageResponse { messages });
        }
        let wake_at = next_due
            .map(|at| shared.clock.instant(at).min(deadline))
            .unwrap_or(deadline);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake_at.into()) => {}
            () = shared.stopping.cancelled() => {}
        }
    }
}

fn delete_one(shared: &Shared, name: &str, handle: Option<String>) -> Result<(), ApiError> {
    let handle = required(handle, "ReceiptHandle")?;
    let now = shared.clock.now();
    shared.registry.lock().delete_message(name, &handle, now)?;
    Ok(())
}

fn delete_message(shared: &Shared, input: wire::DeleteMessageRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    delete_one(shared, name, input.receipt_handle)?;
    json(&wire::Empty {})
}

fn delete_message_batch(
    shared: &Shared,
    input: wire::DeleteMessageBatchRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    shared.registry.lock().queue(name)?;
    wire::check_batch(input.entries.iter().map(|entry| entry.id.as_deref()))?;
    json(&per_entry(input.entries, |entry| {
        let id = entry.id.unwrap_or_default();
        (id, delete_one(shared, name, entry.receipt_handle))
    }))
}

/// Runs one action per batch entry and reports each as successful or failed
/// by its entry id (the shape of DeleteMessageBatch and ChangeMessageVisibilityBatch).
fn per_entry<E>(
    entries: Vec<E>,
    mut action: impl FnMut(E) -> (String, Result<(), ApiError>),
) -> wire::BatchResponse<wire::BatchResultEntry> {
    let mut result = wire::BatchResponse {
        successful: Vec::new(),
        failed: Vec::new(),
    };
    for entry in entries {
        match action(entry) {
            (id, Ok(())) => result.successful.push(wire::BatchResultEntry { id }),
            (id, Err(error)) => result.failed.push(error.batch_entry(&id)),
        }
    }
    result
}

fn change_one(
    shared: &Shared,
    name: &str,
    handle: Option<String>,
    timeout: Option<i64>,
) -> Result<(), ApiError> {
    let handle = required(handle, "ReceiptHandle")?;
    let timeout = required(timeout, "VisibilityTimeout")?;
    let timeout = wire::in_range(
        "VisibilityTimeout",
        timeout,
        0,
        super::model::MAX_VISIBILITY_TIMEOUT,
    )?;
    let now = shared.clock.now();
    shared
        .registry
        .lock()
        .change_visibility(name, &handle, timeout, now)?;
    shared.wake(name);
    Ok(())
}

fn change_visibility(
    shared: &Shared,
    input: wire::ChangeVisibilityRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    change_one(shared, name, input.receipt_handle, input.visibility_timeout)?;
    json(&wire::Empty {})
}

fn change_visibility_batch(
    shared: &Shared,
    input: wire::ChangeVisibilityBatchRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    shared.registry.lock().queue(name)?;
    wire::check_batch(input.entries.iter().map(|entry| entry.id.as_deref()))?;
    json(&per_entry(input.entries, |entry| {
        let id = entry.id.unwrap_or_default();
        let outcome = change_one(shared, name, entry.receipt_handle, entry.visibility_timeout);
        (id, outcome)
    }))
}

fn get_queue_attributes(
    shared: &Shared,
    input: wire::GetQueueAttributesRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    let now = shared.clock.now();
    let mut registry = shared.registry.lock();
    let stats = registry.stats(name, now)?;
    let queue = registry.queue(name)?;
    let view = QueueView {
        name,
        settings: queue.settings(),
        stats: &stats,
        created_at: queue.created_at(),
        last_modified_at: queue.last_modified_at(),
    };
    let attributes = wire::render_attributes(&input.attribute_names, &view, &shared.arns)?;
    json(&wire::GetQueueAttributesResponse { attributes })
}

fn set_queue_attributes(
    shared: &Shared,
    input: wire::SetQueueAttributesRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    let now = shared.clock.now();
    let mut registry = shared.registry.lock();
    let settings = wire::apply_attributes(registry.queue(name)?.settings(), &input.attributes)?;
    registry.set_settings(name, settings, now)?;
    json(&wire::Empty {})
}

fn purge_queue(shared: &Shared, input: wire::QueueUrlRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    let now = shared.clock.now();
    shared.registry.lock().purge(name, now)?;
    json(&wire::Empty {})
}

fn tag_queue(shared: &Shared, input: wire::TagQueueRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    shared.registry.lock().tag_queue(name, &input.tags)?;
    json(&wire::Empty {})
}

fn untag_queue(shared: &Shared, input: wire::UntagQueueRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    shared.registry.lock().untag_queue(name, &input.tag_keys)?;
    json(&wire::Empty {})
}

fn list_queue_tags(shared: &Shared, input: wire::QueueUrlRequest) -> Result<Vec<u8>, ApiError> {
    let name = queue_name(input.queue_url.as_ref())?;
    let tags = shared.registry.lock().queue(name)?.tags().clone();
    json(&wire::ListQueueTagsResponse { tags })
}
