//! **isolation**: during a fault on one service, every other service keeps its SLO (error
//! rate and p99 of the streams that target it, against its own baseline; its own `checks`
//! on top). One leg per service per check, so the verdict shows the blast radius.
//! Formulas: `docs/promises.md#isolation`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::threshold::measure_traffic;
use super::{missing, round3, second_from, second_of, secs};
use crate::analyze::expr::{Expr, Metric};
use crate::analyze::spec::{PromiseKind, PromiseParams, Ratio, Reader, RefKind};
use crate::analyze::stats::{self, Share};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams};

/// Parameters of an `isolation` promise (user docs on [`RawIsolation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Isolation {
    pub fault: String,
    /// The service the fault hits: its figures are shown, not judged.
    pub faulted: Option<String>,
    /// The services, by name.
    pub services: Vec<Service>,
    /// Tolerated relative increase of p99 over the baseline (0.5: +50%).
    pub p99_tolerance: f64,
    /// Tolerated error-rate increase over the baseline, in absolute terms (0.01: +1 point).
    pub error_rate_tolerance: f64,
    pub baseline: Duration,
}

/// One service: the streams that target it and its own absolute checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub streams: Vec<String>,
    pub checks: Vec<Expr>,
}

/// The keys of an `isolation` promise. Durations are written like `30s`, `2m`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIsolation {
    /// The `[[fault]]` on one service (`<name>#<n>` for one occurrence of a repeated fault).
    /// The services are judged over its window, from its start to its end (to the end of the
    /// run if it was never undone). Required.
    fault: Option<Spanned<String>>,
    /// The service the fault hits: listed with its figures, not judged (it need not be in
    /// `services`: a back-end service no stream targets directly).
    faulted: Option<Spanned<String>>,
    /// Service -> the streams that target it: `upload = ["uploads"]`, or a table with the
    /// service's own absolute checks on top of the baseline rule:
    /// `manage = { streams = ["listing"], checks = ["p99 < 500ms", "error_rate < 1%"] }`.
    /// Required.
    services: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawService>>>>,
    /// How much a service's p99 may grow over its baseline p99 during the fault (default
    /// `"50%"`: at most 1.5 x the baseline), plus the harness's own lag in the window. A
    /// fraction (`0.5`) or a percentage, which may exceed 100% (`"200%"`: 3 x).
    p99_tolerance: Option<Spanned<Tolerance>>,
    /// How many percentage points a service's error rate may rise over its baseline error
    /// rate during the fault (default `"1%"`). A fraction (`0.01`) or a percentage.
    error_rate_tolerance: Option<Spanned<Ratio>>,
    /// Length of the baseline window before the first fault (default `60s`).
    baseline: Option<Spanned<String>>,
}

/// A service's value in `services`: its stream list, or `{ streams, checks }`.
#[derive(Debug, Default)]
pub struct RawService {
    streams: Vec<Spanned<String>>,
    checks: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawService {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<RawService, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawService;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of streams like [\"uploads\"], or a table like \
                     { streams = [\"listing\"], checks = [\"p99 < 500ms\"] }",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawService, A::Error> {
                let mut streams = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    streams.push(s);
                }
                Ok(RawService {
                    streams,
                    checks: Vec::new(),
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawService, A::Error> {
                let mut out = RawService::default();
                let mut streams = false;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "streams" => {
                            out.streams = map.next_value()?;
                            streams = true;
                        }
                        "checks" => out.checks = map.next_value()?,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in a service: a service takes \
                                 `streams` and `checks`"
                            )));
                        }
                    }
                }
                if !streams {
                    return Err(de::Error::custom(
                        "a service table needs `streams`, the streams that target it",
                    ));
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A relative tolerance: a number >= 0 (`0.5`) or a percentage (`"50%"`, `"200%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance(pub f64);

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Tolerance, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum T {
            N(f64),
            I(i64),
            S(String),
        }
        let v = match T::deserialize(d)? {
            T::N(v) => v,
            T::I(v) => v as f64,
            T::S(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "expected a fraction like 0.5 or a percentage like \"50%\", found `{s}`"
                    ))
                })?,
        };
        if !(v.is_finite() && v >= 0.0) {
            return Err(de::Error::custom(format!(
                "expected a tolerance >= 0, found {v}"
            )));
        }
        Ok(Tolerance(v))
    }
}

impl PromiseParams for RawIsolation {
    fn build(self, r: &mut Reader<'_, '_>) -> (PromiseKind, String) {
        let fault = r.required_name(RefKind::Fault, &self.fault, "fault");
        let mut services = Vec::new();
        match &self.services {
            None => r.missing("services"),
            Some(map) if map.get_ref().is_empty() => r.error_with_hint(
                map.span(),
                "`services` is empty",
                "map each service to the streams that target it: `upload = [\"uploads\"]`",
            ),
            Some(map) => {
                for (name, raw) in map.get_ref() {
                    services.push(service(r, name, raw));
                }
            }
        }
        let faulted = r.string(&self.faulted);
        let judged = services
            .iter()
            .filter(|s| faulted.as_deref() != Some(s.name.as_str()))
            .count();
        if let (Some(f), Some(map)) = (&self.faulted, &self.services)
            && judged == 0
            && !map.get_ref().is_empty()
        {
            r.error_with_hint(
                f.span(),
                "`faulted` is the only service: no other service is judged",
                "list the services that must hold while this one is faulted in `services`",
            );
        }
        let p = Isolation {
            fault,
            faulted,
            services,
            p99_tolerance: self.p99_tolerance.map_or(0.5, |t| t.get_ref().0),
            error_rate_tolerance: self.error_rate_tolerance.map_or(0.01, |t| t.get_ref().0),
            baseline: r
                .duration(&self.baseline)
                .unwrap_or(Duration::from_secs(60)),
        };
        let name = format!("isolation:{}", p.fault);
        (PromiseKind::Isolation(p), name)
    }
}

/// Reads one service's streams and checks, declaring the streams.
fn service(r: &mut Reader<'_, '_>, name: &Spanned<String>, raw: &Spanned<RawService>) -> Service {
    let value = raw.get_ref();
    if value.streams.is_empty() {
        r.error_with_hint(
            raw.span(),
            format!("service `{}` has no stream", name.get_ref()),
            "list the streams that target it, e.g. `[\"uploads\"]`",
        );
    }
    let mut streams = Vec::new();
    for s in &value.streams {
        r.refer(RefKind::Stream, s.get_ref(), s.span());
        streams.push(s.get_ref().clone());
    }
    let mut checks = Vec::new();
    for c in &value.checks {
        match c.get_ref().parse::<Expr>() {
            Ok(e) if matches!(e.metric, Metric::E2e(_)) => r.error_with_hint(
                c.span(),
                format!("`{}`: end-to-end latency is not a service's", e.text),
                "judge it with a `threshold` promise over the whole run",
            ),
            Ok(e) => checks.push(e),
            Err(e) => match e.hint() {
                Some(h) => r.error_with_hint(c.span(), e.to_string(), h),
                None => r.error(c.span(), e.to_string()),
            },
        }
    }
    Service {
        name: name.get_ref().clone(),
        streams,
        checks,
    }
}

impl Isolation {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "isolation");
        let Some(fault) = view.fault(&self.fault) else {
            return b.not_evaluable(missing(
                view,
                &format!(
                    "fault `{}` is not in the journal: it was never applied",
                    self.fault
                ),
                "journal",
            ));
        };
        // The fault's window in whole seconds, to the end of the run if never undone; an
        // instant fault judges the second it came in.
        let len = view.len();
        let from = second_of(fault.start);
        let end = fault.end.unwrap_or(view.end());
        let to = second_from(end).max(from + 1).min(len);
        b.window(fault.start, end.max(fault.start));
        b.figure("fault_start_s", round3(fault.start));
        match fault.end {
            Some(e) => b.figure("fault_end_s", round3(e)),
            None => b.figure("fault_end_s", "never undone: judged to the end of the run"),
        };
        if let Some(f) = &self.faulted {
            b.figure("faulted", f.as_str());
        }
        if from >= to {
            return b.not_evaluable(format!(
                "the fault starts at {} and the run ends at {}: no second of it was recorded",
                secs(fault.start),
                secs(view.end())
            ));
        }
        // Latency is timed by the harness from the intended send time: its own lag in the
        // window may be in the measurement, so it is allowed on top (as failover does).
        let lag = view
            .harness_lag(from as f64, to as f64)
            .map_or(0.0, |l| l.0);
        if lag > 0.0 {
            b.figure("harness_lag_max_ms", round3(lag));
        }
        let mut broken = Vec::new();
        let mut unknown = false;
        for svc in &self.services {
            let judged = self.faulted.as_deref() != Some(svc.name.as_str());
            match self.service(&mut b, view, svc, (from, to), lag, judged) {
                Status::Fail => broken.push(svc.name.as_str()),
                Status::NotEvaluable => unknown = true,
                Status::Pass => {}
            }
        }
        if !broken.is_empty() {
            b.figure("blast_radius", broken.join(", "));
        } else if !unknown {
            b.figure("blast_radius", "none");
        }
        b.finish()
    }

    /// Figures and legs of one service; returns its combined status (pass for a service
    /// shown but not judged).
    fn service(
        &self,
        b: &mut Builder,
        view: &RunView,
        svc: &Service,
        (from, to): (usize, usize),
        lag: f64,
        judged: bool,
    ) -> Status {
        let n = &svc.name;
        let streams = Streams::Set(&svc.streams);
        let tally = view.tally(streams, from, to);
        let error_rate = tally.error_rate();
        let p99 = tally.quantile(0.99);
        if let Some(e) = error_rate {
            b.figure(&format!("{n}_error_rate"), round6(e));
        }
        if let Some(p) = p99 {
            b.figure(&format!("{n}_p99_ms"), round3(p))
                .figure(&format!("{n}_p99_source"), tally.quantile_source());
        }
        let base = view.baseline(streams, self.baseline.as_secs_f64());
        if let Some(base) = &base {
            b.figure(&format!("{n}_baseline_error_rate"), round6(base.error_rate))
                .figure(&format!("{n}_baseline_p99_ms"), round3(base.p99_ms));
        }
        if !judged {
            return Status::Pass;
        }
        let mut legs = Vec::new();
        let mut leg = |b: &mut Builder, check: Option<String>, status: Status, text: String| {
            legs.push(status);
            match check {
                Some(c) => b.check(&c, status, text),
                None => b.leg(status, text),
            };
        };
        if !view.has_streams(streams) {
            let text = missing(
                view,
                &format!(
                    "{n}: no traffic recorded for its streams ({})",
                    svc.streams.join(", ")
                ),
                "timeline",
            );
            leg(b, None, Status::NotEvaluable, text);
            return Status::NotEvaluable;
        }
        if tally.ended() == 0 {
            let text = format!("{n}: no request to it ended during the fault");
            leg(b, None, Status::NotEvaluable, text);
            return Status::NotEvaluable;
        }
        match &base {
            None => {
                let text = format!(
                    "{n}: no baseline: fewer than 3 seconds with responses in the {} before \
                     the first fault (at {})",
                    secs(self.baseline.as_secs_f64()),
                    secs(view.first_fault_start().unwrap_or(0.0))
                );
                leg(b, None, Status::NotEvaluable, text);
            }
            Some(base) => {
                let limit = base.error_rate + self.error_rate_tolerance;
                let e = error_rate.unwrap_or(0.0);
                let errors = tally.failed + tally.dropped;
                let (status, how) = if e <= limit + 1e-12 {
                    (Status::Pass, String::new())
                } else {
                    let seconds: Vec<(u64, u64)> = (from..to)
                        .map(|s| {
                            let t = view.tally(streams, s, s + 1);
                            (t.failed + t.dropped, t.ended())
                        })
                        .collect();
                    share_status(errors, tally.ended(), limit, "failed", &seconds)
                };
                let text = format!(
                    "{n}: error rate {} during the fault (baseline {}, limit {}){how}",
                    pct(e),
                    pct(base.error_rate),
                    pct(limit)
                );
                leg(b, None, status, text);
                match p99 {
                    None => leg(
                        b,
                        None,
                        Status::NotEvaluable,
                        format!("{n}: no responses during the fault: p99 unknown"),
                    ),
                    Some(p) => {
                        let limit = base.p99_ms * (1.0 + self.p99_tolerance) + lag;
                        let (status, how) = if p <= limit {
                            (Status::Pass, String::new())
                        } else {
                            match tally.slower_than(limit) {
                                Some((slow, all)) => {
                                    let seconds: Vec<(u64, u64)> = (from..to)
                                        .filter_map(|s| {
                                            view.tally(streams, s, s + 1).slower_than(limit)
                                        })
                                        .collect();
                                    let what = "slower than the limit";
                                    share_status(slow, all, 0.01, what, &seconds)
                                }
                                // Without histograms the count is unknown: the p99 decides.
                                None => (Status::Fail, String::new()),
                            }
                        };
                        let text = format!(
                            "{n}: p99 {p:.0}ms during the fault (baseline {:.0}ms, limit {limit:.0}ms){how}",
                            base.p99_ms
                        );
                        leg(b, None, status, text);
                    }
                }
            }
        }
        for check in &svc.checks {
            let name = format!("{n}: {}", check.text);
            match measure_traffic(check.metric, &tally, true) {
                Some(Ok(v)) => {
                    b.figure(&format!("{n}_{}", check.metric.key()), round3(v));
                    let status = if check.op.holds(v, check.limit) {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    let text = format!("{name} (measured {})", check.metric.format(v));
                    leg(b, Some(name), status, text);
                }
                Some(Err(why)) => {
                    let text = format!("{name}: {why}");
                    leg(b, Some(name), Status::NotEvaluable, text);
                }
                None => {
                    let text = format!("{name}: not a traffic metric");
                    leg(b, Some(name), Status::NotEvaluable, text);
                }
            }
        }
        crate::analyze::verdict::combine(legs)
    }
}

/// A rate as a percentage, `0.1%`.
fn pct(v: f64) -> String {
    format!("{}%", (v * 100_000.0).round() / 1000.0)
}

/// A share over its limit, judged by [`stats::judge_dispersed`] with the dispersion of its
/// per-second counts `seconds` (`(events, draws)`): a fail when `k` of `n` is beyond `limit`
/// with 95% confidence, else not evaluable (a small window's chance, or a burst). The text
/// says which, for the leg's summary.
fn share_status(
    k: u64,
    n: u64,
    limit: f64,
    what: &str,
    seconds: &[(u64, u64)],
) -> (Status, String) {
    let dispersion = stats::dispersion(seconds);
    // Uneven in time: say how, and how many independent draws the test counted.
    let bunched = if dispersion > 1.05 {
        let with = seconds.iter().filter(|s| s.0 > 0).count();
        format!(
            ", uneven in time (in {with} of {} seconds; dispersion {dispersion:.1}: counted as \
             {} independent requests)",
            seconds.iter().filter(|s| s.1 > 0).count(),
            (n as f64 / dispersion).round()
        )
    } else {
        String::new()
    };
    match stats::judge_dispersed(k, n, limit, dispersion) {
        Share::Within => (Status::Pass, String::new()),
        Share::Beyond { p_value } => (
            Status::Fail,
            format!(
                ": {k} of {n} {what}{bunched}, beyond {} with 95% confidence (p {})",
                pct(limit),
                stats::show_p(p_value)
            ),
        ),
        Share::Undecided { p_value } => (
            Status::NotEvaluable,
            format!(
                ": {k} of {n} {what}{bunched}, {} but not significantly more than {} (p {}): \
                 too few requests in the window to tell, a longer fault or more traffic \
                 would decide",
                pct(k as f64 / n as f64),
                pct(limit),
                stats::show_p(p_value)
            ),
        ),
    }
}

/// Rounds a fraction to 6 decimals (a thousandth of a percent).
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::spec::Promise;
    use crate::analyze::view::{FaultWindow, Second};

    const LEN: usize = 120;

    /// 100 ok/s at 20 ms on every stream; `slow-store` from 60 s to 90 s; during it (and
    /// after it, to `LEN`, when `until_end`), `during(stream)` replaces the stream's seconds.
    fn view(during: impl Fn(&str) -> Option<Second>, until_end: bool) -> RunView {
        let mut v = RunView::default();
        for stream in ["uploads", "listing", "blobs"] {
            let seconds = (0..LEN)
                .map(|s| match during(stream) {
                    Some(bad) if s >= 60 && (s < 90 || until_end) => bad,
                    _ => Second::simple(100, 0, 20.0),
                })
                .collect();
            v.streams.insert(stream.into(), seconds);
        }
        v.faults.push(FaultWindow {
            name: "slow-store".into(),
            id: "slow-store#1".into(),
            kind: "latency".into(),
            start: 60.0,
            end: Some(90.0),
            targets: vec![],
        });
        v
    }

    fn service(name: &str, streams: &[&str], checks: &[&str]) -> Service {
        Service {
            name: name.into(),
            streams: streams.iter().map(|s| s.to_string()).collect(),
            checks: checks.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn spec() -> Isolation {
        Isolation {
            fault: "slow-store".into(),
            faulted: Some("store".into()),
            services: vec![
                service("manage", &["listing"], &[]),
                service("store", &["blobs"], &[]),
                service("upload", &["uploads"], &[]),
            ],
            p99_tolerance: 0.5,
            error_rate_tolerance: 0.01,
            baseline: Duration::from_secs(30),
        }
    }

    /// The store is slow and failing; the others are untouched.
    fn store_only(stream: &str) -> Option<Second> {
        (stream == "blobs").then(|| Second::simple(50, 50, 2000.0))
    }

    #[test]
    fn the_others_holding_pass_and_the_faulted_service_is_shown_not_judged() {
        let v = spec().evaluate("i", &view(store_only, false));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.window, Some([60.0, 90.0]));
        assert_eq!(v.legs.len(), 4, "two legs per judged service: {v:?}");
        assert!(v.legs.iter().all(|l| !l.text.starts_with("store")), "{v:?}");
        assert_eq!(v.figures["store_error_rate"], 0.5.into());
        assert_eq!(v.figures["store_p99_ms"], 2000.0.into());
        assert_eq!(v.figures["manage_p99_ms"], 20.0.into());
        assert_eq!(v.figures["blast_radius"], "none".into());
        assert_eq!(
            v.legs[0].text,
            "manage: error rate 0% during the fault (baseline 0%, limit 1%)"
        );
    }

    #[test]
    fn a_slow_service_beside_the_fault_fails_and_is_named() {
        let v = spec().evaluate(
            "i",
            &view(
                |s| match s {
                    "listing" => Some(Second::simple(100, 0, 500.0)),
                    other => store_only(other),
                },
                false,
            ),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("manage: p99 500ms during the fault (baseline 20ms, limit 30ms)")
        );
        assert_eq!(v.figures["blast_radius"], "manage".into());
        // upload held: its legs pass.
        assert!(
            v.legs
                .iter()
                .filter(|l| l.text.starts_with("upload"))
                .all(|l| l.status == Status::Pass)
        );
    }

    /// `view(store_only)` with histograms for `listing`: 20 responses a second at 20 ms,
    /// and during the fault `slow(second)` of each second's 20 at 200 ms instead.
    fn listing_with_slow(slow: impl Fn(usize) -> u64) -> RunView {
        use crate::metrics::{SecondHistograms, new_histogram};
        let mut v = view(store_only, false);
        let mut log = SecondHistograms::default();
        let mut seconds = Vec::new();
        for s in 0..LEN {
            let n = if (60..90).contains(&s) { slow(s) } else { 0 };
            let mut h = new_histogram();
            h.record_n(20_000, 20 - n).unwrap();
            h.record_n(200_000, n).unwrap();
            log.insert_histogram("listing", s, &h);
            let p99 = if n > 0 { 200.0 } else { 20.0 };
            seconds.push(Second::simple(20, 0, p99));
        }
        for stream in ["uploads", "blobs"] {
            for s in 0..LEN {
                let mut h = new_histogram();
                h.record_n(20_000, 100).unwrap();
                log.insert_histogram(stream, s, &h);
            }
        }
        v.streams.insert("listing".into(), seconds);
        v.histograms = Some(log);
        v
    }

    #[test]
    fn a_few_slow_requests_in_a_small_window_are_not_evaluable_and_many_fail() {
        // 600 listings in the fault; 8 at 200 ms (1.3%): the p99 is over the limit, but 8
        // is well within the chance of 600 draws at 1% (p ~0.3).
        let v = spec().evaluate("i", &listing_with_slow(|s| u64::from(s % 4 == 0)));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        let leg = v.legs.iter().find(|l| l.text.contains("p99")).unwrap();
        assert!(leg.text.starts_with("manage: p99 200ms"), "{}", leg.text);
        assert!(
            leg.text.contains(
                "8 of 600 slower than the limit, 1.333% but not significantly more than 1%"
            ),
            "{}",
            leg.text
        );
        // 30 of 600 (5%): a breach, whatever the chance.
        let v = spec().evaluate("i", &listing_with_slow(|_| 1));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(
            v.reason
                .as_deref()
                .unwrap()
                .contains("30 of 600 slower than the limit, beyond 1% with 95% confidence"),
            "{v:?}"
        );
        // 5 of 600: the p99 holds.
        let v = spec().evaluate("i", &listing_with_slow(|s| u64::from(s % 6 == 0)));
        assert_eq!(v.status, Status::Pass, "{v:?}");
    }

    #[test]
    fn slow_requests_bunched_in_a_stall_are_not_a_breach_but_steady_ones_are() {
        // 12 of 600 at 200 ms (2%). Spread one a second over 12 seconds: a breach (p ~0.02).
        let v = spec().evaluate("i", &listing_with_slow(|s| u64::from(s < 72)));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        // The same 12 in two seconds, as a stall of the machine makes them: not evaluable,
        // and the leg says they came unevenly.
        let v = spec().evaluate("i", &listing_with_slow(|s| if s < 62 { 6 } else { 0 }));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        let leg = v.legs.iter().find(|l| l.text.contains("p99")).unwrap();
        assert!(
            leg.text
                .contains("12 of 600 slower than the limit, uneven in time (in 2 of 30 seconds;"),
            "{}",
            leg.text
        );
        // Half of every second slow: far beyond, however it is counted.
        let v = spec().evaluate("i", &listing_with_slow(|_| 10));
        assert_eq!(v.status, Status::Fail, "{v:?}");
    }

    #[test]
    fn a_few_errors_in_a_small_window_are_not_evaluable() {
        // listing: 100 a second; during the fault 1 failure in every 5th second, then 5 a
        // second in another run. 6 of 3000 (0.2%) against a 0.1-point tolerance: not
        // significant; 150 of 3000 (5%): a breach.
        let mut spec = spec();
        spec.error_rate_tolerance = 0.001;
        let few = view(
            |s| match s {
                "listing" => Some(Second::simple(99, 1, 20.0)),
                other => store_only(other),
            },
            false,
        );
        let v = spec.evaluate("i", &few);
        assert_eq!(
            v.status,
            Status::Fail,
            "30 of 3000 is 1%, ten times the limit: {v:?}"
        );
        let mut few = view(store_only, false);
        let listing = few.streams.get_mut("listing").unwrap();
        for (s, second) in listing.iter_mut().enumerate().take(90).skip(60) {
            if s % 5 == 0 {
                *second = Second::simple(99, 1, 20.0);
            }
        }
        let v = spec.evaluate("i", &few);
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert!(
            v.legs[0]
                .text
                .contains("6 of 3000 failed, 0.2% but not significantly more than 0.1%"),
            "{}",
            v.legs[0].text
        );
    }

    #[test]
    fn tolerances_are_the_limits() {
        let at = |ms: f64, failed: u64| {
            spec()
                .evaluate(
                    "i",
                    &view(
                        move |s| (s == "uploads").then(|| Second::simple(100 - failed, failed, ms)),
                        false,
                    ),
                )
                .status
        };
        // p99 20 ms -> limit 30 ms; error rate 0 -> limit 1%.
        assert_eq!(at(30.0, 0), Status::Pass);
        assert_eq!(at(31.0, 0), Status::Fail);
        assert_eq!(at(20.0, 1), Status::Pass);
        assert_eq!(at(20.0, 2), Status::Fail);
    }

    #[test]
    fn a_service_whose_requests_all_time_out_fails_on_errors() {
        let mut timeouts = Second {
            intended: 100,
            sent: 100,
            ..Second::default()
        };
        timeouts.errors[crate::metrics::ErrorClass::Timeout as usize] = 100;
        let v = spec().evaluate(
            "i",
            &view(move |s| (s == "uploads").then(|| timeouts.clone()), false),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        let reason = v.reason.unwrap();
        assert!(reason.contains("upload: error rate 100%"), "{reason}");
        assert!(
            v.legs
                .iter()
                .any(|l| l.status == Status::NotEvaluable && l.text.contains("p99 unknown"))
        );
    }

    #[test]
    fn streams_of_one_service_are_merged() {
        let mut p = spec();
        p.services[2] = service("upload", &["uploads", "listing"], &[]);
        p.services.remove(0);
        // 3 failures in 100 on one stream, none on the other: 1.5% merged > 1%.
        let v = p.evaluate(
            "i",
            &view(
                |s| (s == "uploads").then(|| Second::simple(97, 3, 20.0)),
                false,
            ),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["upload_error_rate"], 0.015.into());
        // 1 in 100 on one stream: 0.5% merged, within 1%.
        let v = p.evaluate(
            "i",
            &view(
                |s| (s == "uploads").then(|| Second::simple(99, 1, 20.0)),
                false,
            ),
        );
        assert_eq!(v.status, Status::Pass, "{v:?}");
    }

    #[test]
    fn a_service_check_is_judged_on_top_of_the_baseline() {
        let mut p = spec();
        p.services[0] = service("manage", &["listing"], &["p99 < 25ms", "rate >= 90/s"]);
        let slow = |s: &str| (s == "listing").then(|| Second::simple(100, 0, 28.0));
        let v = p.evaluate("i", &view(slow, false));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("manage: p99 < 25ms (measured 28ms)")
        );
        let check = v.legs.iter().find(|l| l.check.is_some()).unwrap();
        assert_eq!(check.check.as_deref(), Some("manage: p99 < 25ms"));
        assert_eq!(v.figures["manage_rate_per_s"], 100.0.into());
        // Within both the baseline tolerance (30 ms) and the check.
        let fine = |s: &str| (s == "listing").then(|| Second::simple(100, 0, 24.0));
        assert_eq!(p.evaluate("i", &view(fine, false)).status, Status::Pass);
    }

    #[test]
    fn a_fault_never_undone_is_judged_to_the_end_of_the_run() {
        // Errors from 90 s on only: outside the window of a fault undone at 90 s...
        let mut v = view(|_| None, false);
        for s in &mut v.streams.get_mut("uploads").unwrap()[90..] {
            *s = Second::simple(80, 20, 20.0);
        }
        assert_eq!(spec().evaluate("i", &v).status, Status::Pass);
        // ... inside the window of one never undone.
        v.faults[0].end = None;
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert_eq!(verdict.window, Some([60.0, LEN as f64]));
        assert!(
            matches!(&verdict.figures["fault_end_s"], crate::analyze::verdict::Figure::Text(t) if t.contains("never undone"))
        );
    }

    #[test]
    fn missing_data_is_not_evaluable() {
        // The fault never applied.
        let mut v = view(store_only, false);
        v.faults.clear();
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert_eq!(
            verdict.reason.as_deref(),
            Some("fault `slow-store` is not in the journal: it was never applied")
        );
        // A baseline too short: the fault at 2 s leaves 2 seconds before it.
        let mut v = view(store_only, false);
        v.faults[0].start = 2.0;
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert!(
            verdict
                .reason
                .unwrap()
                .starts_with("manage: no baseline: fewer than 3 seconds")
        );
        // A service whose streams sent nothing during the fault.
        let v = view(|s| (s == "listing").then(Second::default), false);
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert_eq!(
            verdict.reason.as_deref(),
            Some("manage: no request to it ended during the fault")
        );
        assert!(!verdict.figures.contains_key("blast_radius"));
        // A stream no timeline has.
        let mut p = spec();
        p.services[0] = service("manage", &["nope"], &[]);
        let verdict = p.evaluate("i", &view(store_only, false));
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert!(verdict.reason.unwrap().contains("no traffic recorded"));
    }

    #[test]
    fn missing_data_never_hides_a_broken_service() {
        // manage has no baseline-comparable traffic, upload fails: the verdict fails.
        let v = view(
            |s| match s {
                "listing" => Some(Second::default()),
                "uploads" => Some(Second::simple(50, 50, 20.0)),
                _ => None,
            },
            false,
        );
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert_eq!(verdict.figures["blast_radius"], "upload".into());
    }

    #[test]
    fn the_harness_lag_is_allowed_on_top_and_a_starved_harness_is_not_a_fail() {
        let slowish = |s: &str| (s == "uploads").then(|| Second::simple(100, 0, 40.0));
        let mut v = view(slowish, false);
        assert_eq!(spec().evaluate("i", &v).status, Status::Fail);
        // 15 ms of harness lag in the window: limit 30 + 15 = 45 ms.
        let mut lag = vec![Some(1.0); LEN];
        lag[70] = Some(15.0);
        v.harness_lag_ms = Some(lag.clone());
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.figures["harness_lag_max_ms"], 15.0.into());
        // Errors during a starved second: not evaluable through the guard, a fail without.
        let failing = |s: &str| (s == "uploads").then(|| Second::simple(50, 50, 20.0));
        let mut v = view(failing, false);
        let promise = Promise {
            name: "i".into(),
            kind: PromiseKind::Isolation(spec()),
        };
        assert_eq!(super::super::evaluate(&promise, &v).status, Status::Fail);
        lag[75] = Some(400.0);
        v.harness_lag_ms = Some(lag);
        let verdict = super::super::evaluate(&promise, &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert!(verdict.reason.unwrap().contains("woke 400 ms late at 75s"));
    }

    fn parse(text: &str) -> Result<Vec<Promise>, crate::config::diag::Diagnostics> {
        crate::analyze::spec::parse_promises(text, std::path::Path::new("exp.toml"))
    }

    #[test]
    fn the_contract_form_parses() {
        let p = parse(
            r#"
            [[promise]]
            type = "isolation"
            fault = "slow-store"
            faulted = "store"
            p99_tolerance = "50%"
            error_rate_tolerance = "1%"
            baseline = "30s"
            [promise.services]
            upload = ["uploads"]
            manage = { streams = ["listing"], checks = ["p99 < 500ms", "error_rate < 1%"] }
            "#,
        )
        .unwrap();
        assert_eq!(p[0].name, "isolation:slow-store");
        let PromiseKind::Isolation(i) = &p[0].kind else {
            panic!()
        };
        assert_eq!(
            (i.p99_tolerance, i.error_rate_tolerance, i.baseline),
            (0.5, 0.01, Duration::from_secs(30))
        );
        assert_eq!(i.services[0].name, "manage");
        assert_eq!(i.services[0].checks.len(), 2);
        assert_eq!(i.services[1].streams, ["uploads"]);
        // Defaults, and a tolerance over 100%.
        let p = parse(
            "[[promise]]\ntype = \"isolation\"\nfault = \"f\"\np99_tolerance = \"200%\"\nservices = { a = [\"s\"] }\n",
        )
        .unwrap();
        let PromiseKind::Isolation(i) = &p[0].kind else {
            panic!()
        };
        assert_eq!((i.p99_tolerance, i.error_rate_tolerance), (2.0, 0.01));
        assert_eq!(i.baseline, Duration::from_secs(60));
    }

    #[test]
    fn bad_keys_are_reported_at_their_value() {
        let messages = |text: &str| -> Vec<String> {
            parse(text)
                .unwrap_err()
                .iter()
                .map(|d| format!("{}:{} {} {:?}", d.line, d.column, d.message, d.hint))
                .collect()
        };
        let m = messages("[[promise]]\ntype = \"isolation\"\nfault = \"f\"\n");
        assert!(m[0].contains("needs `services`"), "{m:?}");
        let m = messages(
            "[[promise]]\ntype = \"isolation\"\nfault = \"f\"\n[promise.services]\na = { stream = [\"s\"] }\n",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:") && m.contains("unknown key `stream` in a service")),
            "{m:?}"
        );
        let m = messages(
            "[[promise]]\ntype = \"isolation\"\nfault = \"f\"\n[promise.services]\na = []\nb = { streams = [\"s\"], checks = [\"e2e_p99 < 1s\", \"p98 < 1s\"] }\n",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:5 service `a` has no stream")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.contains("end-to-end latency is not a service's")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.contains("unknown metric `p98`")),
            "{m:?}"
        );
        let m = messages(
            "[[promise]]\ntype = \"isolation\"\nfault = \"f\"\np99_tolerance = \"lots\"\nservices = { a = [\"s\"] }\n",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("4:17") && m.contains("a percentage like \"50%\"")),
            "{m:?}"
        );
        let m = messages(
            "[[promise]]\ntype = \"isolation\"\nfault = \"f\"\nfaulted = \"a\"\nservices = { a = [\"s\"] }\n",
        );
        assert!(m[0].contains("`faulted` is the only service"), "{m:?}");
    }
}
