//! `shakedown load`: a profile's traffic at a target, without faults: prepare (sandbox,
//! target, queues, run directory), run (driver + collector + live view), finish
//! (`run.json`, the summary table).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::cmd::Outcome;
use crate::config::profile::{Profile, Settings, Transport};
use crate::driver::{self, DriverPlan, Mode, RequestFactory, Target};
use crate::exporter::{Exporter, Live};
use crate::metrics::render_table;
use crate::results::RunStatus;
use crate::sandbox::Sandbox;
use crate::sandbox::config::{ArchChoice, SandboxConfig};
use crate::schedule::Segment;

use super::Session;
use super::meta::{MetaInput, run_meta};
use super::target::{connector, print_sandbox_activity, resolve, start_sandbox};

/// A load run, from `load`'s arguments.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub profile: Arc<Profile>,
    /// Start the embedded sandbox (this architecture) and send the load through it.
    pub sandbox: Option<ArchChoice>,
    /// The target's base URL (without a sandbox; none when only SQS streams are sent).
    pub target: Option<String>,
    /// How https targets are trusted.
    pub tls: crate::tls::TlsOptions,
    /// Speak HTTP/2 to the target.
    pub http2: bool,
    /// With a sandbox: its balancer listens with TLS.
    pub sandbox_tls: bool,
    /// The SQS endpoint and region for `transport = "sqs"` streams without a sandbox.
    pub sqs_endpoint: Option<String>,
    pub region: Option<String>,
    pub mode: Mode,
    pub settings: Settings,
    pub seed: Option<u64>,
    pub segment: Segment,
    /// How long in-flight requests may still finish after Ctrl-C/SIGTERM.
    pub grace: Duration,
    pub results: PathBuf,
    pub run_id: Option<String>,
    pub quiet: bool,
    /// Serve the live metrics here (`GET /metrics`, Prometheus text format).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs a load: the sandbox (if asked), then prepare, run, finish.
pub async fn run_load(plan: LoadPlan, command: Vec<String>) -> anyhow::Result<Outcome> {
    // Bound first: a taken address is an error before anything starts.
    let exporter = Exporter::start_if(plan.metrics_addr).await?;
    let sandbox = match plan.sandbox {
        Some(arch) => {
            let mut config = SandboxConfig::for_arch(arch);
            config.web.tls = plan.sandbox_tls;
            Some(start_sandbox(config).await?)
        }
        None => None,
    };
    let live = exporter.as_ref().map(Exporter::live);
    let result = steps(&plan, sandbox.as_ref(), command, live).await;
    if let Some(sb) = sandbox {
        if result.is_ok() {
            print_sandbox_activity(&sb);
        }
        sb.shutdown().await;
    }
    if let Some(e) = exporter {
        e.stop().await;
    }
    result
}

async fn steps(
    plan: &LoadPlan,
    sandbox: Option<&Sandbox>,
    command: Vec<String>,
    live: Option<Arc<Live>>,
) -> anyhow::Result<Outcome> {
    // Prepare.
    let profile = &plan.profile;
    let http_streams = profile
        .streams
        .iter()
        .any(|s| s.transport == Transport::Http);
    let target_url = match (sandbox, &plan.target) {
        (Some(sb), _) => sb.endpoints().web_url.clone(),
        (None, Some(url)) => url.clone(),
        // Only SQS streams: nothing is sent over HTTP.
        (None, None) if !http_streams => "http://127.0.0.1:9".into(),
        (None, None) => bail!("give --target URL, or --sandbox to start the embedded one"),
    };
    let target: Target = target_url.parse().map_err(anyhow::Error::msg)?;
    let sinks = aws_sinks(plan, sandbox).await?;
    let addr = if http_streams {
        resolve(&target).await?
    } else {
        ([127, 0, 0, 1], 9).into()
    };
    let mut tls = plan.tls.clone();
    if let Some(sb) = sandbox {
        tls.ca_file = tls.ca_file.or_else(|| sb.endpoints().ca_file.clone());
    }
    let connector = connector(&target, addr, &tls, plan.http2)?;
    let seed = plan.seed.or(profile.seed).unwrap_or_else(rand::random);
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let session = Session::create(&plan.results, plan.run_id.as_deref(), &profile.name)?;
    let meta = run_meta(MetaInput {
        kind: "load",
        profile,
        target: target.to_string(),
        mode: plan.mode,
        settings: &plan.settings,
        seed,
        segment: plan.segment,
        run_tag: &run_tag,
        dir: session.path(),
        command,
    });
    let names: Vec<String> = profile.streams.iter().map(|s| s.name.clone()).collect();
    let planned = planned_duration(plan.mode, profile);

    crate::outln!(
        "shakedown load: profile \"{}\" -> {} ({}, {}), results in {}",
        profile.name,
        target,
        describe_mode(plan.mode),
        crate::units::format_duration(Duration::from_secs(planned.as_secs())),
        session.path().display()
    );
    // Everything the driver needs is made before the run's clock starts: its first
    // arrivals are due at once.
    let driver_plan = DriverPlan {
        factory: Arc::new(RequestFactory::new(profile, target, seed, run_tag)),
        profile: profile.clone(),
        connector,
        http2: plan.http2,
        seed,
        mode: plan.mode,
        segment: plan.segment,
        settings: plan.settings.clone(),
        grace: plan.grace,
        accepted: None,
        sinks,
    };
    let recording = session.start_recording(meta, names, planned, plan.quiet, live, |_| {})?;
    let report = driver::run(
        driver_plan,
        recording.recorder.clone(),
        recording.signal.clone(),
    )
    .await;
    let elapsed = recording.start.elapsed();

    // Finish.
    let status = if report.stopped_early {
        RunStatus::Interrupted
    } else {
        RunStatus::Completed
    };
    let summaries = recording.finish(status, elapsed, None).await?;
    crate::outln!();
    crate::out!("{}", render_table(&summaries));
    crate::outln!(
        "{} in {:.1}s, at most {} request{} in flight{}",
        if report.stopped_early {
            "interrupted"
        } else {
            "completed"
        },
        elapsed.as_secs_f64(),
        report.lanes,
        if report.lanes == 1 { "" } else { "s" },
        if report.aborted > 0 {
            format!(
                ", {} request(s) cut off at the drain deadline",
                report.aborted
            )
        } else {
            String::new()
        }
    );
    super::report::write_documents(session.path(), None);
    crate::outln!("results: {}", session.path().display());
    Ok(if report.stopped_early {
        Outcome::Error
    } else {
        Outcome::Ok
    })
}

/// Where the streams with an AWS transport (`sqs`, `eventbridge`) send, if any.
async fn aws_sinks(
    plan: &LoadPlan,
    sandbox: Option<&Sandbox>,
) -> anyhow::Result<Option<crate::driver::batch::Sinks>> {
    let profile = &plan.profile;
    let Some(first) = profile.streams.iter().find(|s| s.transport.is_aws()) else {
        return Ok(None);
    };
    if matches!(plan.mode, Mode::Closed { .. }) {
        bail!(
            "streams with transport = \"{}\" follow the open model: drop --concurrency",
            first.transport.name()
        );
    }
    super::target::check_sandbox_bus(profile, sandbox)?;
    let aws = match sandbox {
        Some(sb) => {
            let e = sb.endpoints();
            crate::aws::AwsTarget {
                region: Some(e.region.clone()),
                events_endpoint_url: e.bus_api_url(),
                ..crate::aws::AwsTarget::local(&e.sqs_endpoint)
            }
        }
        None => crate::aws::AwsTarget {
            region: plan.region.clone(),
            sqs_endpoint_url: plan.sqs_endpoint.clone(),
            ..Default::default()
        },
    };
    let clients = crate::aws::aws_clients(&aws)
        .await
        .map_err(|e| anyhow::anyhow!("AWS: {e}"))?;
    let sinks = crate::driver::batch::Sinks::resolve(&clients, profile)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(sinks))
}

fn planned_duration(mode: Mode, profile: &Profile) -> Duration {
    match mode {
        Mode::Open => profile.duration(),
        Mode::Closed { duration, .. } => duration,
    }
}

fn describe_mode(mode: Mode) -> String {
    match mode {
        Mode::Open => "open model".into(),
        Mode::Closed {
            concurrency,
            requests: Some(n),
            ..
        } => format!("closed model, {concurrency} connections, {n} requests"),
        Mode::Closed { concurrency, .. } => format!("closed model, {concurrency} connections"),
    }
}
