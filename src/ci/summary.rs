//! `summary.md`: a few lines of Markdown about a run, fit for a pull-request comment or
//! `$GITHUB_STEP_SUMMARY`: the outcome, the promises (or the checks of a `load` run), the
//! traffic per stream. Pure.

use std::fmt::Write as _;

use super::cases::{CaseStatus, RunReport, overall};
use crate::analyze::Status;

/// Longest text kept in a table cell (the rest is in `verdict.json`).
const CELL: usize = 160;

/// Renders `summary.md`.
pub fn render(report: &RunReport) -> String {
    let cases = report.cases();
    let mut md = String::new();
    let headline = match overall(&cases) {
        CaseStatus::Pass => "pass",
        CaseStatus::Fail => "FAIL",
        CaseStatus::Error => "NOT EVALUABLE",
    };
    let what = match &report.experiment {
        Some(e) => format!("experiment `{}`", cell(e)),
        None => format!("{} `{}`", report.kind(), cell(&report.suite())),
    };
    let _ = writeln!(md, "### shakedown {what}: **{headline}**\n");
    let mut facts = vec![format!("run `{}`", cell(&report.run_id))];
    if let Some(m) = &report.meta {
        facts.push(format!("profile `{}`", cell(&m.profile.name)));
        facts.push(format!("seed {}", m.seed));
        if let Some(d) = report.duration_s() {
            facts.push(format!("{d:.0} s"));
        }
        facts.push(format!("{:?}", m.status).to_lowercase());
        facts.push(format!("{} {}", m.tool.name, m.tool.version));
    }
    let _ = writeln!(md, "{}\n", facts.join(" · "));

    match &report.verdicts {
        Some(v) if !v.verdicts.is_empty() => {
            md.push_str("| promise | status | window | summary |\n|---|---|---|---|\n");
            for v in &v.verdicts {
                let status = match v.status {
                    Status::Pass => "pass",
                    Status::Fail => "**FAIL**",
                    Status::NotEvaluable => "not evaluable",
                };
                let window = v
                    .window
                    .map(|[a, b]| format!("{a:.0}s–{b:.0}s"))
                    .unwrap_or_else(|| "–".into());
                let _ = writeln!(
                    md,
                    "| {} | {status} | {window} | {} |",
                    cell(&v.promise),
                    cell(&v.summary)
                );
            }
            md.push('\n');
        }
        _ => {
            // A load run, or a run without verdicts: the checks that were made.
            let failing: Vec<_> = cases
                .iter()
                .filter(|c| c.status != CaseStatus::Pass)
                .collect();
            if failing.is_empty() {
                let _ = writeln!(md, "All {} checks passed.\n", cases.len());
            } else {
                for c in failing {
                    let _ = writeln!(md, "- **{}**: {}", cell(&c.name), cell(&c.message));
                }
                md.push('\n');
            }
        }
    }

    if let Some(m) = report.meta.as_ref().filter(|m| !m.summary.is_empty()) {
        md.push_str(
            "| stream | sent | ok | failed | error rate | p50 | p99 |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for s in &m.summary {
            let ms = |v: f64| {
                if s.latency_ms.count > 0 {
                    format!("{v:.1} ms")
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2}% | {} | {} |",
                cell(&s.stream),
                s.sent,
                s.ok,
                s.errors_total(),
                s.error_rate * 100.0,
                ms(s.latency_ms.p50),
                ms(s.latency_ms.p99)
            );
        }
        md.push('\n');
    }
    let verdicts = if report.verdicts.is_some() {
        "`verdict.json`, "
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "Files: {verdicts}`junit.xml`, `timeline.csv`; `report.html` when rendered."
    );
    md
}

/// A table cell: one line, pipes escaped, cut to [`CELL`] characters.
fn cell(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    if one_line.chars().count() > CELL {
        let cut: String = one_line.chars().take(CELL - 1).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::cases::tests::report;

    #[test]
    fn the_summary_is_short_markdown() {
        let md = render(&report());
        assert!(
            md.starts_with("### shakedown experiment `demo-quick`: **FAIL**"),
            "{md}"
        );
        assert!(md.contains("| no-loss | **FAIL** | 0s–40s | 2 lost <of> 500 & more |"));
        assert!(md.contains("| drain | not evaluable |"));
        assert!(md.contains("| uploads |"));
        assert!(md.lines().count() < 30, "{md}");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
