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

/// The keys of a `scale-out` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaleOut {
    /// The group in `activities.jsonl` (default: any group).
    group: Option<toml::Spanned<String>>,
    /// The probe counting running instances. Required.
    instances: Option<toml::Spanned<String>>,
    /// The queue depth (backlog) probe. Required.
    depth: Option<toml::Spanned<String>>,
    /// The policy's target backlog per instance. Required.
    target: Option<toml::Spanned<f64>>,
    /// The older form: instances each breach must add. Without it, each breach must be
    /// answered by capacity that brings backlog per instance under `target` (or reaches `max`).
    n: Option<toml::Spanned<u32>>,
    /// The group's maximum capacity. At `max` a breach is answered (the policy can do no
    /// more), but a backlog that keeps growing there for longer than `within` (outside fault
    /// windows) fails: the max is below what the load needs.
    max: Option<toml::Spanned<u32>>,
    /// Max time from breach to added capacity. Required.
    within: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawScaleOut {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        if self.target.is_none() {
            r.missing("target");
        }
        for (key, v) in [("n", &self.n), ("max", &self.max)] {
            if let Some(v) = v
                && *v.get_ref() == 0
            {
                r.error(v.span(), format!("`{key}` must be at least 1"));
            }
        }
        let p = ScaleOut {
            group: r.string(&self.group),
            instances: r.required_name(RefKind::Probe, &self.instances, "instances"),
            depth: r.required_name(RefKind::Probe, &self.depth, "depth"),
            target: r.positive(&self.target, 1.0),
            n: r.value(&self.n),
            max: r.value(&self.max),
            within: r.required_duration(&self.within, "within"),
        };
        let name = match &p.group {
            Some(g) => format!("scale-out:{g}"),
            None => "scale-out".into(),
        };
        (crate::analyze::spec::PromiseKind::ScaleOut(p), name)
    }
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
mod tests;
