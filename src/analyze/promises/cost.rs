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
            match (points.first(), points.last()) {
                (Some(first), Some(last)) if points.len() >= 2 => {
                    let gb_s = (last.1 - first.1).max(0.0);
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
}
