//! **idle**: after the load ends, within `within`, groups are at their minimum, functions
//! run nothing and the billed rate is down to its floor, and they stay so to the run's end.
//! Formulas: `docs/promises.md#idle`.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::{load_span, missing, round3, second_of, secs};
use crate::analyze::spec::{PromiseKind, PromiseParams, Reader, RefKind};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// Float noise tolerated on a floor (a cumulative GB-seconds probe summing fractions).
const EPS: f64 = 1e-9;

/// Parameters of an `idle` promise (user docs on [`RawIdle`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Idle {
    pub within: Duration,
    /// Instance-count probe -> the minimum its group must reach.
    pub instances: Vec<(String, f64)>,
    /// Concurrency probes that must reach 0.
    pub concurrency: Vec<String>,
    /// Cumulative GB-seconds probe.
    pub gb_seconds: Option<String>,
    /// Floor of GB-seconds billed per second once idle.
    pub max_gb_seconds_rate: f64,
    /// Floor of instance-seconds per second once idle (default: the sum of the minimums).
    pub max_instance_rate: Option<f64>,
}

/// The keys of an `idle` promise; at least one of `instances`, `concurrency`, `gb_seconds`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdle {
    /// How long after the load ends the system may take to be idle (e.g. `"60s"`); the run
    /// must record at least this long after the load (`[cooldown] min`). Required.
    within: Option<Spanned<String>>,
    /// Instance-count probe -> the minimum its group must reach and keep, e.g.
    /// `{ workers = 0, upload_instances = 1 }`.
    instances: Option<Spanned<BTreeMap<Spanned<String>, Spanned<f64>>>>,
    /// Probes of function concurrency (running invocations) that must reach 0 and stay.
    concurrency: Option<Spanned<Vec<Spanned<String>>>>,
    /// A probe of cumulative GB-seconds billed: its slope is the billed rate.
    gb_seconds: Option<Spanned<String>>,
    /// GB-seconds per second that may still be billed once idle (default 0: nothing).
    max_gb_seconds_rate: Option<Spanned<f64>>,
    /// Instance-seconds per second (the sum of the `instances` probes) that may still be
    /// billed once idle (default: the sum of their minimums).
    max_instance_rate: Option<Spanned<f64>>,
}

impl PromiseParams for RawIdle {
    fn build(self, r: &mut Reader<'_, '_>) -> (PromiseKind, String) {
        let within = r.required_duration(&self.within, "within");
        let floor = |r: &mut Reader<'_, '_>, v: &Option<Spanned<f64>>, what: &str| match v {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() >= 0.0) => {
                r.error(
                    s.span(),
                    format!("{what} must be a number >= 0, found {}", s.get_ref()),
                );
                None
            }
            other => other.as_ref().map(|s| *s.get_ref()),
        };
        let mut instances = Vec::new();
        if let Some(map) = &self.instances {
            if map.get_ref().is_empty() {
                r.error_with_hint(
                    map.span(),
                    "`instances` is empty",
                    "map each instance-count probe to its group's minimum: `{ workers = 0 }`",
                );
            }
            for (probe, min) in map.get_ref() {
                r.refer(RefKind::Probe, probe.get_ref(), probe.span());
                let min = floor(r, &Some(min.clone()), "a minimum instance count");
                instances.push((probe.get_ref().clone(), min.unwrap_or(0.0)));
            }
        }
        let mut concurrency = Vec::new();
        if let Some(list) = &self.concurrency {
            if list.get_ref().is_empty() {
                r.error_with_hint(
                    list.span(),
                    "`concurrency` is empty",
                    "list the function concurrency probes, or leave the key out",
                );
            }
            for p in list.get_ref() {
                r.refer(RefKind::Probe, p.get_ref(), p.span());
                concurrency.push(p.get_ref().clone());
            }
        }
        let gb_seconds = r.name(RefKind::Probe, &self.gb_seconds);
        if self.instances.is_none() && self.concurrency.is_none() && gb_seconds.is_none() {
            r.error_with_hint(
                r.at(),
                "an `idle` promise needs `instances`, `concurrency` or `gb_seconds`",
                "e.g. `instances = { workers = 0 }`, `concurrency = [\"fn_concurrent\"]`",
            );
        }
        let max_gb_seconds_rate = floor(r, &self.max_gb_seconds_rate, "a billed rate");
        let max_instance_rate = floor(r, &self.max_instance_rate, "a billed rate");
        if let (Some(s), None) = (&self.max_gb_seconds_rate, &self.gb_seconds) {
            r.error_with_hint(
                s.span(),
                "`max_gb_seconds_rate` without `gb_seconds`",
                "name the cumulative GB-seconds probe in `gb_seconds`",
            );
        }
        if let (Some(s), None) = (&self.max_instance_rate, &self.instances) {
            r.error_with_hint(
                s.span(),
                "`max_instance_rate` without `instances`",
                "map the instance-count probes to their minimums in `instances`",
            );
        }
        let p = Idle {
            within,
            instances,
            concurrency,
            gb_seconds,
            max_gb_seconds_rate: max_gb_seconds_rate.unwrap_or(0.0),
            max_instance_rate,
        };
        (PromiseKind::Idle(p), "idle".into())
    }
}

/// One quantity that must come down and stay down: its per-second values (`(second,
/// value)`, gaps skipped) from the load's end on, and its floor.
struct Series<'a> {
    /// The probe (or the derived rate) it is.
    label: String,
    /// The figure prefix.
    key: String,
    points: Vec<(usize, f64)>,
    /// The last second observed (a rate's last interval ends after its point).
    seen_to: Option<usize>,
    floor: f64,
    /// How a value reads in text: `3 instances`, `0.5 GB-s/s`.
    unit: &'a str,
}

impl Idle {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "idle");
        let Some(load) = load_span(view) else {
            return b.not_evaluable(missing(
                view,
                "the run shows no load: no stage with arrivals and no intended send",
                "run.json",
            ));
        };
        let end = load.end;
        let within = self.within.as_secs_f64();
        let deadline = end + within;
        b.window(end, view.end())
            .figure("load_end_s", round3(end))
            .figure("load_end_source", load.source)
            .figure("recorded_after_load_s", round3((view.end() - end).max(0.0)));
        // The run must have watched for `within` after the load: a system still busy when a
        // shorter run ended may yet have gone idle in time.
        if view.end() < deadline {
            return b.not_evaluable(format!(
                "the run recorded {} after the load ended at {}, idle needs {}: the cool-down \
                 is too short; set `[cooldown] min` (and `max`) to at least {}",
                secs((view.end() - end).max(0.0)),
                secs(end),
                secs(within),
                secs(within)
            ));
        }
        let from = second_of(end);
        let len = view.len();
        let mut series = Vec::new();
        let mut absent = false;
        let probes = (self.instances.iter().map(|(p, min)| (p, *min, "instances")))
            .chain(self.concurrency.iter().map(|p| (p, 0.0, "running")));
        for (probe, floor, unit) in probes {
            if !view.probes.contains_key(probe) {
                // Without every instance probe there is no instance rate either.
                absent |= unit == "instances";
                b.leg(
                    Status::NotEvaluable,
                    missing(view, &format!("{probe}: no such probe recorded"), "probes"),
                );
                continue;
            }
            let points = view.probe_points(probe, from, len);
            series.push(Series {
                label: probe.clone(),
                key: probe.clone(),
                seen_to: points.last().map(|p| p.0),
                points,
                floor,
                unit,
            });
        }
        if !self.instances.is_empty() && !absent {
            let floor = self
                .max_instance_rate
                .unwrap_or_else(|| self.instances.iter().map(|i| i.1).sum());
            b.figure("instance_rate_floor", floor);
            let points = self.instance_rate(view, from, len);
            series.push(Series {
                label: "instance-seconds per second".into(),
                key: "instance_rate".into(),
                seen_to: points.last().map(|p| p.0),
                points,
                floor,
                unit: "instance-s/s",
            });
        }
        if let Some(probe) = &self.gb_seconds {
            b.figure("gb_seconds_rate_floor", self.max_gb_seconds_rate);
            let fell = super::not_a_counter(probe, &view.probe_points(probe, 0, len));
            if let Some(why) = fell {
                b.leg(Status::NotEvaluable, why);
            } else if view.probes.contains_key(probe) {
                series.push(Series {
                    label: format!("GB-seconds per second (slope of `{probe}`)"),
                    key: "gb_seconds_rate".into(),
                    points: gb_rate(view, probe, from, len),
                    seen_to: view.probe_points(probe, from, len).last().map(|p| p.0),
                    floor: self.max_gb_seconds_rate,
                    unit: "GB-s/s",
                });
            } else {
                b.leg(
                    Status::NotEvaluable,
                    missing(view, &format!("{probe}: no such probe recorded"), "probes"),
                );
            }
        }
        let mut idle_at: f64 = 0.0;
        for s in &series {
            if let Some(t) = self.judge(&mut b, view, s, end) {
                idle_at = idle_at.max(t);
            }
        }
        if b.clone().finish().status == Status::Pass {
            b.figure("idle_s", round3(idle_at));
        }
        b.finish()
    }

    /// The sum of the instance probes, at the seconds where every one of them has a sample.
    fn instance_rate(&self, view: &RunView, from: usize, len: usize) -> Vec<(usize, f64)> {
        (from..len)
            .filter_map(|s| {
                self.instances
                    .iter()
                    .try_fold(0.0, |sum, (probe, _)| {
                        let v = view.probes.get(probe)?.get(s).copied().flatten()?;
                        Some(sum + v)
                    })
                    .map(|v| (s, v))
            })
            .collect()
    }

    /// Judges one series: idle from the first sample of its final stretch at or under its
    /// floor; a leg, and the seconds after the load's end it took (when it got there).
    fn judge(&self, b: &mut Builder, view: &RunView, s: &Series<'_>, end: f64) -> Option<f64> {
        let within = self.within.as_secs_f64();
        let deadline = end + within;
        let (Some(&(_, last)), Some(last_s)) = (s.points.last(), s.seen_to) else {
            b.leg(
                Status::NotEvaluable,
                missing(
                    view,
                    &format!(
                        "{}: fewer samples after the load ended than it takes",
                        s.label
                    ),
                    "probes",
                ),
            );
            return None;
        };
        let over = |v: f64| v > s.floor + EPS;
        let floor = fmt(s.floor);
        b.figure(&format!("{}_at_end", s.key), round3(last));
        // The final stretch at or under the floor starts at the first sample after the last
        // one over it. Each sample stands for one second (a rate's, for the interval from its
        // point to the next): it is over the floor for sure after the deadline only when it
        // reaches past it. Between a sample over the floor before the deadline and the next
        // one, at it, after the deadline, the series was not watched: too sparse to tell.
        let last_over = s.points.iter().rposition(|p| over(p.1));
        let start = match last_over {
            Some(i) => s.points.get(i + 1).map(|p| p.0),
            None => Some(s.points[0].0),
        };
        if let Some(i) = last_over
            && start.is_none_or(|at| at as f64 > deadline)
            && (s.points[i].0 as f64) + 1.0 <= deadline
        {
            let (t, v) = s.points[i];
            b.leg(
                Status::NotEvaluable,
                format!(
                    "{}: {} {} (floor {floor}) at {}, {}: whether it was down by {} \
                     after the load is unknown (sampled too sparsely: a CloudWatch period, \
                     a probe's `every`)",
                    s.label,
                    fmt(v),
                    s.unit,
                    secs(t as f64),
                    match start {
                        Some(at) => format!("next sample {} (at the floor)", secs(at as f64)),
                        None => "no sample after it".to_string(),
                    },
                    secs(within)
                ),
            );
            return None;
        }
        match start {
            None => {
                b.figure(&format!("{}_idle_s", s.key), "never");
                b.leg(
                    Status::Fail,
                    format!(
                        "{}: still {} {} at the end of the run, {} after the load ended \
                         (floor {floor}, within {})",
                        s.label,
                        fmt(last),
                        s.unit,
                        secs(view.end() - end),
                        secs(within)
                    ),
                );
                None
            }
            Some(at) => {
                let after = (at as f64 - end).max(0.0);
                let idle = &s.points[s.points.iter().position(|p| p.0 == at).unwrap_or(0)..];
                let worst = idle.iter().map(|p| p.1).fold(f64::MIN, f64::max);
                b.figure(&format!("{}_idle_s", s.key), round3(after))
                    .figure(&format!("{}_idle_max", s.key), round3(worst));
                if at as f64 > deadline {
                    b.leg(
                        Status::Fail,
                        format!(
                            "{}: down to {} {} only {} after the load ended (floor {floor}, \
                             within {})",
                            s.label,
                            fmt(worst),
                            s.unit,
                            secs(after),
                            secs(within)
                        ),
                    );
                } else if (last_s as f64) + 1.0 < deadline {
                    b.leg(
                        Status::NotEvaluable,
                        format!(
                            "{}: no sample after {}: whether it stayed down until {} after \
                             the load is unknown",
                            s.label,
                            secs(last_s as f64),
                            secs(within)
                        ),
                    );
                } else {
                    b.leg(
                        Status::Pass,
                        format!(
                            "{}: at {} {} (floor {floor}) {} after the load ended, to the end",
                            s.label,
                            fmt(worst),
                            s.unit,
                            secs(after)
                        ),
                    );
                    return Some(after);
                }
                None
            }
        }
    }
}

/// The slope of a cumulative probe between consecutive samples, at the later one: the
/// billed rate. The first point is the last sample at or before `from`. (A probe that went
/// down is refused before: [`super::not_a_counter`].)
fn gb_rate(view: &RunView, probe: &str, from: usize, len: usize) -> Vec<(usize, f64)> {
    let mut points = view.probe_points(probe, 0, from + 1);
    let mut all: Vec<(usize, f64)> = points.pop().into_iter().collect();
    all.extend(view.probe_points(probe, from + 1, len));
    all.windows(2)
        .map(|w| {
            let rate = ((w[1].1 - w[0].1) / (w[1].0 - w[0].0) as f64).max(0.0);
            // The rate holds over the interval: idle from its start when it is 0.
            (w[0].0.max(from), rate)
        })
        .collect()
}

/// A count or rate for text: `3`, `0.25`.
fn fmt(v: f64) -> String {
    format!("{}", (v * 1e4).round() / 1e4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::spec::Promise;
    use crate::analyze::view::{Phase, Second};

    /// The load runs 10-100 s. `workers` 4 in the load, 0 from `workers_zero`; functions
    /// run 5 at a time until 105 s and bill 1 GB-s/s until 110 s, then `billing` GB-s/s.
    fn view(len: usize, workers_zero: usize, billing: f64) -> RunView {
        let mut v = RunView::default();
        v.phases.push(Phase {
            stream: "events".into(),
            index: 0,
            start: 10.0,
            end: 100.0,
            from_rate: 20.0,
            to_rate: 20.0,
        });
        let series = |f: &dyn Fn(usize) -> f64| -> Vec<Option<f64>> {
            (0..len).map(|s| Some(f(s))).collect()
        };
        v.probes.insert(
            "workers".into(),
            series(&|s| if s >= workers_zero { 0.0 } else { 4.0 }),
        );
        v.probes.insert("web".into(), series(&|_| 1.0));
        v.probes.insert(
            "fn_concurrent".into(),
            series(&|s| if s < 105 { 5.0 } else { 0.0 }),
        );
        v.probes.insert(
            "fn_gb".into(),
            series(&|s| {
                let s = s as f64;
                s.min(110.0) + (s - 110.0).max(0.0) * billing
            }),
        );
        v
    }

    fn spec() -> Idle {
        Idle {
            within: Duration::from_secs(60),
            instances: vec![("web".into(), 1.0), ("workers".into(), 0.0)],
            concurrency: vec!["fn_concurrent".into()],
            gb_seconds: Some("fn_gb".into()),
            max_gb_seconds_rate: 0.0,
            max_instance_rate: None,
        }
    }

    #[test]
    fn per_period_billing_is_not_read_as_idle() {
        // GB-seconds as a per-minute sum (CloudWatch): flat within each minute, so its
        // slope is 0 while it bills 60 GB-s a minute. Refused, never idle.
        let mut v = view(200, 130, 0.0);
        v.probes.insert(
            "fn_gb".into(),
            (0..200)
                .map(|s| Some(if s % 60 < 30 { 60.0 } else { 30.0 }))
                .collect(),
        );
        let r = spec().evaluate("idle", &v);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        assert!(
            r.legs
                .iter()
                .any(|l| l.text.contains("probe `fn_gb` went down")),
            "{r:?}"
        );
    }

    /// `fn_gb` as a counter known only at minute boundaries (a `cumulative` CloudWatch
    /// probe): 0 at second 0, then the total at 60, 120, 180; 60 GB-s a minute until the
    /// minute starting at `last_billed`, nothing after.
    fn sparse_billing(v: &mut RunView, len: usize, last_billed: usize) {
        let col = (0..len)
            .map(|s| (s % 60 == 0).then(|| 60.0 * (s.min(last_billed + 60) / 60) as f64))
            .collect();
        v.probes.insert("fn_gb".into(), col);
    }

    fn billing_only() -> Idle {
        Idle {
            instances: Vec::new(),
            concurrency: Vec::new(),
            ..spec()
        }
    }

    #[test]
    fn a_counter_known_once_a_minute_is_judged_at_its_resolution() {
        // Billing stops with the minute starting at 60 s; the load ends at 100 s: idle from
        // 120 s, well within 60 s.
        let mut v = view(240, 130, 0.0);
        sparse_billing(&mut v, 240, 60);
        let r = billing_only().evaluate("idle", &v);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.figures["gb_seconds_rate_idle_s"], 20.0.into());

        // Billed through the minute from 120 s, 20 s after the load: that minute may have
        // billed before the deadline (160 s) or after; with 30 s allowed, it is unknown.
        sparse_billing(&mut v, 240, 120);
        let tight = Idle {
            within: Duration::from_secs(30),
            ..billing_only()
        };
        let r = tight.evaluate("idle", &v);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        assert!(
            r.legs
                .iter()
                .any(|l| l.text.contains("sampled too sparsely")),
            "{r:?}"
        );
        // Billed in the minute from 180 s, which starts after the 160 s deadline: a fail.
        let mut v = view(301, 130, 0.0);
        sparse_billing(&mut v, 301, 180);
        let r = billing_only().evaluate("idle", &v);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.reason
                .as_deref()
                .unwrap_or_default()
                .contains("only 140s after"),
            "{r:?}"
        );
    }

    #[test]
    fn a_gauge_sampled_sparsely_is_not_failed_between_its_samples() {
        // Workers seen at 4 at 110 s and next at 0 at 170 s (a probe every 60 s): the
        // 160 s deadline lies between; they may have left at 111 s.
        let mut v = view(240, 170, 0.0);
        let workers: Vec<Option<f64>> = (0..240)
            .map(|s| (s % 60 == 50).then_some(if s < 170 { 4.0 } else { 0.0 }))
            .collect();
        v.probes.insert("workers".into(), workers);
        let only_workers = Idle {
            instances: vec![("workers".into(), 0.0)],
            concurrency: Vec::new(),
            gb_seconds: None,
            ..spec()
        };
        let r = only_workers.evaluate("idle", &v);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        // Seen at 4 at 170 s, after the deadline: a fail.
        let late: Vec<Option<f64>> = (0..240)
            .map(|s| (s % 60 == 50).then_some(if s < 230 { 4.0 } else { 0.0 }))
            .collect();
        v.probes.insert("workers".into(), late);
        assert_eq!(only_workers.evaluate("idle", &v).status, Status::Fail);
    }

    #[test]
    fn an_idle_system_passes_with_when_each_got_there() {
        let v = spec().evaluate("idle", &view(200, 130, 0.0));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.window, Some([100.0, 200.0]));
        assert_eq!(v.figures["load_end_s"], 100.0.into());
        assert_eq!(v.figures["workers_idle_s"], 30.0.into());
        assert_eq!(v.figures["fn_concurrent_idle_s"], 5.0.into());
        assert_eq!(v.figures["gb_seconds_rate_idle_s"], 10.0.into());
        assert_eq!(v.figures["gb_seconds_rate_idle_max"], 0.0.into());
        assert_eq!(v.figures["instance_rate_idle_max"], 1.0.into());
        assert_eq!(v.figures["instance_rate_floor"], 1.0.into());
        assert_eq!(v.figures["idle_s"], 30.0.into());
    }

    #[test]
    fn warm_slots_billing_fail() {
        let v = spec().evaluate("idle", &view(200, 130, 0.25));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "GB-seconds per second (slope of `fn_gb`): still 0.25 GB-s/s at the end of the \
                 run, 100s after the load ended (floor 0, within 60s)"
            )
        );
        // A floor that allows them.
        let allowed = Idle {
            max_gb_seconds_rate: 0.25,
            ..spec()
        };
        assert_eq!(
            allowed.evaluate("idle", &view(200, 130, 0.25)).status,
            Status::Pass
        );
    }

    #[test]
    fn a_fleet_that_never_scales_to_zero_or_too_late_fails() {
        let v = spec().evaluate("idle", &view(200, usize::MAX, 0.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        let reason = v.reason.unwrap();
        assert!(
            reason.starts_with("workers: still 4 instances at the end of the run"),
            "{reason}"
        );
        assert!(
            reason.contains("instance-seconds per second: still 5"),
            "{reason}"
        );
        assert_eq!(v.figures["workers_idle_s"], "never".into());
        let v = spec().evaluate("idle", &view(200, 170, 0.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(
            v.reason
                .unwrap()
                .starts_with("workers: down to 0 instances only 70s after the load ended"),
        );
        // At 160 s exactly: in time.
        assert_eq!(
            spec().evaluate("idle", &view(200, 160, 0.0)).status,
            Status::Pass
        );
    }

    #[test]
    fn idle_must_last_to_the_end_of_the_run() {
        // Down at 120 s, back up 150-155 s: idle from 156 s, within 160 s.
        let mut v = view(200, 120, 0.0);
        for s in 150..156 {
            v.probes.get_mut("workers").unwrap()[s] = Some(1.0);
        }
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.figures["workers_idle_s"], 56.0.into());
        // Back up 165-170 s: idle only from 171 s.
        for s in 165..171 {
            v.probes.get_mut("workers").unwrap()[s] = Some(1.0);
        }
        assert_eq!(spec().evaluate("idle", &v).status, Status::Fail);
    }

    #[test]
    fn a_short_cooldown_or_missing_probes_are_not_evaluable() {
        let v = spec().evaluate("idle", &view(150, 130, 0.0));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "the run recorded 50s after the load ended at 100s, idle needs 60s: the \
                 cool-down is too short; set `[cooldown] min` (and `max`) to at least 60s"
            )
        );
        // Even a system still busy at the end: it may yet have gone idle in time.
        assert_eq!(
            spec().evaluate("idle", &view(150, usize::MAX, 0.0)).status,
            Status::NotEvaluable
        );
        // A probe missing.
        let mut v = view(200, 130, 0.0);
        v.probes.remove("fn_concurrent");
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert_eq!(
            verdict.reason.as_deref(),
            Some("fn_concurrent: no such probe recorded")
        );
        // Samples stop at 140 s: idle then, but staying so until 160 s is unknown.
        let mut v = view(200, 130, 0.0);
        for s in 141..200 {
            v.probes.get_mut("workers").unwrap()[s] = None;
        }
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert!(
            verdict
                .reason
                .unwrap()
                .starts_with("workers: no sample after 140s"),
        );
        // Gaps in between are skipped, never zeros: a gap over the busy seconds does not
        // make the fleet idle earlier.
        let mut v = view(200, 130, 0.0);
        for s in 100..130 {
            v.probes.get_mut("workers").unwrap()[s] = None;
        }
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.figures["workers_idle_s"], 30.0.into());
    }

    #[test]
    fn the_load_ends_at_the_last_stage_with_arrivals() {
        // A trailing pause stage is not load.
        let mut v = view(200, 130, 0.0);
        v.phases.push(Phase {
            stream: "events".into(),
            index: 1,
            start: 100.0,
            end: 190.0,
            from_rate: 0.0,
            to_rate: 0.0,
        });
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.figures["load_end_s"], 100.0.into());
        // Without the schedule: the last second with intended sends.
        v.phases.clear();
        v.streams.insert(
            "events".into(),
            (0..200)
                .map(|s| {
                    if (10..95).contains(&s) {
                        Second::simple(20, 0, 5.0)
                    } else {
                        Second::default()
                    }
                })
                .collect(),
        );
        let verdict = spec().evaluate("idle", &v);
        assert_eq!(verdict.figures["load_end_s"], 95.0.into());
        assert_eq!(
            verdict.figures["load_end_source"],
            "the last intended send (timeline.csv)".into()
        );
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        // No load at all.
        v.streams.clear();
        assert_eq!(spec().evaluate("idle", &v).status, Status::NotEvaluable);
    }

    #[test]
    fn the_instance_rate_floor_can_be_lower_than_the_minimums() {
        let strict = Idle {
            max_instance_rate: Some(0.5),
            ..spec()
        };
        let v = strict.evaluate("idle", &view(200, 130, 0.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(
            v.reason
                .unwrap()
                .starts_with("instance-seconds per second: still 1 instance-s/s"),
        );
    }

    #[test]
    fn a_starved_harness_turns_the_fail_into_not_evaluable() {
        let promise = Promise {
            name: "idle".into(),
            kind: PromiseKind::Idle(spec()),
        };
        let mut v = view(200, usize::MAX, 0.0);
        assert_eq!(super::super::evaluate(&promise, &v).status, Status::Fail);
        let mut busy = vec![Some(0.5); 200];
        busy[150] = Some(0.99);
        v.harness_cpu_busy = Some(busy);
        assert_eq!(
            super::super::evaluate(&promise, &v).status,
            Status::NotEvaluable
        );
    }

    #[test]
    fn parses_and_reports_bad_keys() {
        let parse = |text: &str| {
            crate::analyze::spec::parse_promises(text, std::path::Path::new("exp.toml"))
        };
        let p = parse(
            r#"
            [[promise]]
            type = "idle"
            within = "60s"
            instances = { workers = 0, upload_instances = 1 }
            concurrency = ["fn_concurrent"]
            gb_seconds = "fn_gb_seconds"
            max_gb_seconds_rate = 0.0
            max_instance_rate = 1
            "#,
        )
        .unwrap();
        let PromiseKind::Idle(i) = &p[0].kind else {
            panic!()
        };
        assert_eq!(p[0].name, "idle");
        assert_eq!(
            i.instances,
            [("upload_instances".into(), 1.0), ("workers".into(), 0.0)]
        );
        assert_eq!(i.max_instance_rate, Some(1.0));
        let messages = |text: &str| -> Vec<String> {
            parse(text)
                .unwrap_err()
                .iter()
                .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
                .collect()
        };
        let m = messages("[[promise]]\ntype = \"idle\"\n");
        assert!(m.iter().any(|m| m.contains("needs `within`")), "{m:?}");
        assert!(
            m.iter()
                .any(|m| m.contains("needs `instances`, `concurrency` or `gb_seconds`")),
            "{m:?}"
        );
        let m = messages(
            "[[promise]]\ntype = \"idle\"\nwithin = \"1m\"\ninstances = { w = -1 }\nmax_gb_seconds_rate = 0.5\n",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("4:19 a minimum instance count must be")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:23 `max_gb_seconds_rate` without `gb_seconds`")),
            "{m:?}"
        );
    }
}
