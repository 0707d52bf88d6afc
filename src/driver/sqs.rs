//! The SQS transport: event streams with `transport = "sqs"` go straight into a queue with
//! `SendMessageBatch`, on the same open-model schedule as HTTP requests.
//!
//! Batching never breaks the schedule: a message is never sent before its intended time,
//! and a batch leaves as soon as its oldest message is due, carrying every message already
//! due (up to 10). At low rates batches hold one message; at high rates (or when the
//! dispatcher falls behind) they fill up. At most `max_in_flight` batches are in flight;
//! a batch waiting for a slot makes its messages late, and a message more than
//! `max_lateness` behind is dropped (counted, never sent), as for HTTP lanes.
//!
//! Per message: latency from the intended time (corrected) and from the send (uncorrected);
//! an entry listed in the batch's `Failed` is `rejected` (a throttling code there is
//! `throttled`); a whole-batch failure counts every message by the call's class (timeout,
//! refused, reset, `throttled`, 4xx/5xx service errors, other). Each message carries its id
//! as message attribute `shakedown-id` (and in the body through `{id}`); successes are
//! recorded as accepted for the ledger. The SDK's own retries are off, so a throttled call
//! is counted, not hidden.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tokio::sync::Semaphore;

use super::{Ctx, micros};
use crate::clock::now_ms;
use crate::config::profile::{Profile, Transport};
use crate::metrics::ErrorClass;
use crate::schedule::Schedule;

/// Most entries of one `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;
/// The message attribute carrying each message's id.
pub const ID_ATTRIBUTE: &str = "shakedown-id";

/// Error codes SQS (and the AWS SDKs) use for throttling.
const THROTTLING_CODES: [&str; 5] = [
    "ThrottlingException",
    "RequestThrottled",
    "Throttling",
    "KmsThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Where SQS streams send: a client and each stream's queue URL.
#[derive(Debug, Clone)]
pub struct SqsSink {
    client: aws_sdk_sqs::Client,
    /// Per stream (profile order): the queue URL of SQS streams, `None` for HTTP streams.
    urls: Vec<Option<String>>,
}

impl SqsSink {
    /// Resolves every SQS stream's queue (a name through GetQueueUrl, a URL as is) with a
    /// copy of `client` whose retries are off. An unresolvable queue is an error naming
    /// the stream.
    pub async fn resolve(client: &aws_sdk_sqs::Client, profile: &Profile) -> Result<Self, String> {
        let client = aws_sdk_sqs::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
                .build(),
        );
        let mut urls = Vec::new();
        for s in &profile.streams {
            urls.push(match &s.transport {
                Transport::Http => None,
                Transport::Sqs { queue } => Some(
                    crate::aws::QueueRef::Plain(queue.clone())
                        .url(&client)
                        .await
                        .map_err(|e| format!("stream `{}`: queue `{queue}`: {e}", s.name))?,
                ),
            });
        }
        Ok(SqsSink { client, urls })
    }

    /// The queue URL of stream `stream`, if it is an SQS stream.
    pub fn url(&self, stream: usize) -> Option<&str> {
        self.urls.get(stream)?.as_deref()
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended: Instant,
}

/// Walks one SQS stream's schedule: at each due time, sends every due message in batches
/// of at most [`MAX_BATCH`], each batch in its own task (bounded by `max_in_flight`).
pub(super) async fn dispatch(ctx: Arc<Ctx>, stream: usize, schedule: Schedule) {
    let Some(sink) = ctx.plan.sqs.clone() else {
        tracing::error!("stream {stream} sends to SQS but the run has no SQS client");
        return;
    };
    let Some(url) = sink.url(stream).map(str::to_owned) else {
        return;
    };
    let url: Arc<str> = url.into();
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
        let (ctx2, sink, url) = (ctx.clone(), sink.clone(), url.clone());
        let handle = ctx.lanes.spawn(async move {
            send_batch(&ctx2, &sink, &url, stream, batch).await;
            drop(permit);
        });
        ctx.lane_handles.lock().push(handle.abort_handle());
    }
}

/// Sends one batch and records every message's outcome.
async fn send_batch(ctx: &Ctx, sink: &SqsSink, url: &str, stream: usize, batch: Vec<Pending>) {
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
        let entry = SendMessageBatchRequestEntry::builder()
            .id(sending.len().to_string())
            .message_body(body)
            .message_attributes(
                ID_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(id)
                    .build()
                    .expect("data type is set"),
            )
            .build()
            .expect("id and body are set");
        entries.push(entry);
        sending.push(p);
    }
    if sending.is_empty() {
        return;
    }
    let n = sending.len() as i64;
    ctx.recorder.in_flight_add(stream, n);
    let call = sink
        .client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send();
    let outcome = tokio::time::timeout(settings.request_timeout, call).await;
    ctx.recorder.in_flight_add(stream, -n);
    let done = Instant::now();
    let uncorrected = micros(done - sent_at);
    match outcome {
        Err(_) => ctx.recorder.record(stream, stream, |w| {
            for _ in &sending {
                w.record_failure(ErrorClass::Timeout);
            }
        }),
        Ok(Err(e)) => {
            let class = classify(&e);
            ctx.recorder.record(stream, stream, |w| {
                for _ in &sending {
                    w.record_failure(class);
                }
            });
        }
        Ok(Ok(out)) => {
            let failed: std::collections::HashMap<&str, ErrorClass> = out
                .failed()
                .iter()
                .map(|f| {
                    let class = if THROTTLING_CODES.contains(&f.code()) {
                        ErrorClass::Throttled
                    } else {
                        ErrorClass::Rejected
                    };
                    (f.id(), class)
                })
                .collect();
            for (i, p) in sending.iter().enumerate() {
                match failed.get(i.to_string().as_str()) {
                    Some(class) => ctx
                        .recorder
                        .record(stream, stream, |w| w.record_failure(*class)),
                    None => {
                        if let Some(accepted) = &ctx.plan.accepted
                            && let Err(e) = accepted.accept(stream, p.seq)
                        {
                            tracing::warn!("ledger: {e}");
                        }
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

/// The error class of a failed call.
fn classify<E: ProvideErrorMetadata>(e: &SdkError<E>) -> ErrorClass {
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
