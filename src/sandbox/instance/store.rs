//! Microservices' `store` (runs in a child process), and the client the other services
//! call it with.
//!
//! An object store with its own capacity: each instance serves `concurrency` requests at
//! once, each taking `service_time` (plus the service's added latency); up to `waiting`
//! more wait for a slot, beyond that it answers 503 at once. Objects are metadata files
//! (`<id>.json`: id, size, when) in one directory of the run shared by every store
//! instance, so any instance serves any object and a replaced instance loses nothing. The
//! payload itself is counted, never kept.
//!
//! Routes (the balancer sends `/store/...` here):
//! - `PUT /store/objects/{id}` with `{"size": N}`: 201;
//! - `GET /store/objects?limit=N`: `{"objects": [{"id","size","stored_ms"}], "total": T}`,
//!   the first N ids in order;
//! - `DELETE /store/objects/{id}`: 204, or 404 if there is no such object;
//! - `GET /health`: 200 (no added latency: a slow store still passes its health checks).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::guard::{Latency, Slots};
use crate::clock::now_ms;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// Its id (the upload's).
    pub id: String,
    /// Payload size, bytes.
    pub size: u64,
    /// When it was stored, ms since the Unix epoch.
    pub stored_ms: u64,
}

/// A listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The first objects, by id.
    pub objects: Vec<Object>,
    /// How many objects there are.
    pub total: u64,
}

/// Whether `id` may name an object (a file name): 1..=200 of `A-Z a-z 0-9 . _ -`, not
/// starting with `.`.
pub fn valid_id(id: &str) -> bool {
    (1..=200).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The objects in `dir`, by id: the first `limit`, and how many there are.
pub fn list(dir: &Path, limit: usize) -> std::io::Result<Listing> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    ids.sort_unstable();
    let total = ids.len() as u64;
    let objects = ids
        .iter()
        .take(limit)
        .filter_map(|id| {
            let text = std::fs::read_to_string(dir.join(format!("{id}.json"))).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect();
    Ok(Listing { objects, total })
}

/// Writes `object` into `dir` (a temporary file renamed into place: a reader never sees
/// half of it).
pub fn write(dir: &Path, object: &Object) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{}.{}.tmp", object.id, rand::random::<u32>()));
    std::fs::write(&tmp, serde_json::to_vec(object).expect("plain data"))?;
    std::fs::rename(&tmp, dir.join(format!("{}.json", object.id)))
}

struct StoreState {
    dir: PathBuf,
    slots: Slots,
    service_time: Duration,
    latency: Latency,
}

/// The store's routes over `dir`.
pub fn router(dir: PathBuf, slots: Slots, service_time: Duration, latency: Latency) -> Router {
    let state = Arc::new(StoreState {
        dir,
        slots,
        service_time,
        latency,
    });
    Router::new()
        .route("/store/objects", get(get_list))
        .route("/store/objects/{id}", put(put_object).delete(delete_object))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Takes a slot and spends the service time (plus the added latency) in it; `Err` = busy.
async fn serve<T>(state: &StoreState, work: impl FnOnce() -> T) -> Result<T, Response> {
    let Some(_slot) = state.slots.acquire().await else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "store busy\n").into_response());
    };
    tokio::time::sleep(state.service_time + state.latency.added()).await;
    Ok(work())
}

#[derive(Deserialize)]
struct Limit {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn get_list(State(state): State<Arc<StoreState>>, Query(q): Query<Limit>) -> Response {
    match serve(&state, || list(&state.dir, q.limit)).await {
        Ok(Ok(listing)) => axum::Json(listing).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(busy) => busy,
    }
}

#[derive(Deserialize)]
struct Put {
    size: u64,
}

async fn put_object(
    State(state): State<Arc<StoreState>>,
    UrlPath(id): UrlPath<String>,
    body: axum::Json<Put>,
) -> Response {
    if !valid_id(&id) {
        return (StatusCode::BAD_REQUEST, "bad object id\n").into_response();
    }
    let object = Object {
        id,
        size: body.size,
        stored_ms: now_ms(),
    };
    match serve(&state, || write(&state.dir, &object)).await {
        Ok(Ok(())) => StatusCode::CREATED.into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(busy) => busy,
    }
}

async fn delete_object(
    State(state): State<Arc<StoreState>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !valid_id(&id) {
        return (StatusCode::BAD_REQUEST, "bad object id\n").into_response();
    }
    let path = state.dir.join(format!("{id}.json"));
    match serve(&state, || std::fs::remove_file(&path)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, "no such object\n").into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(busy) => busy,
    }
}

/// Calls `store` through the balancer (`<lb>/store/...`).
#[derive(Debug, Clone)]
pub struct StoreClient {
    http: reqwest::Client,
    base: String,
}

/// Why a call to `store` failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within the caller's timeout.
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    /// Not reached, or an error status.
    #[error("store call failed: {0}")]
    Failed(String),
    /// `DELETE` of an object that does not exist.
    #[error("no such object")]
    NotFound,
}

impl StoreClient {
    /// A client for the store behind the balancer at `lb_url`.
    pub fn new(lb_url: &str) -> StoreClient {
        StoreClient {
            http: crate::tls::client_builder()
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
            base: format!("{}/store/objects", lb_url.trim_end_matches('/')),
        }
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, StoreError> {
        let sent = request.send();
        let response = match timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| StoreError::Timeout(t))?,
            None => sent.await,
        }
        .map_err(|e| StoreError::Failed(crate::errors::error_chain(&e)))?;
        match response.status() {
            s if s.is_success() => Ok(response),
            reqwest::StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            s => Err(StoreError::Failed(format!("store answered {s}"))),
        }
    }

    /// Stores object `id` of `size` bytes, waiting at most `timeout` (None: as long as it takes).
    pub async fn put(
        &self,
        id: &str,
        size: u64,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        let request = self
            .http
            .put(format!("{}/{id}", self.base))
            .json(&serde_json::json!({ "size": size }));
        self.call(request, timeout).await.map(drop)
    }

    /// The first `limit` objects.
    pub async fn list(&self, limit: u32, timeout: Option<Duration>) -> Result<Listing, StoreError> {
        let request = self.http.get(&self.base).query(&[("limit", limit)]);
        let response = self.call(request, timeout).await?;
        let body = match timeout {
            Some(t) => tokio::time::timeout(t, response.json::<Listing>())
                .await
                .map_err(|_| StoreError::Timeout(t))?,
            None => response.json::<Listing>().await,
        };
        body.map_err(|e| StoreError::Failed(format!("bad listing: {e}")))
    }

    /// Deletes object `id`.
    pub async fn delete(&self, id: &str, timeout: Option<Duration>) -> Result<(), StoreError> {
        let request = self.http.delete(format!("{}/{id}", self.base));
        self.call(request, timeout).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_file_names() {
        assert!(valid_id("photo-1.jpg"));
        assert!(valid_id("a_B-9"));
        assert!(!valid_id(""));
        assert!(!valid_id(".hidden"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(201)));
    }

    #[test]
    fn written_objects_are_listed_in_id_order_with_the_total() {
        let dir = tempfile::tempdir().unwrap();
        for (id, size) in [("b", 2), ("a", 1), ("c", 3)] {
            let o = Object {
                id: id.into(),
                size,
                stored_ms: 5,
            };
            write(dir.path(), &o).unwrap();
        }
        let l = list(dir.path(), 2).unwrap();
        assert_eq!(l.total, 3);
        let ids: Vec<_> = l.objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(l.objects[1].size, 2);
        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert_eq!(list(dir.path(), 10).unwrap().total, 2);
    }
}
