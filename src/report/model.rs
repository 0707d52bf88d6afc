//! [`RunData`] (everything the report reads of a run, already parsed) -> [`Report`] (what
//! the page shows: charts on the shared time axis, the verdict rows, tables, inputs). Pure:
//! no files; the histograms are merged here.

use std::collections::BTreeMap;

use crate::analyze::VerdictFile;
use crate::analyze::promises::cost::Cost;
use crate::analyze::verdict::{Figure, Status};
use crate::analyze::view::{ActivityKind, Latency, RunView};
use crate::metrics::{ErrorClass, SecondHistograms};
use crate::results::{RunMeta, hlog};

use super::svg::{Chart, Curve, Evidence, Marker, Series, Shade};

/// What a probe measures, for the chart it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    /// A queue's visible, in-flight, delayed or dead-lettered messages.
    Queue,
    /// A count of instances (an EC2 selection, a group, a balancer's targets).
    Instances,
    /// Anything else, on a chart of its own.
    Other,
}

/// Everything the report reads of a run directory, parsed (by [`super::read_run`]).
#[derive(Debug, Default)]
pub struct RunData {
    /// The directory's name.
    pub run_id: String,
    pub view: RunView,
    pub meta: Option<RunMeta>,
    pub verdicts: Option<VerdictFile>,
    /// Per stream, the service-time ("uncorrected") percentiles of each second (the
    /// timeline's `u_*` columns).
    pub uncorrected: BTreeMap<String, Vec<Option<Latency>>>,
    /// `latency.hlog`, every tag (`<stream>`, `<stream>.service`).
    pub latency_log: Option<SecondHistograms>,
    /// End-to-end latencies (accepted -> first completion) in ms, by completion second.
    pub e2e_ms: Option<Vec<Vec<u32>>>,
    /// The experiment's `[[probe]]` kinds, by probe name.
    pub probe_roles: BTreeMap<String, ProbeRole>,
    /// The experiment's `cost` promise (its prices), when it has one.
    pub pricing: Option<Cost>,
    /// The experiment file's text (`experiment.toml`).
    pub experiment_text: Option<String>,
    /// The profile file (its path as recorded, its text), when it could be read.
    pub profile_text: Option<(String, String)>,
    /// What could not be read, for the notes at the bottom.
    pub notes: Vec<String>,
}

/// One row of the verdict table.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow {
    /// From 1; the evidence box is `#ev-<n>`.
    pub n: usize,
    pub promise: String,
    pub kind: String,
    pub status: Status,
    pub summary: String,
    pub figures: Vec<(String, String)>,
    pub window: Option<[f64; 2]>,
    pub reason: Option<String>,
    /// The chart its evidence window is boxed on.
    pub chart: Option<String>,
}

/// Whole-run latency of one stream at the table's percentiles, ms.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumRow {
    pub stream: String,
    /// `(label, corrected, uncorrected)`.
    pub values: Vec<(&'static str, Option<f64>, Option<f64>)>,
    pub count: u64,
}

/// One stream over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub stream: String,
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// `class count` pairs, only classes seen.
    pub errors: Vec<(String, u64)>,
    pub late: u64,
    pub dropped: u64,
}

/// The page's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub run_id: String,
    /// `run` (an experiment) or `load`.
    pub kind: String,
    /// The run's status from run.json (`completed`, `interrupted`...).
    pub status: Option<String>,
    /// The shared time axis: `[0, end]` seconds.
    pub end: f64,
    pub shades: Vec<Shade>,
    /// The overall verdict and the rows; `None` without verdict.json.
    pub verdicts: Option<(Status, Vec<VerdictRow>)>,
    pub charts: Vec<Chart>,
    /// Charts left out, with why.
    pub omitted: Vec<String>,
    pub spectrum: Vec<Curve>,
    pub spectrum_rows: Vec<SpectrumRow>,
    pub streams: Vec<StreamRow>,
    /// `(promise, [(leg, value)])` of the scaling verdicts.
    pub legs: Vec<(String, Vec<(String, String)>)>,
    /// `(t, group, what, cause)` of the scaling activities (the first [`MAX_ACTIVITY_ROWS`]).
    pub activities: Vec<(f64, String, String, String)>,
    /// Activities not listed.
    pub more_activities: usize,
    pub cost_line: String,
    pub ledger_line: Option<String>,
    /// `(what, value)`: version, command, target, profile, mode, seed...
    pub facts: Vec<(String, String)>,
    /// `(stream, stages)` as recorded in run.json.
    pub stages: Vec<(String, String)>,
    pub experiment_text: Option<String>,
    pub profile_text: Option<(String, String)>,
    pub notes: Vec<String>,
}

/// Most scaling activities listed in the table (all are marked on the chart).
pub const MAX_ACTIVITY_ROWS: usize = 200;

/// The spectrum's table columns.
const TABLE_QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

/// The spectrum curve's points.
const CURVE_QUANTILES: [f64; 16] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999,
    1.0,
];

impl Report {
    /// Builds the page's content from a run's data.
    pub fn build(data: RunData) -> Report {
        let RunData {
            run_id,
            view,
            meta,
            verdicts,
            uncorrected,
            latency_log,
            e2e_ms,
            probe_roles,
            pricing,
            experiment_text,
            profile_text,
            mut notes,
        } = data;
        notes.extend(view.notes.iter().cloned());
        let timeline_len = view.streams.values().map(Vec::len).max().unwrap_or(0);
        let probes_len = view.probes.values().map(Vec::len).max().unwrap_or(0);
        let e2e_len = e2e_ms.as_ref().map_or(0, Vec::len);
        let last_fault = view
            .faults
            .iter()
            .map(|f| f.end.unwrap_or(f.start).max(f.start).ceil() as usize)
            .max()
            .unwrap_or(0);
        let len = timeline_len
            .max(probes_len)
            .max(e2e_len)
            .max(last_fault)
            .max(1);
        let end = len as f64;

        let shades = view
            .faults
            .iter()
            .map(|f| Shade {
                label: f.name.clone(),
                start: f.start,
                end: f.end,
                title: format!(
                    "{} ({}) on {}: {} to {}",
                    f.id,
                    f.kind,
                    if f.targets.is_empty() {
                        "-".to_string()
                    } else {
                        f.targets.join(", ")
                    },
                    super::svg::format_time(f.start),
                    f.end.map_or("never undone".into(), super::svg::format_time)
                ),
            })
            .collect();

        let mut charts = Vec::new();
        let mut omitted = Vec::new();
        charts.extend(traffic_charts(&view, timeline_len, len));
        charts.extend(latency_charts(&view, &uncorrected, len));
        let (probe_charts, probe_omitted) = probe_charts(&view, &probe_roles, probes_len, len);
        charts.extend(probe_charts);
        omitted.extend(probe_omitted);
        match e2e_chart(e2e_ms.as_deref(), len) {
            Some(c) => charts.push(c),
            None if view.ledger.is_some() => {
                omitted.push("end-to-end latency: no message completed".into())
            }
            None => {}
        }
        let (cost_chart, mut cost_line) = cost_chart(&view, pricing.as_ref(), probes_len, len);
        if pricing.is_none() && experiment_text.is_none() {
            cost_line =
                "not priced (no experiment.toml: only an experiment's `cost` promise prices a run)"
                    .into();
        }
        match cost_chart {
            Some(c) => charts.push(c),
            None => omitted.push(format!("cost over time: {cost_line}")),
        }

        // Verdicts, each boxed on the chart its promise is about.
        let verdicts = verdicts.map(|file| {
            let rows = file
                .verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let chart = evidence_chart(&v.kind, &charts);
                    VerdictRow {
                        n: i + 1,
                        promise: v.promise.clone(),
                        kind: v.kind.clone(),
                        status: v.status,
                        summary: v.summary.clone(),
                        figures: v
                            .figures
                            .iter()
                            .map(|(k, f)| (k.clone(), figure(f)))
                            .collect(),
                        window: v.window,
                        reason: v.reason.clone(),
                        chart: v.window.and(chart),
                    }
                })
                .collect::<Vec<_>>();
            (file.overall, rows)
        });
        if let Some((_, rows)) = &verdicts {
            for row in rows {
                let (Some(id), Some([from, to])) = (&row.chart, row.window) else {
                    continue;
                };
                if let Some(c) = charts.iter_mut().find(|c| &c.id == id) {
                    c.evidence.push(Evidence {
                        n: row.n,
                        from,
                        to,
                        status: status_class(row.status),
                    });
                }
            }
        }
        let cost_line = match verdicts
            .as_ref()
            .and_then(|(_, rows)| rows.iter().find(|r| r.kind == "cost"))
        {
            Some(r) => format!("{cost_line}; verdict: {}", r.summary),
            None => cost_line,
        };

        let (spectrum, spectrum_rows) = spectrum(&view, latency_log);
        let streams = view
            .streams
            .iter()
            .map(|(name, seconds)| {
                let mut errors = [0u64; ErrorClass::COUNT];
                let mut row = StreamRow {
                    stream: name.clone(),
                    intended: 0,
                    sent: 0,
                    ok: 0,
                    failed: 0,
                    errors: Vec::new(),
                    late: 0,
                    dropped: 0,
                };
                for s in seconds {
                    row.intended += s.intended;
                    row.sent += s.sent;
                    row.ok += s.ok;
                    row.failed += s.failed();
                    row.late += s.late;
                    row.dropped += s.dropped;
                    for (e, n) in errors.iter_mut().zip(s.errors) {
                        *e += n;
                    }
                }
                row.errors = ErrorClass::ALL
                    .iter()
                    .zip(errors)
                    .filter(|(_, n)| *n > 0)
                    .map(|(c, n)| (c.name().to_string(), n))
                    .collect();
                row
            })
            .collect();

        let legs = verdicts
            .iter()
            .flat_map(|(_, rows)| rows)
            .filter(|r| r.kind.starts_with("scale") || r.kind == "failover")
            .map(|r| {
                let legs = r
                    .figures
                    .iter()
                    .filter(|(k, _)| k.ends_with("_s"))
                    .cloned()
                    .collect();
                (r.promise.clone(), legs)
            })
            .collect();
        let all_activities = view.activities.clone().unwrap_or_default();
        let more_activities = all_activities.len().saturating_sub(MAX_ACTIVITY_ROWS);
        let activities = all_activities
            .iter()
            .take(MAX_ACTIVITY_ROWS)
            .map(|a| {
                let what = match a.kind {
                    ActivityKind::Scaling => format!(
                        "desired {} → {}",
                        a.from.map_or("?".into(), |v| v.to_string()),
                        a.to.map_or("?".into(), |v| v.to_string())
                    ),
                    ActivityKind::Launch => {
                        format!("launch {}", a.instance.as_deref().unwrap_or(""))
                    }
                    ActivityKind::Terminate => {
                        format!("terminate {}", a.instance.as_deref().unwrap_or(""))
                    }
                };
                (a.t, a.group.clone(), what, a.cause.clone())
            })
            .collect();

        let ledger_line = view.ledger.as_ref().map(|l| {
            let e2e = |q: f64| {
if l.e2e_us.is_empty() {
                    "-".into()
                } else {
                    format!("{:.0} ms", l.e2e_us.value_at_quantile(q) as f64 / 1000.0)
                }
            };
            format!(
                "{} accepted, {} completed, {} dead-lettered, {} still queued, {} unaccounted, {} duplicates; end-to-end p50 {}, p99 {}",
                l.accepted,
                l.completed,
                l.dead_lettered,
                l.still_queued
                    .map_or("unknown".into(), |v| v.to_string()),
                l.unaccounted,
                l.duplicates,
                e2e(0.5),
                e2e(0.99),
            )
        });

        let (facts, stages) = inputs(meta.as_ref(), &run_id);
        Report {
            kind: meta
                .as_ref()
                .map_or_else(|| "run".into(), |m| m.kind.clone()),
            status: meta
                .as_ref()
                .map(|m| format!("{:?}", m.status).to_lowercase()),
            run_id,
            end,
            shades,
            verdicts,
            charts,
            omitted,
            spectrum,
            spectrum_rows,
            streams,
            legs,
            activities,
            more_activities,
            cost_line,
            ledger_line,
            facts,
            stages,
            experiment_text,
            profile_text,
            notes,
        }
    }
}

/// `pass`, `fail`, `not-evaluable`: the CSS class of a status.
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotEvaluable => "not-evaluable",
    }
}

/// A figure as text: numbers with at most 3 decimals.
fn figure(f: &Figure) -> String {
    match f {
        Figure::Number(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Figure::Number(v) => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Figure::Text(t) => t.clone(),
    }
}

/// The chart a promise's evidence is boxed on.
fn evidence_chart(kind: &str, charts: &[Chart]) -> Option<String> {
    let has = |id: &str| charts.iter().any(|c| c.id == id);
    let first_latency = charts
        .iter()
        .find(|c| c.id.starts_with("latency-"))
        .map(|c| c.id.clone());
    let wanted: Option<String> = match kind {
        "failover" => Some("errors".into()),
        "buffering" | "drain" => Some("queue".into()),
        "scale-out" | "scale-in" => Some("instances".into()),
        "no-loss" => Some("e2e".into()),
        "cost" => Some("cost".into()),
        "threshold" => first_latency,
        _ => None,
    };
    wanted
        .filter(|id| has(id))
        .or_else(|| has("throughput").then(|| "throughput".into()))
}

/// Pads a series with gaps to the run's length.
fn padded(mut v: Vec<Option<f64>>, len: usize) -> Vec<Option<f64>> {
    v.resize(len.max(v.len()), None);
    v
}

/// Throughput (intended, sent, ok) and errors by class, all streams added up.
fn traffic_charts(view: &RunView, timeline_len: usize, len: usize) -> Vec<Chart> {
    if view.streams.is_empty() {
        return Vec::new();
    }
    let sum = |f: &dyn Fn(&crate::analyze::view::Second) -> u64| -> Vec<Option<f64>> {
        let mut out = vec![Some(0.0); timeline_len];
        for seconds in view.streams.values() {
            for (i, s) in seconds.iter().enumerate() {
                if let Some(v) = out[i].as_mut() {
                    *v += f(s) as f64;
                }
            }
        }
        padded(out, len)
    };
    let series = |name: &str, colour: usize, dashed: bool, values| Series {
        name: name.into(),
        colour,
        dashed,
        values,
    };
    let expect = Some((0.0, timeline_len as f64));
    let streams = view.streams.len();
    let throughput = Chart {
        id: "throughput".into(),
        title: "Intended vs achieved rate".into(),
        unit: "req/s".into(),
        log_y: false,
        // Intended last: drawn on top, dashed, where the others would hide it.
        series: vec![
            series("sent", 1, false, sum(&|s| s.sent)),
            series("ok", 0, false, sum(&|s| s.ok)),
            series("intended", 7, true, sum(&|s| s.intended)),
        ],
        markers: vec![],
        evidence: vec![],
        expect,
        note: (streams > 1).then(|| format!("all {streams} streams added up")),
    };
    let mut error_series: Vec<Series> = ErrorClass::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            view.streams
                .values()
                .any(|v| v.iter().any(|s| s.errors[*i] > 0))
        })
        .enumerate()
        .map(|(n, (i, c))| series(c.name(), 2 + n, false, sum(&|s| s.errors[i])))
        .collect();
    let mut note = None;
    if error_series.is_empty() {
        error_series.push(series("errors (none)", 2, false, sum(&|s| s.failed())));
        note = Some("no request failed".to_string());
    }
    error_series.push(series("dropped", 6, true, sum(&|s| s.dropped)));
    let errors = Chart {
        id: "errors".into(),
        title: "Errors by class".into(),
        unit: "per s".into(),
        log_y: false,
        series: error_series,
        markers: vec![],
        evidence: vec![],
        expect,
        note,
    };
    vec![throughput, errors]
}

/// One chart per stream: p50/p90/p99/max from the intended send time (solid) and from the
/// actual send (dashed).
fn latency_charts(
    view: &RunView,
    uncorrected: &BTreeMap<String, Vec<Option<Latency>>>,
    len: usize,
) -> Vec<Chart> {
    type Pick = fn(&Latency) -> f64;
    let picks: [(&str, Pick); 4] = [
        ("p50", |l| l.p50),
        ("p90", |l| l.p90),
        ("p99", |l| l.p99),
        ("max", |l| l.max),
    ];
    view.streams
        .iter()
        .map(|(name, seconds)| {
            let corrected: Vec<Option<Latency>> = seconds.iter().map(|s| s.latency).collect();
            let mut series = Vec::new();
            for (i, (label, pick)) in picks.iter().enumerate() {
                series.push(Series {
                    name: label.to_string(),
                    colour: i,
                    dashed: false,
                    values: padded(corrected.iter().map(|l| l.as_ref().map(pick)).collect(), len),
                });
            }
            if let Some(u) = uncorrected.get(name) {
                for (i, (label, pick)) in picks.iter().enumerate() {
                    series.push(Series {
                        name: format!("{label} uncorrected"),
                        colour: i,
                        dashed: true,
                        values: padded(u.iter().map(|l| l.as_ref().map(pick)).collect(), len),
                    });
                }
            }
            let mut c = Chart {
                id: format!("latency-{}", slug(name)),
                title: format!("Latency of {name}"),
                unit: "ms".into(),
                log_y: true,
                series,
                markers: vec![],
                evidence: vec![],
                expect: None,
                note: Some(
                    "solid: from the intended send time (corrected); dashed: from the actual send (uncorrected); log scale".into(),
                ),
            };
            c.expect = c.data_span();
            c
        })
        .collect()
}

/// A name fit for an element id.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The role of a probe: from the experiment, else guessed from its name.
fn role(name: &str, roles: &BTreeMap<String, ProbeRole>) -> ProbeRole {
    if let Some(r) = roles.get(name) {
        return *r;
    }
    let n = name.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if any(&[
        "backlog",
        "queue",
        "depth",
        "in_flight",
        "delayed",
        "dlq",
        "visible",
    ]) {
        ProbeRole::Queue
    } else if any(&[
        "instance", "worker", "fleet", "capacity", "web", "group", "hosts",
    ]) {
        ProbeRole::Instances
    } else {
        ProbeRole::Other
    }
}

/// Queue depth, instance counts (with desired capacity and the scaling activities), and one
/// chart per other probe.
fn probe_charts(
    view: &RunView,
    roles: &BTreeMap<String, ProbeRole>,
    probes_len: usize,
    len: usize,
) -> (Vec<Chart>, Vec<String>) {
    let mut charts = Vec::new();
    let mut omitted = Vec::new();
    let of_role = |want: ProbeRole| -> Vec<Series> {
        view.probes
            .iter()
            .filter(|(n, _)| role(n, roles) == want)
            .enumerate()
            .map(|(i, (n, v))| Series {
                name: n.clone(),
                colour: i,
                dashed: false,
                values: padded(v.clone(), len),
            })
            .collect()
    };
    let probe_chart = |id: &str, title: &str, unit: &str, series: Vec<Series>| {
        let mut c = Chart {
            id: id.into(),
            title: title.into(),
            unit: unit.into(),
            log_y: false,
            series,
            markers: vec![],
            evidence: vec![],
            expect: None,
            note: None,
        };
        c.expect = c.data_span().map(|(a, b)| (a, b.max(probes_len as f64)));
        c
    };
    let queue = of_role(ProbeRole::Queue);
    if queue.is_empty() {
        if view.ledger.is_some() || !view.probes.is_empty() {
            omitted.push("queue depth: no queue probe in this run".into());
        }
    } else {
        charts.push(probe_chart("queue", "Queue depth", "messages", queue));
    }

    let mut instances = of_role(ProbeRole::Instances);
    // Desired capacity per group, from the scaling activities.
    let activities = view.activities.as_deref().unwrap_or_default();
    let mut groups: Vec<&str> = activities
        .iter()
        .filter(|a| a.kind == ActivityKind::Scaling)
        .map(|a| a.group.as_str())
        .collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    let base = instances.len();
    for (i, g) in groups.iter().enumerate() {
        let scalings: Vec<_> = activities
            .iter()
            .filter(|a| a.kind == ActivityKind::Scaling && a.group == *g)
            .collect();
        let mut values = vec![None; len];
        let mut current = scalings.first().and_then(|a| a.from).map(f64::from);
        let mut next = scalings.iter().peekable();
        for (s, v) in values.iter_mut().enumerate() {
            while let Some(a) = next.peek()
                && a.t < s as f64 + 1.0
            {
                current = a.to.map(f64::from).or(current);
                next.next();
            }
            *v = current;
        }
        instances.push(Series {
            name: format!("{g} desired"),
            colour: base + i,
            dashed: true,
            values,
        });
    }
    if instances.is_empty() {
        if !activities.is_empty() {
            omitted.push("instances: no instance probe and no desired-capacity change".into());
        }
    } else {
        let mut c = probe_chart("instances", "Instances per group", "instances", instances);
        c.markers = activities
            .iter()
            .map(|a| {
                let (label, class) = match (a.kind, a.from, a.to) {
                    (ActivityKind::Scaling, from, to) => (
                        format!(
                            "{}→{}",
                            from.map_or("?".into(), |v| v.to_string()),
                            to.map_or("?".into(), |v| v.to_string())
                        ),
                        if to >= from { "up" } else { "down" },
                    ),
                    (ActivityKind::Launch, ..) => (String::new(), "launch"),
                    (ActivityKind::Terminate, ..) => (String::new(), "terminate"),
                };
                Marker {
                    t: a.t,
                    label,
                    title: format!("{} {}: {}", super::svg::format_time(a.t), a.group, a.cause),
                    class,
                }
            })
            .collect();
        c.note = Some(
            "dashed: desired capacity from activities.jsonl; ticks: scaling (labelled), launches and terminations".into(),
        );
        charts.push(c);
    }
    for (i, (name, values)) in view
        .probes
        .iter()
        .filter(|(n, _)| role(n, roles) == ProbeRole::Other)
        .enumerate()
    {
        charts.push(probe_chart(
            &format!("probe-{}", slug(name)),
            &format!("Probe {name}"),
            "value",
            vec![Series {
                name: name.clone(),
                colour: i,
                dashed: false,
                values: padded(values.clone(), len),
            }],
        ));
    }
    (charts, omitted)
}

/// The exact quantiles (nearest rank) of `values` at each of `qs`, which ascend. Reorders
/// `values`: each quantile is selected among the values above the one before, not sorted.
fn quantiles(values: &mut [u32], qs: &[f64]) -> Vec<Option<f64>> {
    let n = values.len();
    let mut from = 0;
    qs.iter()
        .map(|q| {
            if n == 0 {
                return None;
            }
            let at = (((q * n as f64).ceil() as usize).clamp(1, n) - 1).max(from);
            let (_, v, _) = values[from..].select_nth_unstable(at - from);
            let v = f64::from(*v);
            from = at;
            Some(v)
        })
        .collect()
}

/// End-to-end latency of the messages completed in each second: p50, p99, max.
fn e2e_chart(e2e: Option<&[Vec<u32>]>, len: usize) -> Option<Chart> {
    let e2e = e2e?;
    if e2e.iter().all(Vec::is_empty) {
        return None;
    }
    const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p99", 0.99), ("max", 1.0)];
    let qs = QUANTILES.map(|(_, q)| q);
    let mut scratch = Vec::new();
    let by_second: Vec<Vec<Option<f64>>> = e2e
        .iter()
        .map(|v| {
            scratch.clear();
            scratch.extend_from_slice(v);
            quantiles(&mut scratch, &qs)
        })
        .collect();
    let series = QUANTILES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Series {
            name: name.to_string(),
            colour: i,
            dashed: false,
            values: padded(by_second.iter().map(|s| s[i]).collect(), len),
        })
        .collect();
    let mut c = Chart {
        id: "e2e".into(),
        title: "End-to-end latency of completed messages".into(),
        unit: "ms".into(),
        log_y: false,
        series,
        markers: vec![],
        evidence: vec![],
        expect: None,
        note: Some("accepted → first completion, by the second the message completed".into()),
    };
    c.expect = c.data_span();
    Some(c)
}

/// Cumulative cost per second, priced like the `cost` promise (gaps hold the sample
/// before); `None` (with the line saying why) when the run is not priced.
fn cost_chart(
    view: &RunView,
    pricing: Option<&Cost>,
    probes_len: usize,
    len: usize,
) -> (Option<Chart>, String) {
    let Some(p) = pricing else {
        return (
            None,
            "not priced (the experiment has no `cost` promise)".into(),
        );
    };
    let held = |probe: &str| -> Option<Vec<f64>> {
        let values = view.probes.get(probe)?;
        let first = values.iter().flatten().next().copied()?;
        let mut current = first;
        Some(
            values
                .iter()
                .map(|v| {
                    current = v.unwrap_or(current);
                    current
                })
                .collect(),
        )
    };
    let mut series = Vec::new();
    let mut parts = Vec::new();
    let mut total = vec![0.0; probes_len];
    if let Some(probe) = &p.instances {
        match held(probe) {
            Some(counts) => {
                let mut cum = 0.0;
                let values: Vec<Option<f64>> = counts
                    .iter()
                    .map(|n| {
                        cum += n * p.instance_hour / 3600.0;
                        Some(cum)
                    })
                    .collect();
                for (t, v) in total.iter_mut().zip(&values) {
                    *t += v.unwrap_or(0.0);
                }
                parts.push(format!(
                    "instances {:.4} ({} at {}/instance-hour)",
                    cum, probe, p.instance_hour
                ));
                series.push(Series {
                    name: "instances".into(),
                    colour: 1,
                    dashed: true,
                    values: padded(values, len),
                });
            }
            None => parts.push(format!("instances: probe `{probe}` has no sample")),
        }
    }
    if let Some(probe) = &p.gb_seconds {
        match held(probe) {
            Some(gb) => {
                let first = gb[0];
                let values: Vec<Option<f64>> = gb
                    .iter()
                    .map(|v| Some((v - first).max(0.0) * p.gb_second))
                    .collect();
                for (t, v) in total.iter_mut().zip(&values) {
                    *t += v.unwrap_or(0.0);
                }
                parts.push(format!(
                    "functions {:.4} ({} at {}/GB-second)",
                    values.last().copied().flatten().unwrap_or(0.0),
                    probe,
                    p.gb_second
                ));
                series.push(Series {
                    name: "functions".into(),
                    colour: 2,
                    dashed: true,
                    values: padded(values, len),
                });
            }
            None => parts.push(format!("functions: probe `{probe}` has no sample")),
        }
    }
    if series.is_empty() {
        return (None, format!("priced, but {}", parts.join("; ")));
    }
    let sum = total.last().copied().unwrap_or(0.0);
    series.insert(
        0,
        Series {
            name: "total".into(),
            colour: 0,
            dashed: false,
            values: padded(total.into_iter().map(Some).collect(), len),
        },
    );
    let budget = p.budget.map_or(String::new(), |b| format!(" (budget {b})"));
    let mut c = Chart {
        id: "cost".into(),
        title: "Cost over time".into(),
        unit: "cost".into(),
        log_y: false,
        series,
        markers: vec![],
        evidence: vec![],
        expect: Some((0.0, probes_len as f64)),
        note: Some("cumulative, priced as the experiment's cost promise".into()),
    };
    c.expect = c.expect.filter(|_| probes_len > 0);
    (
        Some(c),
        format!("total {sum:.4}{budget}: {}", parts.join("; ")),
    )
}

/// Per stream, the whole run's latency merged from `latency.hlog`: the spectrum's curves
/// (corrected solid, uncorrected dashed) and the table rows.
fn spectrum(view: &RunView, log: Option<SecondHistograms>) -> (Vec<Curve>, Vec<SpectrumRow>) {
    let Some(mut log) = log else {
        return (Vec::new(), Vec::new());
    };
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    // Each stream's two whole-run merges (an hour is 3,600 histograms to decode each), on
    // every core.
    let series: Vec<[Option<Vec<Option<crate::metrics::Encoded>>>; 2]> = view
        .streams
        .keys()
        .map(|stream| {
            let tag = hlog::tag(stream);
            [log.take(&tag), log.take(&format!("{tag}.service"))]
        })
        .collect();
    type Merged = Option<hdrhistogram::Histogram<u64>>;
    let series: Vec<&Option<Vec<Option<crate::metrics::Encoded>>>> =
        series.iter().flatten().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut merged: Vec<Merged> = vec![None; series.len()];
    std::thread::scope(|scope| {
        // Thread k merges series k, k + threads, ...
        let mut shares: Vec<Vec<(usize, &mut Merged)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, slot) in merged.iter_mut().enumerate() {
            shares[i % threads].push((i, slot));
        }
        for share in shares {
            let series = &series;
            scope.spawn(move || {
                for (i, slot) in share {
                    *slot = series[i]
                        .as_ref()
                        .and_then(|s| crate::metrics::merge_histograms(s.iter().flatten()).ok())
                        .filter(|h| !h.is_empty());
                }
            });
        }
    });
    let mut merged = merged.into_iter();
    for (i, stream) in view.streams.keys().enumerate() {
        let corrected = merged.next().flatten();
        let uncorrected = merged.next().flatten();
        let at = |h: &Option<hdrhistogram::Histogram<u64>>, q: f64| {
            h.as_ref().map(|h| {
                let us = if q >= 1.0 {
                    h.max()
                } else {
                    h.value_at_quantile(q)
                };
                us as f64 / 1000.0
            })
        };
        for (h, dashed, label) in [
            (&corrected, false, ""),
            (&uncorrected, true, " uncorrected"),
        ] {
            if h.is_some() {
                curves.push(Curve {
                    name: format!("{stream}{label}"),
                    colour: i,
                    dashed,
                    points: CURVE_QUANTILES
                        .iter()
                        .filter_map(|q| at(h, *q).map(|v| (*q, v.max(0.001))))
                        .collect(),
                });
            }
        }
        if corrected.is_some() || uncorrected.is_some() {
            rows.push(SpectrumRow {
                stream: stream.clone(),
                values: TABLE_QUANTILES
                    .iter()
                    .map(|(l, q)| (*l, at(&corrected, *q), at(&uncorrected, *q)))
                    .collect(),
                count: corrected.as_ref().map_or(0, |h| h.len()),
            });
        }
    }
    (curves, rows)
}

/// Two texts: a label and its value.
type Pair = (String, String);

/// The run's inputs as `(what, value)` facts, and each stream's stages.
fn inputs(meta: Option<&RunMeta>, run_id: &str) -> (Vec<Pair>, Vec<Pair>) {
    let Some(m) = meta else {
        return (
            vec![("run".into(), format!("{run_id} (no run.json)"))],
            Vec::new(),
        );
    };
    let mut facts = vec![
        ("run id".to_string(), m.run_id.clone()),
        ("kind".into(), m.kind.clone()),
        ("tool".into(), format!("{} {}", m.tool.name, m.tool.version)),
        ("command".into(), m.command.join(" ")),
        ("host".into(), m.host.clone()),
        ("target".into(), m.target.clone()),
        (
            "profile".into(),
            match &m.profile.path {
                Some(p) => format!("{} ({p})", m.profile.name),
                None => m.profile.name.clone(),
            },
        ),
        (
            "mode".into(),
            format!(
                "{} model, {}{}{}",
                m.mode.model,
                super::svg::format_time(m.mode.duration_s),
                m.mode
                    .concurrency
                    .map_or(String::new(), |c| format!(", concurrency {c}")),
                m.mode
                    .requests
                    .map_or(String::new(), |n| format!(", {n} requests")),
            ),
        ),
        ("seed".into(), m.seed.to_string()),
        ("segment".into(), m.segment.clone()),
        ("started".into(), m.started_at.to_rfc3339()),
        (
            "ended".into(),
            m.ended_at.map_or("-".into(), |t| t.to_rfc3339()),
        ),
        ("status".into(), format!("{:?}", m.status).to_lowercase()),
    ];
    if let Some(e) = &m.error {
        facts.push(("error".into(), e.clone()));
    }
    let stages = m
        .profile
        .streams
        .iter()
        .map(|s| {
            let stages: Vec<String> = s
                .stages
                .iter()
                .map(|[len, from, to]| {
                    if from == to {
                        format!("{} at {from}/s", super::svg::format_time(*len))
                    } else {
                        format!("{} {from}→{to}/s", super::svg::format_time(*len))
                    }
                })
                .collect();
            (
                format!(
                    "{} ({} over {}, {})",
                    s.name, s.kind, s.transport, s.arrival
                ),
                stages.join(", "),
            )
        })
        .collect();
    (facts, stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{Activity, FaultWindow, Second};

    proptest::proptest! {
        /// Selected quantiles are the nearest-rank quantiles of the sorted values.
        #[test]
        fn selected_quantiles_are_those_of_the_sorted_values(
            values in proptest::collection::vec(0u32..50, 0..300),
            mut qs in proptest::collection::vec(0.0f64..=1.0, 1..6),
        ) {
            qs.sort_by(f64::total_cmp);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let expected: Vec<Option<f64>> = qs
                .iter()
                .map(|q| {
                    let n = sorted.len();
                    (n > 0).then(|| {
                        f64::from(sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
                    })
                })
                .collect();
            let mut scratch = values;
            proptest::prop_assert_eq!(quantiles(&mut scratch, &qs), expected);
        }
    }

    fn view(seconds: usize) -> RunView {
        let mut v = RunView::default();
        v.streams.insert(
            "up".into(),
            (0..seconds)
                .map(|s| Second::simple(10, u64::from(s == 5), 20.0))
                .collect(),
        );
        v.probes.insert(
            "backlog".into(),
            (0..seconds + 5).map(|s| Some(s as f64)).collect(),
        );
        v.probes
            .insert("workers".into(), vec![Some(1.0); seconds + 5]);
        v.faults.push(FaultWindow {
            name: "kill".into(),
            id: "kill#0".into(),
            kind: "terminate-instances".into(),
            start: 3.0,
            end: Some(6.0),
            targets: vec!["i-1".into()],
        });
        v.activities = Some(vec![Activity {
            t: 4.2,
            group: "workers".into(),
            kind: ActivityKind::Scaling,
            from: Some(1),
            to: Some(3),
            instance: None,
            cause: "backlog".into(),
        }]);
        v
    }

    #[test]
    fn charts_share_the_run_and_cover_their_data() {
        let r = Report::build(RunData {
            run_id: "r".into(),
            view: view(10),
            ..RunData::default()
        });
        assert_eq!(r.end, 15.0, "the probes outlast the timeline");
        let ids: Vec<&str> = r.charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["throughput", "errors", "latency-up", "queue", "instances"]
        );
        for c in &r.charts {
            assert!(c.series.iter().all(|s| s.values.len() == 15), "{}", c.id);
        }
        assert_eq!(r.charts[0].expect, Some((0.0, 10.0)));
        assert_eq!(r.charts[3].expect, Some((0.0, 15.0)));
        // Desired capacity steps from 1 to 3 in second 4.
        let desired = &r.charts[4].series[1];
        assert_eq!(desired.name, "workers desired");
        assert_eq!(desired.values[3], Some(1.0));
        assert_eq!(desired.values[4], Some(3.0));
        assert_eq!(r.charts[4].markers[0].label, "1→3");
        assert!(r.omitted.iter().any(|o| o.contains("not priced")));
        assert_eq!(r.shades[0].label, "kill");
    }

    #[test]
    fn cost_is_priced_like_the_promise() {
        let mut v = view(10);
        v.probes.insert("workers".into(), vec![Some(2.0); 3600]);
        let r = Report::build(RunData {
            view: v,
            pricing: Some(Cost {
                instances: Some("workers".into()),
                instance_hour: 1.0,
                gb_seconds: None,
                gb_second: 0.0,
                budget: Some(5.0),
            }),
            ..RunData::default()
        });
        let cost = r
            .charts
            .iter()
            .find(|c| c.id == "cost")
            .expect("a cost chart");
        let total = cost.series[0].values[3599].unwrap();
        assert!((total - 2.0).abs() < 1e-9, "{total}");
        assert!(
            r.cost_line.starts_with("total 2.0000 (budget 5)"),
            "{}",
            r.cost_line
        );
    }

    #[test]
    fn e2e_quantiles_per_completion_second() {
        let c = e2e_chart(Some(&[vec![], vec![30, 10, 20]]), 4).unwrap();
        assert_eq!(c.series[0].values, vec![None, Some(20.0), None, None]);
        assert_eq!(c.series[2].values[1], Some(30.0));
        assert_eq!(c.expect, Some((1.0, 2.0)));
    }
}
