//! **failover**: after a fault on a tier behind a balancer, the service is healthy again
//! within `within`, and few requests failed on the way. Formulas: `docs/promises.md#failover`.

use std::time::Duration;

use super::{missing, round3, second_of, secs};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::{RunView, Streams};

/// Parameters of a `failover` promise (user docs on [`RawFailover`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    pub fault: String,
    pub stream: Option<String>,
    /// Tolerated error-rate increase over the baseline.
    pub eps: f64,
    /// Tolerated factor on the baseline p99.
    pub k: f64,
    /// Consecutive healthy seconds that count as recovered.
    pub hold: Duration,
    /// Max recovery time.
    pub within: Duration,
    /// Max failed requests between the fault and recovery.
    pub max_failed: Option<u64>,
    pub baseline: Duration,
    /// Instance-count probe for the replacement leg.
    pub instances: Option<String>,
    pub desired: Option<u32>,
    pub replace_within: Option<Duration>,
}

/// The keys of a `failover` promise. Durations are written like `30s`, `2m`, `1h30m`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    /// The fault (its `name` in `[[fault]]`, or `<name>#<n>` for one occurrence of a repeated
    /// fault; default: the first occurrence). Required.
    fault: Option<toml::Spanned<String>>,
    /// Only this stream's traffic (default: all streams).
    stream: Option<toml::Spanned<String>>,
    /// Error-rate tolerance over the baseline (default 0.01): a fraction, or `"1%"`.
    eps: Option<toml::Spanned<crate::analyze::spec::Ratio>>,
    /// Allowed factor on the baseline p99 (default 2.0).
    k: Option<toml::Spanned<f64>>,
    /// How long the service must stay healthy to count as recovered (default `10s`).
    hold: Option<toml::Spanned<String>>,
    /// Max recovery time. Required.
    within: Option<toml::Spanned<String>>,
    /// Most requests that may fail between the fault and recovery (default: no limit,
    /// reported only).
    max_failed: Option<toml::Spanned<u64>>,
    /// Length of the baseline window before the first fault (default `60s`).
    baseline: Option<toml::Spanned<String>>,
    /// The probe counting running instances, for the replacement leg.
    instances: Option<toml::Spanned<String>>,
    /// Instance count that means "replaced" (default: the count just before the fault).
    desired: Option<toml::Spanned<u32>>,
    /// Max time until the instance count is back (default: reported only).
    replace_within: Option<toml::Spanned<String>>,
}

impl crate::analyze::spec::PromiseParams for RawFailover {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        use crate::analyze::spec::RefKind;
        let p = Failover {
            fault: r.required_name(RefKind::Fault, &self.fault, "fault"),
            stream: r.name(RefKind::Stream, &self.stream),
            eps: self.eps.as_ref().map_or(0.01, |e| e.get_ref().0),
            k: r.positive(&self.k, 2.0),
            hold: r.duration(&self.hold).unwrap_or(Duration::from_secs(10)),
            within: r.required_duration(&self.within, "within"),
            max_failed: r.value(&self.max_failed),
            baseline: r
                .duration(&self.baseline)
                .unwrap_or(Duration::from_secs(60)),
            instances: r.name(RefKind::Probe, &self.instances),
            desired: r.value(&self.desired),
            replace_within: r.duration(&self.replace_within),
        };
        let name = format!("failover:{}", p.fault);
        (crate::analyze::spec::PromiseKind::Failover(p), name)
    }
}

impl Failover {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "failover");
        let streams = Streams::from_option(self.stream.as_deref());
        let Some(fault) = view.fault(&self.fault) else {
            return b.not_evaluable(missing(
                view,
                &format!("fault `{}` is not in the journal", self.fault),
                "journal",
            ));
        };
        if !view.has_streams(streams) {
            return b.not_evaluable(missing(
                view,
                "no traffic recorded for the stream(s)",
                "timeline",
            ));
        }
        let end = view.len();
        let t_f = fault.start;
        let s_f = second_of(t_f);
        let hold = self.hold.as_secs_f64().ceil().max(1.0) as usize;
        let within = self.within.as_secs_f64();
        b.figure("fault_start_s", t_f);
        let Some(base) = view.baseline(streams, self.baseline.as_secs_f64()) else {
            b.window(t_f, view.end());
            return b.not_evaluable(format!(
                "no baseline: fewer than 3 seconds with responses before the first fault (at {})",
                secs(view.first_fault_start().unwrap_or(0.0))
            ));
        };
        let max_error = base.error_rate + self.eps;
        let max_p99 = self.k * base.p99_ms;
        b.figure("baseline_error_rate", base.error_rate)
            .figure("baseline_p99_ms", base.p99_ms)
            .figure("p99_source", base.p99_source)
            .figure("max_error_rate", max_error)
            .figure("max_p99_ms", max_p99);
        // A second is healthy when requests completed in it, its error rate is within the
        // tolerance and its p99 within k x baseline. A second with nothing completed is not
        // healthy: recovery cannot be shown without traffic.
        // The harness's own lag in a second may be in its latencies: allowed on top.
        // Judged once per second (a second's p99 may merge histograms), and only until the
        // first `hold` healthy seconds in a row: an hour-long run after a quick recovery is
        // not merged second by second to its end.
        let healthy = |s: usize| {
            let t = view.tally(streams, s, s + 1);
            let lag = view.harness_lag(s as f64, s as f64).map_or(0.0, |l| l.0);
            t.error_rate().is_some_and(|e| e <= max_error + 1e-12)
                && t.quantile(0.99).is_none_or(|p| p <= max_p99 + lag)
        };
        let mut in_a_row = 0;
        let recovered_at = (s_f..end).find_map(|s| {
            in_a_row = if healthy(s) { in_a_row + 1 } else { 0 };
            (in_a_row == hold).then(|| s + 1 - hold)
        });
        match recovered_at {
            Some(s) => {
                let recovery = round3((s as f64 - t_f).max(0.0));
                let failed = view.tally(streams, s_f, s);
                let failed = failed.failed + failed.dropped;
                b.window(t_f, (s + hold) as f64)
                    .figure("recovery_s", recovery)
                    .figure("failed_requests", failed);
                let status = if recovery <= within {
                    Status::Pass
                } else {
                    Status::Fail
                };
                b.leg(
                    status,
                    format!("recovered in {} (limit {})", secs(recovery), secs(within)),
                );
                if let Some(budget) = self.max_failed {
                    let status = if failed <= budget {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    b.leg(
                        status,
                        format!("{failed} requests failed (budget {budget})"),
                    );
                } else {
                    b.figure("failed_requests_note", "no budget set: reported only");
                }
            }
            None => {
                let failed = view.tally(streams, s_f, end);
                b.window(t_f, view.end())
                    .figure("recovery_s", "not recovered")
                    .figure("failed_requests", failed.failed + failed.dropped);
                let last_start = end as f64 - hold as f64;
                if last_start >= t_f + within {
                    b.leg(Status::Fail, format!(
                        "not recovered within {}: no {} stretch with error rate <= {:.2}% and p99 <= {:.0}ms",
                        secs(within), secs(hold as f64), max_error * 100.0, max_p99
                    ));
                } else {
                    b.leg(Status::NotEvaluable, format!(
                        "the run ends {} after the fault: too early to see {} of health within {}",
                        secs(view.end() - t_f), secs(hold as f64), secs(within)
                    ));
                }
            }
        }
        self.replacement_leg(&mut b, view, t_f);
        b.finish()
    }

    /// Time until the instance-count probe is back at the desired count. A leg of the
    /// verdict only with `replace_within`; otherwise reported as figures.
    fn replacement_leg(&self, b: &mut Builder, view: &RunView, t_f: f64) {
        let Some(probe) = &self.instances else { return };
        let s_f = second_of(t_f);
        let desired = self
            .desired
            .map(f64::from)
            .or_else(|| view.probe_before(probe, s_f).map(|(_, v)| v));
        let outcome = match desired {
            None => Err(format!(
                "no `{probe}` sample before the fault and no `desired`: replacement not evaluable"
            )),
            Some(desired) => {
                b.figure("desired_instances", desired);
                // The count must first drop below desired (the fault took an instance away),
                // then come back; a gap is skipped, never read as zero.
                let points = view.probe_points(probe, s_f, view.len());
                let dropped = points.iter().position(|(_, v)| *v < desired);
                match dropped {
                    None if points.is_empty() => {
                        Err(format!("probe `{probe}` has no sample after the fault"))
                    }
                    None => Ok(Some(0.0)),
                    Some(i) => Ok(points[i..]
                        .iter()
                        .find(|(_, v)| *v >= desired)
                        .map(|(s, _)| round3((*s as f64 - t_f).max(0.0)))),
                }
            }
        };
        match (outcome, self.replace_within) {
            (Ok(Some(t)), limit) => {
                b.figure("replacement_s", t);
                if let Some(limit) = limit {
                    let l = limit.as_secs_f64();
                    b.leg(
                        if t <= l { Status::Pass } else { Status::Fail },
                        format!("replaced in {} (limit {})", secs(t), secs(l)),
                    );
                }
            }
            (Ok(None), limit) => {
                b.figure("replacement_s", "not replaced");
                if let Some(limit) = limit {
                    let l = limit.as_secs_f64();
                    if view.end() >= t_f + l {
                        b.leg(
                            Status::Fail,
                            format!("instance count not back within {}", secs(l)),
                        );
                    } else {
                        b.leg(
                            Status::NotEvaluable,
                            format!(
                                "the run ended before {} after the fault: replacement unknown",
                                secs(l)
                            ),
                        );
                    }
                }
            }
            (Err(why), Some(_)) => {
                b.leg(Status::NotEvaluable, why);
            }
            (Err(why), None) => {
                b.figure("replacement_s", why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{FaultWindow, Second};

    fn view(seconds: Vec<Second>, fault_at: f64) -> RunView {
        let mut v = RunView::default();
        v.streams.insert("web".into(), seconds);
        v.faults.push(FaultWindow {
            name: "kill".into(),
            id: "kill#1".into(),
            kind: "terminate-instances".into(),
            start: fault_at,
            end: Some(fault_at),
            targets: vec!["i-1".into()],
        });
        v
    }

    fn spec() -> Failover {
        Failover {
            fault: "kill".into(),
            stream: None,
            eps: 0.01,
            k: 2.0,
            hold: Duration::from_secs(5),
            within: Duration::from_secs(20),
            max_failed: Some(200),
            baseline: Duration::from_secs(60),
            instances: None,
            desired: None,
            replace_within: None,
        }
    }

    /// 30 s healthy, then `bad` seconds at 50% errors, then healthy until 90 s.
    fn shape(bad: usize, total: usize) -> Vec<Second> {
        (0..total)
            .map(|s| {
                if (30..30 + bad).contains(&s) {
                    Second::simple(50, 50, 40.0)
                } else {
                    Second::simple(100, 0, 20.0)
                }
            })
            .collect()
    }

    #[test]
    fn recovers_in_time() {
        let v = spec().evaluate("f", &view(shape(3, 90), 30.2));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.figures["recovery_s"], 2.8.into());
        assert_eq!(v.figures["failed_requests"], 150u64.into());
    }

    #[test]
    fn errors_that_persist_fail() {
        let v = spec().evaluate("f", &view(shape(60, 90), 30.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(v.reason.unwrap().contains("not recovered within 20s"));
    }

    #[test]
    fn slow_recovery_and_budget() {
        let v = spec().evaluate("f", &view(shape(25, 90), 30.0));
        assert_eq!(v.status, Status::Fail);
        let r = v.reason.unwrap();
        assert!(
            r.contains("recovered in 25s (limit 20s)") && r.contains("1250 requests failed"),
            "{r}"
        );
    }

    /// The harness was suspended (SIGSTOP, a laptop lid) from 31 s to 41 s and resumed:
    /// those seconds have no rows in the timeline. An empty second is neither healthy nor
    /// failed, so the gap can neither hide a failure nor count as recovery.
    #[test]
    fn seconds_missing_while_the_harness_was_suspended_are_not_health() {
        let mut seconds = shape(60, 90);
        for s in &mut seconds[31..41] {
            *s = Second::default();
        }
        let v = spec().evaluate("f", &view(seconds, 30.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        // Healthy again right after the gap: recovery is measured from the first healthy
        // stretch after it, never inside it.
        let mut seconds = shape(2, 90);
        for s in &mut seconds[32..41] {
            *s = Second::default();
        }
        let v = spec().evaluate("f", &view(seconds, 30.0));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert_eq!(v.figures["recovery_s"], 11.0.into(), "{v:?}");
    }

    #[test]
    fn a_fault_at_the_very_end_is_not_evaluable() {
        let v = spec().evaluate("f", &view(shape(3, 33), 30.0));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert!(v.reason.unwrap().contains("too early"));
    }

    #[test]
    fn no_baseline_and_zero_traffic_are_not_evaluable() {
        let v = spec().evaluate("f", &view(shape(3, 90), 1.0));
        assert_eq!(v.status, Status::NotEvaluable);
        assert!(v.reason.unwrap().contains("no baseline"));
        let v = spec().evaluate("f", &view(vec![Second::default(); 90], 30.0));
        assert_eq!(v.status, Status::NotEvaluable);
        let v = Failover {
            fault: "other".into(),
            ..spec()
        }
        .evaluate("f", &view(shape(3, 90), 30.0));
        assert_eq!(v.status, Status::NotEvaluable);
    }

    #[test]
    fn replacement_leg_skips_gaps() {
        let mut v = view(shape(3, 90), 30.0);
        let mut count: Vec<Option<f64>> = (0..90)
            .map(|s| Some(if (30..45).contains(&s) { 2.0 } else { 3.0 }))
            .collect();
        for gap in &mut count[44..50] {
            *gap = None;
        }
        v.probes.insert("web_instances".into(), count);
        let f = Failover {
            instances: Some("web_instances".into()),
            replace_within: Some(Duration::from_secs(30)),
            ..spec()
        };
        let verdict = f.evaluate("f", &v);
        assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
        assert_eq!(verdict.figures["replacement_s"], 20.0.into());
        let strict = Failover {
            replace_within: Some(Duration::from_secs(10)),
            ..f
        };
        assert_eq!(strict.evaluate("f", &v).status, Status::Fail);
    }

    // ---- Each leg alone turns pass into fail (issue 10). Baseline in these fixtures:
    // 100 ok/s at 20 ms before the fault at 30 s, so a healthy second has an error rate
    // <= 1% and a p99 <= 40 ms; `within` is 20 s, `hold` 5 s, `max_failed` 200.

    /// 30 s of baseline, then `after(s - 30)` for every second from 30 on.
    fn after_fault(len: usize, after: impl Fn(usize) -> Second) -> RunView {
        let seconds = (0..len)
            .map(|s| {
                if s < 30 {
                    Second::simple(100, 0, 20.0)
                } else {
                    after(s - 30)
                }
            })
            .collect();
        view(seconds, 30.0)
    }

    /// `n` seconds of `bad`, then the baseline again, from the fault on.
    fn outage(n: usize, bad: Second) -> RunView {
        after_fault(90, move |i| {
            if i < n {
                bad.clone()
            } else {
                Second::simple(100, 0, 20.0)
            }
        })
    }

    #[test]
    fn recovery_time_alone_decides() {
        // 5% errors (unhealthy) for 20 s vs 21 s: 100 vs 105 failed, both within budget.
        let v = spec().evaluate("f", &outage(20, Second::simple(95, 5, 20.0)));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["recovery_s"], 20.0.into());
        let v = spec().evaluate("f", &outage(21, Second::simple(95, 5, 20.0)));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("recovered in 21s (limit 20s)"));
        assert_eq!(v.figures["failed_requests"], 105u64.into());
    }

    #[test]
    fn error_budget_alone_decides() {
        // Recovered after 3 s either way; 3 x 66 = 198 vs 3 x 67 = 201 failed (budget 200).
        let v = spec().evaluate("f", &outage(3, Second::simple(34, 66, 20.0)));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["failed_requests"], 198u64.into());
        let v = spec().evaluate("f", &outage(3, Second::simple(33, 67, 20.0)));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["recovery_s"], 3.0.into());
        assert_eq!(
            v.reason.as_deref(),
            Some("201 requests failed (budget 200)")
        );
        // Requests never sent count against the budget as well: 198 failed + 3 dropped.
        let v = spec().evaluate(
            "f",
            &after_fault(90, |i| match i {
                0 => Second {
                    dropped: 3,
                    ..Second::simple(34, 66, 20.0)
                },
                1 | 2 => Second::simple(34, 66, 20.0),
                _ => Second::simple(100, 0, 20.0),
            }),
        );
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("201 requests failed (budget 200)")
        );
    }

    #[test]
    fn p99_over_k_times_baseline_alone_decides() {
        // No error after the fault, only latency: 25 s at 40 ms (= 2 x 20 ms, healthy) vs
        // 25 s at 41 ms (unhealthy: recovery only after 25 s, with 0 requests failed).
        let slow = |ms: f64| outage(25, Second::simple(100, 0, ms));
        let v = spec().evaluate("f", &slow(40.0));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["recovery_s"], 0.0.into());
        let v = spec().evaluate("f", &slow(41.0));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("recovered in 25s (limit 20s)"));
        assert_eq!(v.figures["failed_requests"], 0u64.into());
    }

    #[test]
    fn error_rate_over_baseline_plus_eps_alone_decides() {
        // 25 s at 1% errors (= 0% + eps, healthy) vs 2% (unhealthy); 25 vs 50 failed.
        let v = spec().evaluate("f", &outage(25, Second::simple(99, 1, 20.0)));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["recovery_s"], 0.0.into());
        let v = spec().evaluate("f", &outage(25, Second::simple(98, 2, 20.0)));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("recovered in 25s (limit 20s)"));
        // The tolerance is over the baseline's error rate: with 1% errors before the fault,
        // 2% after it is healthy.
        let mut v = outage(25, Second::simple(98, 2, 20.0));
        for s in &mut v.streams.get_mut("web").unwrap()[..30] {
            *s = Second::simple(99, 1, 20.0);
        }
        let v = spec().evaluate("f", &v);
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
    }

    #[test]
    fn never_recovering_fails_only_once_the_window_was_observed() {
        // Errors to the end: every start up to 30 + 20 s must be followed by 5 s of run.
        let broken = |len| after_fault(len, |_| Second::simple(50, 50, 20.0));
        let v = spec().evaluate("f", &broken(55));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert!(
            v.reason
                .as_deref()
                .unwrap()
                .starts_with("not recovered within 20s"),
            "{v:?}"
        );
        let v = spec().evaluate("f", &broken(54));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("the run ends 24s after the fault: too early to see 5s of health within 20s")
        );
    }

    /// The traffic recovers after 3 s; the instance count is 3 before the fault, 2 from the
    /// fault, and 3 again from second `back` (never when `None`).
    fn replaced(back: Option<usize>, len: usize) -> RunView {
        let mut v = after_fault(len, |i| {
            if i < 3 {
                Second::simple(50, 50, 20.0)
            } else {
                Second::simple(100, 0, 20.0)
            }
        });
        v.probes.insert(
            "web_instances".into(),
            (0..len)
                .map(|s| {
                    Some(if s < 30 || back.is_some_and(|b| s >= b) {
                        3.0
                    } else {
                        2.0
                    })
                })
                .collect(),
        );
        v
    }

    fn replacing() -> Failover {
        Failover {
            instances: Some("web_instances".into()),
            replace_within: Some(Duration::from_secs(30)),
            ..spec()
        }
    }

    #[test]
    fn replacement_time_alone_decides() {
        let v = replacing().evaluate("f", &replaced(Some(60), 90));
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Pass, None),
            "{v:?}"
        );
        assert_eq!(v.figures["replacement_s"], 30.0.into());
        let v = replacing().evaluate("f", &replaced(Some(61), 90));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("replaced in 31s (limit 30s)"));
        // Never back: a fail once the run lasted `replace_within` past the fault...
        let v = replacing().evaluate("f", &replaced(None, 90));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("instance count not back within 30s")
        );
        // ... not evaluable when it ended before.
        let v = replacing().evaluate("f", &replaced(None, 59));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        assert_eq!(
            v.reason.as_deref(),
            Some("the run ended before 30s after the fault: replacement unknown")
        );
    }

    #[test]
    fn replacement_without_a_desired_count_is_not_evaluable() {
        // No sample before the fault and no `desired`: the count to return to is unknown.
        let mut v = replaced(Some(60), 90);
        for s in &mut v.probes.get_mut("web_instances").unwrap()[..30] {
            *s = None;
        }
        let verdict = replacing().evaluate("f", &v);
        assert_eq!(verdict.status, Status::NotEvaluable, "{verdict:?}");
        assert_eq!(
            verdict.reason.as_deref(),
            Some(
                "no `web_instances` sample before the fault and no `desired`: replacement not evaluable"
            )
        );
        // `desired` supplies it.
        let with_desired = Failover {
            desired: Some(3),
            ..replacing()
        };
        assert_eq!(with_desired.evaluate("f", &v).status, Status::Pass);
        // No probe at all.
        v.probes.clear();
        assert_eq!(replacing().evaluate("f", &v).status, Status::NotEvaluable);
    }

    #[test]
    fn a_fault_missing_from_the_journal_says_so() {
        let v = Failover {
            fault: "other".into(),
            ..spec()
        }
        .evaluate("f", &outage(3, Second::simple(50, 50, 20.0)));
        assert_eq!(v.status, Status::NotEvaluable);
        assert_eq!(
            v.reason.as_deref(),
            Some("fault `other` is not in the journal")
        );
    }
}
