//! The command line: one `Args` struct per subcommand (clap derive).
//! Parsing only; the work is in [`crate::cmd`].

use clap::{Parser, Subcommand};

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
    /// Render a run's HTML report again (`<RUN_DIR>/report.html`) from its files.
    Report(crate::cmd::report::ReportArgs),
    /// Send a profile's traffic at a target (load only, no chaos), wrk/k6 style.
    Load(Box<crate::cmd::load::LoadArgs>),
    /// Check profiles and experiments; report every error with file:line:col and a hint.
    Validate(crate::cmd::validate::ValidateArgs),
    /// Run the embedded reference system (balancer, web tier, queue, worker fleet) in the foreground.
    Sandbox(crate::cmd::sandbox::SandboxArgs),
    /// Undo every fault a crashed run left applied (idempotent).
    Recover(crate::cmd::recover::RecoverArgs),
    /// Run a fault plan alone, without load (tests, debugging).
    #[command(name = "__chaos-run", hide = true)]
    ChaosRun(crate::cmd::chaos_run::ChaosRunArgs),
    /// Internal: one sandbox instance (web or worker), started by the sandbox supervisor.
    #[command(name = "__sandbox-child", hide = true)]
    SandboxChild {
        role: String,
        #[arg(long)]
        config: String,
    },
}
