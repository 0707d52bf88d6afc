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

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: crate::term::ColorChoice,

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
    /// CI gate: compare a run with a baseline run of the same experiment; exit 1 on a regression.
    Gate(crate::cmd::gate::GateArgs),
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

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Demo(_) => "demo",
            Command::Run(_) => "run",
            Command::Analyze(_) => "analyze",
            Command::Load(_) => "load",
            Command::Validate(_) => "validate",
            Command::Sandbox(_) => "sandbox",
            Command::Recover(_) => "recover",
            Command::Gate(_) => "gate",
            Command::Report(_) => "report",
            Command::ChaosRun(_) => "__chaos-run",
            Command::SandboxChild { .. } => "__sandbox-child",
        }
    }

    /// `--output` of the commands that have it; text for the others.
    pub fn output_format(&self) -> crate::term::OutputFormat {
        match self {
            Command::Demo(a) => a.output.output,
            Command::Run(a) => a.output.output,
            Command::Analyze(a) => a.output.output,
            Command::Load(a) => a.output.output,
            _ => crate::term::OutputFormat::Text,
        }
    }
}
