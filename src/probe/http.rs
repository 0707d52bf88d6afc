//! HTTP probes: `kind = "http"` (a JSON pointer into any document) and the sandbox control
//! endpoint's `kind = "balancer"` (`GET /targets`) and `kind = "sandbox-activities"`
//! (`GET /groups`, `GET /activities?after=N`).

use std::time::Duration;

use serde_json::Value;

use super::ProbeError;
use super::spec::{ActivitiesMetric, HttpProbe};

/// What an HTTP probe reads.
#[derive(Debug)]
enum Mode {
    /// The number at `pointer`.
    Json { pointer: String },
    /// Targets (`{"targets":[{"state":..}]}`) in `state`.
    Balancer { state: String },
    /// A field of one group of `GET /groups` (`[{"name","desired","instances":[..]}]`).
    Group {
        group: String,
        metric: ActivitiesMetric,
    },
    /// Activities (`[{"seq","group","kind"}]`) of `kind` for `group`, counted since start.
    Activities {
        group: String,
        kind: &'static str,
        after: u64,
        count: u64,
    },
}

/// An HTTP GET and a number taken from its JSON answer.
#[derive(Debug)]
pub struct HttpSampler {
    http: reqwest::Client,
    url: String,
    mode: Mode,
}

/// Requests never outlive this, whatever the probe's own timeout.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpSampler {
    /// `kind = "http"`.
    pub fn json(http: reqwest::Client, spec: &HttpProbe) -> Self {
        HttpSampler {
            http,
            url: spec.url.clone(),
            mode: Mode::Json {
                pointer: spec.pointer.clone(),
            },
        }
    }

    /// `kind = "balancer"` against the control endpoint at `base`.
    pub fn balancer(http: reqwest::Client, base: &str, state: &str) -> Self {
        HttpSampler {
            http,
            url: format!("{base}/targets"),
            mode: Mode::Balancer {
                state: state.to_owned(),
            },
        }
    }

    /// `kind = "sandbox-activities"` against the control endpoint at `base`.
    pub fn activities(
        http: reqwest::Client,
        base: &str,
        group: &str,
        metric: ActivitiesMetric,
    ) -> Self {
        let group = group.to_owned();
        let (path, mode) = match metric {
            ActivitiesMetric::Desired | ActivitiesMetric::Instances => {
                ("groups", Mode::Group { group, metric })
            }
            ActivitiesMetric::Scalings
            | ActivitiesMetric::Launches
            | ActivitiesMetric::Terminations => {
                let kind = match metric {
                    ActivitiesMetric::Scalings => "scaling",
                    ActivitiesMetric::Launches => "launch",
                    _ => "terminate",
                };
                (
                    "activities",
                    Mode::Activities {
                        group,
                        kind,
                        after: 0,
                        count: 0,
                    },
                )
            }
        };
        HttpSampler {
            http,
            url: format!("{base}/{path}"),
            mode,
        }
    }

    async fn get(&self, query: Option<(&str, u64)>) -> Result<Value, ProbeError> {
        let http_error = |message: String| ProbeError::Http {
            url: self.url.clone(),
            message,
        };
        let mut request = self.http.get(&self.url);
        if let Some(q) = query {
            request = request.query(&[q]);
        }
        let response = request
            .send()
            .await
            .map_err(|e| http_error(crate::errors::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(http_error(format!("HTTP {status}")));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| http_error(format!("not JSON: {e}")))
    }

    /// Takes one sample.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let query = match &self.mode {
            Mode::Activities { after, .. } => Some(("after", *after)),
            _ => None,
        };
        let doc = self.get(query).await?;
        match &mut self.mode {
            Mode::Json { pointer } => {
                let v = doc.pointer(pointer).ok_or_else(|| {
                    ProbeError::NotANumber(format!("nothing at pointer `{pointer}`"))
                })?;
                number(v)
            }
            Mode::Balancer { state } => {
                let targets = doc
                    .pointer("/targets")
                    .and_then(Value::as_array)
                    .ok_or_else(|| ProbeError::NotANumber("no `targets` array".into()))?;
                Ok(targets
                    .iter()
                    .filter(|t| t.get("state").and_then(Value::as_str) == Some(state))
                    .count() as f64)
            }
            Mode::Group { group, metric } => {
                let g = doc
                    .as_array()
                    .and_then(|all| {
                        all.iter()
                            .find(|g| g.get("name").and_then(Value::as_str) == Some(group))
                    })
                    .ok_or_else(|| ProbeError::NotANumber(format!("no group `{group}`")))?;
                match metric {
                    ActivitiesMetric::Desired => g.get("desired").map_or_else(
                        || Err(ProbeError::NotANumber("no `desired`".into())),
                        number,
                    ),
                    _ => g
                        .get("instances")
                        .and_then(Value::as_array)
                        .map(|a| a.len() as f64)
                        .ok_or_else(|| ProbeError::NotANumber("no `instances` array".into())),
                }
            }
            Mode::Activities {
                group,
                kind,
                after,
                count,
            } => {
                let entries = doc
                    .as_array()
                    .ok_or_else(|| ProbeError::NotANumber("not an activity array".into()))?;
                for a in entries {
                    let Some(seq) = a.get("seq").and_then(Value::as_u64) else {
                        continue;
                    };
                    if seq <= *after {
                        continue;
                    }
                    *after = seq;
                    let matches = a.get("group").and_then(Value::as_str) == Some(group)
                        && a.get("kind").and_then(Value::as_str) == Some(kind);
                    if matches {
                        *count += 1;
                    }
                }
                Ok(*count as f64)
            }
        }
    }
}

/// A JSON value as a number: a number, a string holding one, or a boolean (1 / 0).
pub fn number(v: &Value) -> Result<f64, ProbeError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ProbeError::NotANumber(n.to_string())),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| ProbeError::NotANumber(format!("{s:?}"))),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => Err(ProbeError::NotANumber(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_strings_and_booleans_are_numbers() {
        assert_eq!(number(&serde_json::json!(3.5)).unwrap(), 3.5);
        assert_eq!(number(&serde_json::json!(" 7 ")).unwrap(), 7.0);
        assert_eq!(number(&serde_json::json!(true)).unwrap(), 1.0);
        assert!(number(&serde_json::json!("seven")).is_err());
        assert!(number(&serde_json::json!([1])).is_err());
        assert!(number(&Value::Null).is_err());
    }
}
