//! **scale-out**: once backlog per instance crosses the policy target, capacity grows by
//! `n` within `within`; reports the legs breach -> desired change -> launch -> instance
//! running -> first job done. Formulas: `docs/promises.md#scale-out`.

use std::time::Duration;

use super::{missing, round3, secs};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{ActivityKind, RunView};

/// Parameters of a `scale-out` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOut {
    pub group: Option<String>,
    /// Running-instance count probe.
    pub instances: String,
    /// Backlog probe.
    pub depth: String,
    /// Policy target: backlog per instance.
    pub target: f64,
    /// Instances to add.
    pub n: u32,
    pub within: Duration,
}

impl ScaleOut {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "scale-out");
        for probe in [&self.instances, &self.depth] {
            if !view.probes.contains_key(probe) {
                return b.not_evaluable(missing(view, &format!("no probe `{probe}`"), "probes"));
            }
        }
        let len = view.len();
        let instances = &view.probes[&self.instances];
        let depth = &view.probes[&self.depth];
        // Breach: the first second where both are sampled and backlog / instances > target
        // (with no instance, any backlog is a breach: scale from zero).
        let breach = (0..len).find_map(|s| {
            let (i, d) = (
                instances.get(s).copied().flatten()?,
                depth.get(s).copied().flatten()?,
            );
            let over = if i < 1.0 {
                d > 0.0
            } else {
                d / i > self.target
            };
            over.then_some((s, i))
        });
        let Some((t_x, c0)) = breach else {
            return b.not_evaluable(format!(
                "backlog per instance never exceeded the target {}: nothing to scale out for",
                self.target
            ));
        };
        let goal = c0 + f64::from(self.n);
        let within = self.within.as_secs_f64();
        b.figure("breach_s", t_x as f64)
            .figure("instances_at_breach", c0)
            .figure("instances_goal", goal);
        let points = view.probe_points(&self.instances, t_x, len);
        let reached = points.iter().find(|(_, v)| *v >= goal).map(|(s, _)| *s);
        let peak = points.iter().map(|p| p.1).fold(c0, f64::max);
        b.figure("peak_instances", peak);
        // The legs, as far as the data goes.
        let group = self.group.as_deref();
        let after = |kind: ActivityKind| {
            view.activities_of(group)
                .find(|a| {
                    a.kind == kind
                        && a.t >= t_x as f64
                        && (kind != ActivityKind::Scaling || a.to > a.from)
                })
                .map(|a| round3(a.t - t_x as f64))
        };
        match &view.activities {
            None => {
                b.figure("desired_change_s", "no activities recorded");
            }
            Some(_) => {
                b.figure(
                    "desired_change_s",
                    after(ActivityKind::Scaling)
                        .map_or("none".into(), crate::analyze::verdict::Figure::Number),
                );
                b.figure(
                    "launch_s",
                    after(ActivityKind::Launch)
                        .map_or("none".into(), crate::analyze::verdict::Figure::Number),
                );
            }
        }
        match reached {
            Some(s) => {
                let took = (s - t_x) as f64;
                b.window(t_x as f64, s as f64).figure("running_s", took);
                if let Some(l) = &view.ledger {
                    let first_job = l
                        .completions_per_s
                        .iter()
                        .enumerate()
                        .skip(s)
                        .find(|(_, n)| **n > 0)
                        .map(|(j, _)| (j - t_x) as f64);
                    b.figure(
                        "first_job_done_s",
                        first_job.map_or("none".into(), crate::analyze::verdict::Figure::Number),
                    );
                }
                let status = if took <= within {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!(
                        "{c0} -> {goal} instances {} after the breach (limit {})",
                        secs(took),
                        secs(within)
                    ),
                );
            }
            None => {
                b.window(t_x as f64, view.end())
                    .figure("running_s", "not reached");
                let last = points.last().map_or(t_x, |p| p.0) as f64;
                if last >= t_x as f64 + within {
                    b.leg(Status::Fail, format!(
                        "capacity stayed below {goal} for {} after the breach at {} (peak {peak})",
                        secs(last - t_x as f64), secs(t_x as f64)
                    ));
                } else {
                    b.leg(
                        Status::NotEvaluable,
                        format!(
                            "instance samples end {} after the breach: too early to tell within {}",
                            secs(last - t_x as f64),
                            secs(within)
                        ),
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
    use crate::analyze::view::Activity;

    fn spec() -> ScaleOut {
        ScaleOut {
            group: Some("workers".into()),
            instances: "workers".into(),
            depth: "depth".into(),
            target: 100.0,
            n: 2,
            within: Duration::from_secs(60),
        }
    }

    /// Backlog ramps from second 10; instances 1 until `grow_at`, then 4.
    fn view(grow_at: Option<usize>, len: usize) -> RunView {
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            (0..len)
                .map(|s| Some(if s < 10 { 0.0 } else { 30.0 * (s - 10) as f64 }))
                .collect(),
        );
        v.probes.insert(
            "workers".into(),
            (0..len)
                .map(|s| {
                    Some(if grow_at.is_some_and(|g| s >= g) {
                        4.0
                    } else {
                        1.0
                    })
                })
                .collect(),
        );
        let mut acts = Vec::new();
        if grow_at.is_some() {
            acts.push(Activity {
                t: 15.5,
                group: "workers".into(),
                kind: ActivityKind::Scaling,
                from: Some(1),
                to: Some(4),
                instance: None,
                cause: "target tracking".into(),
            });
            acts.push(Activity {
                t: 16.0,
                group: "workers".into(),
                kind: ActivityKind::Launch,
                from: None,
                to: None,
                instance: Some("i-2".into()),
                cause: "scaling".into(),
            });
        }
        v.activities = Some(acts);
        v
    }

    #[test]
    fn grows_in_time() {
        let v = spec().evaluate("s", &view(Some(40), 120));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        // 30/s from second 10: 30 x 4 = 120 > 100 at second 14.
        assert_eq!(v.figures["breach_s"], 14.0.into());
        assert_eq!(v.figures["running_s"], 26.0.into());
        assert_eq!(v.figures["desired_change_s"], 1.5.into());
    }

    #[test]
    fn a_fixed_fleet_fails_and_a_short_run_is_not_evaluable() {
        let v = spec().evaluate("s", &view(None, 120));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["desired_change_s"], "none".into());
        assert_eq!(
            spec().evaluate("s", &view(None, 40)).status,
            Status::NotEvaluable
        );
        let mut quiet = view(None, 120);
        quiet.probes.insert("depth".into(), vec![Some(0.0); 120]);
        assert_eq!(spec().evaluate("s", &quiet).status, Status::NotEvaluable);
    }
}
