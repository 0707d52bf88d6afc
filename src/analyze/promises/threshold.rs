//! **threshold**: k6-style expressions (`p99 < 300ms`, `error_rate < 0.1%`, `rate >= 95/s`,
//! `e2e_p99 < 30s`) over a window of the run. Formulas: `docs/promises.md#threshold`.

use super::{missing, second_from, second_of};
use crate::analyze::expr::{Expr, Metric, Over};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams, Tally};

/// Parameters of a `threshold` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// All must hold.
    pub checks: Vec<Expr>,
    pub over: Over,
    pub stream: Option<String>,
}

/// The keys of a `threshold` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    /// Expressions, all of which must hold, e.g. `["p99 < 300ms", "error_rate < 0.1%"]`. Required.
    checks: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
    /// `whole` (default), `before`, `after`, `during:<fault>`, `after:<fault>`.
    over: Option<toml::Spanned<String>>,
    /// Only this stream's traffic (default: all streams).
    stream: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawThreshold {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let mut checks = Vec::new();
        match &self.checks {
            None => r.missing("checks"),
            Some(list) if list.get_ref().is_empty() => r.error(
                list.span(),
                "`checks` is empty: list at least one expression like \"p99 < 300ms\"",
            ),
            Some(list) => {
                for item in list.get_ref() {
                    match item.get_ref().parse::<Expr>() {
                        Ok(e) => checks.push(e),
                        Err(e) => match e.hint() {
                            Some(h) => r.error_with_hint(item.span(), e.to_string(), h),
                            None => r.error(item.span(), e.to_string()),
                        },
                    }
                }
            }
        }
        if checks.iter().any(|c| matches!(c.metric, Metric::E2e(_))) {
            r.reads_completions();
        }
        let over = match &self.over {
            None => Over::Whole,
            Some(s) => match s.get_ref().parse() {
                Ok(over) => {
                    if let Over::During(f) = &over {
                        r.refer(RefKind::Fault, f, s.span());
                    }
                    over
                }
                Err(e) => {
                    let e: crate::analyze::expr::ExprError = e;
                    r.error(s.span(), e.to_string());
                    Over::Whole
                }
            },
        };
        let p = Threshold {
            checks,
            over,
            stream: r.name(RefKind::Stream, &self.stream),
        };
        let name = format!("threshold:{}", p.over);
        (crate::analyze::spec::PromiseKind::Threshold(p), name)
    }
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
        if (self.checks.iter()).any(|c| matches!(c.metric, Metric::Latency(_))) {
            b.figure("latency_source", tally.quantile_source());
        }
        for check in &self.checks {
            let measured: Result<f64, String> = match check.metric {
                Metric::E2e(q) => match &view.ledger {
                    None => Err(missing(view, "no message ledger", "accepted.jsonl")),
                    Some(_) if !whole || self.stream.is_some() => Err(
                        "end-to-end latency is summarised for the whole run and all streams only"
                            .into(),
                    ),
                    Some(l) if l.e2e_us.is_empty() => Err("no message completed".into()),
                    Some(l) => Ok(l.e2e_us.value_at_quantile(q.level()) as f64 / 1000.0),
                },
                metric => measure_traffic(metric, &tally, view.has_streams(streams))
                    .unwrap_or_else(|| {
                        Err(missing(view, "no timeline for the stream(s)", "timeline"))
                    }),
            };
            match measured {
                Ok(v) => {
                    b.figure(&check.metric.key(), v);
                    let status = if check.op.holds(v, check.limit) {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    b.check(
                        &check.text,
                        status,
                        format!("{} (measured {})", check.text, check.metric.format(v)),
                    );
                }
                Err(why) => {
                    b.check(
                        &check.text,
                        Status::NotEvaluable,
                        format!("{}: {why}", check.text),
                    );
                }
            }
        }
        b.finish()
    }
}

/// A traffic metric (every one but end-to-end latency) measured over a window's tally:
/// `Some(Err(why))` when the window lacks the data; `None` for `dropped` when the view has
/// none of the streams (`has_streams` false: the caller says why) and for end-to-end
/// latency (not a traffic metric). Shared with the promises that judge their own windows against expressions
/// (isolation's per-service `checks`).
pub(crate) fn measure_traffic(
    metric: Metric,
    tally: &Tally,
    has_streams: bool,
) -> Option<Result<f64, String>> {
    Some(match metric {
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
        Metric::Dropped if !has_streams => return None,
        Metric::Dropped => Ok(tally.dropped as f64),
        Metric::E2e(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{FaultWindow, Latency, Second};

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

    // ---- Each check alone turns pass into fail (issue 10).

    const CHECKS: [&str; 8] = [
        "p50 < 100ms",
        "p90 < 200ms",
        "p99 < 300ms",
        "p999 < 400ms",
        "max < 500ms",
        "error_rate < 1%",
        "rate >= 95/s",
        "dropped <= 5",
    ];

    /// Every second: 100 ok, 50 / 150 / 250 / 350 / 450 ms at p50 ... max, over 10 s;
    /// `edit` changes every second.
    fn steady(edit: impl Fn(&mut Second)) -> RunView {
        let mut s = Second::simple(100, 0, 0.0);
        s.latency = Some(Latency {
            p50: 50.0,
            p90: 150.0,
            p99: 250.0,
            p999: 350.0,
            max: 450.0,
        });
        edit(&mut s);
        RunView {
            streams: [("a".to_string(), vec![s; 10])].into(),
            ..RunView::default()
        }
    }

    fn latency(edit: impl Fn(&mut Latency)) -> impl Fn(&mut Second) {
        move |s| edit(s.latency.as_mut().unwrap())
    }

    /// The checks pass on `pass` and only `check` fails on `fail`.
    fn decides(check: &str, pass: &RunView, fail: &RunView, measured: &str) {
        let all = spec(&CHECKS, "whole");
        let v = all.evaluate("t", pass);
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        let v = all.evaluate("t", fail);
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(format!("{check} (measured {measured})").as_str())
        );
    }

    #[test]
    fn each_latency_quantile_alone_decides() {
        decides(
            "p50 < 100ms",
            &steady(latency(|l| l.p50 = 99.0)),
            &steady(latency(|l| l.p50 = 100.0)),
            "100ms",
        );
        decides(
            "p90 < 200ms",
            &steady(latency(|l| l.p90 = 199.0)),
            &steady(latency(|l| l.p90 = 200.0)),
            "200ms",
        );
        decides(
            "p99 < 300ms",
            &steady(latency(|l| l.p99 = 299.0)),
            &steady(latency(|l| l.p99 = 300.0)),
            "300ms",
        );
        decides(
            "p999 < 400ms",
            &steady(latency(|l| l.p999 = 399.0)),
            &steady(latency(|l| l.p999 = 400.0)),
            "400ms",
        );
        decides(
            "max < 500ms",
            &steady(latency(|l| l.max = 499.0)),
            &steady(latency(|l| l.max = 500.0)),
            "500ms",
        );
    }

    #[test]
    fn error_rate_alone_decides() {
        // 1 error per 100 ok is 0.99%; 2 per 100 is 1.96%. Same ok count, same latencies.
        let errors = |n: u64| {
            steady(move |s| {
                s.errors[crate::metrics::ErrorClass::Timeout as usize] = n;
            })
        };
        decides("error_rate < 1%", &errors(1), &errors(2), "1.961%");
    }

    #[test]
    fn rate_alone_decides() {
        let ok = |n: u64| steady(move |s| s.ok = n);
        decides("rate >= 95/s", &ok(95), &ok(94), "94/s");
    }

    #[test]
    fn dropped_alone_decides() {
        // 5 vs 6 never sent over the window (0.5% / 0.6% errors: still under 1%).
        let dropped = |n: u64| {
            let mut v = steady(|_| {});
            v.streams.get_mut("a").unwrap()[3].dropped = n;
            v
        };
        decides("dropped <= 5", &dropped(5), &dropped(6), "6");
    }

    #[test]
    fn e2e_latency_alone_decides() {
        use crate::analyze::view::{Accepted, Completion, Ledger, Outcome};
        // 100 messages, each done `ms` after being accepted.
        let run = |ms: u64| {
            let accepted: Vec<Accepted> = (0..100)
                .map(|i| Accepted {
                    id: format!("r-s-{i}"),
                    stream: "a".into(),
                    t_ms: i * 10,
                })
                .collect();
            let done: Vec<Completion> = (0..100)
                .map(|i| Completion {
                    id: format!("r-s-{i}"),
                    done_ms: i * 10 + ms,
                    outcome: Outcome::Completed,
                    receive_count: 1,
                })
                .collect();
            RunView {
                ledger: Some(Ledger::build(&accepted, &done, Some(0))),
                ..steady(|_| {})
            }
        };
        let checks = ["e2e_p99 < 3s", "p99 < 300ms"];
        let v = spec(&checks, "whole").evaluate("t", &run(2_900));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        let v = spec(&checks, "whole").evaluate("t", &run(3_100));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        // The histogram keeps 3 significant digits: 3.1 s reads as 3.1xx s.
        let r = v.reason.unwrap();
        assert!(
            r.starts_with("e2e_p99 < 3s (measured 3.1") && !r.contains(';'),
            "{r}"
        );
        // Over a partial window it is not evaluable (the ledger is not windowed).
        let mut faulted = run(2_900);
        faulted.faults.push(FaultWindow {
            name: "f".into(),
            id: "f#1".into(),
            kind: "latency".into(),
            start: 5.0,
            end: Some(6.0),
            targets: vec![],
        });
        let v = spec(&checks, "before").evaluate("t", &faulted);
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some(
                "e2e_p99 < 3s: end-to-end latency is summarised for the whole run and all streams only"
            )
        );
    }

    #[test]
    fn each_operator_at_its_boundary() {
        // rate is exactly 100/s.
        let v = steady(|_| {});
        for (check, holds) in [
            ("rate < 100/s", false),
            ("rate <= 100/s", true),
            ("rate > 100/s", false),
            ("rate >= 100/s", true),
            ("rate < 101/s", true),
            ("rate > 99/s", true),
        ] {
            let status = spec(&[check], "whole").evaluate("t", &v).status;
            let want = if holds { Status::Pass } else { Status::Fail };
            assert_eq!(status, want, "{check}");
        }
    }

    #[test]
    fn the_window_alone_decides() {
        // One slow second (900 ms at every percentile) at 29 s; the fault runs 20..29.5, so
        // `during` is 20..30 and holds it, `after` (30..) does not.
        let mut v = view();
        for s in &mut v.streams.get_mut("a").unwrap()[20..30] {
            *s = Second::simple(100, 0, 50.0);
        }
        v.streams.get_mut("a").unwrap()[29] = Second::simple(100, 0, 900.0);
        v.faults[0].end = Some(29.5);
        let during = spec(&["max < 300ms"], "during:f").evaluate("t", &v);
        assert_eq!(during.window, Some([20.0, 30.0]));
        assert_eq!(during.status, Status::Fail, "{during:?}");
        let after = spec(&["max < 300ms"], "after:f").evaluate("t", &v);
        assert_eq!(after.window, Some([30.0, 60.0]));
        assert_eq!(after.status, Status::Pass, "{after:?}");
        let before = spec(&["max < 300ms"], "before").evaluate("t", &v);
        assert_eq!(before.window, Some([0.0, 20.0]));
        assert_eq!(before.status, Status::Pass, "{before:?}");
    }

    #[test]
    fn windows_that_do_not_exist_are_not_evaluable() {
        // A fault at 0.5 s leaves no whole second before it.
        let mut early = view();
        early.faults[0].start = 0.5;
        let v = spec(&["p99 < 1s"], "before").evaluate("t", &early);
        assert_eq!(v.status, Status::NotEvaluable);
        assert_eq!(
            v.reason.as_deref(),
            Some("the `before` window holds no second of the run")
        );
        // A fault never undone: no `after`, and `during` runs to the end of the run.
        let mut open = view();
        open.faults[0].end = None;
        let v = spec(&["p99 < 1s"], "after:f").evaluate("t", &open);
        assert_eq!(
            v.reason.as_deref(),
            Some("fault `f` was never undone: there is no `after` window")
        );
        let v = spec(&["p99 < 1s"], "during:f").evaluate("t", &open);
        assert_eq!((v.status, v.window), (Status::Pass, Some([20.0, 60.0])));
        let v = spec(&["p99 < 1s"], "during:nope").evaluate("t", &open);
        assert_eq!(
            v.reason.as_deref(),
            Some("fault `nope` is not in the journal")
        );
    }
}
