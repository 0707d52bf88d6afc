//! The sandbox's small control endpoint, for the harness and for people:
//!
//! - `GET /endpoints`: every endpoint of the sandbox ([`super::Endpoints`]);
//! - `GET /activities?after=N`: the groups' activity log as a JSON array
//!   ([`super::asg::Activity`]), entries with `seq > N`;
//! - `GET /targets`: the balancer's targets and their health states;
//! - `GET /groups`: each group's min, max, desired and members;
//! - `GET /bus/stats`: the embedded event bus's counters ([`super::bus::BusStats`]; 404
//!   without one), so `kind = "http"` probes can read `url = "/bus/stats"`.
//! - `GET /services/{name}/latency`: `{"service", "delay_ms"}`, the delay each instance of
//!   microservice `name` adds to each request (it reads this every 200 ms);
//! - `POST /services/{name}/latency` with `{"delay_ms": N}` (or `{"delay": "1s"}`): sets
//!   it, answers as the GET (what the `service-latency` fault applies and undoes).
//!   An unknown service: 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde::Deserialize;

use super::Endpoints;
use super::asg::ActivityLog;
use super::asg::Manager;
use super::lb::Balancer;

/// What the control endpoint reads.
#[derive(Clone)]
pub struct Control {
    /// The endpoints, as returned by `GET /endpoints`.
    pub endpoints: Endpoints,
    /// The activity log.
    pub log: ActivityLog,
    /// The balancer.
    pub balancer: Arc<Balancer>,
    /// The fleet manager.
    pub manager: Manager,
    /// The embedded event bus (arch `event-driven`), if the sandbox runs one.
    pub bus: Option<Arc<super::bus::Bus>>,
    /// Each service's added latency.
    pub latencies: Latencies,
}

/// The added latency of each service, milliseconds (all 0 at start).
#[derive(Debug, Clone, Default)]
pub struct Latencies(Arc<Mutex<BTreeMap<String, u64>>>);

impl Latencies {
    /// No added latency for each of `services`; other names are unknown.
    pub fn for_services(services: Vec<&str>) -> Latencies {
        Latencies(Arc::new(Mutex::new(
            services.into_iter().map(|s| (s.to_owned(), 0)).collect(),
        )))
    }

    /// A service's added latency, if it is one.
    pub fn get(&self, service: &str) -> Option<u64> {
        self.0.lock().get(service).copied()
    }

    /// Sets a service's added latency; `None` if there is no such service.
    pub fn set(&self, service: &str, delay_ms: u64) -> Option<u64> {
        let mut all = self.0.lock();
        let slot = all.get_mut(service)?;
        *slot = delay_ms;
        Some(delay_ms)
    }
}

impl Control {
    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/endpoints", get(endpoints))
            .route("/activities", get(activities))
            .route("/targets", get(targets))
            .route("/groups", get(groups))
            .route("/bus/stats", get(bus_stats))
            .route("/services/{name}/latency", get(latency).post(set_latency))
            .with_state(Arc::new(self))
    }
}

async fn endpoints(State(c): State<Arc<Control>>) -> impl IntoResponse {
    axum::Json(c.endpoints.clone())
}

#[derive(Debug, Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn activities(State(c): State<Arc<Control>>, Query(q): Query<After>) -> impl IntoResponse {
    axum::Json(c.log.since(q.after))
}

async fn targets(State(c): State<Arc<Control>>) -> impl IntoResponse {
    axum::Json(c.balancer.targets_json())
}

async fn groups(State(c): State<Arc<Control>>) -> impl IntoResponse {
    axum::Json(c.manager.groups())
}

async fn bus_stats(State(c): State<Arc<Control>>) -> axum::response::Response {
    match &c.bus {
        Some(bus) => axum::Json(bus.stats()).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "this sandbox runs no embedded event bus (arch event-driven without bus.url)",
        )
            .into_response(),
    }
}
fn latency_answer(c: &Control, name: &str, value: Option<u64>) -> Response {
    match value {
        Some(ms) => {
            axum::Json(serde_json::json!({ "service": name, "delay_ms": ms })).into_response()
        }
        None => {
            let known: Vec<String> = c.latencies.0.lock().keys().cloned().collect();
            (
                StatusCode::NOT_FOUND,
                format!(
                    "no service `{name}` (services: {})\n",
                    if known.is_empty() {
                        "none: not arch microservices".into()
                    } else {
                        known.join(", ")
                    }
                ),
            )
                .into_response()
        }
    }
}

async fn latency(State(c): State<Arc<Control>>, Path(name): Path<String>) -> Response {
    let value = c.latencies.get(&name);
    latency_answer(&c, &name, value)
}

/// `{"delay_ms": N}` or `{"delay": "1s"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLatency {
    delay_ms: Option<u64>,
    delay: Option<String>,
}

async fn set_latency(
    State(c): State<Arc<Control>>,
    Path(name): Path<String>,
    body: axum::Json<SetLatency>,
) -> Response {
    let ms = match (&body.delay_ms, &body.delay) {
        (Some(ms), None) => *ms,
        (None, Some(text)) => match crate::units::parse_duration(text) {
            Ok(d) => d.as_millis() as u64,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("delay `{text}`: {e}\n")).into_response();
            }
        },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "give one of `delay_ms` (a number) or `delay` (e.g. \"1s\")\n",
            )
                .into_response();
        }
    };
    let value = c.latencies.set(&name, ms);
    if value.is_some() {
        tracing::info!(service = name, delay_ms = ms, "service latency set");
    }
    latency_answer(&c, &name, value)
}
