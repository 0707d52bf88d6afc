//! The command line: one `Args` struct per subcommand (clap derive).
//! Parsing only; the work is in [`crate::cmd`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::schedule::Segment;

#[derive(Debug, Parser)]
#[command(
    name = "shakedown",
    version,
    about = "Load generator and chaos-testing harness for decoupled architectures"
)]
pub struct Cli {
    /// Worker threads for the async runtime (default: one per core).
    #[arg(long, global = true, env = "SHAKEDOWN_THREADS")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in demo experiment on the embedded sandbox (no cloud account needed).
    Demo(crate::cmd::demo::DemoArgs),
    /// Run an experiment: load + faults + probes on one clock, then verdicts on the promises.
    Run(Box<crate::cmd::run::RunArgs>),
    /// Recompute a run's verdicts offline from its files (optionally with other promises).
    Analyze(crate::cmd::analyze::AnalyzeArgs),
    /// Send a profile's traffic at a target (load only, no chaos), wrk/k6 style.
    Load(Box<LoadArgs>),
    /// Check profiles and experiments; report every error with file:line:col and a hint.
    Validate(ValidateArgs),
    /// Run the embedded reference system (balancer, web tier, queue, worker fleet) in the foreground.
    Sandbox(crate::sandbox::config::SandboxArgs),
    /// Undo every fault a crashed run left applied (idempotent).
    Recover(crate::chaos::cli::RecoverArgs),
    /// Run a fault plan alone, without load (tests, debugging).
    #[command(name = "__chaos-run", hide = true)]
    ChaosRun(crate::chaos::cli::ChaosRunArgs),
    /// Internal: one sandbox instance (web or worker), started by the sandbox supervisor.
    #[command(name = "__sandbox-child", hide = true)]
    SandboxChild {
        role: String,
        #[arg(long)]
        config: String,
    },
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Traffic profile (e.g. profiles/uploads.toml). Without one, a single
    /// GET stream at --rate for --duration (or --concurrency closed loop).
    pub profile: Option<PathBuf>,

    /// Base URL of the system under test, e.g. http://127.0.0.1:8080
    #[arg(
        long,
        short,
        required_unless_present_any = ["sandbox", "sqs_endpoint", "region"],
        conflicts_with = "sandbox"
    )]
    pub target: Option<String>,

    /// Start the embedded sandbox, send the load through its balancer, and stop
    /// it afterwards (prints its endpoints and scaling activity).
    #[arg(long)]
    pub sandbox: bool,

    /// The sandbox's architecture with --sandbox: queued (default), tiered,
    /// monolith, event-driven, or a broken variant: no-health-checks,
    /// fixed-fleet, ack-before-process, lossy-queue, capped-fleet, slow-scaler,
    /// flapping.
    #[arg(long, value_name = "NAME", requires = "sandbox")]
    pub arch: Option<crate::sandbox::config::ArchChoice>,

    /// SQS endpoint for streams with `transport = "sqs"` (default: the sandbox's with
    /// --sandbox, else AWS from the usual environment). A loopback endpoint is signed with
    /// placeholder credentials.
    #[arg(long, value_name = "URL", conflicts_with = "sandbox")]
    pub sqs_endpoint: Option<String>,

    /// AWS region for SQS streams (default: AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long)]
    pub region: Option<String>,

    /// Open model without a profile: constant arrival rate, e.g. 500/s.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Length of an ad-hoc or closed-model run, e.g. 30s, 2m.
    #[arg(long, short, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Closed model: this many connections sending back to back, as fast as
    /// the target answers (like wrk/oha). Ignores the profile's rates.
    #[arg(long, short)]
    pub concurrency: Option<usize>,

    /// Closed model: stop after starting this many requests.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,

    /// Seed for arrivals, sizes and random fields (default: the profile's, else random; always recorded).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Send only stripe i of n of the schedule (distributed runs), e.g. 0/4.
    #[arg(long, default_value = "0/1")]
    pub segment: Segment,

    /// Most requests in flight at once (open model).
    #[arg(long)]
    pub max_in_flight: Option<usize>,

    /// A send that cannot start within this of its intended time is dropped (open model), e.g. 1s.
    #[arg(long, value_parser = parse_duration)]
    pub max_lateness: Option<Duration>,

    /// A send that starts more than this after its intended time counts as late, e.g. 10ms.
    #[arg(long, value_parser = parse_duration)]
    pub late_after: Option<Duration>,

    /// Request timeout, e.g. 30s.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Connect timeout, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// After Ctrl-C/SIGTERM, how long in-flight requests may still finish.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub grace: Duration,

    /// Directory that receives `<run-id>/`.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,

    /// Name of the run directory (default: `<UTC time>-<profile name>`).
    #[arg(long)]
    pub run_id: Option<String>,

    /// No live view (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    crate::units::parse_rate(s).map_err(|e| e.to_string())
}
