//! Delivery: one task per (event, rule, target), retrying per the policy; SQS sends and
//! function invocations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use rand::Rng;

use super::account::{Start, handler_duration};
use super::{Bus, Completion, Event, Function, Target};
use crate::clock::now_ms;

/// One delivery to do.
pub(super) struct Job {
    pub event: Arc<Event>,
    /// The envelope, serialised once per event.
    pub body: Arc<str>,
    pub rule: usize,
    pub target: Target,
    pub accepted_at: Instant,
}

/// Why one delivery attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// `SendMessage` failed.
    #[error("SendMessage to {queue_url}: {message}")]
    Sqs {
        /// The queue.
        queue_url: String,
        /// The SDK's error, with its causes.
        message: String,
    },
    /// The function's handler failed (injected by `error_rate`).
    #[error("function {0} failed")]
    FunctionFailed(String),
    /// The function was at its concurrency limit.
    #[error("function {0} throttled")]
    Throttled(String),
}

enum Outcome {
    Delivered,
    Failed(DeliveryError),
    Abandoned,
}

/// An SQS client for the sandbox: fixed region and test credentials, no SDK retries (the bus
/// retries itself, so its counters see every failure).
pub(super) fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    crate::aws::disable_imds();
    let config = crate::aws::local_sqs_config(endpoint, "us-east-1", "test", "test")
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A wait drawn uniformly in `[ceiling/2, ceiling]`.
fn jittered(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let extra = rand::rng().random_range(0..=half.as_nanos() as u64);
    half + Duration::from_nanos(extra)
}

impl Bus {
    /// Runs one delivery to the end (delivered, failed or abandoned) and counts it.
    pub(super) async fn deliver(self: Arc<Self>, job: Job) {
        let outcome = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Outcome::Abandoned,
            o = self.attempts(&job) => o,
        };
        let mut c = self.counters.lock();
        match outcome {
            Outcome::Delivered => c.rules[job.rule].delivered += 1,
            Outcome::Failed(e) => {
                c.rules[job.rule].failed += 1;
                tracing::warn!(event = %job.event.id, rule = %self.config.rules[job.rule].name,
                    error = %e, "delivery given up");
            }
            Outcome::Abandoned => c.abandoned += 1,
        }
    }

    async fn attempts(&self, job: &Job) -> Outcome {
        let policy = &self.config.retry;
        let mut failures = 0u32;
        let mut throttles = 0u32;
        loop {
            let result = match &job.target {
                Target::Queue { queue_url } => self.send(job, queue_url).await,
                Target::Function { name } => {
                    let f = &self.functions[name];
                    self.invoke(f, job, failures + 1).await
                }
            };
            let (retry, error) = match result {
                Ok(()) => return Outcome::Delivered,
                Err(e @ DeliveryError::Throttled(_)) => {
                    throttles += 1;
                    (throttles, e)
                }
                Err(e) => {
                    failures += 1;
                    if failures >= policy.max_attempts {
                        return Outcome::Failed(e);
                    }
                    (failures, e)
                }
            };
            let wait = jittered(policy.backoff_ceiling(retry));
            if job.accepted_at.elapsed() + wait > policy.max_event_age {
                return Outcome::Failed(error);
            }
            if !matches!(error, DeliveryError::Throttled(_)) {
                self.counters.lock().retries += 1;
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn send(&self, job: &Job, queue_url: &str) -> Result<(), DeliveryError> {
        let client = &self.queues[queue_url];
        let mut request = client
            .send_message()
            .queue_url(queue_url)
            .message_body(&*job.body);
        if queue_url.ends_with(".fifo") {
            request = request
                .message_group_id(&job.event.source)
                .message_deduplication_id(&job.event.id);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DeliveryError::Sqs {
                queue_url: queue_url.to_string(),
                message: DisplayErrorContext(e).to_string(),
            })
    }

    /// One invocation: take a slot (or be throttled), initialise it if cold, run the handler
    /// for its modelled duration, account and report.
    async fn invoke(&self, f: &Function, job: &Job, attempt: u32) -> Result<(), DeliveryError> {
        let spec = &f.spec;
        let start = f
            .ledger
            .lock()
            .start(Instant::now())
            .map_err(|_| DeliveryError::Throttled(spec.name.clone()))?;
        // Taken inside the slot's lifetime, so completions of one function never overlap
        // more than its concurrency limit allows.
        let started_ms = now_ms();
        let mut slot = Slot {
            function: f,
            start,
            handler: None,
            finished: false,
        };
        let init = if start.cold && !spec.cold_start.is_zero() {
            let t = Instant::now();
            tokio::time::sleep(spec.cold_start).await;
            t.elapsed()
        } else {
            Duration::ZERO
        };
        let (duration, fail) = {
            let mut rng = rand::rng();
            let extra = rng.random_range(0..=spec.jitter.as_nanos() as u64);
            let fail = spec.error_rate > 0.0 && rng.random_bool(spec.error_rate);
            let wait = spec.base + Duration::from_nanos(extra);
            (handler_duration(wait, spec.cpu, spec.memory_mb), fail)
        };
        slot.handler = Some((Instant::now(), duration));
        tokio::time::sleep(duration).await;
        let done_ms = now_ms();
        // Billed: the modelled duration. The timer may overrun it by its ~1 ms granularity,
        // an artefact of the simulation rather than work the function did.
        f.ledger
            .lock()
            .finish(Instant::now(), start, duration, init, !fail);
        slot.finished = true;
        (self.on_complete)(Completion {
            event_id: job.event.id.clone(),
            function: spec.name.clone(),
            started_ms,
            done_ms,
            cold: start.cold,
            ok: !fail,
            attempt,
        });
        if fail {
            Err(DeliveryError::FunctionFailed(spec.name.clone()))
        } else {
            Ok(())
        }
    }
}

/// Releases a slot whose invocation was dropped midway (shutdown past its deadline), billing
/// the part of the handler that ran.
struct Slot<'a> {
    function: &'a Function,
    start: Start,
    /// When the handler started and its modelled duration.
    handler: Option<(Instant, Duration)>,
    finished: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let ran = self
                .handler
                .map_or(Duration::ZERO, |(t, d)| t.elapsed().min(d));
            self.function.ledger.lock().abort(self.start, ran);
        }
    }
}
