//! **buffering**: while consumers are stalled, producers keep succeeding at the usual
//! latency and the queue absorbs the work. Formulas: `docs/promises.md#buffering`.

use std::time::Duration;

use super::{missing, round3, second_from, second_of, secs};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams, slope};

/// Parameters of a `buffering` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Buffering {
    /// The stall fault.
    pub fault: String,
    pub stream: Option<String>,
    pub eps: f64,
    pub k: f64,
    /// Queue depth probe.
    pub depth: String,
    pub baseline: Duration,
}

/// The keys of a `buffering` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuffering {
    /// The fault (its `name` in `[[fault]]`, or `<name>#<n>`). Required.
    fault: Option<toml::Spanned<String>>,
    /// Only this stream's traffic (default: all streams).
    stream: Option<toml::Spanned<String>>,
    /// Tolerance on the producer success rate and the depth slope (default 0.05): a
    /// fraction, or `"5%"`.
    eps: Option<toml::Spanned<crate::analyze::spec::Ratio>>,
    /// Allowed factor on the baseline p99 (default 2.0).
    k: Option<toml::Spanned<f64>>,
    /// The queue depth (backlog) probe. Required.
    depth: Option<toml::Spanned<String>>,
    /// Length of the baseline window before the first fault (default `60s`).
    baseline: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawBuffering {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let p = Buffering {
            fault: r.required_name(RefKind::Fault, &self.fault, "fault"),
            stream: r.name(RefKind::Stream, &self.stream),
            eps: self.eps.as_ref().map_or(0.05, |e| e.get_ref().0),
            k: r.positive(&self.k, 2.0),
            depth: r.required_name(RefKind::Probe, &self.depth, "depth"),
            baseline: r
                .duration(&self.baseline)
                .unwrap_or(Duration::from_secs(60)),
        };
        let name = format!("buffering:{}", p.fault);
        (crate::analyze::spec::PromiseKind::Buffering(p), name)
    }
}

impl Buffering {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "buffering");
        let streams = Streams::from_option(self.stream.as_deref());
        let Some(fault) = view.fault(&self.fault) else {
            return b.not_evaluable(missing(
                view,
                &format!("fault `{}` is not in the journal", self.fault),
                "journal",
            ));
        };
        let t_s = fault.start;
        let t_e = match fault.end {
            Some(e) => e,
            None => {
                b.figure("fault_never_undone", "true");
                view.end()
            }
        };
        // Whole seconds inside the stall.
        let (from, to) = (second_from(t_s), second_of(t_e));
        b.window(t_s, t_e).figure("stall_s", round3(t_e - t_s));
        if to < from + 2 {
            return b.not_evaluable(format!(
                "the stall covers fewer than 2 whole seconds of the run ({}..{})",
                secs(t_s),
                secs(t_e)
            ));
        }
        let tally = view.tally(streams, from, to);
        // 1. Producers keep succeeding.
        let accepted_rate = tally.ok as f64 / (to - from) as f64;
        b.figure("accepted_per_s", round3(accepted_rate));
        match tally.error_rate() {
            None => {
                b.leg(
                    Status::NotEvaluable,
                    missing(
                        view,
                        "no producer requests ended during the stall",
                        "timeline",
                    ),
                );
            }
            Some(e) => {
                let success = 1.0 - e;
                b.figure("producer_success_rate", success);
                let status = if success >= 1.0 - self.eps - 1e-12 {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!(
                        "producers {:.2}% ok during the stall (need >= {:.2}%)",
                        success * 100.0,
                        (1.0 - self.eps) * 100.0
                    ),
                );
            }
        }
        // 2. The queue absorbs what was accepted.
        let points = view.probe_points(&self.depth, from, to);
        match slope(&points) {
            None => {
                let why = if view.probes.contains_key(&self.depth) {
                    format!(
                        "depth probe `{}` has fewer than 2 samples during the stall",
                        self.depth
                    )
                } else {
                    missing(
                        view,
                        &format!(
                            "no depth probe `{}`: nothing shows the work was buffered",
                            self.depth
                        ),
                        "probes",
                    )
                };
                b.leg(Status::NotEvaluable, why);
            }
            Some(slope) => {
                let need = (1.0 - self.eps) * accepted_rate;
                b.figure("depth_slope_per_s", round3(slope))
                    .figure("depth_samples", points.len() as u64);
                let status = if slope >= need {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!("depth grew {:.1}/s (need >= {:.1}/s)", slope, need),
                );
            }
        }
        // 3. Producer latency stays near the baseline.
        match (
            view.baseline(streams, self.baseline.as_secs_f64()),
            tally.quantile(0.99),
        ) {
            (None, _) => {
                b.leg(
                    Status::NotEvaluable,
                    "no baseline before the first fault: latency not comparable",
                );
            }
            (Some(_), None) => {
                b.leg(
                    Status::NotEvaluable,
                    "no producer responses during the stall",
                );
            }
            (Some(base), Some(p99)) => {
                // Latency is timed by the harness from the intended send time: its own lag
                // in these seconds may be in the measurement, so it is allowed on top.
                let lag = view
                    .harness_lag(from as f64, to as f64)
                    .map_or(0.0, |l| l.0);
                let limit = self.k * base.p99_ms + lag;
                b.figure("p99_ms", p99)
                    .figure("baseline_p99_ms", base.p99_ms)
                    .figure("p99_source", tally.quantile_source());
                if lag > 0.0 {
                    b.figure("harness_lag_max_ms", round3(lag));
                }
                let status = if p99 <= limit {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!("producer p99 {p99:.0}ms (limit {limit:.0}ms)"),
                );
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{FaultWindow, Second};

    fn spec() -> Buffering {
        Buffering {
            fault: "stall".into(),
            stream: None,
            eps: 0.05,
            k: 2.0,
            depth: "depth".into(),
            baseline: Duration::from_secs(60),
        }
    }

    fn view(during: Second, grows: bool, end: Option<f64>) -> RunView {
        let mut v = RunView::default();
        v.streams.insert(
            "up".into(),
            (0..60)
                .map(|s| {
                    if (20..40).contains(&s) {
                        during.clone()
                    } else {
                        Second::simple(50, 0, 20.0)
                    }
                })
                .collect(),
        );
        v.probes.insert(
            "depth".into(),
            (0..60)
                .map(|s| {
                    Some(if grows && (20..40).contains(&s) {
                        50.0 * (s - 20) as f64
                    } else {
                        0.0
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
    fn queued_passes() {
        let v = spec().evaluate("b", &view(Second::simple(50, 0, 21.0), true, Some(40.0)));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.figures["depth_slope_per_s"], 50.0.into());
    }

    #[test]
    fn timeouts_and_a_flat_queue_fail() {
        let v = spec().evaluate(
            "b",
            &view(Second::simple(10, 40, 5000.0), false, Some(40.0)),
        );
        assert_eq!(v.status, Status::Fail);
        let r = v.reason.unwrap();
        assert!(
            r.contains("producers 20.00% ok") && r.contains("p99 5000ms"),
            "{r}"
        );
    }

    #[test]
    fn without_a_depth_probe_it_is_not_evaluable() {
        let mut v = view(Second::simple(50, 0, 21.0), true, Some(40.0));
        v.probes.clear();
        let verdict = spec().evaluate("b", &v);
        assert_eq!(verdict.status, Status::NotEvaluable);
        assert!(verdict.reason.unwrap().contains("no depth probe"));
        // A gap is not a zero: gaps everywhere but one sample leaves the slope unknown.
        let mut v = view(Second::simple(50, 0, 21.0), true, Some(40.0));
        let depth = v.probes.get_mut("depth").unwrap();
        for d in depth.iter_mut().take(39).skip(20) {
            *d = None;
        }
        assert_eq!(spec().evaluate("b", &v).status, Status::NotEvaluable);
    }

    #[test]
    fn a_stall_never_undone_runs_to_the_end() {
        let v = spec().evaluate("b", &view(Second::simple(50, 0, 21.0), true, None));
        // Depth is 0 after second 40 in this shape, so the slope over 20..60 is too low.
        assert_eq!(v.window, Some([20.0, 60.0]));
        assert_eq!(v.figures["fault_never_undone"], "true".into());
        assert_eq!(v.status, Status::Fail);
    }

    // ---- Each leg alone turns pass into fail (issue 10). Baseline: 50 ok/s at 20 ms, so
    // with eps 5% and k 2: success >= 95%, depth slope >= 0.95 x accepted/s, p99 <= 40 ms.

    /// Producers send `during` in every second of the stall `[start, end)` (to the end of the
    /// run when `end` is `None`), the baseline otherwise; depth grows `slope`/s in the stall.
    fn stall(start: usize, end: Option<usize>, len: usize, during: Second, slope: f64) -> RunView {
        let stop = end.unwrap_or(len);
        let inside = |s: usize| (start..stop).contains(&s);
        let mut v = RunView::default();
        v.streams.insert(
            "up".into(),
            (0..len)
                .map(|s| {
                    if inside(s) {
                        during.clone()
                    } else {
                        Second::simple(50, 0, 20.0)
                    }
                })
                .collect(),
        );
        v.probes.insert(
            "depth".into(),
            (0..len)
                .map(|s| {
                    Some(if inside(s) {
                        slope * (s - start) as f64
                    } else {
                        0.0
                    })
                })
                .collect(),
        );
        v.faults.push(FaultWindow {
            name: "stall".into(),
            id: "stall#1".into(),
            kind: "stall-consumers".into(),
            start: start as f64,
            end: end.map(|e| e as f64),
            targets: vec![],
        });
        v
    }

    fn stalled(during: Second, slope: f64) -> RunView {
        stall(20, Some(40), 60, during, slope)
    }

    #[test]
    fn producer_success_alone_decides() {
        // 50 ok and 2 vs 3 errors a second: 96.15% vs 94.34% (need 95%); same 50 ok/s.
        let v = spec().evaluate("b", &stalled(Second::simple(50, 2, 20.0), 50.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        let v = spec().evaluate("b", &stalled(Second::simple(50, 3, 20.0), 50.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("producers 94.34% ok during the stall (need >= 95.00%)")
        );
    }

    #[test]
    fn depth_slope_alone_decides() {
        // 50 accepted/s: the depth must grow >= 47.5/s.
        let v = spec().evaluate("b", &stalled(Second::simple(50, 0, 20.0), 48.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        let v = spec().evaluate("b", &stalled(Second::simple(50, 0, 20.0), 47.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("depth grew 47.0/s (need >= 47.5/s)")
        );
    }

    #[test]
    fn producer_p99_alone_decides() {
        // Baseline p99 20 ms, k = 2: 40 ms passes, 41 ms fails; nothing else changes.
        let v = spec().evaluate("b", &stalled(Second::simple(50, 0, 40.0), 50.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        let v = spec().evaluate("b", &stalled(Second::simple(50, 0, 41.0), 50.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("producer p99 41ms (limit 40ms)"));
    }

    #[test]
    fn a_stall_shorter_than_two_whole_seconds_is_not_evaluable() {
        let good = Second::simple(50, 0, 20.0);
        let v = spec().evaluate("b", &stall(20, Some(22), 60, good.clone(), 50.0));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        // 20.5 .. 22.4 holds one whole second (21).
        let mut short = stall(20, Some(22), 60, good, 50.0);
        short.faults[0].start = 20.5;
        short.faults[0].end = Some(22.4);
        let v = spec().evaluate("b", &short);
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert!(
            v.reason
                .as_deref()
                .unwrap()
                .starts_with("the stall covers fewer than 2 whole seconds"),
            "{v:?}"
        );
    }

    #[test]
    fn a_stall_never_undone_is_judged_to_the_end_of_the_run() {
        let v = spec().evaluate("b", &stall(20, None, 60, Second::simple(50, 0, 20.0), 50.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.window, Some([20.0, 60.0]));
        assert_eq!(v.figures["fault_never_undone"], "true".into());
        // The latency leg still decides alone over that window.
        let v = spec().evaluate("b", &stall(20, None, 60, Second::simple(50, 0, 41.0), 50.0));
        assert_eq!(v.reason.as_deref(), Some("producer p99 41ms (limit 40ms)"));
    }

    #[test]
    fn no_baseline_or_no_producer_traffic_is_not_evaluable() {
        // A stall from 2 s: fewer than 3 seconds before it, so no baseline p99; the other
        // legs pass, and the latency leg alone makes it not evaluable.
        let v = spec().evaluate(
            "b",
            &stall(2, Some(40), 60, Second::simple(50, 0, 20.0), 50.0),
        );
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("no baseline before the first fault: latency not comparable")
        );
        // No producer request ended during the stall.
        let v = spec().evaluate("b", &stalled(Second::default(), 0.0));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "no producer requests ended during the stall; no producer responses during the stall"
            )
        );
    }
}
