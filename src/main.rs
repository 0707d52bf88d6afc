use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHAKEDOWN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = shakedown::cli::Cli::parse();
    std::process::ExitCode::from(shakedown::run(cli))
}
