//! `shakedown report RUN_DIR [--out FILE]`: render a run's HTML report again from its files
//! (a `run`, `demo` or `load` run, finished or interrupted; with or without verdicts).

use std::path::PathBuf;

use crate::cmd::Outcome;

/// `shakedown report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The run directory (`results/<run-id>`).
    pub run_dir: PathBuf,
    /// Write the report here instead of `<RUN_DIR>/report.html`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Renders the report and prints where it went.
pub fn report(args: &ReportArgs) -> Outcome {
    match crate::report::write_report(&args.run_dir, args.out.as_deref()) {
        Ok(path) => {
            println!("report: {}", path.display());
            Outcome::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Error
        }
    }
}
