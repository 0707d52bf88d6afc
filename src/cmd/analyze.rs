//! `shakedown analyze RUN_DIR`: recompute every verdict from a run's files alone (the same
//! result as the live run), optionally with the promises of another experiment file, so
//! thresholds can be changed after the fact.

use std::path::PathBuf;

use crate::cmd::Outcome;
use crate::session::experiment::EXPERIMENT_FILE;
use crate::session::report::{analyze_and_report, verdict_outcome};

/// `shakedown analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// The run directory (`results/<run-id>`).
    pub run_dir: PathBuf,
    /// Take the promises from this experiment file instead of the run's copy
    /// (`<RUN_DIR>/experiment.toml`).
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// Exit 0 even when some promises are not evaluable (failures still exit 1).
    #[arg(long)]
    pub allow_not_evaluable: bool,
    /// `--output text|json`.
    #[command(flatten)]
    pub output: crate::term::OutputArgs,
}

/// Loads the promises, evaluates them against the run, rewrites `verdict.json`.
pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<Outcome> {
    let file = args
        .experiment
        .clone()
        .unwrap_or_else(|| args.run_dir.join(EXPERIMENT_FILE));
    if !file.exists() {
        anyhow::bail!(
            "{} not found: this run has no experiment copy (a `load` run?); give the promises with --experiment FILE",
            file.display()
        );
    }
    let promises = match crate::analyze::load_promises(&file) {
        Ok(p) => p,
        Err(d) => {
            eprint!("{d}");
            return Ok(Outcome::Error);
        }
    };
    let (verdicts, view) = analyze_and_report(&args.run_dir, &promises)?;
    crate::outln!(
        "verdicts written to {}",
        crate::results::RunDir::at(&args.run_dir)
            .verdict()
            .display()
    );
    crate::session::report::write_documents(&args.run_dir, Some(view));
    Ok(verdict_outcome(&verdicts, args.allow_not_evaluable))
}
