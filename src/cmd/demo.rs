//! `shakedown demo`: the sandbox + `chaos/demo.toml`, with no cloud account and no files
//! needed (the experiment and its profile are built into the binary; `shakedown run
//! chaos/demo.toml` runs the copies on disk).

use std::path::{Path, PathBuf};

use crate::cmd::Outcome;
use crate::experiment::{Embedded, load_with};
use crate::sandbox::config::ArchChoice;
use crate::session::experiment::{RunOptions, run_experiment};

/// The files `demo` runs, by their paths in the repository.
pub const FILES: Embedded = Embedded(&[
    ("chaos/demo.toml", include_str!("../../chaos/demo.toml")),
    (
        "chaos/demo-quick.toml",
        include_str!("../../chaos/demo-quick.toml"),
    ),
    (
        "profiles/demo.toml",
        include_str!("../../profiles/demo.toml"),
    ),
    (
        "profiles/demo-quick.toml",
        include_str!("../../profiles/demo-quick.toml"),
    ),
]);

/// `shakedown demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Run the same experiment on another architecture or broken variant
    /// (tiered, monolith, event-driven, no-health-checks, fixed-fleet, ack-before-process,
    /// lossy-queue, capped-fleet, slow-scaler, flapping).
    #[arg(long)]
    pub arch: Option<ArchChoice>,
    /// A ~30 s version (`chaos/demo-quick.toml`) instead of the ~2 minute one.
    #[arg(long)]
    pub quick: bool,
    /// Where the run directory is created.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Seed for the schedule and fault choices (default: the experiment's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The sandbox's balancer listens with TLS (a CA made for the run): the same demo over
    /// https.
    #[arg(long)]
    pub https: bool,
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

/// Runs the built-in demo experiment against the sandbox.
pub async fn demo(args: DemoArgs, command: Vec<String>) -> anyhow::Result<Outcome> {
    let file = if args.quick {
        "chaos/demo-quick.toml"
    } else {
        "chaos/demo.toml"
    };
    let mut experiment = match load_with(Path::new(file), &FILES) {
        Ok(e) => e,
        Err(d) => {
            eprint!("{d}");
            return Ok(Outcome::Error);
        }
    };
    if let crate::experiment::TargetSpec::Sandbox(sb) = &mut experiment.target {
        sb.config.web.tls |= args.https;
    }
    let run = RunOptions {
        arch: args.arch,
        seed: args.seed,
        results: args.results,
        quiet: args.quiet,
        metrics_addr: args.metrics_addr,
        ..RunOptions::default()
    };
    run_experiment(experiment, &run, command).await
}
