//! The completion feed: every job a worker (or a monolith web instance) finished,
//! numbered in arrival order, so the harness can account for each accepted
//! message (DESIGN section 7, "no loss").
//!
//! - `POST /completions`: JSON lines of [`Completion`] (what instances send);
//! - `GET /completions?after=N&limit=M`: JSON lines of [`NumberedCompletion`] with
//!   `seq > N`, oldest first, at most `M` (default 1000, at most 10000). The response
//!   headers `x-shakedown-next-seq` (the next sequence number to be assigned) and
//!   `x-shakedown-dropped` (records evicted so far) let a reader notice gaps;
//! - `GET /completions/stats`: [`FeedStats`] as JSON.
//!
//! Memory is bounded: at most `capacity` records are kept (about 100 bytes each),
//! the oldest are evicted first and counted in `dropped`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One finished job, as reported by the instance that did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The job id (the upload's `{id}`).
    pub job_id: String,
    /// The SQS message id; empty when the job did not go through the queue (monolith).
    #[serde(default)]
    pub message_id: String,
    /// How many times the message had been received (`ApproximateReceiveCount`); 1 without a queue.
    #[serde(default = "one")]
    pub receive_count: u32,
    /// When the web tier received the upload (ms since the Unix epoch).
    pub received_ms: u64,
    /// When processing started.
    pub started_ms: u64,
    /// When processing ended.
    pub done_ms: u64,
    /// The instance id that processed it.
    pub worker: String,
}

fn one() -> u32 {
    1
}

/// A completion with its position in the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberedCompletion {
    /// Position, from 1, increasing by one per record.
    pub seq: u64,
    /// The record.
    #[serde(flatten)]
    pub completion: Completion,
}

/// Counters of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeedStats {
    /// Records ever accepted.
    pub total: u64,
    /// Records kept now.
    pub stored: u64,
    /// Records evicted because the feed was full.
    pub dropped: u64,
    /// The next sequence number to be assigned.
    pub next_seq: u64,
}

/// A message id stored in 16 bytes when it is a UUID (as SQS's are).
#[derive(Debug, Clone, PartialEq, Eq)]
enum CompactId {
    Uuid(u128),
    Text(Box<str>),
}

impl CompactId {
    fn new(text: &str) -> Self {
        parse_uuid(text).map_or_else(|| CompactId::Text(text.into()), CompactId::Uuid)
    }

    fn expand(&self) -> String {
        match self {
            CompactId::Text(t) => t.to_string(),
            CompactId::Uuid(u) => {
                let h = format!("{u:032x}");
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
        }
    }
}

/// Parses a lowercase hyphenated UUID (the only form that round-trips exactly).
fn parse_uuid(text: &str) -> Option<u128> {
    let groups: Vec<&str> = text.split('-').collect();
    let shape = groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12];
    let lower_hex = text
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !shape || !lower_hex {
        return None;
    }
    u128::from_str_radix(&groups.concat(), 16).ok()
}

/// The stored form of a completion: ids interned or packed, times as offsets.
#[derive(Debug, Clone)]
struct Record {
    job_id: Box<str>,
    message_id: CompactId,
    received_ms: u64,
    /// `started_ms - received_ms`, saturating.
    wait_ms: u32,
    /// `done_ms - started_ms`, saturating.
    run_ms: u32,
    receive_count: u32,
    /// Index into `Store::workers`.
    worker: u32,
}

#[derive(Debug)]
struct Store {
    capacity: usize,
    records: VecDeque<Record>,
    /// Sequence number of `records[0]`.
    first_seq: u64,
    dropped: u64,
    workers: Vec<Box<str>>,
}

impl Store {
    fn worker_index(&mut self, name: &str) -> u32 {
        // Few workers per run: a linear scan beats a map here.
        if let Some(i) = self.workers.iter().rposition(|w| &**w == name) {
            return i as u32;
        }
        self.workers.push(name.into());
        (self.workers.len() - 1) as u32
    }

    fn next_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64
    }

    fn push(&mut self, c: &Completion) {
        let worker = self.worker_index(&c.worker);
        let started = c.started_ms.max(c.received_ms);
        let done = c.done_ms.max(started);
        let record = Record {
            job_id: c.job_id.as_str().into(),
            message_id: CompactId::new(&c.message_id),
            received_ms: c.received_ms,
            wait_ms: u32::try_from(started - c.received_ms).unwrap_or(u32::MAX),
            run_ms: u32::try_from(done - started).unwrap_or(u32::MAX),
            receive_count: c.receive_count,
            worker,
        };
        if self.records.len() == self.capacity {
            self.records.pop_front();
            self.first_seq += 1;
            self.dropped += 1;
        }
        self.records.push_back(record);
    }

    fn expand(&self, index: usize) -> NumberedCompletion {
        let r = &self.records[index];
        let started_ms = r.received_ms + u64::from(r.wait_ms);
        NumberedCompletion {
            seq: self.first_seq + index as u64,
            completion: Completion {
                job_id: r.job_id.to_string(),
                message_id: match &r.message_id {
                    CompactId::Text(t) if t.is_empty() => String::new(),
                    id => id.expand(),
                },
                receive_count: r.receive_count,
                received_ms: r.received_ms,
                started_ms,
                done_ms: started_ms + u64::from(r.run_ms),
                worker: self.workers[r.worker as usize].to_string(),
            },
        }
    }
}

/// The feed's store. Cheap to clone; clones share the records.
#[derive(Debug, Clone)]
pub struct Feed {
    store: Arc<Mutex<Store>>,
}

/// Default page of `GET /completions`.
pub const DEFAULT_PAGE: usize = 1000;
/// Largest page of `GET /completions`.
pub const MAX_PAGE: usize = 10_000;

impl Feed {
    /// An empty feed keeping at most `capacity` records (at least 1).
    pub fn new(capacity: usize) -> Self {
        Feed {
            store: Arc::new(Mutex::new(Store {
                capacity: capacity.max(1),
                records: VecDeque::new(),
                first_seq: 1,
                dropped: 0,
                workers: Vec::new(),
            })),
        }
    }

    /// Appends completions in order; returns the sequence number of the last one.
    pub fn append<'a>(&self, completions: impl IntoIterator<Item = &'a Completion>) -> u64 {
        let mut store = self.store.lock();
        for c in completions {
            store.push(c);
        }
        store.next_seq() - 1
    }

    /// Up to `limit` stored completions with `seq > after`, oldest first.
    pub fn page(&self, after: u64, limit: usize) -> Vec<NumberedCompletion> {
        let store = self.store.lock();
        let start = after.saturating_add(1).max(store.first_seq);
        let skip = usize::try_from(start - store.first_seq).unwrap_or(usize::MAX);
        (skip..store.records.len().min(skip.saturating_add(limit)))
            .map(|i| store.expand(i))
            .collect()
    }

    /// Every stored completion with `seq > after`.
    pub fn completions_since(&self, after: u64) -> Vec<NumberedCompletion> {
        self.page(after, usize::MAX)
    }

    /// The feed's counters.
    pub fn stats(&self) -> FeedStats {
        let store = self.store.lock();
        FeedStats {
            total: store.next_seq() - 1,
            stored: store.records.len() as u64,
            dropped: store.dropped,
            next_seq: store.next_seq(),
        }
    }

    /// The HTTP routes (see the module docs).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/completions", post(post_completions).get(get_completions))
            .route("/completions/stats", get(get_stats))
            .with_state(self.clone())
    }
}

async fn post_completions(State(feed): State<Feed>, body: String) -> impl IntoResponse {
    let mut parsed = Vec::new();
    for (n, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Completion>(line) {
            Ok(c) => parsed.push(c),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("line {}: not a completion: {e}\n", n + 1),
                );
            }
        }
    }
    let last = feed.append(&parsed);
    (StatusCode::OK, format!("{{\"last_seq\":{last}}}\n"))
}

/// Query of `GET /completions`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn get_completions(
    State(feed): State<Feed>,
    Query(q): Query<PageQuery>,
) -> impl IntoResponse {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let page = feed.page(q.after, limit);
    let stats = feed.stats();
    let mut body = String::with_capacity(page.len() * 200);
    for record in &page {
        body.push_str(&serde_json::to_string(record).expect("plain data serializes"));
        body.push('\n');
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert("x-shakedown-next-seq", HeaderValue::from(stats.next_seq));
    headers.insert("x-shakedown-dropped", HeaderValue::from(stats.dropped));
    (headers, body)
}

async fn get_stats(State(feed): State<Feed>) -> impl IntoResponse {
    axum::Json(feed.stats())
}

/// The instances' side: sends completions to the feed's `POST /completions`.
#[derive(Debug, Clone)]
pub struct FeedClient {
    http: reqwest::Client,
    url: String,
}

/// Why completions could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("cannot post completions to {url}: {message}")]
pub struct FeedError {
    url: String,
    message: String,
}

impl FeedClient {
    /// A client for the feed at `base_url` (e.g. `http://127.0.0.1:4000`).
    pub fn new(base_url: &str) -> Self {
        FeedClient {
            http: crate::tls::client_builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
            url: format!("{}/completions", base_url.trim_end_matches('/')),
        }
    }

    /// Posts a batch, retrying a few times (100 ms apart) before giving up.
    pub async fn post(&self, completions: &[Completion]) -> Result<(), FeedError> {
        if completions.is_empty() {
            return Ok(());
        }
        let mut body = String::new();
        for c in completions {
            body.push_str(&serde_json::to_string(c).expect("plain data serializes"));
            body.push('\n');
        }
        let mut last = String::new();
        for _ in 0..5 {
            match self.http.post(&self.url).body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(FeedError {
            url: self.url.clone(),
            message: last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(job: &str, message_id: &str) -> Completion {
        Completion {
            job_id: job.into(),
            message_id: message_id.into(),
            receive_count: 2,
            received_ms: 1_000,
            started_ms: 1_010,
            done_ms: 1_030,
            worker: "i-0123456789abcdef0".into(),
        }
    }

    #[test]
    fn records_round_trip_through_the_compact_form() {
        let feed = Feed::new(10);
        let uuid = completion("a", "0f8fad5b-d9cb-469f-a165-70867728950e");
        let text = completion("b", "not-a-uuid");
        let none = completion("c", "");
        assert_eq!(feed.append([&uuid, &text, &none]), 3);
        let page = feed.completions_since(0);
        let got: Vec<_> = page.iter().map(|r| r.completion.clone()).collect();
        assert_eq!(got, vec![uuid, text, none]);
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn paging_continues_after_the_last_seq_seen() {
        let feed = Feed::new(100);
        let all: Vec<_> = (0..25).map(|i| completion(&i.to_string(), "")).collect();
        feed.append(&all);
        let mut after = 0;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let page = feed.page(after, 10);
            let Some(last) = page.last() else { break };
            after = last.seq;
            seen.extend(page.into_iter().map(|r| r.completion.job_id));
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen[24], "24");
    }

    #[test]
    fn a_full_feed_evicts_the_oldest_and_counts_them() {
        let feed = Feed::new(3);
        let all: Vec<_> = (0..5).map(|i| completion(&i.to_string(), "")).collect();
        feed.append(&all);
        let stats = feed.stats();
        assert_eq!(
            (stats.total, stats.stored, stats.dropped, stats.next_seq),
            (5, 3, 2, 6)
        );
        let page = feed.completions_since(0);
        assert_eq!(page[0].seq, 3);
        assert_eq!(page[0].completion.job_id, "2");
        assert!(feed.completions_since(5).is_empty());
    }
}
