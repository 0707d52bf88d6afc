//! The `shakedown` binary on the chaos branch: `recover` and the hidden `__chaos-run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shakedown::chaos::cli::{ChaosRunArgs, RecoverArgs, chaos_run, recover};

#[derive(Debug, Parser)]
#[command(name = "shakedown", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Undo every fault a crashed run left applied.
    Recover(RecoverArgs),
    /// Run a fault plan alone (tests, debugging).
    #[command(name = "__chaos-run", hide = true)]
    ChaosRun(ChaosRunArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Recover(args) => recover(args).await,
        Command::ChaosRun(args) => chaos_run(args).await,
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
