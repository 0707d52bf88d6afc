//! [`RunReport`] -> [`Case`]s: what a run checked, one case per promise (one per expression
//! of a `threshold` promise) or, for a `load` run, one per stream; plus one for how the run
//! ended. `junit.xml` and `summary.md` both render these. Pure.
//!
//! Nothing unchecked is a pass: a promise not evaluable is an error case, a missing
//! `verdict.json` is an error case, a run that did not complete is a failed case.

use std::fmt::Write as _;

use crate::analyze::{Status, Verdict, VerdictFile};
use crate::results::{RunMeta, RunStatus};

/// A run as the CI files see it (read by `crate::ci::read`).
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The run directory's name.
    pub run_id: String,
    /// `run.json`; `None` when missing.
    pub meta: Option<RunMeta>,
    /// The experiment's `name` (from `experiment.toml`), for `run` runs.
    pub experiment: Option<String>,
    /// `verdict.json`; `None` when missing.
    pub verdicts: Option<VerdictFile>,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Pass,
    /// Checked and broken (JUnit `<failure>`).
    Fail,
    /// Could not be checked (JUnit `<error>`): not evaluable, a file missing.
    Error,
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// JUnit `classname`: `shakedown.<suite>.<what>` (`promise`, `stream`, `run`).
    pub class: String,
    pub name: String,
    pub status: CaseStatus,
    /// The failure's type: the promise type, `not-evaluable`, `errors`...
    pub kind: String,
    /// One line: why it failed or could not be checked (empty on a pass).
    pub message: String,
    /// The figures and the evidence window, one per line.
    pub details: String,
}

impl RunReport {
    /// The suite's name: the experiment's, else the profile's, else the run id.
    pub fn suite(&self) -> String {
        self.experiment
            .clone()
            .or_else(|| self.meta.as_ref().map(|m| m.profile.name.clone()))
            .unwrap_or_else(|| self.run_id.clone())
    }

    /// `run` or `load` (`run` when `run.json` is missing but verdicts exist).
    pub fn kind(&self) -> &str {
        match &self.meta {
            Some(m) => &m.kind,
            None if self.verdicts.is_some() || self.experiment.is_some() => "run",
            None => "unknown",
        }
    }

    /// Seconds from start to end, when both are known.
    pub fn duration_s(&self) -> Option<f64> {
        let m = self.meta.as_ref()?;
        let end = m.ended_at?;
        Some((end - m.started_at).num_milliseconds().max(0) as f64 / 1000.0)
    }

    /// Every case, the run's own first.
    pub fn cases(&self) -> Vec<Case> {
        let suite = self.suite();
        let mut out = vec![self.run_case(&suite)];
        if self.kind() == "load" {
            out.extend(self.stream_cases(&suite));
        } else {
            match &self.verdicts {
                Some(v) => {
                    for verdict in &v.verdicts {
                        out.extend(promise_cases(&suite, verdict));
                    }
                }
                None => out.push(Case {
                    class: format!("shakedown.{suite}.promise"),
                    name: "verdicts".into(),
                    status: CaseStatus::Error,
                    kind: "missing".into(),
                    message: "verdict.json missing: no promise was checked (run `shakedown analyze` on the run directory)".into(),
                    details: String::new(),
                }),
            }
        }
        out
    }

    fn run_case(&self, suite: &str) -> Case {
        let class = format!("shakedown.{suite}.run");
        let Some(m) = &self.meta else {
            return Case {
                class,
                name: "run completed".into(),
                status: CaseStatus::Error,
                kind: "missing".into(),
                message: "run.json missing: how the run ended is unknown".into(),
                details: String::new(),
            };
        };
        let (status, message) = match m.status {
            RunStatus::Completed => (CaseStatus::Pass, String::new()),
            RunStatus::Interrupted => (
                CaseStatus::Fail,
                "the run was interrupted (Ctrl-C or SIGTERM) before its schedule ended".into(),
            ),
            RunStatus::Failed => (
                CaseStatus::Fail,
                format!(
                    "the run failed: {}",
                    m.error.as_deref().unwrap_or("no error recorded")
                ),
            ),
            RunStatus::Running => (
                CaseStatus::Fail,
                "run.json still says `running`: the process died before the end".into(),
            ),
        };
        let mut details = String::new();
        let _ = writeln!(details, "run id: {}", m.run_id);
        let _ = writeln!(details, "target: {}", m.target);
        let _ = writeln!(details, "profile: {} (seed {})", m.profile.name, m.seed);
        if let Some(d) = self.duration_s() {
            let _ = writeln!(details, "duration: {d:.1} s");
        }
        Case {
            class,
            name: "run completed".into(),
            status,
            kind: "run".into(),
            message,
            details,
        }
    }

    /// `load` runs have no promises: each stream is checked for failed and dropped requests
    /// (a load test's one universal expectation); latency is reported, not judged.
    fn stream_cases(&self, suite: &str) -> Vec<Case> {
        let class = format!("shakedown.{suite}.stream");
        let summaries = self.meta.as_ref().map(|m| &m.summary);
        match summaries {
            Some(s) if !s.is_empty() => s
                .iter()
                .map(|s| {
                    let failed = s.errors_total();
                    let (status, message) = if failed > 0 || s.dropped > 0 {
                        (
                            CaseStatus::Fail,
                            format!(
                                "{failed} failed and {} dropped of {} intended requests (error rate {:.2}%)",
                                s.dropped,
                                s.intended,
                                s.error_rate * 100.0
                            ),
                        )
                    } else {
                        (CaseStatus::Pass, String::new())
                    };
                    let mut d = String::new();
                    let _ = writeln!(
                        d,
                        "intended: {}, sent: {}, ok: {}, failed: {failed}, dropped: {}, late: {}",
                        s.intended, s.sent, s.ok, s.dropped, s.late
                    );
                    for (class, n) in &s.errors {
                        let _ = writeln!(d, "errors {class}: {n}");
                    }
                    let _ = writeln!(d, "error_rate: {:.4}", s.error_rate);
                    let l = &s.latency_ms;
                    let _ = writeln!(
                        d,
                        "latency_ms (from the intended send time): p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
                        l.p50, l.p90, l.p99, l.p999, l.max
                    );
                    let _ = writeln!(d, "evidence window: 0s-{:.0}s (the whole run)", s.duration_s);
                    Case {
                        class: class.clone(),
                        name: format!("{}: no failed or dropped requests", s.stream),
                        status,
                        kind: "errors".into(),
                        message,
                        details: d,
                    }
                })
                .collect(),
            _ => vec![Case {
                class,
                name: "streams".into(),
                status: CaseStatus::Error,
                kind: "missing".into(),
                message: "run.json has no stream summary (the run did not finish): nothing was checked".into(),
                details: String::new(),
            }],
        }
    }
}

/// One case per promise, or per named check when every leg is one (a threshold's
/// expressions).
fn promise_cases(suite: &str, v: &Verdict) -> Vec<Case> {
    let class = format!("shakedown.{suite}.promise");
    let details = verdict_details(v);
    let named = !v.legs.is_empty() && v.legs.iter().all(|l| l.check.is_some());
    if named {
        return v
            .legs
            .iter()
            .map(|leg| {
                let (status, kind) = case_status(leg.status, &v.kind);
                Case {
                    class: class.clone(),
                    name: format!("{}: {}", v.promise, leg.check.as_deref().unwrap_or("")),
                    status,
                    kind,
                    message: match status {
                        CaseStatus::Pass => String::new(),
                        CaseStatus::Fail => leg.text.clone(),
                        CaseStatus::Error => format!("not evaluable: {}", leg.text),
                    },
                    details: details.clone(),
                }
            })
            .collect();
    }
    let (status, kind) = case_status(v.status, &v.kind);
    let reason = v.reason.clone().unwrap_or_else(|| v.summary.clone());
    vec![Case {
        class,
        name: v.promise.clone(),
        status,
        kind,
        message: match status {
            CaseStatus::Pass => String::new(),
            CaseStatus::Fail => reason,
            CaseStatus::Error => format!("not evaluable: {reason}"),
        },
        details,
    }]
}

fn case_status(s: Status, kind: &str) -> (CaseStatus, String) {
    match s {
        Status::Pass => (CaseStatus::Pass, kind.to_string()),
        Status::Fail => (CaseStatus::Fail, kind.to_string()),
        Status::NotEvaluable => (CaseStatus::Error, "not-evaluable".into()),
    }
}

/// The summary, the figures and the evidence window, one per line.
fn verdict_details(v: &Verdict) -> String {
    let mut d = String::new();
    let _ = writeln!(d, "{} ({}): {}", v.promise, v.kind, v.summary);
    for (k, f) in &v.figures {
        let value = match f {
            crate::analyze::verdict::Figure::Number(n) => format!("{n}"),
            crate::analyze::verdict::Figure::Text(t) => t.clone(),
        };
        let _ = writeln!(d, "{k}: {value}");
    }
    match v.window {
        Some([a, b]) => {
            let _ = writeln!(d, "evidence window: {a:.1}s-{b:.1}s from the run's start");
        }
        None => {
            let _ = writeln!(d, "evidence window: none");
        }
    }
    d
}

/// The overall status: any fail -> fail, else any error -> error, else pass.
pub fn overall(cases: &[Case]) -> CaseStatus {
    if cases.iter().any(|c| c.status == CaseStatus::Fail) {
        CaseStatus::Fail
    } else if cases.iter().any(|c| c.status == CaseStatus::Error) {
        CaseStatus::Error
    } else {
        CaseStatus::Pass
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analyze::verdict::Builder;

    /// A `run` run with a failed promise, a passing one, a not-evaluable one and a threshold
    /// with two expressions (one failing).
    pub(crate) fn report() -> RunReport {
        let meta: RunMeta =
            serde_json::from_str(include_str!("../../results/examples/demo-quick/run.json"))
                .unwrap();
        let mut failover = Builder::new("failover", "failover");
        failover
            .figure("recovery_s", 3.0)
            .window(8.0, 11.0)
            .leg(Status::Pass, "recovered in 3 s");
        let mut no_loss = Builder::new("no-loss", "no-loss");
        no_loss
            .figure("lost", 2u64)
            .figure("sample", "r1-uploads-000003")
            .window(0.0, 40.0)
            .leg(Status::Fail, "2 lost <of> 500 & more");
        let drain = Builder::new("drain", "drain").not_evaluable("no probe `backlog`");
        let mut threshold = Builder::new("threshold:whole", "threshold");
        threshold
            .figure("p99_ms", 420.0)
            .window(0.0, 40.0)
            .check("p99 < 300ms", Status::Fail, "p99 < 300ms (measured 420ms)")
            .check(
                "error_rate < 1%",
                Status::Pass,
                "error_rate < 1% (measured 0.2%)",
            );
        RunReport {
            run_id: "r1".into(),
            meta: Some(meta),
            experiment: Some("demo-quick".into()),
            verdicts: Some(VerdictFile::new(
                Some("r1".into()),
                vec![
                    failover.finish(),
                    no_loss.finish(),
                    drain,
                    threshold.finish(),
                ],
            )),
        }
    }

    #[test]
    fn one_case_per_promise_and_per_threshold_expression() {
        let cases = report().cases();
        let names: Vec<(&str, CaseStatus)> =
            cases.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            names,
            [
                ("run completed", CaseStatus::Pass),
                ("failover", CaseStatus::Pass),
                ("no-loss", CaseStatus::Fail),
                ("drain", CaseStatus::Error),
                ("threshold:whole: p99 < 300ms", CaseStatus::Fail),
                ("threshold:whole: error_rate < 1%", CaseStatus::Pass),
            ]
        );
        assert_eq!(cases[2].message, "2 lost <of> 500 & more");
        assert!(cases[2].details.contains("lost: 2\n"));
        assert!(
            cases[2]
                .details
                .contains("evidence window: 0.0s-40.0s from the run's start")
        );
        assert_eq!(cases[3].message, "not evaluable: no probe `backlog`");
        assert_eq!(overall(&cases), CaseStatus::Fail);
    }

    #[test]
    fn load_runs_check_failed_and_dropped_requests_per_stream() {
        let mut r = report();
        r.verdicts = None;
        r.experiment = None;
        r.meta.as_mut().unwrap().kind = "load".into();
        let cases = r.cases();
        assert_eq!(cases.len(), 1 + r.meta.as_ref().unwrap().summary.len());
        assert!(cases[1].name.ends_with(": no failed or dropped requests"));
        // No summary (the run died): nothing checked is an error, never a pass.
        r.meta.as_mut().unwrap().summary.clear();
        let cases = r.cases();
        assert_eq!(cases[1].status, CaseStatus::Error);
        // A run without verdict.json checked no promise.
        let mut r = report();
        r.verdicts = None;
        assert_eq!(r.cases()[1].status, CaseStatus::Error);
    }
}
