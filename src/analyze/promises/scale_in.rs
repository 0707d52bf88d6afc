//! **scale-in**: once the backlog has drained, capacity returns to `min` within `within`,
//! without flapping. Formulas: `docs/promises.md#scale-in`.

use std::time::Duration;

use super::{missing, round3, second_of, secs};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{Activity, ActivityKind, RunView};
use crate::results::dir::ACTIVITIES_FILE;

/// Parameters of a `scale-in` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleIn {
    pub group: Option<String>,
    pub instances: String,
    /// Backlog probe: "drained" is the start of its final stretch of zeros.
    pub depth: Option<String>,
    pub min: u32,
    pub within: Duration,
    /// Measure from the end of this fault instead.
    pub after: Option<String>,
    pub max_direction_changes: u32,
    pub flap_window: Duration,
}

/// The keys of a `scale-in` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaleIn {
    /// The group in `activities.jsonl` (default: any group).
    group: Option<toml::Spanned<String>>,
    /// The probe counting running instances. Required.
    instances: Option<toml::Spanned<String>>,
    /// The queue depth (backlog) probe: "drained" is the start of its final run of zeros.
    depth: Option<toml::Spanned<String>>,
    /// The minimum capacity to return to (default 0).
    min: Option<toml::Spanned<u32>>,
    /// Max time from drained to minimum capacity. Required.
    within: Option<toml::Spanned<String>>,
    /// Measure from the end of this fault instead of from when the backlog drained.
    after: Option<toml::Spanned<String>>,
    /// Most direction changes of desired capacity in any `flap_window` (default 2).
    max_direction_changes: Option<toml::Spanned<u32>>,
    /// The flapping window (default `5m`).
    flap_window: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawScaleIn {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let p = ScaleIn {
            group: r.string(&self.group),
            instances: r.required_name(RefKind::Probe, &self.instances, "instances"),
            depth: r.name(RefKind::Probe, &self.depth),
            min: r.value(&self.min).unwrap_or(0),
            within: r.required_duration(&self.within, "within"),
            after: r.name(RefKind::Fault, &self.after),
            max_direction_changes: r.value(&self.max_direction_changes).unwrap_or(2),
            flap_window: r
                .duration(&self.flap_window)
                .unwrap_or(Duration::from_secs(300)),
        };
        let name = match &p.group {
            Some(g) => format!("scale-in:{g}"),
            None => "scale-in".into(),
        };
        (crate::analyze::spec::PromiseKind::ScaleIn(p), name)
    }
}

impl ScaleIn {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "scale-in");
        if !view.probes.contains_key(&self.instances) {
            return b.not_evaluable(missing(
                view,
                &format!("no probe `{}`", self.instances),
                "probes",
            ));
        }
        let t_0 = match self.reference(view) {
            Ok(t) => t,
            Err(why) => return b.not_evaluable(why),
        };
        let within = self.within.as_secs_f64();
        let min = f64::from(self.min);
        b.figure("drained_s", t_0).figure("min", min);
        let points = view.probe_points(&self.instances, second_of(t_0), view.len());
        match points.iter().find(|(_, v)| *v <= min) {
            Some(&(s, _)) => {
                let took = round3((s as f64 - t_0).max(0.0));
                b.window(t_0, s as f64).figure("scale_in_s", took);
                let status = if took <= within {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!(
                        "back to {} instances {} after draining (limit {})",
                        self.min,
                        secs(took),
                        secs(within)
                    ),
                );
            }
            None => {
                let last = points.last().map_or(t_0, |p| p.0 as f64);
                let lowest = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                b.window(t_0, view.end())
                    .figure("scale_in_s", "not reached")
                    .figure("lowest_instances", lowest);
                if last >= t_0 + within {
                    b.leg(
                        Status::Fail,
                        format!(
                            "still {lowest} or more instances {} after draining (min {})",
                            secs(last - t_0),
                            self.min
                        ),
                    );
                } else {
                    b.leg(
                        Status::NotEvaluable,
                        format!(
                            "instance samples end {} after draining: too early to tell within {}",
                            secs((last - t_0).max(0.0)),
                            secs(within)
                        ),
                    );
                }
            }
        }
        self.flapping(&mut b, view);
        b.finish()
    }

    /// When the backlog drained: the end of the `after` fault, or the first sample of the
    /// depth probe's final stretch of zeros (gaps skipped).
    fn reference(&self, view: &RunView) -> Result<f64, String> {
        if let Some(fault) = &self.after {
            let f = view.fault(fault).ok_or_else(|| {
                missing(
                    view,
                    &format!("fault `{fault}` is not in the journal"),
                    "journal",
                )
            })?;
            return f
                .end
                .ok_or_else(|| format!("fault `{fault}` was never undone"));
        }
        let Some(depth) = &self.depth else {
            return Err(
                "neither `depth` nor `after`: no way to tell when the backlog drained".into(),
            );
        };
        if !view.probes.contains_key(depth) {
            return Err(missing(view, &format!("no probe `{depth}`"), "probes"));
        }
        let points = view.probe_points(depth, 0, view.len());
        if points.iter().all(|p| p.1 <= 0.0) {
            return Err(format!(
                "probe `{depth}` never saw a backlog: nothing to scale in from"
            ));
        }
        let tail = points.iter().rev().take_while(|p| p.1 <= 0.0).count();
        if tail == 0 {
            return Err(format!(
                "the backlog (`{depth}`) had not drained by the end of the run"
            ));
        }
        Ok(points[points.len() - tail].0 as f64)
    }

    /// Direction changes of desired capacity (scaling activities of the group); the most in
    /// any window of `flap_window` must be <= `max_direction_changes`.
    fn flapping(&self, b: &mut Builder, view: &RunView) {
        let derived;
        let scaling: Vec<&Activity> = match &view.activities {
            Some(_) => {
                b.figure("activities_source", ACTIVITIES_FILE);
                view.activities_of(self.group.as_deref())
                    .filter(|a| a.kind == ActivityKind::Scaling)
                    .collect()
            }
            None => {
                // No activity log: directions of the running count instead (documented).
                derived = view.derived_scaling(&self.instances);
                b.figure(
                    "activities_source",
                    format!("probe `{}` (running count)", self.instances),
                );
                derived.iter().collect()
            }
        };
        let mut changes = Vec::new();
        let mut last_dir = 0i8;
        for a in scaling {
            let (Some(from), Some(to)) = (a.from, a.to) else {
                continue;
            };
            let dir = (i64::from(to) - i64::from(from)).signum() as i8;
            if dir == 0 {
                continue;
            }
            if last_dir != 0 && dir != last_dir {
                changes.push(a.t);
            }
            last_dir = dir;
        }
        let w = self.flap_window.as_secs_f64();
        let worst = (0..changes.len())
            .map(|i| {
                changes[i..]
                    .iter()
                    .take_while(|t| **t <= changes[i] + w)
                    .count()
            })
            .max()
            .unwrap_or(0) as u32;
        b.figure("direction_changes_max", f64::from(worst))
            .figure("direction_changes_total", changes.len() as u64);
        let status = if worst <= self.max_direction_changes {
            Status::Pass
        } else {
            Status::Fail
        };
        b.leg(
            status,
            format!(
                "{worst} direction changes in {} (max {})",
                secs(w),
                self.max_direction_changes
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::Activity;

    fn spec() -> ScaleIn {
        ScaleIn {
            group: None,
            instances: "workers".into(),
            depth: Some("depth".into()),
            min: 0,
            within: Duration::from_secs(120),
            after: None,
            max_direction_changes: 2,
            flap_window: Duration::from_secs(300),
        }
    }

    fn scaling(t: f64, from: u32, to: u32) -> Activity {
        Activity {
            t,
            group: "workers".into(),
            kind: ActivityKind::Scaling,
            from: Some(from),
            to: Some(to),
            instance: None,
            cause: String::new(),
        }
    }

    /// Backlog during 10..100; instances 3 until `zero_at`, 0 after.
    fn view(zero_at: usize, len: usize, acts: Vec<Activity>) -> RunView {
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            (0..len)
                .map(|s| Some(if (10..100).contains(&s) { 500.0 } else { 0.0 }))
                .collect(),
        );
        v.probes.insert(
            "workers".into(),
            (0..len)
                .map(|s| Some(if s < zero_at { 3.0 } else { 0.0 }))
                .collect(),
        );
        v.activities = Some(acts);
        v
    }

    #[test]
    fn scales_to_zero_in_time() {
        let v = spec().evaluate(
            "s",
            &view(160, 300, vec![scaling(12.0, 0, 3), scaling(159.0, 3, 0)]),
        );
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.figures["scale_in_s"], 60.0.into());
    }

    #[test]
    fn a_fixed_fleet_fails_and_flapping_fails() {
        let v = spec().evaluate("s", &view(10_000, 300, vec![]));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        let flappy: Vec<Activity> = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    scaling(100.0 + 20.0 * i as f64, 1, 2)
                } else {
                    scaling(100.0 + 20.0 * i as f64, 2, 1)
                }
            })
            .collect();
        let v = spec().evaluate("s", &view(160, 300, flappy));
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.figures["direction_changes_max"], 7.0.into());
    }

    /// Issue 10: on a stack whose autoscaler logs its decisions elsewhere, scale-in was not
    /// evaluable in every run (no activities.jsonl) although the fleet went back to its
    /// minimum within 4 s. The instance probe gives the directions instead.
    #[test]
    fn flapping_is_judged_from_the_instance_probe_without_an_activity_log() {
        let mut v = view(104, 300, vec![]);
        v.activities = None;
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.figures["direction_changes_max"], 0.0.into());
        // A count that goes 1 -> 2 -> 1 -> 2 ... every 10 s after draining flaps.
        v.probes.insert(
            "workers".into(),
            (0..300)
                .map(|s| {
                    Some(match s {
                        0..100 => 3.0,
                        100..104 => 0.0,
                        104..200 => 1.0 + ((s / 10) % 2) as f64,
                        _ => 0.0,
                    })
                })
                .collect(),
        );
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert!(
            verdict
                .reason
                .unwrap()
                .contains("direction changes in 300s (max 2)")
        );
        // A killed worker and its replacement (3 -> 2 -> 3) are not flapping.
        let mut v = view(104, 300, vec![]);
        v.activities = None;
        let mut workers: Vec<Option<f64>> = v.probes["workers"].clone();
        for s in [40usize, 41, 42, 70, 71] {
            workers[s] = Some(2.0);
        }
        v.probes.insert("workers".into(), workers);
        for (i, start) in [39.5, 69.5].into_iter().enumerate() {
            v.faults.push(crate::analyze::view::FaultWindow {
                name: "kill".into(),
                id: format!("kill#{i}"),
                kind: "terminate-instances".into(),
                start,
                end: Some(start),
                targets: Vec::new(),
            });
        }
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        // Without the faults, the same dips are direction changes.
        v.faults.clear();
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    }

    #[test]
    fn not_evaluable_without_a_drain_or_data() {
        // The backlog never drained.
        assert_eq!(
            spec().evaluate("s", &view(160, 90, vec![])).status,
            Status::NotEvaluable
        );
        // No activities: the flapping leg reads the instance probe instead.
        let mut v = view(160, 300, vec![]);
        v.activities = None;
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(
            verdict.figures["activities_source"],
            "probe `workers` (running count)".into()
        );
        // Drained, but the run ended too soon to see the fleet at min.
        assert_eq!(
            spec().evaluate("s", &view(10_000, 150, vec![])).status,
            Status::NotEvaluable
        );
    }
}
