//! `shakedown sandbox`: run the reference system in the foreground.
//!
//! Prints the endpoints (text, or one JSON line with `--print-endpoints json`) on
//! stdout once everything is up, then scaling activities and instance state changes
//! as they happen (on stderr in JSON mode, so stdout stays one machine-readable line),
//! until Ctrl-C or SIGTERM, which stops every instance and endpoint cleanly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::sandbox::config::{ArchChoice, ConfigError, SandboxConfig};
use crate::sandbox::{Endpoints, Sandbox, StartOptions};

/// How `shakedown sandbox` prints its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EndpointsFormat {
    /// Aligned `name  value` lines, then the activity log, for people.
    #[default]
    Text,
    /// One JSON object on one line, for scripts.
    Json,
}

/// `shakedown sandbox`: run the reference system in the foreground.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Architecture, or a broken variant of `queued`: queued, tiered, monolith,
    /// event-driven, no-health-checks, fixed-fleet, ack-before-process, lossy-queue,
    /// capped-fleet, slow-scaler, flapping. Overrides the file's `arch`.
    #[arg(long, value_name = "NAME")]
    pub arch: Option<ArchChoice>,

    /// Sandbox configuration (TOML); see docs/sandbox.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// How to print the endpoints once everything is up.
    #[arg(long, value_enum, default_value_t = EndpointsFormat::Text, value_name = "FORMAT")]
    pub print_endpoints: EndpointsFormat,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Balancer (web) port on 127.0.0.1, so that the web URL is known in advance
    /// (default: the file's `web.port`, else a free port). Overrides the file.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Run directory for the instances' logs (default: a new directory under the system's temp dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// The effective configuration: the file (or defaults), then `--arch`.
    pub fn effective_config(&self) -> Result<SandboxConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => SandboxConfig::load(path)?,
            None => SandboxConfig::default(),
        };
        if let Some(choice) = self.arch {
            config.select(choice);
            config.validate()?;
        }
        if let Some(port) = self.port {
            config.web.port = port;
        }
        Ok(config)
    }
}

/// Runs `shakedown sandbox` until Ctrl-C or SIGTERM.
pub async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let config = args.effective_config()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    let signals = crate::shutdown::cancel_on_signals(shutdown.clone());
    let options = StartOptions {
        dir: args.dir.clone(),
        ..StartOptions::default()
    };
    let starting = Sandbox::start(config, options);
    let sandbox = tokio::select! {
        started = starting => started.context("starting the sandbox")?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    print_endpoints(sandbox.endpoints(), args.print_endpoints);
    let json = args.print_endpoints == EndpointsFormat::Json;
    follow(&sandbox, &shutdown, json).await;
    eprintln!("stopping the sandbox...");
    sandbox.shutdown().await;
    signals.abort();
    Ok(())
}

fn print_endpoints(e: &Endpoints, format: EndpointsFormat) {
    let mut out = std::io::stdout().lock();
    match format {
        EndpointsFormat::Json => {
            let line = serde_json::to_string(e).expect("plain data serializes");
            let _ = writeln!(out, "{line}");
        }
        EndpointsFormat::Text => {
            let _ = writeln!(out, "sandbox running (arch {}); Ctrl-C to stop", e.arch);
            for (name, value) in [
                ("web (balancer)", e.web_url.as_str()),
                ("sqs endpoint", &e.sqs_endpoint),
                ("jobs queue", &e.queue_url),
                ("dead-letter queue", &e.dlq_url),
                ("ec2 endpoint", &e.ec2_endpoint),
                ("completion feed", &e.feed_url),
                ("control", &e.control_url),
                ("region", &e.region),
            ] {
                let _ = writeln!(out, "  {name:<18} {value}");
            }
            if let Some(bus) = &e.bus_url {
                let _ = writeln!(out, "  {:<18} {bus}", "event bus");
            }
            let _ = writeln!(out, "  {:<18} {}", "instance logs", e.run_dir.display());
        }
    }
    let _ = out.flush();
}

/// Prints activities and instance transitions until `shutdown`.
async fn follow(sandbox: &Sandbox, shutdown: &CancellationToken, json: bool) {
    let print = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let mut activities = sandbox.activities().subscribe();
    let mut seen = 0;
    let mut changes = sandbox.fleet().subscribe();
    loop {
        for activity in sandbox.activities().since(seen) {
            seen = activity.seq;
            print(activity.to_string());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = activities.changed() => {}
            batch = changes.next() => {
                for t in batch.transitions {
                    let from = t.from.map_or("-", |s| s.name());
                    let reason = t.reason.map(|r| format!(" ({r})")).unwrap_or_default();
                    print(format!(
                        "{} instance  {} {from} -> {}{reason}",
                        t.at.format("%H:%M:%S%.3f"),
                        t.id,
                        t.to
                    ));
                }
            }
        }
    }
}
