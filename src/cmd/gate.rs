//! `shakedown gate RUN_DIR --baseline BASE`: exit 1 when the run regressed against the
//! baseline (a run directory or a baseline file), by the rule of [`crate::ci::gate`];
//! `--save FILE` writes the run's baseline file.

use std::path::PathBuf;

use crate::ci::gate::{self, GateOutcome, RegressionSpec};
use crate::ci::read::{read_summary, save_summary};
use crate::cmd::Outcome;

/// `shakedown gate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// The candidate: a run directory (`results/<run-id>`) or a baseline file.
    pub run_dir: PathBuf,
    /// What to compare with: a run directory of the same experiment, profile and seed, or a
    /// baseline file written by `--save`.
    #[arg(long, value_name = "RUN_DIR|FILE")]
    pub baseline: Option<PathBuf>,
    /// Metrics and how much worse each may get (default `p99=25%,error_rate=0.1pp,e2e_p99=25%`). Known: p50, p90, p99, p999 (per stream, from the intended send time),
    /// error_rate (per stream, in percentage points), e2e_p50, e2e_p99 (accepted -> completed).
    /// Only the metrics listed are gated; a listed metric that cannot be compared is an error.
    #[arg(long, value_name = "SPEC")]
    pub max_regression: Option<String>,
    /// Significance level of the one-sided tests (the false-alarm rate each test allows).
    #[arg(long, default_value_t = gate::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// Compare runs of different experiments, profiles or seeds anyway.
    #[arg(long)]
    pub force: bool,
    /// Exit 0 when the only finding is inconclusive (a metric worse than its tolerance but
    /// not significantly); it is still printed. Without it such a gate exits 1.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// Write RUN_DIR's baseline file here (small JSON to commit and pass as --baseline later).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

/// Reads both runs, refuses mismatched ones, prints the table and the verdict.
pub fn gate(args: &GateArgs) -> anyhow::Result<Outcome> {
    if args.baseline.is_none() && args.save.is_none() {
        anyhow::bail!(
            "give --baseline RUN_DIR|FILE to compare with, or --save FILE to write a baseline"
        );
    }
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        anyhow::bail!("--alpha must be between 0 and 1, found {}", args.alpha);
    }
    let spec: RegressionSpec = match &args.max_regression {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--max-regression: {e}"))?,
        None => RegressionSpec::default(),
    };
    let candidate = read_summary(&args.run_dir)?;
    if let Some(path) = &args.save {
        save_summary(path, &candidate)?;
        println!(
            "baseline of {} written to {}",
            candidate.run_id,
            path.display()
        );
    }
    let Some(base_path) = &args.baseline else {
        return Ok(Outcome::Ok);
    };
    let baseline = read_summary(base_path)?;
    let differences = candidate.identity.differences(&baseline.identity);
    if !differences.is_empty() {
        let list = differences.join("; ");
        if !args.force {
            eprintln!(
                "error: refusing to compare runs of different experiments ({list}); --force compares them anyway"
            );
            return Ok(Outcome::Error);
        }
        println!("warning: comparing anyway (--force): {list}");
    }
    let id = &candidate.identity;
    println!(
        "shakedown gate: {} vs baseline {} ({}, profile {}, seed {})",
        candidate.run_id,
        baseline.run_id,
        id.experiment
            .as_deref()
            .map(|e| format!("experiment {e}"))
            .unwrap_or_else(|| format!("{} run", id.run_kind)),
        id.profile,
        id.seed
    );
    println!("{}", gate::describe_rule(args.alpha));
    println!();
    let report = gate::compare(&candidate, &baseline, &spec, args.alpha);
    print!("{}", gate::render_table(&report));
    println!();
    let line = gate::render_outcome(&report);
    Ok(match report.outcome() {
        GateOutcome::Pass => {
            println!("{line}");
            Outcome::Ok
        }
        GateOutcome::Regression => {
            println!("{line}");
            Outcome::Failed
        }
        GateOutcome::Inconclusive if args.allow_inconclusive => {
            println!("{line}");
            println!("exit 0: --allow-inconclusive");
            Outcome::Ok
        }
        GateOutcome::Inconclusive => {
            println!("{line}");
            Outcome::Failed
        }
        GateOutcome::Incomplete => {
            eprintln!("{line}");
            Outcome::Error
        }
    })
}
