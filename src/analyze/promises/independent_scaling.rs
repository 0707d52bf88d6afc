//! **independent-scaling**: while one group scales out on its own signal, the groups that
//! do not need to stay at their count. Formulas: `docs/promises.md#independent-scaling`.

use std::collections::BTreeSet;

use toml::Spanned;

use super::{LoadSpan, load_span, missing, round3, second_from, second_of, secs};
use crate::analyze::expr::Over;
use crate::analyze::spec::{PromiseKind, PromiseParams, Reader, RefKind};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// Fewest seconds of the window (as a fraction) a steady probe must have sampled for a
/// "stayed" to be believed: a gap may hide a rise.
pub const MIN_COVERAGE: f64 = 0.9;

/// Parameters of an `independent-scaling` promise (user docs on [`RawIndependentScaling`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IndependentScaling {
    /// Instance-count probe of the group that must scale.
    pub scaling: String,
    /// Instance-count probes of the groups that must not.
    pub steady: Vec<String>,
    /// How many instances a steady group may add over its count before the window.
    pub slack: f64,
    /// `during:<fault>`: the window is the fault's; `None`: the scale-out during the load.
    pub during: Option<String>,
}

/// The keys of an `independent-scaling` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndependentScaling {
    /// The instance-count probe of the group that must scale out (e.g. the workers that
    /// grow with their backlog). Required.
    scaling: Option<Spanned<String>>,
    /// The instance-count probes of the groups that must not grow meanwhile. Required.
    steady: Option<Spanned<Vec<Spanned<String>>>>,
    /// Instances a steady group may add over its count before the window (default 0).
    slack: Option<Spanned<f64>>,
    /// The window: by default from the scaling group's first rise above its count at the
    /// load's start to the load's end; `"during:<fault>"`: the fault's window.
    over: Option<Spanned<String>>,
}

impl PromiseParams for RawIndependentScaling {
    fn build(self, r: &mut Reader<'_, '_>) -> (PromiseKind, String) {
        let scaling = r.required_name(RefKind::Probe, &self.scaling, "scaling");
        let mut steady = Vec::new();
        match &self.steady {
            None => r.missing("steady"),
            Some(list) if list.get_ref().is_empty() => r.error_with_hint(
                list.span(),
                "`steady` is empty",
                "list the instance-count probes of the groups that must not scale",
            ),
            Some(list) => {
                let mut seen = BTreeSet::new();
                for p in list.get_ref() {
                    if p.get_ref() == &scaling {
                        r.error_with_hint(
                            p.span(),
                            format!("`{scaling}` is the scaling group: it cannot be steady too"),
                            "remove it from `steady`",
                        );
                    } else if !seen.insert(p.get_ref().clone()) {
                        r.error(p.span(), format!("`{}` is listed twice", p.get_ref()));
                    } else {
                        r.refer(RefKind::Probe, p.get_ref(), p.span());
                        steady.push(p.get_ref().clone());
                    }
                }
            }
        }
        let slack = match &self.slack {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() >= 0.0) => {
                r.error(
                    s.span(),
                    format!("must be a number of instances >= 0, found {}", s.get_ref()),
                );
                0.0
            }
            other => other.as_ref().map_or(0.0, |s| *s.get_ref()),
        };
        let during = match &self.over {
            None => None,
            Some(s) => match s.get_ref().parse::<Over>() {
                Ok(Over::During(f)) => {
                    r.refer(RefKind::Fault, &f, s.span());
                    Some(f)
                }
                _ => {
                    r.error_with_hint(
                        s.span(),
                        format!("`over = \"{}\"` is not a scaling window", s.get_ref()),
                        "use `over = \"during:<fault>\"`, or leave `over` out to judge the \
                         scale-out during the load",
                    );
                    None
                }
            },
        };
        let p = IndependentScaling {
            scaling,
            steady,
            slack,
            during,
        };
        let name = format!("independent-scaling:{}", p.scaling);
        (PromiseKind::IndependentScaling(p), name)
    }
}

/// The judged window and the scaling group's rise in it.
struct Window {
    /// `[from, to)` in whole seconds.
    from: usize,
    to: usize,
    /// The scaling group's count the rise is measured from, and its rise (second, value).
    before: f64,
    rise: (usize, f64),
    /// Where the window ends, for the text.
    until: String,
}

impl IndependentScaling {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "independent-scaling");
        if !view.probes.contains_key(&self.scaling) {
            return b.not_evaluable(missing(
                view,
                &format!("no probe `{}` (the scaling group)", self.scaling),
                "probes",
            ));
        }
        let w = match self.window(view) {
            Ok(w) => w,
            Err(why) => return b.not_evaluable(why),
        };
        let peak = view
            .probe_points(&self.scaling, w.from, w.to)
            .iter()
            .map(|p| p.1)
            .fold(w.before, f64::max);
        b.window(w.from as f64, w.to as f64)
            .figure("scaling_before", w.before)
            .figure("scaling_rise_s", w.rise.0 as f64)
            .figure("scaling_max", peak);
        let rise = format!(
            "`{}` rose from {} at {} to {} ({})",
            self.scaling,
            count(w.before),
            secs(w.rise.0 as f64),
            count(peak),
            w.until
        );
        for probe in &self.steady {
            self.steady_leg(&mut b, view, probe, &w, &rise);
        }
        b.finish()
    }

    /// The window: the fault's with `during`, else from the scaling group's first rise
    /// above its count at the load's start to the load's end.
    fn window(&self, view: &RunView) -> Result<Window, String> {
        let len = view.len();
        let (from, to, before, until) = match &self.during {
            Some(fault) => {
                let f = view.fault(fault).ok_or_else(|| {
                    missing(
                        view,
                        &format!("fault `{fault}` is not in the journal"),
                        "journal",
                    )
                })?;
                let from = second_of(f.start);
                let to = second_from(f.end.unwrap_or(view.end()))
                    .max(from + 1)
                    .min(len);
                let before = view.probe_before(&self.scaling, from).ok_or_else(|| {
                    format!(
                        "no sample of `{}` before the fault (at {}): its rise cannot be told",
                        self.scaling,
                        secs(f.start)
                    )
                })?;
                let until = match f.end {
                    Some(_) => format!("during `{fault}`"),
                    None => format!("during `{fault}`, never undone: to the end of the run"),
                };
                (from, to, before.1, until)
            }
            None => {
                let LoadSpan { start, end, source } = load_span(view).ok_or_else(|| {
                    missing(
                        view,
                        "the run shows no load: no stage with arrivals and no intended send",
                        "run.json",
                    )
                })?;
                let start_s = second_of(start);
                let to = second_from(end).min(len);
                // The count at the load's start: its last sample at or before the start,
                // else its first one after.
                let before = view
                    .probe_points(&self.scaling, 0, start_s + 1)
                    .last()
                    .or(view.probe_points(&self.scaling, start_s, to).first())
                    .copied()
                    .ok_or_else(|| format!("no sample of `{}` during the load", self.scaling))?;
                let from = view
                    .probe_points(&self.scaling, before.0 + 1, to)
                    .into_iter()
                    .find(|p| p.1 > before.1)
                    .map(|p| p.0)
                    .unwrap_or(to);
                let until = format!("until the load ended at {} ({source})", secs(end));
                (from, to, before.1, until)
            }
        };
        let rise = view
            .probe_points(&self.scaling, from, to)
            .into_iter()
            .find(|p| p.1 > before)
            .ok_or_else(|| {
                format!(
                    "`{}` never rose above {} {}: no scale-out to judge the others against",
                    self.scaling,
                    count(before),
                    match &self.during {
                        Some(f) => format!("during `{f}`"),
                        None => "during the load".into(),
                    }
                )
            })?;
        Ok(Window {
            from,
            to,
            before,
            rise,
            until,
        })
    }

    fn steady_leg(&self, b: &mut Builder, view: &RunView, probe: &str, w: &Window, rise: &str) {
        if !view.probes.contains_key(probe) {
            b.leg(
                Status::NotEvaluable,
                missing(view, &format!("{probe}: no such probe recorded"), "probes"),
            );
            return;
        }
        let Some((_, before)) = view.probe_before(probe, w.from) else {
            b.leg(
                Status::NotEvaluable,
                format!(
                    "{probe}: no sample before {}: its count before the scale-out is unknown",
                    secs(w.from as f64)
                ),
            );
            return;
        };
        let limit = before + self.slack;
        let points = view.probe_points(probe, w.from, w.to);
        let max = points.iter().map(|p| p.1).fold(before, f64::max);
        let gaps = (w.to - w.from).saturating_sub(points.len());
        b.figure(&format!("{probe}_before"), before)
            .figure(&format!("{probe}_max"), max)
            .figure(&format!("{probe}_gaps"), gaps as u64);
        // A rise seen is a fail whatever the gaps; a "stayed" needs the window sampled.
        if let Some(&(s, v)) = points.iter().find(|p| p.1 > limit + 1e-9) {
            b.leg(
                Status::Fail,
                format!(
                    "{probe}: rose from {} to {} at {} (limit {}) while {rise}",
                    count(before),
                    count(v),
                    secs(s as f64),
                    count(limit)
                ),
            );
        } else if (points.len() as f64) < MIN_COVERAGE * (w.to - w.from) as f64 {
            b.leg(
                Status::NotEvaluable,
                format!(
                    "{probe}: {gaps} of the window's {} seconds have no sample (at most {:.0}% \
                     may be missing): a rise could hide in them",
                    w.to - w.from,
                    (1.0 - MIN_COVERAGE) * 100.0
                ),
            );
        } else {
            b.leg(
                Status::Pass,
                format!(
                    "{probe}: stayed at or under {} (before {}, limit {}) while {rise}",
                    count(max),
                    count(before),
                    count(limit)
                ),
            );
        }
    }
}

/// An instance count for text: `3`, or `2.5` for a fractional sample.
fn count(v: f64) -> String {
    format!("{}", round3(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::spec::Promise;
    use crate::analyze::view::{FaultWindow, Phase};

    const LEN: usize = 120;

    /// Load from 10 s to 100 s; `process` 1 instance, 4 from 30 s, back to 1 at 105 s;
    /// `upload` and `store` at 2 unless `shape` says otherwise.
    fn view(upload: impl Fn(usize) -> Option<f64>) -> RunView {
        let mut v = RunView::default();
        v.phases.push(Phase {
            stream: "uploads".into(),
            index: 0,
            start: 10.0,
            end: 100.0,
            from_rate: 50.0,
            to_rate: 50.0,
        });
        let series =
            |f: &dyn Fn(usize) -> Option<f64>| -> Vec<Option<f64>> { (0..LEN).map(f).collect() };
        v.probes.insert(
            "process".into(),
            series(&|s| Some(if (30..105).contains(&s) { 4.0 } else { 1.0 })),
        );
        v.probes.insert("upload".into(), series(&upload));
        v.probes.insert("store".into(), series(&|_| Some(2.0)));
        v
    }

    fn spec() -> IndependentScaling {
        IndependentScaling {
            scaling: "process".into(),
            steady: vec!["upload".into(), "store".into()],
            slack: 0.0,
            during: None,
        }
    }

    #[test]
    fn steady_groups_that_stay_pass() {
        let v = spec().evaluate("i", &view(|_| Some(2.0)));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.window, Some([30.0, 100.0]));
        assert_eq!(v.figures["scaling_rise_s"], 30.0.into());
        assert_eq!(v.figures["scaling_max"], 4.0.into());
        assert_eq!(
            v.legs[0].text,
            "upload: stayed at or under 2 (before 2, limit 2) while `process` rose from 1 at \
             30s to 4 (until the load ended at 100s (the profile's schedule (run.json)))"
        );
    }

    #[test]
    fn a_steady_group_scaling_with_the_other_fails() {
        // The shared fleet: upload grows with process.
        let v = spec().evaluate("i", &view(|s| Some(if s >= 32 { 4.0 } else { 2.0 })));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(
            v.reason
                .as_deref()
                .unwrap()
                .starts_with("upload: rose from 2 to 4 at 32s (limit 2)"),
            "{v:?}"
        );
        assert_eq!(v.figures["upload_max"], 4.0.into());
        // Within the slack: a pass.
        let slack = IndependentScaling {
            slack: 2.0,
            ..spec()
        };
        let v = slack.evaluate("i", &view(|s| Some(if s >= 32 { 4.0 } else { 2.0 })));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        // A rise after the load ended is not judged.
        let v = spec().evaluate("i", &view(|s| Some(if s >= 100 { 4.0 } else { 2.0 })));
        assert_eq!(v.status, Status::Pass, "{v:?}");
    }

    #[test]
    fn gaps_hide_nothing_and_too_many_are_not_evaluable() {
        // Samples every 3rd second only: 47 of 70 seconds missing.
        let sparse = |s: usize| (s.is_multiple_of(3) || s < 30).then_some(2.0);
        let v = spec().evaluate("i", &view(sparse));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "upload: 46 of the window's 70 seconds have no sample (at most 10% may be \
                 missing): a rise could hide in them"
            )
        );
        // A rise seen between the gaps still fails.
        let v = spec().evaluate(
            "i",
            &view(|s| (s.is_multiple_of(3) || s < 30).then_some(if s == 60 { 3.0 } else { 2.0 })),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        // A few gaps are fine.
        let v = spec().evaluate("i", &view(|s| (s % 20 != 0).then_some(2.0)));
        assert_eq!(v.status, Status::Pass, "{v:?}");
    }

    #[test]
    fn no_scale_out_is_not_evaluable() {
        let mut v = view(|_| Some(2.0));
        v.probes.insert("process".into(), vec![Some(1.0); LEN]);
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert_eq!(
            verdict.reason.as_deref(),
            Some(
                "`process` never rose above 1 during the load: no scale-out to judge the others against"
            )
        );
        // Rising only after the load ended: nothing to judge either.
        v.probes.insert(
            "process".into(),
            (0..LEN)
                .map(|s| Some(if s >= 100 { 4.0 } else { 1.0 }))
                .collect(),
        );
        assert_eq!(spec().evaluate("i", &v).status, Status::NotEvaluable);
        // No scaling probe; no load.
        v.probes.remove("process");
        assert!(
            spec()
                .evaluate("i", &v)
                .reason
                .unwrap()
                .starts_with("no probe `process`")
        );
        let mut v = view(|_| Some(2.0));
        v.phases.clear();
        assert_eq!(spec().evaluate("i", &v).status, Status::NotEvaluable);
        // A steady probe with no sample before the rise.
        let v = view(|s| (s > 40).then_some(2.0));
        let verdict = spec().evaluate("i", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert!(
            verdict
                .reason
                .unwrap()
                .contains("upload: no sample before 30s")
        );
    }

    #[test]
    fn the_window_can_be_a_fault() {
        let mut v = view(|s| Some(if (20..25).contains(&s) { 3.0 } else { 2.0 }));
        v.faults.push(FaultWindow {
            name: "backlog".into(),
            id: "backlog#1".into(),
            kind: "stall-consumers".into(),
            start: 28.0,
            end: Some(60.0),
            targets: vec![],
        });
        let during = IndependentScaling {
            during: Some("backlog".into()),
            ..spec()
        };
        let verdict = during.evaluate("i", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.window, Some([28.0, 60.0]));
        // Never undone: to the end of the run, where upload rises at 110 s.
        v.faults[0].end = None;
        v.probes.get_mut("upload").unwrap()[110] = Some(3.0);
        let verdict = during.evaluate("i", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        // An unknown fault.
        v.faults.clear();
        assert_eq!(during.evaluate("i", &v).status, Status::NotEvaluable);
    }

    #[test]
    fn a_starved_harness_turns_the_fail_into_not_evaluable() {
        let promise = Promise {
            name: "i".into(),
            kind: PromiseKind::IndependentScaling(spec()),
        };
        let mut v = view(|s| Some(if s >= 32 { 4.0 } else { 2.0 }));
        assert_eq!(super::super::evaluate(&promise, &v).status, Status::Fail);
        let mut lag = vec![Some(2.0); LEN];
        lag[50] = Some(250.0);
        v.harness_lag_ms = Some(lag);
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
            "[[promise]]\ntype = \"independent-scaling\"\nscaling = \"process_instances\"\nsteady = [\"upload_instances\", \"store_instances\"]\nslack = 0\n",
        )
        .unwrap();
        assert_eq!(p[0].name, "independent-scaling:process_instances");
        let err = parse(
            "[[promise]]\ntype = \"independent-scaling\"\nscaling = \"p\"\nsteady = [\"p\", \"q\", \"q\"]\nslack = -1\nover = \"after\"\n",
        )
        .unwrap_err();
        let m: Vec<String> = err
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        assert!(
            m.iter()
                .any(|m| m.starts_with("4:11 `p` is the scaling group")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.starts_with("4:21 `q` is listed twice")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:9 must be a number of instances")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.starts_with("6:8 `over = \"after\"`")),
            "{m:?}"
        );
        let err =
            parse("[[promise]]\ntype = \"independent-scaling\"\nscaling = \"p\"\n").unwrap_err();
        assert!(err.iter().any(|d| d.message.contains("needs `steady`")));
    }
}
