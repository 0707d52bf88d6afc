//! Completion sources: where the ledger learns which messages the system finished.
//!
//! ```toml
//! [[target.completions]]
//! kind = "sandbox-feed"            # the sandbox's GET /completions?after=N&limit=M
//! url = "http://127.0.0.1:4000"
//!
//! [[target.completions]]
//! kind = "sqs"                     # a "done" queue the system writes to: receive + delete
//! queue = "jobs-done"              # name or URL
//! id_pointer = "/id"               # JSON pointer to the id in the body ("" = whole body)
//!
//! [[target.completions]]
//! kind = "http"                    # any endpoint answering JSON lines
//! url = "http://127.0.0.1:9000/done"
//! id_pointer = "/id"
//! done_pointer = "/done_ms"
//! cursor_pointer = "/seq"          # optional: page with ?after=<last cursor>
//! ```
//!
//! [`run_completions`] polls a source and appends `completions.jsonl`; [`drain_dlq`] reads a
//! dead-letter queue at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::LedgerError;
use super::summary::{CompletionRecord, Outcome};
use crate::aws::{AwsError, QueueRef};
use crate::clock::now_ms;
use crate::results::jsonl::JsonLinesWriter;

/// Largest batch of one poll of an HTTP source.
const PAGE: usize = 1000;
/// Most batches read in one poll, so a poll ends even if records keep coming.
const MAX_BATCHES_PER_POLL: usize = 100;

/// One `[[target.completions]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CompletionSourceSpec {
    /// The sandbox's completion feed.
    SandboxFeed(FeedSpec),
    /// A queue the system sends a message to for each finished job.
    Sqs(SqsDoneSpec),
    /// A generic endpoint answering JSON lines.
    Http(HttpLinesSpec),
}

/// `kind = "sandbox-feed"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSpec {
    /// The feed's base URL (`GET {url}/completions?after=N&limit=M`).
    pub url: String,
}

/// `kind = "sqs"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsDoneSpec {
    /// The queue, by name or URL.
    pub queue: QueueRef,
    /// JSON pointer to the message id in the body; `""` takes the whole body as the id.
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer to the completion time (ms since the Unix epoch) in the body; default:
    /// the message's `SentTimestamp`.
    #[serde(default)]
    pub done_pointer: Option<String>,
}

/// `kind = "http"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLinesSpec {
    /// The URL answering JSON lines (one completion per line).
    pub url: String,
    /// JSON pointer to the message id (a string or a number).
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer to the completion time, ms since the Unix epoch (default `/done_ms`;
    /// when absent from a line, the time it was read).
    #[serde(default = "default_done_pointer")]
    pub done_pointer: String,
    /// JSON pointer to the receive count (default `/receive_count`; 1 when absent).
    #[serde(default = "default_receive_count_pointer")]
    pub receive_count_pointer: String,
    /// JSON pointer to an increasing cursor; when set, polls ask for `?after=<last>&limit=N`.
    /// Without it every answer must hold only records not returned before.
    #[serde(default)]
    pub cursor_pointer: Option<String>,
}

fn default_id_pointer() -> String {
    "/id".into()
}
fn default_done_pointer() -> String {
    "/done_ms".into()
}
fn default_receive_count_pointer() -> String {
    "/receive_count".into()
}

impl FeedSpec {
    /// The feed as a generic JSON-lines source with its fixed shape.
    pub fn as_http(&self) -> HttpLinesSpec {
        HttpLinesSpec {
            url: format!("{}/completions", self.url.trim_end_matches('/')),
            id_pointer: "/job_id".into(),
            done_pointer: default_done_pointer(),
            receive_count_pointer: default_receive_count_pointer(),
            cursor_pointer: Some("/seq".into()),
        }
    }
}

/// A source, ready to poll.
#[derive(Debug)]
pub enum CompletionSource {
    /// JSON lines over HTTP (the sandbox feed is one).
    Http(HttpLinesSource),
    /// An SQS queue read and emptied.
    Sqs(SqsSource),
}

impl CompletionSource {
    /// Builds a source; `sqs` is needed by `kind = "sqs"`.
    /// `http` is the client of the HTTP kinds (the run's trust options for https).
    pub fn new(
        spec: &CompletionSourceSpec,
        sqs: Option<&aws_sdk_sqs::Client>,
        http: &reqwest::Client,
    ) -> Result<Self, LedgerError> {
        Ok(match spec {
            CompletionSourceSpec::SandboxFeed(f) => {
                CompletionSource::Http(HttpLinesSource::new(f.as_http(), http.clone()))
            }
            CompletionSourceSpec::Http(h) => {
                CompletionSource::Http(HttpLinesSource::new(h.clone(), http.clone()))
            }
            CompletionSourceSpec::Sqs(s) => {
                let client = sqs.ok_or(LedgerError::NoSqsClient)?;
                CompletionSource::Sqs(SqsSource::new(
                    client.clone(),
                    s.queue.clone(),
                    s.id_pointer.clone(),
                    s.done_pointer.clone(),
                    Outcome::Completed,
                ))
            }
        })
    }

    /// Reads one batch; an empty batch means nothing new right now.
    pub async fn poll(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Vec<CompletionRecord>, LedgerError> {
        match self {
            CompletionSource::Http(h) => h.poll(stats).await,
            CompletionSource::Sqs(s) => s.poll(stats).await,
        }
    }
}

/// What a source did over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Records written.
    pub records: u64,
    /// Records the source skipped over (the feed evicted them before we read them).
    pub missed: u64,
    /// Lines or messages without a readable id (deleted from a queue, counted here).
    pub unreadable: u64,
    /// Polls that failed (retried at the next one).
    pub errors: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Longest wait for one poll of an HTTP source.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// A JSON-lines endpoint.
#[derive(Debug)]
pub struct HttpLinesSource {
    spec: HttpLinesSpec,
    http: reqwest::Client,
    /// Last cursor value seen (paging).
    after: u64,
}

impl HttpLinesSource {
    /// A source for `spec`, polled with `http` (each poll within [`POLL_TIMEOUT`]).
    pub fn new(spec: HttpLinesSpec, http: reqwest::Client) -> Self {
        HttpLinesSource {
            spec,
            http,
            after: 0,
        }
    }

    async fn poll(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Vec<CompletionRecord>, LedgerError> {
        let mut request = self.http.get(&self.spec.url).timeout(POLL_TIMEOUT);
        if self.spec.cursor_pointer.is_some() {
            request = request.query(&[("after", self.after), ("limit", PAGE as u64)]);
        }
        let http_error = |e: reqwest::Error| LedgerError::Http {
            url: self.spec.url.clone(),
            message: crate::errors::error_chain(&e),
        };
        let response = request.send().await.map_err(http_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(LedgerError::Http {
                url: self.spec.url.clone(),
                message: format!("HTTP {status}"),
            });
        }
        let body = response.text().await.map_err(http_error)?;
        let now = now_ms();
        let mut out = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                stats.unreadable += 1;
                continue;
            };
            let cursor = self.spec.cursor_pointer.as_ref();
            if let Some(cursor) = cursor.and_then(|p| value.pointer(p)?.as_u64()) {
                stats.missed += cursor.saturating_sub(self.after + 1);
                self.after = self.after.max(cursor);
            }
            let Some(id) = value.pointer(&self.spec.id_pointer).and_then(id_text) else {
                stats.unreadable += 1;
                continue;
            };
            out.push(CompletionRecord {
                id,
                done_ms: value
                    .pointer(&self.spec.done_pointer)
                    .and_then(Value::as_u64)
                    .unwrap_or(now),
                outcome: Outcome::Completed,
                receive_count: value
                    .pointer(&self.spec.receive_count_pointer)
                    .and_then(Value::as_u64)
                    .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            });
        }
        Ok(out)
    }
}

/// An id given as a string or a number.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A queue whose messages each name one finished (or dead-lettered) message; every
/// message read is deleted.
#[derive(Debug)]
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue: QueueRef,
    url: Option<String>,
    id_pointer: String,
    done_pointer: Option<String>,
    outcome: Outcome,
    /// Long-poll wait of each receive, in seconds.
    wait_seconds: i32,
}

impl SqsSource {
    /// A source reading `queue`; records get `outcome`.
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue: QueueRef,
        id_pointer: String,
        done_pointer: Option<String>,
        outcome: Outcome,
    ) -> Self {
        SqsSource {
            client,
            queue,
            url: None,
            id_pointer,
            done_pointer,
            outcome,
            wait_seconds: 1,
        }
    }

    async fn url(&mut self) -> Result<String, LedgerError> {
        if let Some(u) = &self.url {
            return Ok(u.clone());
        }
        let url = self.queue.url(&self.client).await?;
        self.url = Some(url.clone());
        Ok(url)
    }

    async fn poll(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Vec<CompletionRecord>, LedgerError> {
        let url = self.url().await?;
        let resp = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| AwsError::call("sqs:ReceiveMessage", e).on(&url))?;
        let messages = resp.messages();
        let mut out = Vec::with_capacity(messages.len());
        let mut deletes = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            match self.record(m) {
                Some(r) => out.push(r),
                None => stats.unreadable += 1,
            }
            if let Some(handle) = m.receipt_handle() {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .map_err(|e| {
                            LedgerError::Aws(AwsError::Unexpected {
                                op: "sqs:DeleteMessageBatch",
                                message: e.to_string(),
                            })
                        })?,
                );
            }
        }
        if !deletes.is_empty() {
            self.client
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| AwsError::call("sqs:DeleteMessageBatch", e))?;
        }
        Ok(out)
    }

    fn record(&self, m: &Message) -> Option<CompletionRecord> {
        let body = m.body()?;
        let attribute = |name: MessageSystemAttributeName| {
            m.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let id = if self.id_pointer.is_empty() {
            Some(body.trim().to_owned()).filter(|s| !s.is_empty())
        } else {
            parsed.as_ref()?.pointer(&self.id_pointer).and_then(id_text)
        }?;
        let done_ms = self
            .done_pointer
            .as_ref()
            .and_then(|p| parsed.as_ref()?.pointer(p)?.as_u64())
            .or_else(|| attribute(MessageSystemAttributeName::SentTimestamp))
            .unwrap_or_else(now_ms);
        let receive_count = match self.outcome {
            Outcome::DeadLettered => attribute(MessageSystemAttributeName::ApproximateReceiveCount),
            Outcome::Completed => parsed
                .as_ref()
                .and_then(|v| v.pointer("/receive_count")?.as_u64()),
        }
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Some(CompletionRecord {
            id,
            done_ms,
            outcome: self.outcome,
            receive_count,
        })
    }
}

/// Polls `source` every `every` and appends what it finds to `path`, flushing after each
/// poll. Each poll reads batches until one is empty (at most 100). Failed polls are
/// counted and retried at the next tick. On `cancel`, one last poll, then returns.
pub async fn run_completions(
    mut source: CompletionSource,
    path: PathBuf,
    every: Duration,
    cancel: CancellationToken,
) -> Result<SourceStats, LedgerError> {
    let mut out = JsonLinesWriter::append(&path)?;
    let mut stats = SourceStats::default();
    loop {
        let stopping = cancel.is_cancelled();
        poll_until_empty(&mut source, &mut out, &mut stats).await?;
        if stopping {
            return Ok(stats);
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cancel.cancelled() => {}
        }
    }
}

async fn poll_until_empty(
    source: &mut CompletionSource,
    out: &mut JsonLinesWriter,
    stats: &mut SourceStats,
) -> Result<(), LedgerError> {
    for _ in 0..MAX_BATCHES_PER_POLL {
        match source.poll(stats).await {
            Ok(batch) if batch.is_empty() => return Ok(()),
            Ok(batch) => {
                stats.records += batch.len() as u64;
                out.write_all(&batch)?;
            }
            Err(e) => {
                stats.errors += 1;
                stats.last_error = Some(e.to_string());
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Receives and deletes every message of a dead-letter queue (until a receive comes back
/// empty, at most `max_messages` or until `deadline`), as `dead_lettered` records; the
/// id is at `id_pointer` in each body (`""`: the whole body), the time is `SentTimestamp`
/// and the receive count `ApproximateReceiveCount`.
pub async fn drain_dlq(
    client: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    id_pointer: &str,
    max_messages: usize,
    deadline: Instant,
) -> Result<(Vec<CompletionRecord>, SourceStats), LedgerError> {
    let mut source = SqsSource::new(
        client.clone(),
        queue.clone(),
        id_pointer.to_owned(),
        None,
        Outcome::DeadLettered,
    );
    let mut stats = SourceStats::default();
    let mut out = Vec::new();
    while out.len() < max_messages && Instant::now() < deadline {
        let unreadable_before = stats.unreadable;
        let batch = source.poll(&mut stats).await?;
        if batch.is_empty() && stats.unreadable == unreadable_before {
            break;
        }
        out.extend(batch);
    }
    stats.records = out.len() as u64;
    Ok((out, stats))
}
