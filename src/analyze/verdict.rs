//! [`Verdict`]: the outcome of one promise, the terminal table and `verdict.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the `verdict.json` format.
pub const FORMAT_VERSION: u32 = 1;

/// Whether a promise held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The run shows the promise held.
    Pass,
    /// The run shows the promise was broken.
    Fail,
    /// The run lacks the data to tell (never counted as a pass).
    NotEvaluable,
}

impl Status {
    /// `pass`, `FAIL`, `n/e`: what the table shows.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::NotEvaluable => "n/e",
        }
    }
}

/// A measured figure: a number, or text (an id, a time that never came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Figure {
    Number(f64),
    Text(String),
}

impl From<f64> for Figure {
    fn from(v: f64) -> Figure {
        Figure::Number(v)
    }
}

impl From<u64> for Figure {
    fn from(v: u64) -> Figure {
        Figure::Number(v as f64)
    }
}

impl From<&str> for Figure {
    fn from(v: &str) -> Figure {
        Figure::Text(v.to_string())
    }
}

impl From<String> for Figure {
    fn from(v: String) -> Figure {
        Figure::Text(v)
    }
}

/// The outcome of one promise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// The promise's name (its `name`, or a default built from its type).
    pub promise: String,
    /// The promise type (`failover`, `no-loss`...).
    #[serde(rename = "type")]
    pub kind: String,
    pub status: Status,
    /// One line for the table.
    pub summary: String,
    /// Measured figures; durations in seconds (`_s`), latencies in ms (`_ms`), rates per second.
    pub figures: BTreeMap<String, Figure>,
    /// The evidence window `[from, to]`, seconds from the run's start.
    pub window: Option<[f64; 2]>,
    /// Why it failed or could not be evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The sub-checks the status combines, in order (absent in older files). A `threshold`
    /// promise has one per expression, named by `check`; `junit.xml` makes each named check
    /// its own test case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<Leg>,
}

/// One sub-check of a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Leg {
    pub status: Status,
    /// What was checked and what was measured (one clause of the summary).
    pub text: String,
    /// The check's own name when it stands alone (a threshold expression: `p99 < 300ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// The contents of `verdict.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerdictFile {
    pub format_version: u32,
    /// The run directory's name, when known.
    pub run_id: Option<String>,
    /// `fail` if any promise failed, else `not-evaluable` if any could not be evaluated,
    /// else `pass` (also `pass` with no promises at all).
    pub overall: Status,
    pub verdicts: Vec<Verdict>,
}

impl VerdictFile {
    pub fn new(run_id: Option<String>, verdicts: Vec<Verdict>) -> VerdictFile {
        VerdictFile {
            format_version: FORMAT_VERSION,
            run_id,
            overall: combine(verdicts.iter().map(|v| v.status)),
            verdicts,
        }
    }
}

/// Any fail -> fail; else any not-evaluable -> not-evaluable; else pass.
pub fn combine(statuses: impl IntoIterator<Item = Status>) -> Status {
    let mut out = Status::Pass;
    for s in statuses {
        match s {
            Status::Fail => return Status::Fail,
            Status::NotEvaluable => out = Status::NotEvaluable,
            Status::Pass => {}
        }
    }
    out
}

/// The JSON schema of `verdict.json`, as published in `docs/schema/verdict.schema.json`.
pub fn schema() -> String {
    let schema = schemars::schema_for!(VerdictFile);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// Builds a verdict: figures and legs are collected while a promise is evaluated; each leg
/// is a sub-check with its own status, and the verdict combines them ([`combine`]).
#[derive(Debug, Clone)]
pub struct Builder {
    promise: String,
    kind: &'static str,
    figures: BTreeMap<String, Figure>,
    window: Option<[f64; 2]>,
    legs: Vec<Leg>,
}

impl Builder {
    pub fn new(promise: &str, kind: &'static str) -> Builder {
        Builder {
            promise: promise.to_string(),
            kind,
            figures: BTreeMap::new(),
            window: None,
            legs: Vec::new(),
        }
    }

    /// Records a figure; non-finite numbers are not recorded (JSON has no NaN).
    pub fn figure(&mut self, key: &str, value: impl Into<Figure>) -> &mut Self {
        let value = value.into();
        if !matches!(value, Figure::Number(v) if !v.is_finite()) {
            self.figures.insert(key.to_string(), value);
        }
        self
    }

    pub fn window(&mut self, from: f64, to: f64) -> &mut Self {
        self.window = Some([from, to.max(from)]);
        self
    }

    /// A sub-check with its status and a one-line explanation.
    pub fn leg(&mut self, status: Status, text: impl Into<String>) -> &mut Self {
        self.legs.push(Leg {
            status,
            text: text.into(),
            check: None,
        });
        self
    }

    /// A sub-check that stands alone under its own name (a threshold expression).
    pub fn check(&mut self, check: &str, status: Status, text: impl Into<String>) -> &mut Self {
        self.legs.push(Leg {
            status,
            text: text.into(),
            check: Some(check.to_string()),
        });
        self
    }

    /// A verdict that could not be evaluated at all.
    pub fn not_evaluable(mut self, reason: impl Into<String>) -> Verdict {
        self.legs.clear();
        self.leg(Status::NotEvaluable, reason);
        self.finish()
    }

    /// Combines the legs: the summary lists them all; the reason lists those that did not
    /// pass (the fails when there are any, else the not-evaluable ones).
    pub fn finish(self) -> Verdict {
        let status = if self.legs.is_empty() {
            Status::NotEvaluable
        } else {
            combine(self.legs.iter().map(|l| l.status))
        };
        let summary = self
            .legs
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let reason = match status {
            Status::Pass => None,
            _ => Some(
                self.legs
                    .iter()
                    .filter(|l| l.status == status)
                    .map(|l| l.text.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        Verdict {
            promise: self.promise,
            kind: self.kind.to_string(),
            status,
            summary: if summary.is_empty() {
                "no check ran".into()
            } else {
                summary
            },
            figures: self.figures,
            window: self.window,
            reason,
            legs: self.legs,
        }
    }
}

/// The verdicts as an aligned text table for the terminal: promise, status, window, summary.
pub fn render_table(verdicts: &[Verdict]) -> String {
    render_table_with(verdicts, &|_, cell| cell.to_owned())
}

/// [`render_table`] with each row's status cell (padded to its column) passed through
/// `paint` (the terminal's colours); the header row's status cell is not painted.
pub fn render_table_with(verdicts: &[Verdict], paint: &dyn Fn(Status, &str) -> String) -> String {
    let rows: Vec<[String; 4]> =
        std::iter::once(["promise", "status", "window", "summary"].map(String::from))
            .chain(verdicts.iter().map(|v| {
                [
                    v.promise.clone(),
                    v.status.label().to_string(),
                    v.window
                        .map(|[a, b]| format!("{a:.0}s-{b:.0}s"))
                        .unwrap_or_else(|| "-".into()),
                    v.summary.clone(),
                ]
            }))
            .collect();
    let widths: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let statuses = std::iter::once(None).chain(verdicts.iter().map(|v| Some(v.status)));
    let mut out = String::new();
    for (r, status) in rows.iter().zip(statuses) {
        for (i, w) in widths.iter().enumerate() {
            let cell = format!("{:<w$}", r[i], w = *w);
            match status {
                Some(status) if i == 1 => out.push_str(&paint(status, &cell)),
                _ => out.push_str(&cell),
            }
            out.push_str("  ");
        }
        out.push_str(&r[3]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_combine_fail_first_then_not_evaluable() {
        let mut b = Builder::new("p", "failover");
        b.leg(Status::Pass, "a ok")
            .leg(Status::NotEvaluable, "b unknown");
        let v = b.clone().finish();
        assert_eq!(v.status, Status::NotEvaluable);
        assert_eq!(v.reason.as_deref(), Some("b unknown"));
        b.leg(Status::Fail, "c broke");
        let v = b.finish();
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Fail, Some("c broke"))
        );
        assert_eq!(v.summary, "a ok; b unknown; c broke");
        assert_eq!(Builder::new("p", "x").finish().status, Status::NotEvaluable);
    }

    #[test]
    fn nan_figures_are_dropped_and_the_table_aligns() {
        let mut b = Builder::new("long-promise-name", "drain");
        b.figure("x", f64::NAN)
            .figure("y", 2.0)
            .leg(Status::Pass, "fine");
        b.window(10.0, 20.0);
        let v = b.finish();
        assert!(!v.figures.contains_key("x"));
        let table = render_table(&[v]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0].find("status"), lines[1].find("pass"));
        assert!(lines[1].contains("10s-20s"));
    }
}
