//! `junit.xml`: the run's [`Case`]s as JUnit XML (the `testsuites` dialect that GitHub
//! test reporters, GitLab's `artifacts:reports:junit` and Jenkins read). Pure.
//!
//! One `<testsuite>` per run (named after the experiment, or the profile of a `load` run)
//! with the run's identity as `<properties>`. A failed case carries `<failure message type>`
//! whose text holds the figures and the evidence window; a case that could not be checked
//! (not evaluable, a missing file) carries `<error>`, never nothing.

use std::fmt::Write as _;

use super::cases::{Case, CaseStatus, RunReport};

/// Renders `junit.xml`.
pub fn render(report: &RunReport) -> String {
    let cases = report.cases();
    let count = |s: CaseStatus| cases.iter().filter(|c| c.status == s).count();
    let (tests, failures, errors) = (
        cases.len(),
        count(CaseStatus::Fail),
        count(CaseStatus::Error),
    );
    let time = report.duration_s().unwrap_or(0.0);
    let suite = report.suite();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = format!(
        "tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\""
    );
    let _ = writeln!(x, "<testsuites name=\"shakedown\" {totals}>");
    let mut suite_attrs = format!("name=\"{}\" {totals}", attr(&suite));
    if let Some(m) = &report.meta {
        let _ = write!(
            suite_attrs,
            " timestamp=\"{}\" hostname=\"{}\"",
            m.started_at.format("%Y-%m-%dT%H:%M:%S"),
            attr(&m.host)
        );
    }
    let _ = writeln!(x, "  <testsuite {suite_attrs}>");
    x.push_str("    <properties>\n");
    for (name, value) in properties(report) {
        let _ = writeln!(
            x,
            "      <property name=\"{}\" value=\"{}\"/>",
            attr(name),
            attr(&value)
        );
    }
    x.push_str("    </properties>\n");
    for c in &cases {
        case(&mut x, c);
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn properties(report: &RunReport) -> Vec<(&'static str, String)> {
    let mut out = vec![("run_id", report.run_id.clone())];
    out.push(("kind", report.kind().to_string()));
    if let Some(e) = &report.experiment {
        out.push(("experiment", e.clone()));
    }
    if let Some(m) = &report.meta {
        out.push(("profile", m.profile.name.clone()));
        out.push(("seed", m.seed.to_string()));
        out.push(("target", m.target.clone()));
        out.push(("status", format!("{:?}", m.status).to_lowercase()));
        out.push(("tool", format!("{} {}", m.tool.name, m.tool.version)));
    }
    if let Some(v) = &report.verdicts {
        out.push((
            "overall",
            match v.overall {
                crate::analyze::Status::Pass => "pass",
                crate::analyze::Status::Fail => "fail",
                crate::analyze::Status::NotEvaluable => "not-evaluable",
            }
            .into(),
        ));
    }
    out
}

fn case(x: &mut String, c: &Case) {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
        attr(&c.class),
        attr(&c.name)
    );
    let tag = match c.status {
        CaseStatus::Pass => {
            let _ = writeln!(x, "{open}/>");
            return;
        }
        CaseStatus::Fail => "failure",
        CaseStatus::Error => "error",
    };
    let _ = writeln!(x, "{open}>");
    let _ = writeln!(
        x,
        "      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>",
        attr(&c.message),
        attr(&c.kind),
        text(format!("{}\n{}", c.message, c.details).trim_end())
    );
    x.push_str("    </testcase>\n");
}

/// Text content: `&`, `<`, `>` escaped; characters XML 1.0 forbids dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars().filter(|c| allowed(*c)) {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    out
}

/// An attribute value: also quotes, and line breaks as character references.
fn attr(s: &str) -> String {
    text(s)
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::cases::tests::report;

    #[test]
    fn junit_counts_and_escapes() {
        let xml = render(&report());
        assert!(xml.contains(r#"<testsuites name="shakedown" tests="6" failures="2" errors="1""#));
        assert!(xml.contains(r#"message="2 lost &lt;of&gt; 500 &amp; more" type="no-loss""#));
        assert!(xml.contains(
            r#"<error message="not evaluable: no probe `backlog`" type="not-evaluable""#
        ));
        assert!(xml.contains("evidence window: 0.0s-40.0s"));
        assert!(xml.contains(r#"name="threshold:whole: p99 &lt; 300ms""#));
        assert_eq!(attr("a\u{1}\"b\nc"), "a&quot;b&#10;c");
    }
}
