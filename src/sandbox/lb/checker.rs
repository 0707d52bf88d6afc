//! Active health checks: one task per target, `GET <path>` every `interval`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::HealthCheck;
use super::health::{Probe, Transition};
use super::target::Target;

/// The client health checks use: no connection reuse, so every check proves the target
/// still accepts connections (as a cloud balancer's checks do).
pub(super) type CheckClient = Client<HttpConnector, Empty<Bytes>>;

pub(super) fn check_client(config: &HealthCheck) -> CheckClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// Runs checks against `target` until its `checks` token is cancelled.
pub(super) async fn run(
    target: Arc<Target>,
    config: HealthCheck,
    client: CheckClient,
    changes: Arc<watch::Sender<u64>>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let probe = tokio::select! {
            _ = target.checks.cancelled() => return,
            probe = async {
                ticker.tick().await;
                probe(&client, &target, &config).await
            } => probe,
        };
        if let Some(transition) = target.observe(&probe) {
            log_transition(&target.id, &transition);
            changes.send_modify(|generation| *generation += 1);
        }
    }
}

/// One check: a 2xx answer within `timeout` passes, anything else fails.
async fn probe(client: &CheckClient, target: &Target, config: &HealthCheck) -> Probe {
    let uri = format!("http://{}{}", target.addr, config.path);
    let request = match http::Request::get(&uri).body(Empty::new()) {
        Ok(request) => request,
        Err(e) => return Probe::Fail(format!("invalid health-check uri {uri}: {e}")),
    };
    let check = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| crate::errors::error_chain(&e))?;
        let status = response.status();
        // Read the (small) body so the exchange completes cleanly; its content is ignored.
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading body: {e}"))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {}", status.as_u16()))
        }
    };
    match tokio::time::timeout(config.timeout, check).await {
        Ok(Ok(())) => Probe::Pass,
        Ok(Err(why)) => Probe::Fail(why),
        Err(_) => Probe::Fail(format!("timed out after {:?}", config.timeout)),
    }
}

pub(super) fn log_transition(id: &str, transition: &Transition) {
    tracing::info!(
        target_id = id,
        from = %transition.from,
        to = %transition.to,
        reason = %transition.reason,
        "lb target state change"
    );
}
