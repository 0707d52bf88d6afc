//! A memory sweep's results: per size, the latency promise's verdict and figure, the
//! function's billed GB-seconds and invocations, the cost, and the cheapest size that meets
//! the promise (AWS Lambda Power Tuning's question, asked of a sandbox function). Pure: the
//! session ([`crate::session::sweep`]) runs one experiment per size and reads each run's
//! `verdict.json` and `bus.json` into [`SizeRun`]s; this module judges them ([`judge`]),
//! renders the table ([`render_table`]) and `sweep.json` ([`SweepFile`], schema
//! `docs/schema/sweep.schema.json`). Format: `docs/experiments.md`, `[sweep]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::Status;

/// Version of the `sweep.json` format.
pub const FORMAT_VERSION: u32 = 1;

/// What the sweep is (from the experiment's `[sweep]` table).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub function: String,
    pub promise: String,
    /// The verdict figure shown as the latency (`e2e_p99_ms`).
    pub figure: String,
    pub memory_mb: Vec<u32>,
    pub price_per_gb_second: f64,
    pub price_per_request: f64,
}

/// What one size's run recorded, as read back from its run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeRun {
    pub memory_mb: u32,
    /// The run directory, relative to the sweep's directory (`sweep/128mb`).
    pub run_dir: String,
    /// The latency promise's verdict in the run's `verdict.json`: `Err(why)` when there is
    /// none (the run failed before its verdicts, or the file is unreadable).
    pub verdict: Result<PromiseOutcome, String>,
    /// The function's accounting in the run's `bus.json`: `Err(why)` when missing.
    pub accounting: Result<Accounting, String>,
}

/// The latency promise as judged in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseOutcome {
    pub status: Status,
    /// The figure (`e2e_p99_ms`), when measured.
    pub figure: Option<f64>,
    /// Why it failed or was not evaluable.
    pub reason: Option<String>,
}

/// A function's recorded bus accounting at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accounting {
    /// Invocations started.
    pub invocations: u64,
    /// Everything billed: invocation GB-seconds plus provisioned slots'.
    pub billed_gb_seconds: f64,
}

/// One size in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    pub memory_mb: u32,
    /// Its run directory, relative to the directory holding `sweep.json`.
    pub run_dir: String,
    /// The latency promise's verdict in that run (`not-evaluable` when it has none).
    pub status: Status,
    /// The promise's latency figure (the unit is in `SweepFile::figure`), when measured.
    pub figure: Option<f64>,
    /// Why the promise failed or was not evaluable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The function's invocations, from the run's `bus.json`.
    pub invocations: Option<u64>,
    /// The function's billed GB-seconds, from the run's `bus.json`.
    pub gb_seconds: Option<f64>,
    /// `gb_seconds x price_per_gb_second + invocations x price_per_request` (USD); absent
    /// when the accounting is missing (`cost_reason` says why).
    pub cost_usd: Option<f64>,
    /// The cost per million invocations (USD).
    pub cost_per_million_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_reason: Option<String>,
    /// The promise passed and the cost is known.
    pub meets: bool,
    /// The cheapest size that meets the promise.
    pub cheapest: bool,
}

/// The contents of `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SweepFile {
    pub format_version: u32,
    /// The swept function.
    pub function: String,
    /// The latency promise each size must meet.
    pub promise: String,
    /// The verdict figure reported per size (`e2e_p99_ms`: milliseconds).
    pub figure: String,
    pub price_per_gb_second: f64,
    pub price_per_request: f64,
    /// The sizes the file asks for, in order.
    pub planned_mb: Vec<u32>,
    /// The sizes run, in order (fewer than planned when the sweep was interrupted).
    pub rows: Vec<Row>,
    /// `pass`: a cheapest size that meets the promise was found (`cheapest_mb`); `fail`: no
    /// size meets it; `not-evaluable`: a size meets it but the costs cannot tell which is
    /// cheapest, or the sweep did not run every size.
    pub status: Status,
    pub cheapest_mb: Option<u32>,
    /// One line: the answer, or why there is none.
    pub summary: String,
}

/// Judges the sizes run: each row's cost and whether it meets the promise, and the
/// cheapest that meets it. A size meets only when its promise passed and its cost is
/// known; the cheapest is chosen only when every size that passed has a known cost (else
/// which is cheapest cannot be told). Equal costs go to the smaller size.
pub fn judge(plan: &Plan, runs: &[SizeRun]) -> SweepFile {
    let mut rows: Vec<Row> = runs.iter().map(|r| row(plan, r)).collect();
    let passed_without_cost: Vec<u32> = rows
        .iter()
        .filter(|r| r.status == Status::Pass && r.cost_usd.is_none())
        .map(|r| r.memory_mb)
        .collect();
    let cheapest = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.meets)
        .min_by(|(_, a), (_, b)| {
            let (ca, cb) = (
                a.cost_usd.unwrap_or(f64::INFINITY),
                b.cost_usd.unwrap_or(f64::INFINITY),
            );
            ca.total_cmp(&cb).then(a.memory_mb.cmp(&b.memory_mb))
        })
        .map(|(i, _)| i);
    let complete = runs.len() == plan.memory_mb.len();
    let (status, cheapest_mb, summary) = match cheapest {
        _ if !passed_without_cost.is_empty() => (
            Status::NotEvaluable,
            None,
            format!(
                "{} MB met `{}` but its cost is not evaluable: which size is cheapest cannot be told",
                join(&passed_without_cost),
                plan.promise
            ),
        ),
        None if !complete => (
            Status::NotEvaluable,
            None,
            format!(
                "no size run meets `{}`, and the sweep stopped after {} of {} sizes",
                plan.promise,
                runs.len(),
                plan.memory_mb.len()
            ),
        ),
        None => (
            Status::Fail,
            None,
            format!("no size meets `{}`", plan.promise),
        ),
        Some(i) if !complete => {
            rows[i].cheapest = true;
            (
                Status::NotEvaluable,
                Some(rows[i].memory_mb),
                format!(
                    "{} MB is the cheapest of the sizes run that meets `{}`, but the sweep stopped after {} of {} sizes",
                    rows[i].memory_mb,
                    plan.promise,
                    runs.len(),
                    plan.memory_mb.len()
                ),
            )
        }
        Some(i) => {
            rows[i].cheapest = true;
            (
                Status::Pass,
                Some(rows[i].memory_mb),
                format!(
                    "{} MB is the cheapest size that meets `{}` ({})",
                    rows[i].memory_mb,
                    plan.promise,
                    rows[i].cost_usd.map(usd).unwrap_or_default()
                ),
            )
        }
    };
    SweepFile {
        format_version: FORMAT_VERSION,
        function: plan.function.clone(),
        promise: plan.promise.clone(),
        figure: plan.figure.clone(),
        price_per_gb_second: plan.price_per_gb_second,
        price_per_request: plan.price_per_request,
        planned_mb: plan.memory_mb.clone(),
        rows,
        status,
        cheapest_mb,
        summary,
    }
}

fn row(plan: &Plan, run: &SizeRun) -> Row {
    let (status, figure, reason) = match &run.verdict {
        Ok(v) => (v.status, v.figure, v.reason.clone()),
        Err(why) => (Status::NotEvaluable, None, Some(why.clone())),
    };
    let (invocations, gb_seconds, cost, cost_reason) = match run.accounting {
        Ok(a) if a.billed_gb_seconds.is_finite() && a.billed_gb_seconds >= 0.0 => (
            Some(a.invocations),
            Some(a.billed_gb_seconds),
            Some(
                a.billed_gb_seconds * plan.price_per_gb_second
                    + a.invocations as f64 * plan.price_per_request,
            ),
            None,
        ),
        Ok(a) => (
            Some(a.invocations),
            None,
            None,
            Some(format!(
                "billed GB-seconds {} is not a cost",
                a.billed_gb_seconds
            )),
        ),
        Err(ref why) => (None, None, None, Some(why.clone())),
    };
    let per_million = cost
        .zip(invocations)
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| c / n as f64 * 1e6);
    Row {
        memory_mb: run.memory_mb,
        run_dir: run.run_dir.clone(),
        status,
        figure,
        reason,
        invocations,
        gb_seconds,
        cost_usd: cost,
        cost_per_million_usd: per_million,
        cost_reason,
        meets: status == Status::Pass && cost.is_some(),
        cheapest: false,
    }
}

/// Memory sizes as a comma-separated list (`128, 512, 3008`).
pub fn join(sizes: &[u32]) -> String {
    sizes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cost in USD, with enough digits for the fractions of a cent a short run costs.
pub fn usd(v: f64) -> String {
    format!("${v:.8}")
}

/// A figure in its unit: `_ms` keys as milliseconds, others as they are.
fn format_figure(key: &str, v: f64) -> String {
    if key.ends_with("_ms") {
        format!("{v:.0} ms")
    } else {
        format!("{v}")
    }
}

/// The table printed after a sweep: one line per size run, the cheapest marked, then the
/// summary line.
pub fn render_table(file: &SweepFile) -> String {
    let header = [
        "memory".to_string(),
        file.figure
            .strip_suffix("_ms")
            .unwrap_or(&file.figure)
            .to_string(),
        format!("`{}`", file.promise),
        "invocations".into(),
        "GB-s".into(),
        "cost".into(),
        "per 1M inv.".into(),
        String::new(),
    ];
    let mut lines = vec![header.to_vec()];
    for r in &file.rows {
        let mark = if r.cheapest {
            "<- cheapest that meets".to_string()
        } else if let Some(why) = r.cost_reason.as_ref().filter(|_| r.status == Status::Pass) {
            format!("cost not evaluable: {why}")
        } else {
            String::new()
        };
        lines.push(vec![
            format!("{} MB", r.memory_mb),
            r.figure
                .map(|v| format_figure(&file.figure, v))
                .unwrap_or_else(|| "-".into()),
            r.status.label().to_string(),
            r.invocations.map_or("-".into(), |n| n.to_string()),
            r.gb_seconds.map_or("-".into(), |g| format!("{g:.3}")),
            r.cost_usd.map_or("n/e".into(), usd),
            r.cost_per_million_usd
                .map_or("-".into(), |c| format!("${c:.2}")),
            mark,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("memory sweep of function `{}`:\n", file.function);
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for r in file.rows.iter().filter(|r| r.status != Status::Pass) {
        if let Some(why) = &r.reason {
            out.push_str(&format!("  {} MB: {why}\n", r.memory_mb));
        }
    }
    out.push_str(&format!("sweep: {}\n", file.summary));
    out
}

/// The JSON schema of `sweep.json`, as published in `docs/schema/sweep.schema.json`.
pub fn schema() -> String {
    let schema = schemars::schema_for!(SweepFile);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(sizes: &[u32]) -> Plan {
        Plan {
            function: "resize".into(),
            promise: "latency".into(),
            figure: "e2e_p99_ms".into(),
            memory_mb: sizes.to_vec(),
            price_per_gb_second: 0.0000166667,
            price_per_request: 0.0000002,
        }
    }

    fn run(mb: u32, status: Status, p99: f64, gb_s: Option<f64>) -> SizeRun {
        SizeRun {
            memory_mb: mb,
            run_dir: format!("sweep/{mb}mb"),
            verdict: Ok(PromiseOutcome {
                status,
                figure: Some(p99),
                reason: (status != Status::Pass).then(|| "e2e_p99 < 1s (measured 3s)".into()),
            }),
            accounting: gb_s
                .map(|g| Accounting {
                    invocations: 100,
                    billed_gb_seconds: g,
                })
                .ok_or_else(|| "no bus.json in the run".to_string()),
        }
    }

    #[test]
    fn the_cheapest_passing_size_is_chosen_not_the_cheapest_size() {
        let p = plan(&[128, 1024, 3008]);
        let f = judge(
            &p,
            &[
                run(128, Status::Fail, 2900.0, Some(34.8)),
                run(1024, Status::Pass, 400.0, Some(36.5)),
                run(3008, Status::Pass, 250.0, Some(64.6)),
            ],
        );
        assert_eq!(f.status, Status::Pass);
        assert_eq!(f.cheapest_mb, Some(1024));
        assert!(!f.rows[0].meets && f.rows[1].meets && f.rows[2].meets);
        assert!(f.rows[1].cheapest && !f.rows[2].cheapest);
        let cost = f.rows[1].cost_usd.unwrap();
        assert!((cost - (36.5 * 0.0000166667 + 100.0 * 0.0000002)).abs() < 1e-12);
        assert!((f.rows[1].cost_per_million_usd.unwrap() - cost * 1e4).abs() < 1e-9);
        let table = render_table(&f);
        assert!(table.contains("1024 MB") && table.contains("<- cheapest that meets"));
        assert!(
            table.contains("128 MB: e2e_p99 < 1s (measured 3s)"),
            "{table}"
        );
        assert!(table.contains("FAIL"), "{table}");
    }

    #[test]
    fn none_meets_is_a_fail_and_not_evaluable_never_meets() {
        let p = plan(&[128, 256]);
        let f = judge(
            &p,
            &[
                run(128, Status::Fail, 2900.0, Some(1.0)),
                run(256, Status::NotEvaluable, 900.0, Some(1.0)),
            ],
        );
        assert_eq!(f.status, Status::Fail);
        assert_eq!(f.cheapest_mb, None);
        assert!(f.rows.iter().all(|r| !r.meets && !r.cheapest));
        assert!(render_table(&f).contains("no size meets `latency`"));
    }

    #[test]
    fn a_passing_size_without_accounting_makes_the_answer_not_evaluable() {
        let p = plan(&[512, 1024]);
        let f = judge(
            &p,
            &[
                run(512, Status::Pass, 700.0, None),
                run(1024, Status::Pass, 400.0, Some(36.5)),
            ],
        );
        assert_eq!(f.status, Status::NotEvaluable);
        assert_eq!(f.cheapest_mb, None);
        assert_eq!(f.rows[0].cost_usd, None);
        assert_eq!(
            f.rows[0].cost_reason.as_deref(),
            Some("no bus.json in the run")
        );
        assert!(f.summary.contains("512 MB met"), "{}", f.summary);
    }

    #[test]
    fn a_missing_verdict_is_not_evaluable_and_an_interrupted_sweep_is_not_a_pass() {
        let p = plan(&[128, 1024, 3008]);
        let mut first = run(128, Status::Pass, 0.0, Some(1.0));
        first.verdict = Err("no verdict.json".into());
        let f = judge(&p, &[first, run(1024, Status::Pass, 400.0, Some(36.5))]);
        assert_eq!(f.rows[0].status, Status::NotEvaluable);
        assert!(!f.rows[0].meets);
        assert_eq!(f.status, Status::NotEvaluable);
        assert_eq!(f.cheapest_mb, Some(1024));
        assert!(f.summary.contains("stopped after 2 of 3"), "{}", f.summary);
    }

    #[test]
    fn sweep_json_round_trips() {
        let f = judge(&plan(&[128]), &[run(128, Status::Pass, 1.0, Some(2.0))]);
        let text = serde_json::to_string_pretty(&f).unwrap();
        let back: SweepFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Pass),
            Just(Status::Fail),
            Just(Status::NotEvaluable)
        ]
    }

    proptest! {
        /// The chosen size meets the promise with a known cost, and no size that meets it
        /// costs less; without a choice on a complete sweep with every cost known, no size
        /// meets it.
        #[test]
        fn the_choice_meets_and_nothing_cheaper_does(
            sizes in proptest::collection::btree_set(128u32..=10240, 1..8),
            cells in proptest::collection::vec((status(), proptest::option::weighted(0.9, 0.0f64..100.0)), 8),
        ) {
            let sizes: Vec<u32> = sizes.into_iter().collect();
            let runs: Vec<SizeRun> = sizes
                .iter()
                .zip(&cells)
                .map(|(&mb, &(s, g))| run(mb, s, 100.0, g))
                .collect();
            let f = judge(&plan(&sizes), &runs);
            prop_assert!(f.rows.iter().filter(|r| r.cheapest).count() <= 1);
            match f.cheapest_mb {
                Some(mb) => {
                    let chosen = f.rows.iter().find(|r| r.memory_mb == mb).unwrap();
                    prop_assert!(chosen.cheapest && chosen.meets);
                    prop_assert_eq!(chosen.status, Status::Pass);
                    let c = chosen.cost_usd.unwrap();
                    for r in f.rows.iter().filter(|r| r.meets) {
                        prop_assert!(r.cost_usd.unwrap() >= c);
                    }
                    prop_assert_eq!(f.status, Status::Pass);
                }
                None => {
                    let known = f.rows.iter().all(|r| r.status != Status::Pass || r.cost_usd.is_some());
                    if known {
                        prop_assert!(f.rows.iter().all(|r| !r.meets));
                        prop_assert_eq!(f.status, Status::Fail);
                    } else {
                        prop_assert_eq!(f.status, Status::NotEvaluable);
                    }
                }
            }
        }
    }
}
