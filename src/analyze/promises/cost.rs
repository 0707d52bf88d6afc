//! **cost**: instance-seconds and function GB-seconds over the run, priced from the
//! experiment; pass/fail only against a `budget`. Formulas: `docs/promises.md#cost`.

use super::{missing, round3};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// Fewest seconds with a sample (as a fraction of the run) for an instance-seconds figure.
pub const MIN_COVERAGE: f64 = 0.9;

/// Parameters of a `cost` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Running-instance count probe.
    pub instances: Option<String>,
    /// Price per instance-hour.
    pub instance_hour: f64,
    /// Probe of cumulative GB-seconds billed.
    pub gb_seconds: Option<String>,
    /// Price per GB-second.
    pub gb_second: f64,
    pub budget: Option<f64>,
}

/// The keys of a `cost` promise: `instances` + `instance_hour`, `gb_seconds` + `gb_second`, or both.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    /// The probe counting running instances.
    instances: Option<toml::Spanned<String>>,
    /// Price of one instance-hour.
    instance_hour: Option<toml::Spanned<f64>>,
    /// A probe of cumulative function GB-seconds billed.
    gb_seconds: Option<toml::Spanned<String>>,
    /// Price of one GB-second.
    gb_second: Option<toml::Spanned<f64>>,
    /// The most the run may cost; without it the verdict only reports figures.
    budget: Option<toml::Spanned<f64>>,
}

impl crate::analyze::spec::PromiseParams for RawCost {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let mut price = |v: &Option<toml::Spanned<f64>>| match v {
            Some(p) if !(p.get_ref().is_finite() && *p.get_ref() >= 0.0) => {
                r.error(p.span(), "a price must be a number >= 0");
                None
            }
            other => other.as_ref().map(|p| *p.get_ref()),
        };
        let instance_hour = price(&self.instance_hour);
        let gb_second = price(&self.gb_second);
        let budget = price(&self.budget);
        if self.instances.is_some() != self.instance_hour.is_some() {
            r.error(r.at(), "`instances` and `instance_hour` go together");
        }
        if self.gb_seconds.is_some() != self.gb_second.is_some() {
            r.error(r.at(), "`gb_seconds` and `gb_second` go together");
        }
        if self.instances.is_none() && self.gb_seconds.is_none() {
            r.error(
                r.at(),
                "a `cost` promise needs `instances` + `instance_hour` or `gb_seconds` + `gb_second`",
            );
        }
        let p = Cost {
            instances: r.name(RefKind::Probe, &self.instances),
            instance_hour: instance_hour.unwrap_or(0.0),
            gb_seconds: r.name(RefKind::Probe, &self.gb_seconds),
            gb_second: gb_second.unwrap_or(0.0),
            budget,
        };
        (crate::analyze::spec::PromiseKind::Cost(p), "cost".into())
    }
}

impl Cost {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "cost");
        let len = view.len();
        b.window(0.0, view.end());
        let mut total = 0.0;
        let mut known = true;
        if let Some(probe) = &self.instances {
            let points = view.probe_points(probe, 0, len);
            let coverage = if len == 0 {
                0.0
            } else {
                points.len() as f64 / len as f64
            };
            b.figure("instances_coverage", round3(coverage));
            if !view.probes.contains_key(probe) {
                known = false;
                b.leg(
                    Status::NotEvaluable,
                    missing(view, &format!("no probe `{probe}`"), "probes"),
                );
            } else if coverage < MIN_COVERAGE {
                known = false;
                b.leg(
                    Status::NotEvaluable,
                    missing(
                        view,
                        &format!(
                            "probe `{probe}` sampled {:.0}% of the run (need {:.0}%)",
                            coverage * 100.0,
                            MIN_COVERAGE * 100.0
                        ),
                        "probes",
                    ),
                );
            } else {
                // Gaps hold the previous sample (the first sample before it is seen).
                let mut seconds = 0.0;
                let mut current = points[0].1;
                let mut next = points.iter().peekable();
                for s in 0..len {
                    if let Some(&&(ps, v)) = next.peek()
                        && ps == s
                    {
                        current = v;
                        next.next();
                    }
                    seconds += current;
                }
                let cost = seconds / 3600.0 * self.instance_hour;
                total += cost;
                b.figure("instance_seconds", round3(seconds))
                    .figure("instance_cost", cost);
            }
        }
        if let Some(probe) = &self.gb_seconds {
            let points = view.probe_points(probe, 0, len);
            match (
                super::not_a_counter(probe, &points),
                points.first(),
                points.last(),
            ) {
                (Some(why), _, _) => {
                    known = false;
                    b.leg(Status::NotEvaluable, why);
                }
                (None, Some(first), Some(last)) if points.len() >= 2 => {
                    let gb_s = last.1 - first.1;
                    let cost = gb_s * self.gb_second;
                    total += cost;
                    b.figure("gb_seconds", round3(gb_s))
                        .figure("function_cost", cost);
                }
                _ => {
                    known = false;
                    b.leg(
                        Status::NotEvaluable,
                        missing(
                            view,
                            &format!("probe `{probe}` has fewer than 2 samples"),
                            "probes",
                        ),
                    );
                }
            }
        }
        if !known {
            // Costs are never negative: a known part already over the budget is a broken
            // promise, whatever the unknown part adds.
            if let Some(budget) = self.budget
                && total > budget
            {
                b.figure("known_cost", total).figure("budget", budget);
                b.leg(
                    Status::Fail,
                    format!("cost of the measured part alone {total:.4} (budget {budget})"),
                );
            }
            return b.finish();
        }
        b.figure("total_cost", total);
        match self.budget {
            Some(budget) => {
                b.figure("budget", budget);
                let status = if total <= budget {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(status, format!("cost {total:.4} (budget {budget})"));
            }
            None => {
                b.leg(
                    Status::NotEvaluable,
                    format!("cost {total:.4}; no budget set: figures only"),
                );
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(budget: Option<f64>) -> Cost {
        Cost {
            instances: Some("n".into()),
            instance_hour: 0.36,
            gb_seconds: Some("gbs".into()),
            gb_second: 0.5,
            budget,
        }
    }

    fn view() -> RunView {
        let mut v = RunView::default();
        // 2 instances for 1800 s, 4 for 1800 s, one gap (held at the previous value).
        let mut n: Vec<Option<f64>> = (0..3600)
            .map(|s| Some(if s < 1800 { 2.0 } else { 4.0 }))
            .collect();
        n[100] = None;
        v.probes.insert("n".into(), n);
        v.probes.insert(
            "gbs".into(),
            (0..3600).map(|s| Some(s as f64 / 360.0)).collect(),
        );
        v
    }

    #[test]
    fn a_gb_seconds_probe_that_goes_down_is_not_priced() {
        let mut v = view();
        v.probes.insert(
            "gbs".into(),
            (0..3600)
                .map(|s| Some(((s / 60) % 2) as f64 * 10.0))
                .collect(),
        );
        let r = spec(Some(1000.0)).evaluate("c", &v);
        assert_eq!(r.status, Status::NotEvaluable, "{r:?}");
        assert!(
            r.legs
                .iter()
                .any(|l| l.text.contains("probe `gbs` went down")),
            "{r:?}"
        );
    }

    #[test]
    fn prices_instance_and_function_time() {
        let v = spec(Some(2.0)).evaluate("c", &view());
        // 3 instance-hours x 0.36 = 1.08; 9.997 GB-s x 0.5 = 4.999 -> 6.08 > 2.
        assert_eq!(v.figures["instance_seconds"], 10_800.0.into());
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(spec(Some(10.0)).evaluate("c", &view()).status, Status::Pass);
        assert_eq!(
            spec(None).evaluate("c", &view()).status,
            Status::NotEvaluable
        );
    }

    #[test]
    fn sparse_probes_are_not_evaluable() {
        let mut v = view();
        v.probes.insert(
            "n".into(),
            (0..3600).map(|s| (s % 2 == 0).then_some(1.0)).collect(),
        );
        let verdict = spec(Some(100.0)).evaluate("c", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert!(verdict.reason.unwrap().contains("sampled 50%"));
    }

    // ---- The budget leg alone turns pass into fail, from either priced quantity (issue 10).
    // 100 s of run; 3.6 per instance-hour is 0.001 per instance-second.

    fn priced(instances: impl Fn(usize) -> Option<f64>, gb_end: f64) -> RunView {
        let mut v = RunView::default();
        v.probes
            .insert("n".into(), (0..100).map(instances).collect());
        v.probes.insert(
            "gbs".into(),
            (0..100).map(|s| Some(gb_end * s as f64 / 99.0)).collect(),
        );
        v
    }

    fn budget(b: f64) -> Cost {
        Cost {
            instances: Some("n".into()),
            instance_hour: 3.6,
            gb_seconds: Some("gbs".into()),
            gb_second: 0.001,
            budget: Some(b),
        }
    }

    #[test]
    fn instance_time_alone_decides() {
        // 1 instance for 100 s = 0.1, plus 10 GB-s x 0.001 = 0.01: 0.11 <= 0.115. Two
        // instances for 10 of those seconds add 0.01: 0.12 > 0.115.
        let v = budget(0.115).evaluate("c", &priced(|_| Some(1.0), 10.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["instance_seconds"], 100.0.into());
        let v = budget(0.115).evaluate(
            "c",
            &priced(
                |s| Some(if (40..50).contains(&s) { 2.0 } else { 1.0 }),
                10.0,
            ),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["instance_seconds"], 110.0.into());
        assert_eq!(v.reason.as_deref(), Some("cost 0.1200 (budget 0.115)"));
    }

    #[test]
    fn function_time_alone_decides() {
        // The same instances; 10 vs 20 GB-seconds.
        let v = budget(0.115).evaluate("c", &priced(|_| Some(1.0), 10.0));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        let v = budget(0.115).evaluate("c", &priced(|_| Some(1.0), 20.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["gb_seconds"], 20.0.into());
        assert_eq!(v.reason.as_deref(), Some("cost 0.1200 (budget 0.115)"));
    }

    #[test]
    fn a_gap_holds_the_sample_before_it() {
        // 1 instance, then a gap over 40..50 after a sample of 2 at 39: the gap counts as 2.
        let held = |s: usize| match s {
            39 => Some(2.0),
            40..50 => None,
            _ => Some(1.0),
        };
        let v = budget(0.115).evaluate("c", &priced(held, 10.0));
        assert_eq!(v.figures["instance_seconds"], 111.0.into(), "{v:?}");
        assert_eq!(v.status, Status::Fail);
        // Seconds before the first sample hold the first sample.
        let late = |s: usize| (s >= 5).then_some(1.0);
        let v = budget(0.115).evaluate("c", &priced(late, 10.0));
        assert_eq!(v.figures["instance_seconds"], 100.0.into(), "{v:?}");
    }

    #[test]
    fn missing_or_thin_probes_are_not_evaluable() {
        let mut v = priced(|_| Some(1.0), 10.0);
        v.probes.remove("n");
        let verdict = budget(0.115).evaluate("c", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert_eq!(verdict.reason.as_deref(), Some("no probe `n`"));
        // One GB-second sample is no difference.
        let mut v = priced(|_| Some(1.0), 10.0);
        v.probes.insert(
            "gbs".into(),
            (0..100).map(|s| (s == 50).then_some(3.0)).collect(),
        );
        let verdict = budget(0.115).evaluate("c", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert_eq!(
            verdict.reason.as_deref(),
            Some("probe `gbs` has fewer than 2 samples")
        );
        // 89% of the seconds sampled is too sparse; 90% is enough.
        let covered = |n: usize| priced(move |s| (s < n).then_some(1.0), 10.0);
        assert_eq!(
            budget(0.115).evaluate("c", &covered(89)).status,
            Status::NotEvaluable
        );
        assert_eq!(
            budget(0.115).evaluate("c", &covered(90)).status,
            Status::Pass
        );
    }

    #[test]
    fn a_known_part_over_the_budget_fails_though_another_part_is_missing() {
        // The GB-second probe is missing; the instances alone cost more than the budget.
        let mut v = priced(|_| Some(1.0), 10.0);
        v.probes.remove("gbs");
        let verdict = budget(0.005).evaluate("c", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert!(verdict.reason.unwrap().contains("measured part alone"));
        // Under the budget so far: the missing part may still break it.
        assert_eq!(budget(1.0).evaluate("c", &v).status, Status::NotEvaluable);
    }
}
