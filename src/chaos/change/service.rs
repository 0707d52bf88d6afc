//! A microservice's added latency on the sandbox's control endpoint
//! (`POST /services/<name>/latency`): every instance of the service waits it on each
//! request. The undo sets the value read just before the change; the verify reads it back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// The change, as journaled: enough to undo it from the journal alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceLatencyChange {
    /// The sandbox control endpoint's base URL.
    pub control_url: String,
    /// The service.
    pub service: String,
    /// The added latency before the change, milliseconds.
    pub previous_ms: u64,
    /// The added latency the change sets, milliseconds.
    pub delay_ms: u64,
}

fn client() -> reqwest::Client {
    crate::tls::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client builds")
}

fn url(control_url: &str, service: &str) -> String {
    format!(
        "{}/services/{service}/latency",
        control_url.trim_end_matches('/')
    )
}

async fn answer(
    response: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<u64, FaultError> {
    let fail = |m: String| FaultError::Control(format!("{what}: {m}"));
    let response = response.map_err(|e| fail(crate::errors::error_chain(&e)))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("{status}: {}", text.trim())));
    }
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("delay_ms")?.as_u64())
        .ok_or_else(|| fail(format!("no `delay_ms` in {}", text.trim())))
}

/// The service's added latency now, milliseconds.
pub async fn read(control_url: &str, service: &str) -> Result<u64, FaultError> {
    let u = url(control_url, service);
    answer(client().get(&u).send().await, &format!("GET {u}")).await
}

/// Sets the service's added latency.
pub async fn set(control_url: &str, service: &str, delay_ms: u64) -> Result<(), FaultError> {
    let u = url(control_url, service);
    let sent = client()
        .post(&u)
        .json(&serde_json::json!({ "delay_ms": delay_ms }))
        .send()
        .await;
    let now = answer(sent, &format!("POST {u}")).await?;
    if now != delay_ms {
        return Err(FaultError::Control(format!(
            "POST {u} set {now} ms, not {delay_ms} ms"
        )));
    }
    Ok(())
}

impl Undoable for ServiceLatencyChange {
    fn summary(&self) -> String {
        format!(
            "service {} waits {} ms more per request (at {}); undo: back to {} ms",
            self.service, self.delay_ms, self.control_url, self.previous_ms
        )
    }

    fn apply<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(set(&self.control_url, &self.service, self.delay_ms))
    }

    fn undo<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            set(&self.control_url, &self.service, self.previous_ms).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let now = read(&self.control_url, &self.service).await?;
            if now == self.previous_ms {
                Ok(())
            } else {
                Err(FaultError::NotVerified(format!(
                    "service {} still adds {now} ms (was {} ms)",
                    self.service, self.previous_ms
                )))
            }
        })
    }
}
