//! **threshold**: k6-style expressions (`p99 < 300ms`, `error_rate < 0.1%`, `rate >= 95/s`,
//! `e2e_p99 < 30s`) over a window of the run. Formulas: `docs/promises.md#threshold`.

use super::{missing, second_from, second_of};
use crate::analyze::expr::{Expr, Metric, Over};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams};

/// Parameters of a `threshold` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// All must hold.
    pub checks: Vec<Expr>,
    pub over: Over,
    pub stream: Option<String>,
}

impl Threshold {
    /// The window `[from, to)` in whole seconds, or why there is none.
    fn window(&self, view: &RunView) -> Result<(usize, usize), String> {
        let len = view.len();
        let fault = |name: &str| {
            view.fault(name).ok_or_else(|| {
                missing(
                    view,
                    &format!("fault `{name}` is not in the journal"),
                    "journal",
                )
            })
        };
        let (from, to) = match &self.over {
            Over::Whole => (0, len),
            Over::Before => {
                let first = view
                    .first_fault_start()
                    .ok_or("no fault in the run: there is no `before` window")?;
                (0, second_of(first))
            }
            Over::During(name) => {
                let f = fault(name)?;
                let end = f.end.unwrap_or(view.end());
                (
                    second_of(f.start),
                    second_from(end).max(second_of(f.start) + 1),
                )
            }
            Over::After(Some(name)) => {
                let f = fault(name)?;
                (
                    second_from(f.end.ok_or_else(|| {
                        format!("fault `{name}` was never undone: there is no `after` window")
                    })?),
                    len,
                )
            }
            Over::After(None) => {
                if view.faults.is_empty() {
                    return Err("no fault in the run: there is no `after` window".into());
                }
                let mut last: f64 = 0.0;
                for f in &view.faults {
                    last = last.max(f.end.ok_or_else(|| {
                        format!(
                            "fault `{}` was never undone: there is no `after` window",
                            f.name
                        )
                    })?);
                }
                (second_from(last), len)
            }
        };
        if from >= to.min(len) {
            return Err(format!(
                "the `{}` window holds no second of the run",
                self.over
            ));
        }
        Ok((from, to.min(len)))
    }

    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "threshold");
        let streams = Streams::from_option(self.stream.as_deref());
        let (from, to) = match self.window(view) {
            Ok(w) => w,
            Err(why) => return b.not_evaluable(why),
        };
        b.window(from as f64, to as f64);
        let tally = view.tally(streams, from, to);
        let whole = from == 0 && to == view.len();
        for check in &self.checks {
            let measured: Result<f64, String> = match check.metric {
                Metric::Latency(q) => tally
                    .quantile(q.level())
                    .ok_or_else(|| "no responses in the window".to_string()),
                Metric::ErrorRate => tally
                    .error_rate()
                    .ok_or_else(|| "no request ended in the window".to_string()),
                Metric::Rate => {
                    if tally.intended == 0 && tally.ended() == 0 {
                        Err("no traffic in the window".into())
                    } else {
                        Ok(tally.ok as f64 / tally.seconds)
                    }
                }
                Metric::Dropped => {
                    if view.has_streams(streams) {
                        Ok(tally.dropped as f64)
                    } else {
                        Err(missing(view, "no timeline for the stream(s)", "timeline"))
                    }
                }
                Metric::E2e(q) => match &view.ledger {
                    None => Err(missing(view, "no message ledger", "accepted.jsonl")),
                    Some(_) if !whole || self.stream.is_some() => Err(
                        "end-to-end latency is summarised for the whole run and all streams only"
                            .into(),
                    ),
                    Some(l) if l.e2e_us.is_empty() => Err("no message completed".into()),
                    Some(l) => Ok(l.e2e_us.value_at_quantile(q.level()) as f64 / 1000.0),
                },
            };
            match measured {
                Ok(v) => {
                    b.figure(&check.metric.key(), v);
                    let status = if check.op.holds(v, check.limit) {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    b.leg(
                        status,
                        format!("{} (measured {})", check.text, check.metric.format(v)),
                    );
                }
                Err(why) => {
                    b.leg(Status::NotEvaluable, format!("{}: {why}", check.text));
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

    fn spec(checks: &[&str], over: &str) -> Threshold {
        Threshold {
            checks: checks.iter().map(|c| c.parse().unwrap()).collect(),
            over: over.parse().unwrap(),
            stream: None,
        }
    }

    fn view() -> RunView {
        let mut v = RunView::default();
        v.streams.insert(
            "a".into(),
            (0..60)
                .map(|s| {
                    if (20..30).contains(&s) {
                        Second::simple(90, 10, 900.0)
                    } else {
                        Second::simple(100, 0, 50.0)
                    }
                })
                .collect(),
        );
        v.faults.push(FaultWindow {
            name: "f".into(),
            id: "f#1".into(),
            kind: "latency".into(),
            start: 20.0,
            end: Some(30.0),
            targets: vec![],
        });
        v
    }

    #[test]
    fn windows_discriminate() {
        let checks = ["p99 < 300ms", "error_rate < 1%", "rate >= 95/s"];
        assert_eq!(
            spec(&checks, "before").evaluate("t", &view()).status,
            Status::Pass
        );
        assert_eq!(
            spec(&checks, "after").evaluate("t", &view()).status,
            Status::Pass
        );
        let during = spec(&checks, "during:f").evaluate("t", &view());
        assert_eq!(during.status, Status::Fail);
        assert_eq!(during.window, Some([20.0, 30.0]));
        let r = during.reason.unwrap();
        assert!(
            r.contains("p99 < 300ms (measured 900ms)")
                && r.contains("error_rate < 1% (measured 10%)")
                && r.contains("rate >= 95/s (measured 90/s)"),
            "{r}"
        );
        // 10 slow seconds of 60 are more than 1% of responses: the whole-run p99 is 900 ms.
        assert_eq!(
            spec(&["p99 < 300ms"], "whole")
                .evaluate("t", &view())
                .status,
            Status::Fail
        );
        assert_eq!(
            spec(&["p50 < 300ms"], "whole")
                .evaluate("t", &view())
                .status,
            Status::Pass
        );
    }

    #[test]
    fn missing_windows_and_data_are_not_evaluable() {
        assert_eq!(
            spec(&["p99 < 1s"], "during:nope")
                .evaluate("t", &view())
                .status,
            Status::NotEvaluable
        );
        assert_eq!(
            spec(&["e2e_p99 < 1s"], "whole")
                .evaluate("t", &view())
                .status,
            Status::NotEvaluable
        );
        let mut open = view();
        open.faults[0].end = None;
        assert_eq!(
            spec(&["p99 < 1s"], "after").evaluate("t", &open).status,
            Status::NotEvaluable
        );
        let quiet = RunView {
            streams: [("a".to_string(), vec![Second::default(); 10])].into(),
            ..RunView::default()
        };
        assert_eq!(
            spec(&["p99 < 1s", "error_rate < 1%", "rate > 1/s"], "whole")
                .evaluate("t", &quiet)
                .status,
            Status::NotEvaluable
        );
        assert_eq!(
            spec(&["p99 < 1s"], "before").evaluate("t", &quiet).status,
            Status::NotEvaluable
        );
    }
}
