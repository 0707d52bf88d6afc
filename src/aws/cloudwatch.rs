//! CloudWatch `GetMetricData`, spoken directly: the AWS JSON 1.0 protocol, signed with
//! SigV4 (service `monitoring`).
//!
//! Why not `aws-sdk-cloudwatch`: its releases since 1.100 speak only the CBOR protocol
//! (Smithy RPC v2), which moto_server, LocalStack's older images and proxies that log
//! requests cannot read; older releases would pin a second generation of the SDK's runtime
//! crates. CloudWatch serves the JSON protocol too (the SDKs used it before CBOR), and one
//! read-only call is little to speak by hand. Credentials come from the target's chain
//! (the same provider the SDK clients use), cached until five minutes before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::AwsError;

/// The IAM action (and error prefix) of the one call.
pub const GET_METRIC_DATA: &str = "cloudwatch:GetMetricData";

/// A CloudWatch endpoint and the credentials to call it.
#[derive(Clone)]
pub struct CloudWatch {
    endpoint: String,
    region: String,
    credentials: SharedCredentialsProvider,
    cached: Arc<Mutex<Option<Credentials>>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for CloudWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatch")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One metric, one statistic, one period: what `GetMetricData` is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// `AWS/SQS`, `AWS/ApplicationELB`, `AWS/Lambda`, a custom namespace.
    pub namespace: String,
    /// `ApproximateAgeOfOldestMessage`, ...
    pub metric: String,
    /// Name and value of each dimension, in the order given.
    pub dimensions: Vec<(String, String)>,
    /// `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount`, `p99`, `tm90`, ...
    pub stat: String,
    /// Seconds per datapoint.
    pub period: u32,
}

/// One datapoint: the statistic over `[start, start + period)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    /// Start of its period, seconds since the Unix epoch.
    pub start: i64,
    /// The statistic's value.
    pub value: f64,
}

impl CloudWatch {
    /// A client of `endpoint` (`https://monitoring.<region>.amazonaws.com` or a local one).
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        credentials: SharedCredentialsProvider,
        http: reqwest::Client,
    ) -> CloudWatch {
        CloudWatch {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            region: region.into(),
            credentials,
            cached: Arc::new(Mutex::new(None)),
            http,
        }
    }

    /// AWS's public endpoint for `region`.
    pub fn public_endpoint(region: &str) -> String {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://monitoring.{region}.{suffix}")
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every datapoint of `query` with a period starting in `[start, end)`, oldest first
    /// (all pages). Periods with no data have no datapoint.
    pub async fn get_metric_data(
        &self,
        query: &MetricQuery,
        start: i64,
        end: i64,
    ) -> Result<Vec<Datapoint>, AwsError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: a period of 1 s over a day is 86,400 points, 100,800 per page.
        for _ in 0..1000 {
            let request = request_body(query, start, end, token.as_deref());
            let answer = self
                .call("GetMetricData", GET_METRIC_DATA, &request)
                .await?;
            let page = parse_page(&answer).map_err(|message| AwsError::Unexpected {
                op: GET_METRIC_DATA,
                message,
            })?;
            out.extend(page.points);
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        // AWS's periods start at `start` when it is on a period boundary; an endpoint that
        // starts them at the first datapoint (moto) is brought onto the same grid.
        let period = i64::from(query.period.max(1));
        for p in &mut out {
            p.start = start + (p.start - start).div_euclid(period) * period;
        }
        out.sort_by_key(|p| p.start);
        out.dedup_by_key(|p| p.start);
        Ok(out)
    }

    /// One JSON-protocol call: `action` with `body`, the answer's bytes. `op` names the
    /// call in errors (the IAM action, e.g. `cloudwatch:PutMetricData`).
    pub async fn call(
        &self,
        action: &str,
        op: &'static str,
        body: &impl Serialize,
    ) -> Result<Vec<u8>, AwsError> {
        let body = serde_json::to_vec(body).map_err(|e| AwsError::Unexpected {
            op,
            message: e.to_string(),
        })?;
        let credentials = self.credentials(op).await?;
        let url = format!("{}/", self.endpoint);
        let target = format!("GraniteServiceVersion20100801.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let signed = sign(&url, &headers, &body, credentials, &self.region).map_err(|e| {
            AwsError::Unexpected {
                op,
                message: format!("signing the request: {e}"),
            }
        })?;
        let mut request = self.http.post(&url).body(body);
        for (name, value) in headers.iter().copied().chain(
            signed
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| AwsError::Unreachable {
            op,
            message: crate::errors::error_chain(&e),
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| AwsError::Unreachable {
            op,
            message: crate::errors::error_chain(&e),
        })?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let (code, message) = parse_error(&bytes);
        Err(AwsError::Call {
            op,
            resource: None,
            code,
            message: message.unwrap_or_else(|| format!("HTTP {status}")),
            status: Some(status),
        })
    }

    async fn credentials(&self, op: &'static str) -> Result<Credentials, AwsError> {
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|at| {
                at.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > Duration::from_secs(300))
            })
        };
        if let Some(c) = self.cached.lock().as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| super::error::from_credentials(op, &e))?;
        *self.cached.lock() = Some(c.clone());
        Ok(c)
    }
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) of a POST.
fn sign(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: Credentials,
    region: &str,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("monitoring")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Request<'a> {
    metric_data_queries: [Query<'a>; 1],
    start_time: i64,
    end_time: i64,
    scan_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Query<'a> {
    id: &'static str,
    metric_stat: MetricStat<'a>,
    return_data: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricStat<'a> {
    metric: Metric<'a>,
    period: u32,
    stat: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric<'a> {
    namespace: &'a str,
    metric_name: &'a str,
    dimensions: Vec<Dimension<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Dimension<'a> {
    name: &'a str,
    value: &'a str,
}

fn request_body<'a>(
    query: &'a MetricQuery,
    start: i64,
    end: i64,
    next_token: Option<&'a str>,
) -> Request<'a> {
    Request {
        metric_data_queries: [Query {
            id: "m0",
            metric_stat: MetricStat {
                metric: Metric {
                    namespace: &query.namespace,
                    metric_name: &query.metric,
                    dimensions: query
                        .dimensions
                        .iter()
                        .map(|(name, value)| Dimension { name, value })
                        .collect(),
                },
                period: query.period,
                stat: &query.stat,
            },
            return_data: true,
        }],
        start_time: start,
        end_time: end,
        scan_by: "TimestampAscending",
        next_token,
    }
}

/// One page of an answer.
#[derive(Debug, PartialEq)]
struct Page {
    points: Vec<Datapoint>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAnswer {
    #[serde(default)]
    metric_data_results: Vec<RawResult>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResult {
    #[serde(default)]
    timestamps: Vec<f64>,
    #[serde(default)]
    values: Vec<f64>,
    status_code: Option<String>,
    #[serde(default)]
    messages: Vec<RawMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMessage {
    code: Option<String>,
    value: Option<String>,
}

/// The datapoints of one answer page; an error for a result CloudWatch marks as failed
/// (`InternalError`, `Forbidden`) or timestamps and values that do not pair up.
fn parse_page(bytes: &[u8]) -> Result<Page, String> {
    let answer: RawAnswer =
        serde_json::from_slice(bytes).map_err(|e| format!("not a GetMetricData answer: {e}"))?;
    let mut points = Vec::new();
    for result in answer.metric_data_results {
        if let Some(status @ ("InternalError" | "Forbidden")) = result.status_code.as_deref() {
            let said: Vec<String> = result
                .messages
                .iter()
                .map(|m| {
                    format!(
                        "{}: {}",
                        m.code.as_deref().unwrap_or("?"),
                        m.value.as_deref().unwrap_or("")
                    )
                })
                .collect();
            return Err(format!(
                "the query's status is {status}: {}",
                said.join("; ")
            ));
        }
        if result.timestamps.len() != result.values.len() {
            return Err(format!(
                "{} timestamps for {} values",
                result.timestamps.len(),
                result.values.len()
            ));
        }
        points.extend(
            result
                .timestamps
                .iter()
                .zip(&result.values)
                .filter(|(_, v)| v.is_finite())
                .map(|(t, v)| Datapoint {
                    start: t.floor() as i64,
                    value: *v,
                }),
        );
    }
    Ok(Page {
        points,
        next_token: answer.next_token.filter(|t| !t.is_empty()),
    })
}

/// The error code and message of a JSON-protocol error answer (`__type` may carry a
/// namespace before `#` and a detail after `:`).
fn parse_error(bytes: &[u8]) -> (Option<String>, Option<String>) {
    // Not JSON (a proxy's or a crashed server's HTML page): only the status says anything.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (None, None);
    };
    let code = value
        .get("__type")
        .or_else(|| value.get("code"))
        .and_then(|v| v.as_str())
        .map(|t| {
            let t = t.rsplit('#').next().unwrap_or(t);
            t.split(':').next().unwrap_or(t).to_owned()
        });
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .map(str::to_owned);
    (code, message)
}

/// Seconds since the Unix epoch, now.
pub fn epoch_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> MetricQuery {
        MetricQuery {
            namespace: "AWS/SQS".into(),
            metric: "ApproximateAgeOfOldestMessage".into(),
            dimensions: vec![("QueueName".into(), "jobs".into())],
            stat: "Maximum".into(),
            period: 60,
        }
    }

    #[test]
    fn the_request_is_the_json_protocols_shape() {
        let body = serde_json::to_value(request_body(&query(), 600, 1200, Some("t"))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "MetricDataQueries": [{
                    "Id": "m0",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SQS",
                            "MetricName": "ApproximateAgeOfOldestMessage",
                            "Dimensions": [{"Name": "QueueName", "Value": "jobs"}]
                        },
                        "Period": 60,
                        "Stat": "Maximum"
                    },
                    "ReturnData": true
                }],
                "StartTime": 600,
                "EndTime": 1200,
                "ScanBy": "TimestampAscending",
                "NextToken": "t"
            })
        );
    }

    #[test]
    fn a_page_pairs_timestamps_with_values() {
        let page = parse_page(
            br#"{"MetricDataResults":[{"Id":"m0","Label":"x","Timestamps":[600,660.0],
                "Values":[4.0,7.5],"StatusCode":"PartialData"}],"NextToken":"n"}"#,
        )
        .unwrap();
        assert_eq!(
            page,
            Page {
                points: vec![
                    Datapoint {
                        start: 600,
                        value: 4.0
                    },
                    Datapoint {
                        start: 660,
                        value: 7.5
                    }
                ],
                next_token: Some("n".into())
            }
        );
        let empty = parse_page(br#"{"MetricDataResults":[],"NextToken":""}"#).unwrap();
        assert_eq!(empty.next_token, None);
    }

    #[test]
    fn a_failed_query_or_torn_answer_is_an_error() {
        let e = parse_page(
            br#"{"MetricDataResults":[{"Id":"m0","StatusCode":"Forbidden",
                "Messages":[{"Code":"AccessDenied","Value":"no"}]}]}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("Forbidden") && e.contains("AccessDenied: no"),
            "{e}"
        );
        let e =
            parse_page(br#"{"MetricDataResults":[{"Timestamps":[1],"Values":[]}]}"#).unwrap_err();
        assert!(e.contains("1 timestamps for 0 values"), "{e}");
    }

    #[test]
    fn error_answers_give_their_code_and_message() {
        assert_eq!(
            parse_error(
                br#"{"__type":"com.amazonaws.cloudwatch#InvalidParameterValueException","message":"bad stat"}"#
            ),
            (
                Some("InvalidParameterValueException".into()),
                Some("bad stat".into())
            )
        );
        assert_eq!(
            parse_error(br#"{"__type":"AccessDeniedException:http://x","Message":"nope"}"#),
            (Some("AccessDeniedException".into()), Some("nope".into()))
        );
        assert_eq!(parse_error(b"<html>gateway</html>"), (None, None));
    }

    #[test]
    fn public_endpoints_follow_the_partition() {
        assert_eq!(
            CloudWatch::public_endpoint("eu-west-1"),
            "https://monitoring.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            CloudWatch::public_endpoint("cn-north-1"),
            "https://monitoring.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn signing_adds_the_authorization_for_the_monitoring_service() {
        let creds = Credentials::new("AKID", "secret", Some("token".into()), None, "t");
        let headers = sign(
            "http://127.0.0.1:5000/",
            &[("content-type", "application/x-amz-json-1.0")],
            b"{}",
            creds,
            "eu-west-1",
        )
        .unwrap();
        let get = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let auth = get("authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
            "{auth}"
        );
        assert!(
            auth.contains("/eu-west-1/monitoring/aws4_request"),
            "{auth}"
        );
        assert!(auth.contains("content-type;host;x-amz-date"), "{auth}");
        assert_eq!(get("x-amz-security-token"), "token");
    }
}
