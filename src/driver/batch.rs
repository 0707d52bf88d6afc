//! The batched AWS transports: event streams with `transport = "sqs"` ([`super::sqs`],
//! SendMessageBatch) or `transport = "eventbridge"` ([`super::eventbridge`], PutEvents) go
//! straight to the service, on the same open-model schedule as HTTP requests.
//!
//! Batching never breaks the schedule: a message is never sent before its intended time,
//! and a batch leaves as soon as its oldest message is due, carrying every message already
//! due (up to 10, both services' limit). At low rates batches hold one message; at high
//! rates (or when the dispatcher falls behind) they fill up. At most `max_in_flight` batches
//! are in flight; a batch waiting for a slot makes its messages late, and a message more
//! than `max_lateness` behind is dropped (counted, never sent), as for HTTP lanes.
//!
//! Per message: latency from the intended time (corrected) and from the send (uncorrected);
//! an entry the service lists as failed is `rejected` (a throttling code there is
//! `throttled`); a whole-call failure counts every message by the call's class (timeout,
//! refused, reset, `throttled`, 4xx/5xx service errors, other). Successes are recorded as
//! accepted for the ledger. The SDKs' own retries are off, so a throttled call is counted,
//! not hidden.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::Semaphore;

use super::eventbridge::EventBus;
use super::sqs::SqsQueue;
use super::{Ctx, micros};
use crate::aws::AwsClients;
use crate::clock::now_ms;
use crate::config::profile::{Profile, Transport};
use crate::metrics::ErrorClass;
use crate::schedule::Schedule;

/// Most entries of one call (SendMessageBatch and PutEvents alike).
pub const MAX_BATCH: usize = 10;

/// Error codes AWS services (and their SDKs) use for throttling.
const THROTTLING_CODES: [&str; 6] = [
    "ThrottlingException",
    "RequestThrottled",
    "Throttling",
    "KmsThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
    "LimitExceededException",
];

/// The class of one entry the service refused within an accepted call, by its error code.
pub(super) fn entry_failure(code: &str) -> ErrorClass {
    if THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttled
    } else {
        ErrorClass::Rejected
    }
}

/// Where one stream sends.
#[derive(Debug, Clone)]
pub enum Sink {
    /// An SQS queue.
    Sqs(SqsQueue),
    /// An EventBridge event bus.
    EventBridge(EventBus),
}

/// What a call did: per entry (in the order sent) `None` when accepted or the class it
/// failed with; or the class of a call that failed as a whole.
pub(super) type Outcome = Result<Vec<Option<ErrorClass>>, ErrorClass>;

impl Sink {
    async fn send(&self, entries: Vec<(String, String)>) -> Outcome {
        match self {
            Sink::Sqs(q) => q.send(entries).await,
            Sink::EventBridge(b) => b.send(entries).await,
        }
    }
}

/// Where the streams with an AWS transport send, per stream (profile order).
#[derive(Debug, Clone)]
pub struct Sinks {
    streams: Vec<Option<Sink>>,
}

impl Sinks {
    /// Resolves every AWS stream's destination with copies of the target's clients whose
    /// retries are off: an SQS queue (a name through GetQueueUrl, a URL as is), an event bus
    /// (as named: PutEvents takes a name or an ARN). An unresolvable queue, or a bus without
    /// an EventBridge endpoint, is an error naming the stream.
    pub async fn resolve(clients: &AwsClients, profile: &Profile) -> Result<Self, String> {
        let mut streams = Vec::new();
        for s in &profile.streams {
            streams.push(match &s.transport {
                Transport::Http => None,
                Transport::Sqs { queue } => Some(Sink::Sqs(
                    SqsQueue::resolve(&clients.sqs, queue)
                        .await
                        .map_err(|e| format!("stream `{}`: queue `{queue}`: {e}", s.name))?,
                )),
                Transport::EventBridge {
                    bus,
                    source,
                    detail_type,
                } => {
                    let client = clients.eventbridge.as_ref().ok_or_else(|| {
                        format!(
                            "stream `{}`: {}",
                            s.name,
                            crate::aws::unserved("EventBridge")
                        )
                    })?;
                    Some(Sink::EventBridge(EventBus::new(
                        client,
                        bus,
                        source,
                        detail_type,
                    )))
                }
            });
        }
        Ok(Sinks { streams })
    }

    /// Where stream `stream` sends, if it has an AWS transport.
    pub fn sink(&self, stream: usize) -> Option<&Sink> {
        self.streams.get(stream)?.as_ref()
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended: Instant,
}

/// Walks one AWS stream's schedule: at each due time, sends every due message in batches
/// of at most [`MAX_BATCH`], each batch in its own task (bounded by `max_in_flight`).
pub(super) async fn dispatch(ctx: Arc<Ctx>, stream: usize, schedule: Schedule) {
    let Some(sink) = ctx
        .plan
        .sinks
        .as_ref()
        .and_then(|s| s.sink(stream))
        .cloned()
    else {
        tracing::error!("stream {stream} sends to an AWS service but the run has no client");
        return;
    };
    let sink = Arc::new(sink);
    let slots = Arc::new(Semaphore::new(ctx.plan.settings.max_in_flight.max(1)));
    let start = ctx.recorder.start();
    let mut arrivals = schedule.peekable();
    while let Some(first) = arrivals.next() {
        let intended = start + first.at;
        if intended > Instant::now() {
            tokio::select! {
                biased;
                _ = ctx.stop.cancelled() => return,
                _ = tokio::time::sleep_until(intended.into()) => {}
            }
        } else if ctx.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // Everything due by now joins this batch (up to 10); never a message before its time.
        let mut batch = vec![Pending {
            seq: first.seq,
            intended,
        }];
        let now = Instant::now();
        while batch.len() < MAX_BATCH
            && let Some(next) = arrivals.next_if(|a| start + a.at <= now)
        {
            batch.push(Pending {
                seq: next.seq,
                intended: start + next.at,
            });
        }
        ctx.recorder.record(stream, stream, |w| {
            w.counters.intended += batch.len() as u64;
        });
        let permit = tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => {
                ctx.recorder.record(stream, stream, |w| w.counters.dropped += batch.len() as u64);
                return;
            }
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (ctx2, sink) = (ctx.clone(), sink.clone());
        let handle = ctx.lanes.spawn(async move {
            send_batch(&ctx2, &sink, stream, batch).await;
            drop(permit);
        });
        ctx.lane_handles.lock().push(handle.abort_handle());
    }
}

/// Sends one batch and records every message's outcome.
async fn send_batch(ctx: &Ctx, sink: &Sink, stream: usize, batch: Vec<Pending>) {
    let settings = &ctx.plan.settings;
    let sent_at = Instant::now();
    let mut entries = Vec::with_capacity(batch.len());
    let mut sending = Vec::with_capacity(batch.len());
    for p in batch {
        let lateness = sent_at.saturating_duration_since(p.intended);
        if lateness > settings.max_lateness {
            ctx.recorder
                .record(stream, stream, |w| w.counters.dropped += 1);
            continue;
        }
        let (id, body) = match ctx.plan.factory.message(stream, p.seq, now_ms()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("{e}");
                ctx.recorder
                    .record(stream, stream, |w| w.record_failure(ErrorClass::Other));
                continue;
            }
        };
        let late = lateness > settings.late_after;
        let len = body.len() as u64;
        ctx.recorder.record(stream, stream, |w| {
            w.record_send(len, micros(lateness), late)
        });
        entries.push((id, body));
        sending.push(p);
    }
    if sending.is_empty() {
        return;
    }
    let n = sending.len() as i64;
    ctx.recorder.in_flight_add(stream, n);
    let call = sink.send(entries);
    let outcome = tokio::time::timeout(settings.request_timeout, call).await;
    ctx.recorder.in_flight_add(stream, -n);
    let done = Instant::now();
    let uncorrected = micros(done - sent_at);
    let outcome = match outcome {
        Err(_) => Err(ErrorClass::Timeout),
        Ok(outcome) => outcome,
    };
    match outcome {
        Err(class) => ctx.recorder.record(stream, stream, |w| {
            for _ in &sending {
                w.record_failure(class);
            }
        }),
        Ok(results) => {
            for (i, p) in sending.iter().enumerate() {
                // An entry the answer does not mention was not accepted.
                match results.get(i).copied().unwrap_or(Some(ErrorClass::Other)) {
                    Some(class) => ctx
                        .recorder
                        .record(stream, stream, |w| w.record_failure(class)),
                    None => {
                        ctx.accepted(stream, p.seq);
                        let corrected = micros(done - p.intended);
                        ctx.recorder.record(stream, stream, |w| {
                            w.record_response(corrected, uncorrected, None)
                        });
                    }
                }
            }
        }
    }
}

/// The error class of a call that failed as a whole (any AWS SDK's error).
pub(super) fn classify<E: ProvideErrorMetadata>(e: &SdkError<E>) -> ErrorClass {
    match e {
        SdkError::TimeoutError(_) => ErrorClass::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => ErrorClass::Timeout,
        SdkError::DispatchFailure(d) => {
            let text = format!("{d:?}");
            if text.contains("ConnectionRefused") || text.contains("Connection refused") {
                ErrorClass::Refused
            } else if d.is_io() {
                ErrorClass::Reset
            } else {
                ErrorClass::Other
            }
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            let status = s.raw().status().as_u16();
            if THROTTLING_CODES.contains(&code) || status == 429 {
                ErrorClass::Throttled
            } else if (500..600).contains(&status) {
                ErrorClass::Status5xx
            } else if (400..500).contains(&status) {
                ErrorClass::Status4xx
            } else {
                ErrorClass::Other
            }
        }
        _ => ErrorClass::Other,
    }
}
