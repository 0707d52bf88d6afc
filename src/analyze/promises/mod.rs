//! One module per promise type: its validated parameters and its pure `evaluate`.
//!
//! Adding a promise: a module here with a parameter struct and
//! `fn evaluate(&self, name: &str, view: &RunView) -> Verdict`, a variant in
//! [`super::spec::PromiseKind`] with its keys in `spec::TYPES`, a section in
//! `docs/promises.md`, and its tests.

pub mod buffering;
pub mod cost;
pub mod drain;
pub mod failover;
pub mod function;
pub mod idle;
pub mod independent_scaling;
pub mod isolation;
pub mod no_loss;
pub mod scale_in;
pub mod scale_out;
pub mod threshold;

use super::spec::{Promise, PromiseKind};
use super::verdict::{Figure, Status, Verdict};
use super::view::RunView;

/// Harness lag (ms) above which a second counts as starved: the harness woke a tenth of a
/// second late, so what it timed in that second (send times, latencies, probe samples) may
/// be its own delay rather than the system's.
pub const STARVED_LAG_MS: f64 = 100.0;

/// The machine's busy CPU share (`harness.csv` `cpu_busy`) from which a second counts as
/// saturated: no idle cycle left for the harness's own work (reading responses, timing
/// them), nor for the system when it runs on the same machine (the sandbox, a local
/// target), whatever the heartbeat caught. Load generators give the same advice: past this
/// the load generator is the bottleneck and its figures are not the system's.
pub const SATURATED_CPU: f64 = 0.98;

/// Where a probe that should be a cumulative counter (invocations, throttles, billed
/// GB-seconds) went down, as the reason its figures cannot be trusted: a series that falls
/// is a per-period figure (a CloudWatch `Sum`) or a counter reset mid-run, and a total or a
/// slope read from it would be a guess (a per-period sum is flat within its period: a zero
/// slope that looks idle while it bills). `points` are `(second, value)` in order.
pub fn not_a_counter(probe: &str, points: &[(usize, f64)]) -> Option<String> {
    let w = points.windows(2).find(|w| w[1].1 < w[0].1)?;
    Some(format!(
        "probe `{probe}` went down (from {} at {}s to {} at {}s): this needs a cumulative \
         counter, like the sandbox bus's; a per-period figure (a CloudWatch `Sum`: give its \
         probe `cumulative = true`) or a counter reset mid-run is not one",
        w[0].1, w[0].0, w[1].1, w[1].0
    ))
}

/// Evaluates one promise against a run. A timing promise that failed while the harness was
/// starved within its evidence window (its heartbeat late, or the machine saturated) is
/// reported not evaluable, with the figures: a healthy system must never fail for the
/// harness's sake.
pub fn evaluate(promise: &Promise, view: &RunView) -> Verdict {
    let verdict = evaluate_unguarded(promise, view);
    let timing = !matches!(promise.kind, PromiseKind::NoLoss(_) | PromiseKind::Cost(_));
    if !timing || verdict.status != Status::Fail {
        return verdict;
    }
    let [from, to] = verdict.window.unwrap_or([0.0, view.end()]);
    if let Some((lag, second)) = view.harness_lag(from, to).filter(|l| l.0 > STARVED_LAG_MS) {
        let why = format!("its heartbeat woke {lag:.0} ms late at {second}s");
        return starved(verdict, &why, ("harness_lag_max_ms", lag));
    }
    if let Some((busy, second)) = view
        .harness_cpu_busy(from, to)
        .filter(|b| b.0 >= SATURATED_CPU)
    {
        let why = format!(
            "the machine's CPU was {:.0}% busy at {second}s",
            busy * 100.0
        );
        return starved(verdict, &why, ("harness_cpu_busy_max", busy));
    }
    verdict
}

/// Turns a failed verdict into a not-evaluable one that says why and what it would have
/// been; `figure` is the evidence (name, value).
fn starved(mut verdict: Verdict, why: &str, figure: (&str, f64)) -> Verdict {
    let was = verdict
        .reason
        .take()
        .unwrap_or_else(|| verdict.summary.clone());
    verdict.status = Status::NotEvaluable;
    verdict
        .figures
        .insert(figure.0.into(), Figure::Number(round3(figure.1)));
    verdict.reason = Some(format!(
        "the harness itself was starved in the evidence window ({why}, harness.csv), so its \
         timings cannot be blamed on the system; rerun on a quieter machine (measured: {was})"
    ));
    verdict.summary = format!("harness starved ({why}): {}", verdict.summary);
    verdict
}

fn evaluate_unguarded(promise: &Promise, view: &RunView) -> Verdict {
    let name = promise.name.as_str();
    match &promise.kind {
        PromiseKind::Failover(p) => p.evaluate(name, view),
        PromiseKind::Buffering(p) => p.evaluate(name, view),
        PromiseKind::NoLoss(p) => p.evaluate(name, view),
        PromiseKind::Drain(p) => p.evaluate(name, view),
        PromiseKind::ScaleOut(p) => p.evaluate(name, view),
        PromiseKind::ScaleIn(p) => p.evaluate(name, view),
        PromiseKind::Threshold(p) => p.evaluate(name, view),
        PromiseKind::Cost(p) => p.evaluate(name, view),
        PromiseKind::Function(p) => p.evaluate(name, view),
        PromiseKind::Isolation(p) => p.evaluate(name, view),
        PromiseKind::IndependentScaling(p) => p.evaluate(name, view),
        PromiseKind::Idle(p) => p.evaluate(name, view),
    }
}

/// When the load ran, in seconds from the run's start ([`load_span`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoadSpan {
    /// The start of the first stage with arrivals.
    pub start: f64,
    /// The end of the last stage with arrivals: "the load ends".
    pub end: f64,
    /// Where the span comes from, for figures.
    pub source: &'static str,
}

/// When the load ran. **The load ends** at the end of the profile's schedule: the end of the
/// last stage, of any stream, whose arrival rate is not zero at both ends (`run.json`; a
/// trailing `0/s -> 0/s` stage is a pause, not load). Without the schedule (a run written by
/// another tool), at the end of the last second of `timeline.csv` with intended sends. The
/// start is the start of the first such stage (the first second with intended sends).
/// Requests still in flight at the end are the system's to finish, not more load. `None`
/// when the run shows no load at all.
pub(crate) fn load_span(view: &RunView) -> Option<LoadSpan> {
    let active = || {
        view.phases
            .iter()
            .filter(|p| p.end > p.start && (p.from_rate > 0.0 || p.to_rate > 0.0))
    };
    let start = active().map(|p| p.start).min_by(f64::total_cmp);
    let end = active().map(|p| p.end).max_by(f64::total_cmp);
    if let (Some(start), Some(end)) = (start, end) {
        return Some(LoadSpan {
            start,
            end,
            source: "the profile's schedule (run.json)",
        });
    }
    let busy = |s: usize| {
        view.streams
            .values()
            .any(|v| v.get(s).is_some_and(|s| s.intended > 0))
    };
    let len = view.len();
    let first = (0..len).find(|&s| busy(s))?;
    let last = (0..len).rev().find(|&s| busy(s))?;
    Some(LoadSpan {
        start: first as f64,
        end: (last + 1) as f64,
        source: "the last intended send (timeline.csv)",
    })
}

/// The second holding time `t` (floor; negative times are second 0).
pub(crate) fn second_of(t: f64) -> usize {
    t.max(0.0).floor() as usize
}

/// The first whole second starting at or after `t`.
pub(crate) fn second_from(t: f64) -> usize {
    t.max(0.0).ceil() as usize
}

/// `12.0s`-style formatting for summaries.
pub(crate) fn secs(t: f64) -> String {
    format!("{t:.0}s")
}

/// A missing-data reason that mentions why the view lacks it, when the loader said.
pub(crate) fn missing(view: &RunView, what: &str, file: &str) -> String {
    match view.notes.iter().find(|n| n.contains(file)) {
        Some(note) => format!("{what} ({note})"),
        None => what.to_string(),
    }
}

/// Rounds to milliseconds, so figures read cleanly (`2.8`, not `2.8000000000000007`).
pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analyze::promises::no_loss::NoLoss;
    use crate::analyze::promises::scale_out::ScaleOut;
    use crate::analyze::view::{Accepted, Ledger};

    /// A fleet that never answers a breach at 1 s; `lag` ms of harness lag at second `at`.
    fn capped(lag: Option<(usize, f64)>) -> RunView {
        let len = 60;
        let mut v = RunView::default();
        v.probes.insert(
            "depth".into(),
            (0..len).map(|s| Some(50.0 * s as f64)).collect(),
        );
        v.probes.insert("n".into(), vec![Some(1.0); len]);
        v.harness_lag_ms = Some(
            (0..len)
                .map(|s| {
                    Some(if lag.is_some_and(|l| l.0 == s) {
                        lag.unwrap().1
                    } else {
                        0.5
                    })
                })
                .collect(),
        );
        v.ledger = Some(Ledger::build(&accepted(), &[], Some(0)));
        v
    }

    fn accepted() -> Vec<Accepted> {
        (0..10)
            .map(|i| Accepted {
                id: format!("r-0-{i}"),
                stream: "s".into(),
                t_ms: i,
            })
            .collect()
    }

    fn promise(kind: PromiseKind) -> Promise {
        Promise {
            name: "p".into(),
            kind,
        }
    }

    fn scale_out() -> Promise {
        promise(PromiseKind::ScaleOut(ScaleOut {
            group: None,
            instances: "n".into(),
            depth: "depth".into(),
            target: 10.0,
            n: None,
            max: None,
            within: Duration::from_secs(20),
        }))
    }

    #[test]
    fn a_starved_harness_turns_a_timing_fail_into_not_evaluable() {
        let quiet = evaluate(&scale_out(), &capped(None));
        assert_eq!(quiet.status, Status::Fail, "{quiet:?}");
        // 40 ms late: a busy machine, not a starved harness.
        let busy = evaluate(&scale_out(), &capped(Some((12, 40.0))));
        assert_eq!(busy.status, Status::Fail, "{busy:?}");
        let starved = evaluate(&scale_out(), &capped(Some((12, 350.0))));
        assert_eq!(starved.status, Status::NotEvaluable, "{starved:?}");
        let reason = starved.reason.unwrap();
        assert!(reason.contains("woke 350 ms late at 12s"), "{reason}");
        assert!(
            starved.summary.starts_with("harness starved ("),
            "{}",
            starved.summary
        );
        assert!(reason.contains("capacity peaked at 1"), "{reason}");
        assert_eq!(starved.figures["harness_lag_max_ms"], 350.0.into());
    }

    #[test]
    fn a_saturated_machine_turns_a_timing_fail_into_not_evaluable() {
        let mut view = capped(None);
        let mut busy = vec![Some(0.6); view.len()];
        busy[7] = Some(0.97);
        view.harness_cpu_busy = Some(busy.clone());
        // Busy but not saturated: the fail stands.
        assert_eq!(evaluate(&scale_out(), &view).status, Status::Fail);
        busy[7] = Some(1.0);
        view.harness_cpu_busy = Some(busy);
        let v = evaluate(&scale_out(), &view);
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert!(
            v.summary.contains("CPU was 100% busy at 7s"),
            "{}",
            v.summary
        );
        assert_eq!(v.figures["harness_cpu_busy_max"], 1.0.into());
        // A pass is never touched.
        let mut fine = capped(None);
        fine.harness_cpu_busy = Some(vec![Some(1.0); fine.len()]);
        // A breach at 1 s answered at 5 s: ten instances for a backlog of 50.
        let n = (0..fine.len()).map(|s| Some(if s < 5 { 1.0 } else { 10.0 }));
        fine.probes.insert("n".into(), n.collect());
        fine.probes
            .insert("depth".into(), vec![Some(50.0); fine.len()]);
        assert_eq!(evaluate(&scale_out(), &fine).status, Status::Pass);
    }

    #[test]
    fn starvation_never_touches_a_ledger_promise() {
        let lossy = promise(PromiseKind::NoLoss(NoLoss {
            allow_duplicates: true,
        }));
        // Not one completion: not evaluable either way; add one to make it a real loss.
        let mut view = capped(Some((5, 900.0)));
        let done = [crate::analyze::view::Completion {
            id: "r-0-0".into(),
            done_ms: 100,
            outcome: crate::analyze::view::Outcome::Completed,
            receive_count: 1,
        }];
        view.ledger = Some(Ledger::build(&accepted(), &done, Some(0)));
        assert_eq!(evaluate(&lossy, &view).status, Status::Fail);
    }
}
