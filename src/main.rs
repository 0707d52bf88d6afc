use clap::Parser;

/// Load generation allocates small blocks on every request (h2, hyper, headers): mimalloc's
/// are cheaper than glibc's (BENCHMARKS.md, "Over https").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHAKEDOWN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = shakedown::cli::Cli::parse();
    std::process::ExitCode::from(shakedown::run(cli))
}
