//! The sandbox's small control endpoint, for the harness and for people:
//!
//! - `GET /endpoints`: every endpoint of the sandbox ([`super::Endpoints`]);
//! - `GET /activities?after=N`: the groups' activity log as a JSON array
//!   ([`super::asg::Activity`]), entries with `seq > N`;
//! - `GET /targets`: the balancer's targets and their health states;
//! - `GET /groups`: each group's min, max, desired and members;
//! - `GET /bus/stats`: the embedded event bus's counters ([`super::bus::BusStats`]; 404
//!   without one), so `kind = "http"` probes can read `url = "/bus/stats"`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
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
