//! The HTTP endpoint: `POST /events` (one plain event), `POST /` with
//! `X-Amz-Target: AWSEvents.PutEvents` (the EventBridge JSON protocol), `GET /stats`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::{Bus, Event, PublishError};

/// Header carrying the producer's id for the event (shakedown's own correlation id).
pub const ID_HEADER: &str = "x-shakedown-id";

/// `PutEvents` accepts 1 to 10 entries, like EventBridge.
const MAX_ENTRIES: usize = 10;

pub fn router(bus: Arc<Bus>) -> Router {
    Router::new()
        .route("/events", post(post_event))
        .route("/stats", get(stats))
        .route("/", post(aws_json))
        .with_state(bus)
}

async fn stats(State(bus): State<Arc<Bus>>) -> Json<super::BusStats> {
    Json(bus.stats())
}

fn header_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(ID_HEADER).and_then(|v| v.to_str().ok())
}

/// One event, either shape; 202 with its id once accepted.
async fn post_event(State(bus): State<Arc<Bus>>, headers: HeaderMap, body: Bytes) -> Response {
    match Event::parse(&body, header_id(&headers), Utc::now()) {
        Err(e) => {
            bus.count_rejected();
            let body = json!({"error": e.code(), "message": e.to_string()});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        Ok(event) => match bus.publish(event) {
            Ok(a) => (StatusCode::ACCEPTED, Json(a)).into_response(),
            Err(PublishError::Closed) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "Closed", "message": PublishError::Closed.to_string()})),
            )
                .into_response(),
        },
    }
}

fn aws_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn aws_error(kind: &str, message: impl Into<String>) -> Response {
    aws_response(
        StatusCode::BAD_REQUEST,
        json!({"__type": kind, "message": message.into()}),
    )
}

/// The AWS JSON 1.1 protocol; only `PutEvents` is served.
async fn aws_json(State(bus): State<Arc<Bus>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return aws_error(
            "UnknownOperationException",
            format!("operation `{target}` is not supported by the sandbox bus"),
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return aws_error("SerializationException", e.to_string()),
    };
    let Some(entries) = request.get("Entries").and_then(Value::as_array) else {
        return aws_error("ValidationException", "`Entries` must be a list");
    };
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return aws_error(
            "ValidationException",
            format!("`Entries` must hold 1 to {MAX_ENTRIES} entries"),
        );
    }
    let header = header_id(&headers);
    let now = Utc::now();
    let mut failed = 0;
    let results: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            // One entry takes the header's id as is; several get `<id>-<index>`.
            let id = header.map(|h| {
                if entries.len() == 1 {
                    h.to_string()
                } else {
                    format!("{h}-{i}")
                }
            });
            let outcome = Event::from_value(entry, id.as_deref(), now)
                .map_err(|e| {
                    bus.count_rejected();
                    (e.code(), e.to_string())
                })
                .and_then(|event| {
                    bus.publish(event)
                        .map_err(|e| ("InternalFailure", e.to_string()))
                });
            match outcome {
                Ok(a) => json!({"EventId": a.id}),
                Err((code, message)) => {
                    failed += 1;
                    json!({"ErrorCode": code, "ErrorMessage": message})
                }
            }
        })
        .collect();
    aws_response(
        StatusCode::OK,
        json!({"FailedEntryCount": failed, "Entries": results}),
    )
}
