use std::process::ExitCode;

use clap::Parser;
use shakedown::sandbox::config::SandboxArgs;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHAKEDOWN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Child { role, config } => shakedown::sandbox::process::child_main(&role, &config),
        Command::Sandbox(args) => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(shakedown::cmd_sandbox::sandbox(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "shakedown",
    version,
    about = "Load generator and chaos-testing harness for decoupled architectures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the reference system (balancer, web tier, queue, worker fleet) in the foreground.
    Sandbox(SandboxArgs),
    /// Internal: a sandbox instance (web or worker), started by the sandbox supervisor.
    #[command(name = "__sandbox-child", hide = true)]
    Child {
        role: String,
        #[arg(long)]
        config: String,
    },
}
