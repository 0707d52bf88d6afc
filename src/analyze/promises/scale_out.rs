//! **scale-out**: every time backlog per instance crosses the policy target, the fleet
//! answers within `within`: capacity reaches what the backlog calls for
//! (`ceil(depth / target)`, bounded by a declared `max`), or the backlog per instance falls
//! back under the target. A fleet pinned at its `max` while the backlog keeps growing fails
//! too. Every breach is a leg; the worst decides. Formulas: `docs/promises.md#scale-out`.
//!
//! The older form (`n = ...`) asks instead that each breach add `n` instances.

use std::time::Duration;

use super::{missing, round3, secs};
use crate::analyze::verdict::{Builder, Figure, Status, Verdict};
use crate::analyze::view::{ActivityKind, RunView};

/// Most breaches listed one by one in a verdict's legs (the rest are summed up).
const LISTED_BREACHES: usize = 5;

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
    /// The older form: instances each breach must add (`None`: the capacity form).
    pub n: Option<u32>,
    /// The group's maximum capacity, when declared: at `max` the fleet has done all it can
    /// for a breach, but a backlog that keeps growing there fails the capacity leg.
    pub max: Option<u32>,
    pub within: Duration,
}

/// One sampled second: both probes have a value.
#[derive(Debug, Clone, Copy)]
struct Point {
    s: usize,
    instances: f64,
    depth: f64,
}

/// One breach: from the first second over the target to the second it was answered.
#[derive(Debug, Clone)]
struct Breach {
    start: usize,
    instances: f64,
    depth: f64,
    /// The second the fleet answered, and how.
    answered: Option<(usize, Answer)>,
    /// Most instances the backlog called for during the breach (bounded by `max`).
    needed: f64,
    /// Most instances seen during the breach.
    peak: f64,
    /// The last sampled second of the breach (or of the run, when never answered).
    last: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// Backlog per instance back at or under the target.
    UnderTarget,
    /// Capacity at the declared `max`.
    AtMax,
    /// (older form) `n` instances added.
    Grew,
}

impl ScaleOut {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "scale-out");
        for probe in [&self.instances, &self.depth] {
            if !view.probes.contains_key(probe) {
                return b.not_evaluable(missing(view, &format!("no probe `{probe}`"), "probes"));
            }
        }
        let points: Vec<Point> = (0..view.len())
            .filter_map(|s| {
                Some(Point {
                    s,
                    instances: view.probes[&self.instances].get(s).copied().flatten()?,
                    depth: view.probes[&self.depth].get(s).copied().flatten()?,
                })
            })
            .collect();
        let breaches = self.breaches(&points);
        let Some(first) = breaches.first() else {
            return b.not_evaluable(format!(
                "backlog per instance never exceeded the target {}: nothing to scale out for",
                self.target
            ));
        };
        let within = self.within.as_secs_f64();
        let last_sample = points.last().map_or(0, |p| p.s);
        b.figure("breaches", breaches.len() as u64)
            .figure("breach_s", first.start as f64)
            .figure("instances_at_breach", first.instances);
        if let Some(max) = self.max {
            b.figure("max", f64::from(max));
        }
        self.first_breach_legs(&mut b, view, first);
        // Every breach as evidence: `<start>s:<response>s` (or `never`), at most 50.
        let listed: Vec<String> = breaches
            .iter()
            .take(50)
            .map(|br| match br.answered {
                Some((s, _)) => format!("{}s:{}s", br.start, s - br.start),
                None => format!("{}s:never", br.start),
            })
            .collect();
        b.figure("breach_responses", listed.join(" "));

        // Judge every breach: answered in time, late, never, or too early to tell.
        let judged: Vec<(Status, Option<f64>, String)> = breaches
            .iter()
            .map(|breach| self.judge(breach, within, last_sample))
            .collect();
        let worst = judged
            .iter()
            .zip(&breaches)
            .filter_map(|((_, took, _), breach)| took.map(|t| (t, breach)))
            // The first of the slowest.
            .fold(None, |w: Option<(f64, &Breach)>, x| match w {
                Some((t, _)) if x.0 <= t => w,
                _ => Some(x),
            });
        let passes: Vec<f64> = judged
            .iter()
            .filter(|(status, _, _)| *status == Status::Pass)
            .map(|(_, took, _)| took.unwrap_or(0.0))
            .collect();
        let others: Vec<&(Status, Option<f64>, String)> = judged
            .iter()
            .filter(|(status, _, _)| *status != Status::Pass)
            .collect();
        for (status, _, text) in others.iter().take(LISTED_BREACHES) {
            b.leg(*status, text.clone());
        }
        if let Some(rest) = others.get(LISTED_BREACHES..).filter(|r| !r.is_empty()) {
            let status = crate::analyze::verdict::combine(rest.iter().map(|(s, _, _)| *s));
            b.leg(
                status,
                format!(
                    "{} more breaches not answered in time (see breach_responses)",
                    rest.len()
                ),
            );
        }
        if !passes.is_empty() {
            let slowest = passes.iter().copied().fold(0.0, f64::max);
            b.leg(
                Status::Pass,
                if breaches.len() == 1 {
                    judged[0].2.clone()
                } else {
                    format!(
                        "{} of {} breaches answered within {} (slowest {})",
                        passes.len(),
                        breaches.len(),
                        secs(within),
                        secs(slowest)
                    )
                },
            );
        }
        match worst {
            Some((t, breach)) => {
                b.figure("worst_response_s", round3(t))
                    .window(breach.start as f64, (breach.start as f64 + t).max(0.0));
            }
            None => {
                b.figure("worst_response_s", "not answered")
                    .window(first.start as f64, view.end());
            }
        }
        self.growth_at_max(&mut b, view, &points);
        b.finish()
    }

    fn over(&self, p: &Point) -> bool {
        if p.instances < 1.0 {
            p.depth > 0.0
        } else {
            p.depth / p.instances > self.target
        }
    }

    /// Instances the backlog calls for: `ceil(depth / target)`, at least 1, at most `max`.
    fn needed(&self, depth: f64) -> f64 {
        let n = (depth / self.target).ceil().max(1.0);
        match self.max {
            Some(max) => n.min(f64::from(max)),
            None => n,
        }
    }

    /// Splits the run into breaches: a breach is a stretch of samples over the target (it
    /// starts at a sample over the target after one that was not, or at the first sample).
    /// It is answered at its first sample with `n` more instances (older form) or at the
    /// declared `max` (capacity form), else when backlog per instance falls back under the
    /// target, which also ends it.
    fn breaches(&self, points: &[Point]) -> Vec<Breach> {
        let mut out: Vec<Breach> = Vec::new();
        let mut open: Option<Breach> = None;
        for p in points {
            if !self.over(p) {
                if let Some(mut breach) = open.take() {
                    breach.last = p.s;
                    breach.answered.get_or_insert((p.s, Answer::UnderTarget));
                    out.push(breach);
                }
                continue;
            }
            let breach = open.get_or_insert(Breach {
                start: p.s,
                instances: p.instances,
                depth: p.depth,
                answered: None,
                needed: 0.0,
                peak: p.instances,
                last: p.s,
            });
            breach.last = p.s;
            breach.peak = breach.peak.max(p.instances);
            if breach.answered.is_some() {
                continue;
            }
            breach.needed = breach.needed.max(self.needed(p.depth));
            let at_max = self.max.is_some_and(|m| p.instances >= f64::from(m));
            let grew = self
                .n
                .is_some_and(|n| p.instances >= breach.instances + f64::from(n));
            let answer = if at_max {
                Some(Answer::AtMax)
            } else {
                grew.then_some(Answer::Grew)
            };
            if let Some(answer) = answer {
                breach.answered = Some((p.s, answer));
            }
        }
        out.extend(open);
        out
    }

    /// A breach's status, response time and one line.
    fn judge(&self, b: &Breach, within: f64, last_sample: usize) -> (Status, Option<f64>, String) {
        let at = secs(b.start as f64);
        match b.answered {
            Some((s, how)) => {
                let took = (s - b.start) as f64;
                let what = match how {
                    Answer::UnderTarget => format!(
                        "backlog per instance back under {} with {} instances",
                        self.target, b.peak
                    ),
                    Answer::AtMax => format!("{} -> {} instances (max)", b.instances, b.peak),
                    Answer::Grew => format!(
                        "{} -> {} instances",
                        b.instances,
                        b.instances + f64::from(self.n.unwrap_or(0))
                    ),
                };
                let status = if took <= within {
                    Status::Pass
                } else {
                    Status::Fail
                };
                (
                    status,
                    Some(took),
                    format!(
                        "breach at {at}: {what} {} after it (limit {})",
                        secs(took),
                        secs(within)
                    ),
                )
            }
            None if (last_sample as f64) >= b.start as f64 + within => {
                let grew = (b.depth, b.last);
                let text = match self.n {
                    Some(n) => format!(
                        "breach at {at}: capacity stayed below {} for {} (peak {})",
                        b.instances + f64::from(n),
                        secs((b.last - b.start) as f64),
                        b.peak
                    ),
                    None => format!(
                        "breach at {at}: capacity peaked at {} instances; the backlog called for {}{}; \
                         over the target for {} (backlog {} at the breach)",
                        b.peak,
                        b.needed,
                        self.max.map_or(String::new(), |m| format!(" (max {m})")),
                        secs((grew.1 - b.start) as f64),
                        grew.0
                    ),
                };
                (Status::Fail, None, text)
            }
            None => (
                Status::NotEvaluable,
                None,
                format!(
                    "breach at {at}: samples end {} after it: too early to tell within {}",
                    secs(last_sample.saturating_sub(b.start) as f64),
                    secs(within)
                ),
            ),
        }
    }

    /// Figures for the first breach's legs: desired change, launch, first job done.
    fn first_breach_legs(&self, b: &mut Builder, view: &RunView, first: &Breach) {
        let t_x = first.start;
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
        let number_or_none = |v: Option<f64>| v.map_or(Figure::from("none"), Figure::Number);
        match &view.activities {
            None => {
                // Derived from the instance probe: the first rise of the running count.
                let rise = view
                    .probe_points(&self.instances, t_x, view.len())
                    .iter()
                    .find(|(_, v)| *v > first.instances)
                    .map(|(s, _)| (s - t_x) as f64);
                b.figure("desired_change_s", "no activities recorded")
                    .figure("capacity_rise_s", number_or_none(rise))
                    .figure("activities_source", format!("probe `{}`", self.instances));
            }
            Some(_) => {
                b.figure(
                    "desired_change_s",
                    number_or_none(after(ActivityKind::Scaling)),
                )
                .figure("launch_s", number_or_none(after(ActivityKind::Launch)));
            }
        }
        if let Some((s, _)) = first.answered {
            b.figure("running_s", (s - t_x) as f64);
            if let Some(l) = &view.ledger {
                let first_job = l
                    .completions_per_s
                    .iter()
                    .enumerate()
                    .skip(t_x)
                    .find(|(_, n)| **n > 0)
                    .map(|(j, _)| (j - t_x) as f64);
                b.figure("first_job_done_s", number_or_none(first_job));
            }
        } else {
            b.figure("running_s", "not reached");
        }
    }

    /// The capacity leg: the fleet at its declared `max`, over the target, with the backlog
    /// growing for longer than `within` outside every fault window, means the max is below
    /// what the load needs. (During a fault the consumers may be impaired on purpose.)
    fn growth_at_max(&self, b: &mut Builder, view: &RunView, points: &[Point]) {
        let Some(max) = self.max else { return };
        let max = f64::from(max);
        let in_fault = |s: usize| {
            view.faults.iter().any(|f| {
                let end = f.end.unwrap_or(f64::INFINITY);
                (s as f64) + 1.0 > f.start && (s as f64) < end
            })
        };
        // Longest stretch of consecutive samples at max, over the target, outside faults.
        let mut best: Option<(usize, usize, f64, f64, f64)> = None; // (from, to, d0, d1, needed)
        let mut run: Option<(usize, usize, f64, f64, f64)> = None;
        for p in points {
            if p.instances >= max && self.over(p) && !in_fault(p.s) {
                let needed = (p.depth / self.target).ceil();
                run = Some(match run {
                    Some((from, _, d0, _, n)) => (from, p.s, d0, p.depth, n.max(needed)),
                    None => (p.s, p.s, p.depth, p.depth, needed),
                });
            } else {
                run = None;
            }
            if let Some(r) = run
                && best.is_none_or(|b| r.1 - r.0 > b.1 - b.0)
            {
                best = Some(r);
            }
        }
        let Some((from, to, d0, d1, needed)) = best else {
            return;
        };
        let length = (to - from) as f64;
        b.figure("at_max_over_target_s", length);
        if length > self.within.as_secs_f64() && d1 > d0 {
            b.leg(
                Status::Fail,
                format!(
                    "capped at {max} instances (max) from {}: the backlog needed {needed}; \
                     it grew from {d0} to {d1} over {}",
                    secs(from as f64),
                    secs(length)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{Activity, FaultWindow};

    fn spec() -> ScaleOut {
        ScaleOut {
            group: Some("workers".into()),
            instances: "workers".into(),
            depth: "depth".into(),
            target: 100.0,
            n: Some(2),
            max: None,
            within: Duration::from_secs(60),
        }
    }

    fn capacity(max: Option<u32>) -> ScaleOut {
        ScaleOut {
            n: None,
            max,
            ..spec()
        }
    }

    fn series(len: usize, f: impl Fn(usize) -> f64) -> Vec<Option<f64>> {
        (0..len).map(|s| Some(f(s))).collect()
    }

    /// Backlog ramps from second 10; instances 1 until `grow_at`, then 4.
    fn view(grow_at: Option<usize>, len: usize) -> RunView {
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            series(len, |s| if s < 10 { 0.0 } else { 30.0 * (s - 10) as f64 }),
        );
        v.probes.insert(
            "workers".into(),
            series(len, |s| {
                if grow_at.is_some_and(|g| s >= g) {
                    4.0
                } else {
                    1.0
                }
            }),
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

    /// Issue 10: a fleet capped far below the demand passed (`0 -> 1 instances 2s after the
    /// breach`) while the backlog grew for the whole run: only the first breach was judged,
    /// and only "+n instances".
    #[test]
    fn a_fleet_capped_below_the_load_fails_every_form_but_the_simple_one() {
        let len = 90;
        let mut v = RunView::default();
        // 0 workers, then 1 from second 3; the backlog grows 8/s the whole run.
        v.probes
            .insert("depth".into(), series(len, |s| 8.0 * s as f64));
        v.probes.insert(
            "workers".into(),
            series(len, |s| if s < 3 { 0.0 } else { 1.0 }),
        );
        let spec = ScaleOut {
            target: 20.0,
            within: Duration::from_secs(30),
            ..capacity(Some(8))
        };
        let verdict = spec.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        let reason = verdict.reason.unwrap();
        assert!(
            reason.contains("capacity peaked at 1 instances; the backlog called for 8 (max 8)"),
            "{reason}"
        );
        // Declaring the real cap (max 1) moves the failure to the capacity leg.
        let capped = ScaleOut {
            max: Some(1),
            ..spec.clone()
        };
        let verdict = capped.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        let reason = verdict.reason.unwrap();
        assert!(reason.contains("capped at 1 instances (max)"), "{reason}");
        assert!(reason.contains("the backlog needed 36"), "{reason}");
        // The older "+n" form only asks for n more instances per breach: 0 -> 1 answers
        // the one long breach, so it cannot tell a capped fleet (documented).
        let simple = ScaleOut {
            n: Some(1),
            max: None,
            ..spec
        };
        let verdict = simple.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
    }

    #[test]
    fn every_breach_is_judged_and_the_worst_decides() {
        // Two bursts: the first answered in 5 s, the second never (the fleet stays at 2).
        let len = 200;
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            series(len, |s| match s {
                10..=30 => 500.0,
                100..=199 => 900.0,
                _ => 0.0,
            }),
        );
        v.probes.insert(
            "workers".into(),
            series(len, |s| if (15..100).contains(&s) { 6.0 } else { 2.0 }),
        );
        let verdict = capacity(None).evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert_eq!(verdict.figures["breaches"], 2u64.into());
        assert!(verdict.reason.unwrap().contains("breach at 100s"));
        // Answer the second one in 20 s: pass, and both are counted.
        v.probes.insert(
            "workers".into(),
            series(len, |s| {
                if (15..100).contains(&s) || s >= 120 {
                    10.0
                } else {
                    2.0
                }
            }),
        );
        let verdict = capacity(None).evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert!(
            verdict
                .summary
                .contains("2 of 2 breaches answered within 60s (slowest 20s)")
        );
        assert_eq!(verdict.figures["worst_response_s"], 20.0.into());
        assert_eq!(
            verdict.figures["breach_responses"],
            "10s:5s 100s:20s".into()
        );
        // Answered, but in 70 s: too slow.
        v.probes.insert(
            "workers".into(),
            series(len, |s| {
                if (15..100).contains(&s) || s >= 170 {
                    10.0
                } else {
                    2.0
                }
            }),
        );
        let verdict = capacity(None).evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert!(verdict.reason.unwrap().contains("70s after it (limit 60s)"));
    }

    #[test]
    fn reaching_max_answers_a_breach_and_growth_during_a_fault_is_not_blamed() {
        // A stall (fault over 20..80) grows the backlog while the fleet sits at max 4.
        let len = 120;
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            series(len, |s| match s {
                20..=80 => 50.0 * (s - 19) as f64,
                81..=90 => 400.0,
                _ => 0.0,
            }),
        );
        v.probes.insert(
            "workers".into(),
            series(len, |s| if s >= 25 { 4.0 } else { 1.0 }),
        );
        v.faults.push(FaultWindow {
            id: "stall#0".into(),
            name: "stall".into(),
            kind: "stall-consumers".into(),
            start: 20.0,
            end: Some(80.0),
            targets: Vec::new(),
        });
        let spec = ScaleOut {
            within: Duration::from_secs(30),
            ..capacity(Some(4))
        };
        let verdict = spec.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        // Without the fault, 60 s at max with a growing backlog is a capped fleet.
        v.faults.clear();
        let verdict = spec.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
        assert!(verdict.reason.unwrap().contains("capped at 4 instances"));
    }

    /// A stall holds the backlog up whatever the capacity; excusing its seconds let a fixed
    /// fleet pass (caught by the fixed-fleet scenario of tests/analyze.rs). With `max`
    /// declared, a healthy fleet answers during the stall by reaching it.
    #[test]
    fn a_stall_does_not_excuse_a_fleet_that_never_grew() {
        let len = 120;
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            series(len, |s| if (20..58).contains(&s) { 600.0 } else { 0.0 }),
        );
        v.probes.insert("workers".into(), series(len, |_| 1.0));
        v.faults.push(FaultWindow {
            id: "stall#0".into(),
            name: "stall".into(),
            kind: "stall-consumers".into(),
            start: 20.0,
            end: Some(50.0),
            targets: Vec::new(),
        });
        let spec = ScaleOut {
            within: Duration::from_secs(15),
            ..capacity(Some(4))
        };
        assert_eq!(spec.evaluate("s", &v).status, Status::Fail);
        // The healthy fleet reaches its max 5 s into the stall.
        v.probes.insert(
            "workers".into(),
            series(len, |s| if s >= 25 { 4.0 } else { 1.0 }),
        );
        let verdict = spec.evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
    }

    #[test]
    fn without_activities_the_rise_comes_from_the_instance_probe() {
        let mut v = view(Some(40), 120);
        v.activities = None;
        let verdict = spec().evaluate("s", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.figures["capacity_rise_s"], 26.0.into());
        assert_eq!(
            verdict.figures["activities_source"],
            "probe `workers`".into()
        );
    }
}
