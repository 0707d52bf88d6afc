//! **function**: a serverless function's own counters (throttles under its concurrency
//! limit, cold starts and the invocation time they take), read from cumulative probes over
//! the run and judged by k6-style checks (`throttle_rate < 1%`, `cold_start_rate < 10%`).
//! Formulas: `docs/promises.md#function`.

use std::fmt;

use super::{missing, round3};
use crate::analyze::expr::{Op, split_comparison};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// What a `function` check measures, from the increase of cumulative probes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionMetric {
    /// Throttled attempts / (throttled attempts + invocations).
    ThrottleRate,
    /// Throttled attempts (count).
    Throttles,
    /// Cold starts / invocations.
    ColdStartRate,
    /// Cold starts (count).
    ColdStarts,
    /// Cold-start time / (cold-start time + handler time): the share of invocation
    /// latency spent initialising new slots.
    ColdTimeShare,
}

impl FunctionMetric {
    /// Every metric name, for hints.
    pub const NAMES: [&'static str; 5] = [
        "throttle_rate",
        "throttles",
        "cold_start_rate",
        "cold_starts",
        "cold_time_share",
    ];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "throttle_rate" => FunctionMetric::ThrottleRate,
            "throttles" => FunctionMetric::Throttles,
            "cold_start_rate" => FunctionMetric::ColdStartRate,
            "cold_starts" => FunctionMetric::ColdStarts,
            "cold_time_share" => FunctionMetric::ColdTimeShare,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            FunctionMetric::ThrottleRate => "throttle_rate",
            FunctionMetric::Throttles => "throttles",
            FunctionMetric::ColdStartRate => "cold_start_rate",
            FunctionMetric::ColdStarts => "cold_starts",
            FunctionMetric::ColdTimeShare => "cold_time_share",
        }
    }

    fn is_share(self) -> bool {
        matches!(
            self,
            FunctionMetric::ThrottleRate
                | FunctionMetric::ColdStartRate
                | FunctionMetric::ColdTimeShare
        )
    }

    fn format(self, v: f64) -> String {
        if self.is_share() {
            format!("{}%", round3(v * 100.0))
        } else {
            format!("{v}")
        }
    }
}

/// One check, e.g. `throttle_rate < 1%`: the limit is a fraction for the shares, a count
/// for the counts.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCheck {
    pub metric: FunctionMetric,
    pub op: Op,
    pub limit: f64,
    /// The text as written.
    pub text: String,
}

impl fmt::Display for FunctionCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for FunctionCheck {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, op, value) = split_comparison(text).ok_or_else(|| {
            format!("expected `<metric> <op> <value>` like `throttle_rate < 1%`, found `{text}`")
        })?;
        let metric = FunctionMetric::parse(name).ok_or_else(|| {
            format!(
                "unknown metric `{name}` (expected one of {})",
                FunctionMetric::NAMES.join(", ")
            )
        })?;
        let limit = if metric.is_share() {
            match value.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                None => value.parse::<f64>(),
            }
            .map_err(|_| {
                format!("`{name}` needs a percentage like `1%` or a fraction, found `{value}`")
            })?
        } else {
            value
                .parse::<f64>()
                .map_err(|_| format!("`{name}` needs a count like `0`, found `{value}`"))?
        };
        if !limit.is_finite() || limit < 0.0 {
            return Err(format!("`{name}` needs a value of zero or more"));
        }
        Ok(FunctionCheck {
            metric,
            op,
            limit,
            text: format!("{name} {} {value}", op.symbol()),
        })
    }
}

/// Parameters of a `function` promise: cumulative counter probes (the sandbox bus's
/// `GET /stats` fields, or CloudWatch's Lambda sums) and checks over their increase.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Cumulative invocations started (throttled attempts excluded).
    pub invocations: String,
    /// Cumulative throttled attempts.
    pub throttles: Option<String>,
    /// Cumulative cold starts.
    pub cold_starts: Option<String>,
    /// Cumulative cold-start (init) time, ms.
    pub init_ms: Option<String>,
    /// Cumulative handler (billed) time, ms.
    pub billed_ms: Option<String>,
    /// All must hold.
    pub checks: Vec<FunctionCheck>,
}

/// The keys of a `function` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    /// Probe of the function's cumulative invocations (sandbox: `/functions/<name>/invocations`
    /// of `/bus/stats`). Required.
    invocations: Option<toml::Spanned<String>>,
    /// Probe of cumulative throttled attempts (`/functions/<name>/throttles`).
    throttles: Option<toml::Spanned<String>>,
    /// Probe of cumulative cold starts (`/functions/<name>/cold_starts`).
    cold_starts: Option<toml::Spanned<String>>,
    /// Probe of cumulative cold-start time in ms (`/functions/<name>/init_ms`).
    init_ms: Option<toml::Spanned<String>>,
    /// Probe of cumulative handler time in ms (`/functions/<name>/billed_ms`).
    billed_ms: Option<toml::Spanned<String>>,
    /// Checks, all of which must hold, e.g. `["throttle_rate < 1%", "cold_start_rate < 10%"]`.
    /// Without checks the verdict reports the figures only (not evaluable).
    checks: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
}

impl crate::analyze::spec::PromiseParams for RawFunction {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let mut checks = Vec::new();
        for item in self.checks.iter().flat_map(|l| l.get_ref()) {
            match item.get_ref().parse::<FunctionCheck>() {
                Ok(c) => checks.push(c),
                Err(e) => r.error(item.span(), e),
            }
        }
        let p = Function {
            invocations: r.required_name(RefKind::Probe, &self.invocations, "invocations"),
            throttles: r.name(RefKind::Probe, &self.throttles),
            cold_starts: r.name(RefKind::Probe, &self.cold_starts),
            init_ms: r.name(RefKind::Probe, &self.init_ms),
            billed_ms: r.name(RefKind::Probe, &self.billed_ms),
            checks,
        };
        for c in &p.checks {
            let (key, present) = match c.metric {
                FunctionMetric::ThrottleRate | FunctionMetric::Throttles => {
                    ("throttles", p.throttles.is_some())
                }
                FunctionMetric::ColdStartRate | FunctionMetric::ColdStarts => {
                    ("cold_starts", p.cold_starts.is_some())
                }
                FunctionMetric::ColdTimeShare => (
                    "init_ms` and `billed_ms",
                    p.init_ms.is_some() && p.billed_ms.is_some(),
                ),
            };
            if !present {
                r.error(
                    r.at(),
                    format!("check `{}` needs the probe key `{key}`", c.text),
                );
            }
        }
        let name = format!("function:{}", p.invocations);
        (crate::analyze::spec::PromiseKind::Function(p), name)
    }
}

/// Increase of a cumulative probe over the run: last - first sample. A counter never goes
/// down: a series that does is not one (a per-period figure such as a CloudWatch `Sum`, or
/// a counter reset by a restart), and its last - first would be a guess, so it is refused.
fn increase(view: &RunView, probe: &str) -> Result<f64, String> {
    let points = view.probe_points(probe, 0, view.len());
    if let Some(why) = super::not_a_counter(probe, &points) {
        return Err(why);
    }
    match (points.first(), points.last()) {
        (Some(first), Some(last)) if points.len() >= 2 => Ok(last.1 - first.1),
        _ if !view.probes.contains_key(probe) => {
            Err(missing(view, &format!("no probe `{probe}`"), "probes"))
        }
        _ => Err(format!("probe `{probe}` has fewer than 2 samples")),
    }
}

fn share(part: f64, whole: f64, what: &str) -> Result<f64, String> {
    if whole > 0.0 {
        Ok(part / whole)
    } else {
        Err(format!("no {what} in the run"))
    }
}

impl Function {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "function");
        b.window(0.0, view.end());
        let get = |p: &Option<String>| p.as_deref().map(|p| increase(view, p));
        let invocations = increase(view, &self.invocations);
        let throttles = get(&self.throttles);
        let cold = get(&self.cold_starts);
        let init = get(&self.init_ms);
        let billed = get(&self.billed_ms);
        let measure = |m: FunctionMetric| -> Result<f64, String> {
            let need = |v: &Option<Result<f64, String>>| -> Result<f64, String> {
                v.clone()
                    .unwrap_or_else(|| Err(format!("`{}` needs its probe", m.name())))
            };
            match m {
                FunctionMetric::Throttles => need(&throttles),
                FunctionMetric::ColdStarts => need(&cold),
                FunctionMetric::ThrottleRate => {
                    let t = need(&throttles)?;
                    share(t, t + invocations.clone()?, "invocation attempts")
                }
                FunctionMetric::ColdStartRate => {
                    share(need(&cold)?, invocations.clone()?, "invocations")
                }
                FunctionMetric::ColdTimeShare => {
                    let i = need(&init)?;
                    share(i, i + need(&billed)?, "invocation time")
                }
            }
        };
        if let Ok(n) = &invocations {
            b.figure("invocations", *n);
        }
        for m in [
            FunctionMetric::Throttles,
            FunctionMetric::ThrottleRate,
            FunctionMetric::ColdStarts,
            FunctionMetric::ColdStartRate,
            FunctionMetric::ColdTimeShare,
        ] {
            if let Ok(v) = measure(m) {
                b.figure(
                    m.name(),
                    if m.is_share() {
                        round3(v * 100.0) / 100.0
                    } else {
                        v
                    },
                );
            }
        }
        if let (Some(Ok(c)), Some(Ok(i))) = (&cold, &init)
            && *c > 0.0
        {
            b.figure("cold_start_mean_ms", round3(i / c));
        }
        if self.checks.is_empty() {
            b.leg(
                Status::NotEvaluable,
                "no checks: figures only (add e.g. `checks = [\"throttle_rate < 1%\"]`)",
            );
        }
        for check in &self.checks {
            match measure(check.metric) {
                Ok(v) => {
                    let status = if check.op.holds(v, check.limit) {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    b.check(
                        &check.text,
                        status,
                        format!("{} (measured {})", check.text, check.metric.format(v)),
                    );
                }
                Err(why) => {
                    b.check(
                        &check.text,
                        Status::NotEvaluable,
                        format!("{}: {why}", check.text),
                    );
                }
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(checks: &[&str]) -> Function {
        Function {
            invocations: "inv".into(),
            throttles: Some("thr".into()),
            cold_starts: Some("cold".into()),
            init_ms: Some("init".into()),
            billed_ms: Some("billed".into()),
            checks: checks.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    /// 60 s: 100 invocations/s, `throttled` throttles/s, 2 cold starts at 150 ms each
    /// in second 0, then none; handlers take 30 ms.
    fn view(throttled: f64) -> RunView {
        let mut v = RunView::default();
        let series = |f: &dyn Fn(f64) -> f64| (0..60).map(|s| Some(f(s as f64))).collect();
        v.probes.insert("inv".into(), series(&|s| 100.0 * s));
        v.probes.insert("thr".into(), series(&|s| throttled * s));
        v.probes
            .insert("cold".into(), series(&|s| if s > 0.0 { 2.0 } else { 0.0 }));
        v.probes.insert(
            "init".into(),
            series(&|s| if s > 0.0 { 300.0 } else { 0.0 }),
        );
        v.probes.insert("billed".into(), series(&|s| 3000.0 * s));
        v
    }

    #[test]
    fn throttles_and_cold_starts_are_judged_from_counter_increases() {
        let checks = [
            "throttle_rate < 1%",
            "cold_start_rate < 10%",
            "cold_time_share < 5%",
        ];
        let ok = spec(&checks).evaluate("f", &view(0.0));
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        assert_eq!(ok.figures["invocations"], 5900.0.into());
        assert_eq!(ok.figures["cold_starts"], 2.0.into());
        assert_eq!(ok.figures["cold_start_mean_ms"], 150.0.into());
        // 10 throttles for every 100 invocations: 9.09% of attempts.
        let bad = spec(&checks).evaluate("f", &view(10.0));
        assert_eq!(bad.status, Status::Fail);
        let r = bad.reason.unwrap();
        assert!(r.contains("throttle_rate < 1% (measured 9.091%)"), "{r}");
        assert_eq!(bad.figures["throttles"], 590.0.into());
    }

    #[test]
    fn missing_data_is_not_evaluable() {
        let mut v = view(0.0);
        v.probes.remove("thr");
        let r = spec(&["throttle_rate < 1%"]).evaluate("f", &v);
        assert_eq!(r.status, Status::NotEvaluable);
        // No invocation at all: a rate is undefined, never 0%.
        let mut idle = RunView::default();
        for p in ["inv", "thr", "cold", "init", "billed"] {
            idle.probes.insert(p.into(), vec![Some(0.0); 10]);
        }
        let r = spec(&["throttle_rate < 1%", "cold_start_rate < 1%"]).evaluate("f", &idle);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        // A count needs no invocation: zero throttles is a measured zero.
        assert_eq!(
            spec(&["throttles <= 0"]).evaluate("f", &idle).status,
            Status::Pass
        );
        // No checks: figures only.
        assert_eq!(spec(&[]).evaluate("f", &v).status, Status::NotEvaluable);
    }

    #[test]
    fn a_series_that_goes_down_is_not_a_counter() {
        // Per-period sums (CloudWatch `Sum` each minute): 300, 0, 250 throttles.
        let mut v = view(0.0);
        let per_period = (0..60).map(|s| Some([300.0, 0.0, 250.0][s / 20])).collect();
        v.probes.insert("thr".into(), per_period);
        let r = spec(&["throttle_rate < 1%", "cold_starts < 10"]).evaluate("f", &v);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        let leg = &r.legs[0].text;
        assert!(
            leg.contains("probe `thr` went down (from 300 at 19s to 0 at 20s)"),
            "{leg}"
        );
        // The other checks, on real counters, are still judged.
        assert_eq!(r.legs[1].status, Status::Pass, "{r:?}");
    }

    #[test]
    fn checks_parse_with_clear_errors() {
        let c: FunctionCheck = "throttle_rate <= 0.5%".parse().unwrap();
        assert_eq!(
            (c.metric, c.op, c.limit),
            (FunctionMetric::ThrottleRate, Op::Le, 0.005)
        );
        let c: FunctionCheck = "cold_starts < 3".parse().unwrap();
        assert_eq!(c.limit, 3.0);
        assert!(
            "p99 < 1s"
                .parse::<FunctionCheck>()
                .unwrap_err()
                .contains("unknown metric `p99`")
        );
        assert!("throttles < lots".parse::<FunctionCheck>().is_err());
        assert!("throttle_rate".parse::<FunctionCheck>().is_err());
    }
}
