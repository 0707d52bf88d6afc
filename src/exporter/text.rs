//! The Prometheus text exposition format (version 0.0.4) of a run's live figures. Pure:
//! [`render`] turns a [`Scrape`] into the body of `GET /metrics`. Every metric is in
//! [`METRICS`], which `docs/metrics.md` documents (a test holds them together).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::metrics::ErrorClass;

use super::state::{LAST_SECOND_QUANTILES, LATENCY_BUCKETS_US, LiveMetrics};

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric: name, type, labels, meaning (the `# HELP` line).
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn def(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        labels,
        help,
    }
}

/// Every metric the exporter writes, in the order written.
pub const METRICS: &[MetricDef] = &[
    def(
        "shakedown_run_info",
        Kind::Gauge,
        &["kind", "run_id"],
        "Always 1: the run (kind run or load, and its run id).",
    ),
    def(
        "shakedown_run_phase",
        Kind::Gauge,
        &["phase"],
        "1 for the run's current phase (starting, load, cooldown, finishing), 0 for the others.",
    ),
    def(
        "shakedown_run_elapsed_seconds",
        Kind::Gauge,
        &[],
        "Seconds since the run's clock started.",
    ),
    def(
        "shakedown_run_planned_seconds",
        Kind::Gauge,
        &[],
        "Planned length of the load, seconds.",
    ),
    def(
        "shakedown_timeline_seconds",
        Kind::Gauge,
        &[],
        "Seconds of the timeline collected so far (the figures cover these).",
    ),
    def(
        "shakedown_intended_total",
        Kind::Counter,
        &["stream"],
        "Arrivals whose intended send time has passed.",
    ),
    def(
        "shakedown_sent_total",
        Kind::Counter,
        &["stream"],
        "Requests started.",
    ),
    def(
        "shakedown_requests_total",
        Kind::Counter,
        &["stream", "outcome"],
        "Requests finished, by outcome (ok, error).",
    ),
    def(
        "shakedown_errors_total",
        Kind::Counter,
        &["stream", "class"],
        "Failed requests by error class (refused, timeout, reset, 4xx, 5xx, ...).",
    ),
    def(
        "shakedown_late_total",
        Kind::Counter,
        &["stream"],
        "Requests started later than late_after behind their intended time.",
    ),
    def(
        "shakedown_dropped_total",
        Kind::Counter,
        &["stream"],
        "Arrivals never sent (could not start within max_lateness, or the run stopped).",
    ),
    def(
        "shakedown_sent_bytes_total",
        Kind::Counter,
        &["stream"],
        "Request body bytes sent.",
    ),
    def(
        "shakedown_received_bytes_total",
        Kind::Counter,
        &["stream"],
        "Response bytes received.",
    ),
    def(
        "shakedown_intended_per_second",
        Kind::Gauge,
        &["stream"],
        "Arrivals due in the last complete second (the intended rate).",
    ),
    def(
        "shakedown_sent_per_second",
        Kind::Gauge,
        &["stream"],
        "Requests started in the last complete second (the achieved rate).",
    ),
    def(
        "shakedown_in_flight",
        Kind::Gauge,
        &["stream"],
        "Requests in flight at the end of the last complete second.",
    ),
    def(
        "shakedown_request_duration_seconds",
        Kind::Histogram,
        &["stream"],
        "Latency from the intended send time (coordinated omission corrected), over the run so far; exact counts of the recorded HDR values.",
    ),
    def(
        "shakedown_request_duration_last_second_seconds",
        Kind::Gauge,
        &["stream", "quantile"],
        "Latency quantiles (0.5, 0.9, 0.99, 0.999, 1 = max) of the last complete second, from its HDR histogram; absent when no response came in it.",
    ),
    def(
        "shakedown_probe_value",
        Kind::Gauge,
        &["probe"],
        "Latest successful reading of each probe.",
    ),
    def(
        "shakedown_fault_active",
        Kind::Gauge,
        &["fault", "type"],
        "1 while an occurrence of the fault may be in place (journal: intent written, not undone), else 0.",
    ),
    def(
        "shakedown_fault_applied_total",
        Kind::Counter,
        &["fault", "type"],
        "Occurrences of the fault applied (including irreversible ones).",
    ),
];

/// The run's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// Before the clock starts (sandbox, target, faults prepared).
    #[default]
    Starting,
    /// Load (and faults) running.
    Load,
    /// The load is over; probes and completions run until drained.
    Cooldown,
    /// Ledger, analysis, verdicts.
    Finishing,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Starting,
        Phase::Load,
        Phase::Cooldown,
        Phase::Finishing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Load => "load",
            Phase::Cooldown => "cooldown",
            Phase::Finishing => "finishing",
        }
    }
}

/// One fault of the plan, as the journal shows it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultLive {
    pub name: String,
    pub type_name: String,
    pub active: bool,
    pub applied: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `run` or `load` (empty before the run starts).
    pub kind: String,
    pub run_id: String,
    pub phase: Phase,
    pub elapsed_s: f64,
    pub planned_s: f64,
    pub metrics: LiveMetrics,
    pub probes: BTreeMap<String, f64>,
    pub faults: Vec<FaultLive>,
}

/// The exposition text of a scrape.
pub fn render(s: &Scrape) -> String {
    let mut w = Writer::default();
    for m in METRICS {
        w.header(m);
        let streams = &s.metrics.streams;
        match m.name {
            "shakedown_run_info" => {
                if !s.kind.is_empty() {
                    w.sample(m.name, &[("kind", &s.kind), ("run_id", &s.run_id)], 1.0);
                }
            }
            "shakedown_run_phase" => {
                for p in Phase::ALL {
                    w.sample(
                        m.name,
                        &[("phase", p.name())],
                        f64::from(u8::from(p == s.phase)),
                    );
                }
            }
            "shakedown_run_elapsed_seconds" => w.sample(m.name, &[], s.elapsed_s),
            "shakedown_run_planned_seconds" => w.sample(m.name, &[], s.planned_s),
            "shakedown_timeline_seconds" => w.sample(m.name, &[], f64::from(s.metrics.seconds)),
            "shakedown_intended_total" => {
                w.per_stream(m.name, streams, |x| x.totals.intended as f64)
            }
            "shakedown_sent_total" => w.per_stream(m.name, streams, |x| x.totals.sent as f64),
            "shakedown_requests_total" => {
                for x in streams {
                    w.sample(
                        m.name,
                        &[("stream", &x.name), ("outcome", "ok")],
                        x.totals.ok as f64,
                    );
                    let errors = x.totals.errors_total() as f64;
                    w.sample(m.name, &[("stream", &x.name), ("outcome", "error")], errors);
                }
            }
            "shakedown_errors_total" => {
                for x in streams {
                    for c in ErrorClass::ALL {
                        let n = x.totals.error(c) as f64;
                        w.sample(m.name, &[("stream", &x.name), ("class", c.name())], n);
                    }
                }
            }
            "shakedown_late_total" => w.per_stream(m.name, streams, |x| x.totals.late as f64),
            "shakedown_dropped_total" => w.per_stream(m.name, streams, |x| x.totals.dropped as f64),
            "shakedown_sent_bytes_total" => {
                w.per_stream(m.name, streams, |x| x.totals.bytes_sent as f64)
            }
            "shakedown_received_bytes_total" => {
                w.per_stream(m.name, streams, |x| x.totals.bytes_received as f64)
            }
            "shakedown_intended_per_second" => {
                w.per_stream(m.name, streams, |x| x.last.intended as f64)
            }
            "shakedown_sent_per_second" => w.per_stream(m.name, streams, |x| x.last.sent as f64),
            "shakedown_in_flight" => w.per_stream(m.name, streams, |x| x.last.in_flight as f64),
            "shakedown_request_duration_seconds" => {
                for x in streams {
                    let cumulative = x.latency.cumulative();
                    let bucket = format!("{}_bucket", m.name);
                    for (bound, n) in LATENCY_BUCKETS_US.iter().zip(&cumulative) {
                        let le = number(*bound as f64 / 1e6);
                        w.sample(&bucket, &[("stream", &x.name), ("le", &le)], *n as f64);
                    }
                    let count = x.latency.count() as f64;
                    w.sample(&bucket, &[("stream", &x.name), ("le", "+Inf")], count);
                    let sum = x.latency.sum_us as f64 / 1e6;
                    w.sample(&format!("{}_sum", m.name), &[("stream", &x.name)], sum);
                    w.sample(&format!("{}_count", m.name), &[("stream", &x.name)], count);
                }
            }
            "shakedown_request_duration_last_second_seconds" => {
                for x in streams {
                    let Some(values) = x.last.quantiles_us else {
                        continue;
                    };
                    for (q, v) in LAST_SECOND_QUANTILES.iter().zip(values) {
                        let q = number(*q);
                        w.sample(
                            m.name,
                            &[("stream", &x.name), ("quantile", &q)],
                            v as f64 / 1e6,
                        );
                    }
                }
            }
            "shakedown_probe_value" => {
                for (name, v) in &s.probes {
                    w.sample(m.name, &[("probe", name)], *v);
                }
            }
            "shakedown_fault_active" => {
                for f in &s.faults {
                    let labels = [("fault", f.name.as_str()), ("type", f.type_name.as_str())];
                    w.sample(m.name, &labels, f64::from(u8::from(f.active)));
                }
            }
            "shakedown_fault_applied_total" => {
                for f in &s.faults {
                    let labels = [("fault", f.name.as_str()), ("type", f.type_name.as_str())];
                    w.sample(m.name, &labels, f.applied as f64);
                }
            }
            other => unreachable!("metric {other} has no renderer"),
        }
    }
    w.out
}

#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn header(&mut self, m: &MetricDef) {
        let _ = writeln!(self.out, "# HELP {} {}", m.name, escape_help(m.help));
        let _ = writeln!(self.out, "# TYPE {} {}", m.name, m.kind.name());
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    fn per_stream(
        &mut self,
        name: &str,
        streams: &[super::state::StreamLive],
        f: impl Fn(&super::state::StreamLive) -> f64,
    ) {
        for x in streams {
            self.sample(name, &[("stream", &x.name)], f(x));
        }
    }
}

/// A value as the format writes it (`NaN`, `+Inf`, `-Inf`, or Rust's shortest decimal).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Label values: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_the_shakedown_prefix() {
        let text = render(&Scrape::default());
        for m in METRICS {
            assert!(m.name.starts_with("shakedown_"));
            assert!(text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.name())));
            if m.kind == Kind::Counter {
                assert!(m.name.ends_with("_total"), "{}", m.name);
            }
        }
        assert!(text.contains("shakedown_run_phase{phase=\"starting\"} 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let s = Scrape {
            probes: [("a \"b\"\\\nc".to_string(), 1.5)].into(),
            ..Scrape::default()
        };
        assert!(render(&s).contains(r#"shakedown_probe_value{probe="a \"b\"\\\nc"} 1.5"#));
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.0025), "0.0025");
        assert_eq!(number(3.0), "3");
    }
}
