//! A worker (runs in a child process): consumes the jobs queue with aws-sdk-sqs.
//!
//! After its boot time it long-polls (`WaitTimeSeconds`, up to `concurrency` messages
//! per call), processes the jobs of a batch concurrently (sleeping the processing time
//! of each job's size), reports them to the completion feed, then deletes them: a job
//! is only deleted once its completion is recorded, so a crash anywhere before that
//! makes SQS redeliver it (at-least-once; duplicates are possible, losses are not).
//! With `ack = "before-process"` (the broken variant) it deletes first, so a worker
//! killed mid-job loses the job.
//!
//! A message whose body is not a [`Job`] is left alone; after `max_receive_count`
//! receives the queue's redrive policy moves it to the dead-letter queue.
//!
//! As microservices' `process` ([`run_with`] and [`Hooks`]), a worker also waits the
//! service's added latency (the `service-latency` fault) on each job, and writes a
//! *spooled* upload (kind [`SPOOLED_KIND`]: `upload` could not reach `store` in time) to
//! `store` before reporting it; a job whose write fails is neither reported nor deleted, so
//! the queue hands it out again.
//!
//! SIGTERM (scale-in, shutdown) stops receiving: the long poll in progress is finished (it
//! ends within `wait_time`) and its jobs processed and deleted, as are the jobs in hand;
//! only then does the worker exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ChildConfig, RoleConfig};
use crate::clock::now_ms;
use crate::sandbox::config::Ack;
use crate::sandbox::feed::{Completion, FeedClient};

/// A job as the web tier enqueues it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The upload or event id.
    pub id: String,
    /// Payload size in bytes.
    pub size: u64,
    /// When the web tier received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// `upload` or `event`.
    pub kind: String,
}

/// The access key id the workers sign with: principal `arn:aws:iam::000000000000:role/sandbox-workers`.
pub const WORKERS_KEY: &str = "sandbox-workers";
/// The access key id the web tier signs with.
pub const WEB_KEY: &str = "sandbox-web";

/// An SQS client for the sandbox endpoint: static credentials, no instance metadata. The
/// access key id names the caller to the queue policy: `key` acts as
/// `arn:aws:iam::000000000000:role/<key>` (see `sandbox::sqs::policy`).
///
/// Without the SDK's stalled-stream protection: a long poll is a response that legitimately
/// sends nothing for `wait_time`, and the protection's throughput check wakes the process
/// every 100 ms while it waits (an idle worker's whole CPU use: ~0.12% of a core each).
/// A request is bounded by an operation timeout instead: 30 s, above the longest long poll
/// (20 s).
pub fn sqs_client(endpoint: &str, region: &str, key: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{StalledStreamProtectionConfig, timeout::TimeoutConfig};
    aws_sdk_sqs::Client::from_conf(
        crate::aws::local_sqs_config(endpoint, region, key, "sandbox")
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build(),
    )
}

/// The `kind` of a job whose object `upload` could not store in time: `process` writes it.
pub const SPOOLED_KIND: &str = "upload-spooled";

/// What microservices' `process` adds to a worker.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Added to each job's processing time, milliseconds (the service's latency).
    pub added_delay_ms: Arc<AtomicU64>,
    /// Where spooled uploads are written.
    pub store: Option<super::store::StoreClient>,
}

struct Worker {
    hooks: Hooks,
    config: ChildConfig,
    sqs: aws_sdk_sqs::Client,
    feed: FeedClient,
    concurrency: i32,
    wait_time_seconds: i32,
    ack: Ack,
}

/// Runs a worker until `shutdown`; calls `ready(0)` once booted.
pub async fn run(
    config: ChildConfig,
    ready: impl FnOnce(u16),
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(config, ready, shutdown, Hooks::default()).await
}

/// [`run`] with microservices' [`Hooks`].
pub async fn run_with(
    config: ChildConfig,
    ready: impl FnOnce(u16),
    shutdown: CancellationToken,
    hooks: Hooks,
) -> anyhow::Result<()> {
    let RoleConfig::Worker {
        concurrency,
        wait_time_seconds,
        ack,
        boot_ms,
    } = config.role.clone()
    else {
        anyhow::bail!("not a worker configuration");
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(boot_ms)) => {}
        _ = shutdown.cancelled() => return Ok(()),
    }
    let worker = Worker {
        hooks,
        sqs: sqs_client(&config.sqs_endpoint, &config.region, WORKERS_KEY),
        feed: FeedClient::new(&config.feed_url),
        concurrency: concurrency.clamp(1, 10) as i32,
        wait_time_seconds: wait_time_seconds.min(20) as i32,
        ack,
        config,
    };
    tracing::info!(instance = %worker.config.instance_id, ?ack, "worker consuming");
    ready(0);
    while !shutdown.is_cancelled() {
        // A receive is never abandoned, not even on SIGTERM: messages the queue hands out
        // on a request whose answer nobody reads stay in flight, invisible, for the whole
        // visibility timeout. A long poll ends within `wait_time` anyway.
        match worker.receive().await {
            Ok(messages) if !messages.is_empty() => worker.handle(messages).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("receiving failed: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
    tracing::info!("worker stopped");
    Ok(())
}

impl Worker {
    async fn receive(&self) -> Result<Vec<Message>, String> {
        self.sqs
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(self.concurrency)
            .wait_time_seconds(self.wait_time_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }

    async fn handle(&self, messages: Vec<Message>) {
        let jobs: Vec<(Message, Job)> = messages
            .into_iter()
            .filter_map(|m| {
                let body = m.body().unwrap_or_default();
                match serde_json::from_str::<Job>(body) {
                    Ok(job) => Some((m, job)),
                    Err(e) => {
                        tracing::warn!(
                            message_id = m.message_id().unwrap_or_default(),
                            "not a job ({e}); leaving it for the dead-letter queue"
                        );
                        None
                    }
                }
            })
            .collect();
        if self.ack == Ack::BeforeProcess {
            self.delete(&jobs).await;
        }
        let outcomes = join_all(jobs.iter().map(|(m, job)| self.process(m, job))).await;
        // Jobs whose spooled object could not be stored: not reported, not deleted.
        let (jobs, completions): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .zip(outcomes)
            .filter_map(|(j, c)| Some((j, c?)))
            .unzip();
        if let Err(e) = self.feed.post(&completions).await {
            // Not deleting: the jobs come back after the visibility timeout.
            tracing::warn!("{e}");
            return;
        }
        if self.ack == Ack::AfterProcess {
            self.delete(&jobs).await;
        }
    }

    async fn process(&self, message: &Message, job: &Job) -> Option<Completion> {
        let started_ms = now_ms();
        let spread = rand::random::<f64>() * 2.0 - 1.0;
        let time = self
            .config
            .processing
            .for_size(job.size, self.config.jitter, spread)
            + Duration::from_millis(self.hooks.added_delay_ms.load(Ordering::Relaxed));
        tokio::time::sleep(time).await;
        if job.kind == SPOOLED_KIND
            && let Some(store) = &self.hooks.store
            && let Err(e) = store.put(&job.id, job.size, None).await
        {
            tracing::warn!(id = job.id, "writing the spooled object failed: {e}");
            return None;
        }
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        Some(Completion {
            job_id: job.id.clone(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            receive_count,
            received_ms: job.received_ms,
            started_ms,
            done_ms: now_ms(),
            worker: self.config.instance_id.clone(),
        })
    }

    async fn delete(&self, jobs: &[(Message, Job)]) {
        if jobs.is_empty() {
            return;
        }
        let entries = jobs.iter().enumerate().filter_map(|(i, (m, _))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle()?)
                .build()
                .ok()
        });
        let result = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.config.queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await;
        match result {
            Ok(out) if !out.failed().is_empty() => {
                tracing::warn!("{} deletes failed: {:?}", out.failed().len(), out.failed())
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "deleting failed: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ),
        }
    }
}
