//! `shakedown run EXPERIMENT`: the main job. The arguments become [`RunOptions`]; the run
//! itself (prepare, run, cool down, finish) is [`crate::session::experiment`]; an
//! experiment with a `[sweep]` is one run per memory size ([`crate::session::sweep`]).

use std::path::PathBuf;

use crate::cmd::Outcome;
use crate::sandbox::config::ArchChoice;
use crate::session::experiment::{RunOptions, run_experiment};
use crate::session::sweep::run_sweep;

/// `shakedown run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The experiment (e.g. chaos/failover.toml).
    pub experiment: PathBuf,
    /// Resolve the target and every selector, print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With a sandbox target: run this architecture or broken variant instead of the file's.
    #[arg(long)]
    pub arch: Option<ArchChoice>,
    /// Seed for the schedule and fault choices (default: the file's, else random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories are created.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Name of the run directory (default: `<timestamp>-<experiment name>`).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Send every AWS call of an existing-system target to this endpoint instead (LocalStack,
    /// moto); a loopback endpoint gets placeholder credentials.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Exit 0 even when some promises are not evaluable (failures still exit 1).
    #[arg(long)]
    pub allow_not_evaluable: bool,
    /// https trust options; each one given overrides the experiment's `[target.tls]`.
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Serve the run's live metrics (Prometheus text format, docs/metrics.md) on
    /// `http://ADDR/metrics` while it goes, e.g. 127.0.0.1:9464 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--output text|json`.
    #[command(flatten)]
    pub output: crate::term::OutputArgs,
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
        RunOptions {
            dry_run: self.dry_run,
            arch: self.arch,
            seed: self.seed,
            results: self.results.clone(),
            run_id: self.run_id.clone(),
            endpoint_url: self.endpoint_url.clone(),
            allow_not_evaluable: self.allow_not_evaluable,
            tls: self.tls.clone(),
            quiet: self.quiet,
            metrics_addr: self.metrics_addr,
        }
    }
}

/// `shakedown run`: loads the file (every error at once), then runs it.
pub async fn run(args: RunArgs, command: Vec<String>) -> anyhow::Result<Outcome> {
    let experiment = match crate::experiment::load(&args.experiment) {
        Ok(e) => e,
        Err(d) => {
            eprint!("{d}");
            return Ok(Outcome::Error);
        }
    };
    if experiment.sweep.is_some() {
        return run_sweep(experiment, &args.options(), command).await;
    }
    run_experiment(experiment, &args.options(), command).await
}
