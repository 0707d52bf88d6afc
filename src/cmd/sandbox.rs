//! `shakedown sandbox`: run the reference system in the foreground.
//!
//! Prints the endpoints (text, or one JSON line with `--print-endpoints json`) on
//! stdout once everything is up, then scaling activities and instance state changes
//! as they happen (on stderr in JSON mode, so stdout stays one machine-readable line),
//! until Ctrl-C or SIGTERM, which stops every instance and endpoint cleanly.

use std::io::Write;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::sandbox::config::{EndpointsFormat, SandboxArgs};
use crate::sandbox::{Endpoints, Sandbox, StartOptions};

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
