//! Whole-run figures per stream, made from the merged windows.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::window::{Counters, ErrorClass, Window};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One stream over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamSummary {
    pub stream: String,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    /// Failures by class name (`refused`, `timeout`, `reset`, `4xx`, `5xx`, `other`, `aborted`).
    pub errors: BTreeMap<String, u64>,
    pub late: u64,
    pub dropped: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Seconds the figures cover.
    pub duration_s: f64,
    /// Requests started per second.
    pub sent_per_s: f64,
    /// Successes per second.
    pub ok_per_s: f64,
    /// Failed / (ok + failed); 0 when nothing completed.
    pub error_rate: f64,
    /// From the intended send time.
    pub latency_ms: Percentiles,
    /// From the actual send time.
    pub service_time_ms: Percentiles,
    /// How far behind schedule sends started (the driver's lag; open model).
    pub send_lag_ms: Percentiles,
    /// The connections opened (absent when none was: SQS streams, older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionSummary>,
}

/// The connections a stream opened: how many, and the latency components a request on a
/// new connection pays before its own time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionSummary {
    pub opened: u64,
    /// TLS handshakes that resumed an earlier session (https).
    pub tls_resumed: u64,
    /// TCP connect time.
    pub connect_ms: Percentiles,
    /// TLS handshake time after the connect (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<Percentiles>,
}

impl StreamSummary {
    pub fn new(stream: &str, total: &Window, duration_s: f64) -> StreamSummary {
        let c: &Counters = &total.counters;
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let completed = c.completed();
        StreamSummary {
            stream: stream.to_string(),
            intended: c.intended,
            sent: c.sent,
            ok: c.ok,
            errors: ErrorClass::ALL
                .iter()
                .filter(|class| c.error(**class) > 0)
                .map(|class| (class.name().to_string(), c.error(*class)))
                .collect(),
            late: c.late,
            dropped: c.dropped,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            duration_s,
            sent_per_s: per_s(c.sent),
            ok_per_s: per_s(c.ok),
            error_rate: if completed > 0 {
                c.errors_total() as f64 / completed as f64
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&total.corrected),
            service_time_ms: Percentiles::of(&total.uncorrected),
            send_lag_ms: Percentiles::of(&total.lateness),
            connections: total.connects.as_ref().map(|c| ConnectionSummary {
                opened: c.opened,
                tls_resumed: c.resumed,
                connect_ms: Percentiles::of(&c.tcp),
                tls_handshake_ms: (!c.tls.is_empty()).then(|| Percentiles::of(&c.tls)),
            }),
        }
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A plain-text table of the summaries, for the terminal.
pub fn render_table(summaries: &[StreamSummary]) -> String {
    let mut rows: Vec<[String; 12]> = vec![
        [
            "stream", "sent", "ok", "errors", "late", "dropped", "rate/s", "p50 ms", "p90 ms",
            "p99 ms", "p99.9 ms", "max ms",
        ]
        .map(String::from),
    ];
    let f = |v: f64| format!("{v:.2}");
    for s in summaries {
        rows.push([
            s.stream.clone(),
            s.sent.to_string(),
            s.ok.to_string(),
            s.errors_total().to_string(),
            s.late.to_string(),
            s.dropped.to_string(),
            format!("{:.1}", s.sent_per_s),
            f(s.latency_ms.p50),
            f(s.latency_ms.p90),
            f(s.latency_ms.p99),
            f(s.latency_ms.p999),
            f(s.latency_ms.max),
        ]);
    }
    let widths: Vec<usize> = (0..12)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 0 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for s in summaries.iter().filter(|s| !s.errors.is_empty()) {
        let detail: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("{}: errors {}\n", s.stream, detail.join(" ")));
    }
    for s in summaries {
        if let Some(c) = &s.connections {
            out.push_str(&format!(
                "{}: {} connection(s) opened, connect p50 {:.2} ms p99 {:.2} ms",
                s.stream, c.opened, c.connect_ms.p50, c.connect_ms.p99
            ));
            if let Some(t) = &c.tls_handshake_ms {
                out.push_str(&format!(
                    "; TLS handshake p50 {:.2} ms p99 {:.2} ms, {} of {} resumed",
                    t.p50, t.p99, c.tls_resumed, t.count
                ));
            }
            out.push('\n');
        }
    }
    // One hint per kind of TLS failure seen, saying what to do about it.
    for class in ErrorClass::ALL {
        let hint = crate::tls::hint(class);
        if !hint.is_empty()
            && summaries
                .iter()
                .any(|s| s.errors.contains_key(class.name()))
        {
            out.push_str(&format!("hint ({}): {hint}\n", class.name()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures() {
        let mut w = Window::default();
        for i in 1..=100u64 {
            w.counters.sent += 1;
            w.record_response(i * 1000, i * 500, None);
        }
        w.counters.sent += 1;
        w.record_failure(ErrorClass::Timeout);
        let s = StreamSummary::new("photos", &w, 10.0);
        assert_eq!(s.ok, 100);
        assert_eq!(s.errors["timeout"], 1);
        assert!((s.sent_per_s - 10.1).abs() < 1e-9);
        assert!((s.error_rate - 1.0 / 101.0).abs() < 1e-9);
        assert!((s.latency_ms.p50 - 50.0).abs() < 0.1);
        assert!((s.service_time_ms.max - 50.0).abs() < 0.1);
        let table = render_table(&[s]);
        assert!(table.contains("photos"));
        assert!(table.contains("timeout=1"));
    }
}
