//! **drain**: after a fault ends, the backlog returns to its baseline within `within`;
//! compared with the predicted backlog / (capacity - arrival rate).
//! Formulas: `docs/promises.md#drain`.

use std::time::Duration;

use super::{missing, round3, second_of, secs};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams, median};

/// Parameters of a `drain` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    pub fault: String,
    /// The stream whose successes are the arrival rate (default: all).
    pub stream: Option<String>,
    pub depth: String,
    pub within: Duration,
    /// Processing capacity, per second.
    pub capacity: Option<f64>,
    pub tolerance: f64,
    pub baseline: Duration,
}

/// The keys of a `drain` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrain {
    /// The fault (its `name` in `[[fault]]`, or `<name>#<n>`). Required.
    fault: Option<toml::Spanned<String>>,
    /// Only this stream's successes are the arrival rate (default: all streams).
    stream: Option<toml::Spanned<String>>,
    /// The queue depth (backlog) probe. Required.
    depth: Option<toml::Spanned<String>>,
    /// Max drain time. Required.
    within: Option<toml::Spanned<String>>,
    /// Processing capacity (e.g. `"50/s"`), for the predicted drain time.
    capacity: Option<toml::Spanned<String>>,
    /// Depth counted as drained at or below baseline + tolerance (default 0).
    tolerance: Option<toml::Spanned<f64>>,
    /// Length of the baseline window before the first fault (default `60s`).
    baseline: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawDrain {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let tolerance = match &self.tolerance {
            Some(t) if *t.get_ref() < 0.0 => {
                r.error(t.span(), "must be >= 0");
                0.0
            }
            Some(t) => *t.get_ref(),
            None => 0.0,
        };
        let p = Drain {
            fault: r.required_name(RefKind::Fault, &self.fault, "fault"),
            stream: r.name(RefKind::Stream, &self.stream),
            depth: r.required_name(RefKind::Probe, &self.depth, "depth"),
            within: r.required_duration(&self.within, "within"),
            capacity: r.rate(&self.capacity),
            tolerance,
            baseline: r
                .duration(&self.baseline)
                .unwrap_or(Duration::from_secs(60)),
        };
        let name = format!("drain:{}", p.fault);
        (crate::analyze::spec::PromiseKind::Drain(p), name)
    }
}

impl Drain {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "drain");
        let Some(fault) = view.fault(&self.fault) else {
            return b.not_evaluable(missing(
                view,
                &format!("fault `{}` is not in the journal", self.fault),
                "journal",
            ));
        };
        let Some(t_e) = fault.end else {
            return b.not_evaluable(format!(
                "fault `{}` was never undone: there is no \"after\" to drain in",
                self.fault
            ));
        };
        if !view.probes.contains_key(&self.depth) {
            return b.not_evaluable(missing(
                view,
                &format!("no depth probe `{}`", self.depth),
                "probes",
            ));
        }
        let first = view.first_fault_start().unwrap_or(fault.start);
        let base_to = second_of(first);
        let base_from = base_to.saturating_sub(self.baseline.as_secs_f64().ceil() as usize);
        let base_values: Vec<f64> = view
            .probe_points(&self.depth, base_from, base_to)
            .iter()
            .map(|p| p.1)
            .collect();
        let Some(base) = median(&base_values) else {
            return b.not_evaluable(format!(
                "no `{}` sample before the first fault (at {}): no baseline depth",
                self.depth,
                secs(first)
            ));
        };
        let level = base + self.tolerance;
        let within = self.within.as_secs_f64();
        b.figure("fault_end_s", t_e)
            .figure("baseline_depth", base)
            .figure("drained_at_or_below", level);
        let s_e = second_of(t_e);
        let backlog = view.probe_before(&self.depth, s_e + 1).map(|p| p.1);
        let peak = view
            .probe_points(&self.depth, second_of(fault.start), view.len())
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, f64::max);
        b.figure("peak_depth", peak);
        let after = view.probe_points(&self.depth, s_e, view.len());
        let drained = after.iter().find(|(_, v)| *v <= level).map(|(s, _)| *s);
        let drain_end = drained.unwrap_or(view.len());
        // Predicted drain time: the backlog left at the fault's end, worked off at the spare
        // capacity (capacity minus the arrival rate while draining).
        if let Some(backlog) = backlog {
            b.figure("backlog_at_end", backlog);
            let arrivals = view.tally(
                Streams::from_option(self.stream.as_deref()),
                s_e,
                drain_end.max(s_e + 1),
            );
            let arrival_rate = arrivals.ok_rate().unwrap_or(0.0);
            b.figure("arrival_per_s", round3(arrival_rate));
            if let Some(c) = self.capacity {
                if c > arrival_rate {
                    b.figure(
                        "predicted_s",
                        round3((backlog - base).max(0.0) / (c - arrival_rate)),
                    );
                } else {
                    b.figure("predicted_s", "never: capacity <= arrival rate");
                }
            }
        }
        match drained {
            Some(s) => {
                let took = round3((s as f64 - t_e).max(0.0));
                b.window(t_e, s as f64).figure("drain_s", took);
                let status = if took <= within {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!("drained in {} (limit {})", secs(took), secs(within)),
                );
            }
            None => {
                b.window(t_e, view.end()).figure("drain_s", "not drained");
                let last = after.last().map_or(0.0, |p| p.0 as f64);
                if last >= t_e + within {
                    b.leg(
                        Status::Fail,
                        format!(
                            "depth still above {level} {} after the fault ended",
                            secs(last - t_e)
                        ),
                    );
                } else {
                    b.leg(
                        Status::NotEvaluable,
                        format!(
                            "depth samples end {} after the fault: too early to tell within {}",
                            secs((last - t_e).max(0.0)),
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
    use crate::analyze::view::{FaultWindow, Second};

    fn spec() -> Drain {
        Drain {
            fault: "stall".into(),
            stream: None,
            depth: "depth".into(),
            within: Duration::from_secs(30),
            capacity: Some(100.0),
            tolerance: 0.0,
            baseline: Duration::from_secs(60),
        }
    }

    /// Backlog builds to 1000 during 20..40, drains at `rate`/s from 40 on.
    fn view(rate: f64, len: usize, end: Option<f64>) -> RunView {
        let mut v = RunView::default();
        v.streams
            .insert("up".into(), vec![Second::simple(50, 0, 10.0); len]);
        v.probes.insert(
            "depth".into(),
            (0..len)
                .map(|s| {
                    Some(match s {
                        0..20 => 0.0,
                        20..40 => 50.0 * (s - 20) as f64,
                        _ => (1000.0 - rate * (s - 40) as f64).max(0.0),
                    })
                })
                .collect(),
        );
        v.faults.push(FaultWindow {
            name: "stall".into(),
            id: "stall#1".into(),
            kind: "stall-consumers".into(),
            start: 20.0,
            end,
            targets: vec![],
        });
        v
    }

    #[test]
    fn drains_in_time_and_against_the_prediction() {
        let v = spec().evaluate("d", &view(50.0, 120, Some(40.0)));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.figures["drain_s"], 20.0.into());
        // 1000 queued at the fault's end, 100/s capacity, 50/s arriving: 1000 / 50 = 20 s.
        assert_eq!(v.figures["predicted_s"], 20.0.into());
    }

    #[test]
    fn slow_drain_fails_or_is_not_evaluable_when_the_run_ends_first() {
        assert_eq!(
            spec().evaluate("d", &view(10.0, 120, Some(40.0))).status,
            Status::Fail
        );
        let v = spec().evaluate("d", &view(10.0, 60, Some(40.0)));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            spec().evaluate("d", &view(50.0, 120, None)).status,
            Status::NotEvaluable
        );
        let mut no_probe = view(50.0, 120, Some(40.0));
        no_probe.probes.clear();
        assert_eq!(spec().evaluate("d", &no_probe).status, Status::NotEvaluable);
    }

    // ---- The leg alone turns pass into fail (issue 10); `within` is 30 s.

    /// Depth `base` before the stall (20..40), 1000 from 20 until second `drained`, then
    /// `tail`; `len` seconds of samples.
    fn backlog(base: f64, drained: usize, tail: f64, len: usize) -> RunView {
        let mut v = view(0.0, len, Some(40.0));
        v.probes.insert(
            "depth".into(),
            (0..len)
                .map(|s| {
                    Some(if s < 20 {
                        base
                    } else if s < drained {
                        1000.0
                    } else {
                        tail
                    })
                })
                .collect(),
        );
        v
    }

    #[test]
    fn drain_time_alone_decides() {
        let v = spec().evaluate("d", &backlog(0.0, 70, 0.0, 120));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["drain_s"], 30.0.into());
        let v = spec().evaluate("d", &backlog(0.0, 71, 0.0, 120));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("drained in 31s (limit 30s)"));
    }

    #[test]
    fn the_drained_level_is_the_baseline_median_plus_tolerance() {
        // Baseline depth 10, tolerance 5: settling at 15 is drained, at 16 never is.
        let tolerant = Drain {
            tolerance: 5.0,
            ..spec()
        };
        let v = tolerant.evaluate("d", &backlog(10.0, 60, 15.0, 120));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["baseline_depth"], 10.0.into());
        assert_eq!(v.figures["drain_s"], 20.0.into());
        let v = tolerant.evaluate("d", &backlog(10.0, 60, 16.0, 120));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("depth still above 15 79s after the fault ended")
        );
    }

    #[test]
    fn not_drained_fails_only_once_samples_reach_the_limit() {
        // Never drained; the last sample is 30 s after the fault's end (fail) or 29 s.
        let v = spec().evaluate("d", &backlog(0.0, usize::MAX, 0.0, 71));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("depth still above 0 30s after the fault ended")
        );
        let v = spec().evaluate("d", &backlog(0.0, usize::MAX, 0.0, 70));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("depth samples end 29s after the fault: too early to tell within 30s")
        );
    }

    #[test]
    fn missing_data_is_not_evaluable_and_says_what() {
        let v = spec().evaluate("d", &backlog(0.0, 70, 0.0, 120));
        assert_eq!(v.status, Status::Pass);
        // Fault never undone.
        let mut open = backlog(0.0, 70, 0.0, 120);
        open.faults[0].end = None;
        let v = spec().evaluate("d", &open);
        assert_eq!(v.status, Status::NotEvaluable);
        assert_eq!(
            v.reason.as_deref(),
            Some("fault `stall` was never undone: there is no \"after\" to drain in")
        );
        // No depth sample before the first fault: no baseline depth.
        let mut blind = backlog(0.0, 70, 0.0, 120);
        for d in &mut blind.probes.get_mut("depth").unwrap()[..20] {
            *d = None;
        }
        let v = spec().evaluate("d", &blind);
        assert_eq!(v.status, Status::NotEvaluable);
        assert!(
            v.reason.as_deref().unwrap().contains("no baseline depth"),
            "{v:?}"
        );
        // No depth probe.
        let mut no_probe = backlog(0.0, 70, 0.0, 120);
        no_probe.probes.clear();
        let v = spec().evaluate("d", &no_probe);
        assert_eq!(v.reason.as_deref(), Some("no depth probe `depth`"));
    }
}
