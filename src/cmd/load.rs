//! `shakedown load`: a profile's traffic at a target (load only, no chaos), wrk/k6 style.
//! The arguments become a [`LoadPlan`]; the run is [`crate::session::load`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::cmd::Outcome;
use crate::config::profile::{
    Arrival, BodySpec, Profile, RequestSpec, Settings, Stage, Stream, StreamKind, Transport,
};
use crate::driver::Mode;
use crate::schedule::Segment;
use crate::session::load::{LoadPlan, run_load};
use crate::template::Template;

/// Closed model with only a request count: still bounded in time.
const CLOSED_MAX: Duration = Duration::from_secs(24 * 3600);

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

    /// Connect timeout (TCP connect and TLS handshake), e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Speak HTTP/2 (ALPN `h2` over https, prior knowledge over http): requests multiplexed
    /// over as few connections as the server's stream limit allows.
    #[arg(long)]
    pub http2: bool,

    /// With --sandbox: its balancer listens with TLS (a CA made for the run, trusted for
    /// this load; its PEM file is printed with the endpoints).
    #[arg(long = "tls", requires = "sandbox")]
    pub sandbox_tls: bool,

    /// A new connection (and TLS handshake) for every request, instead of keep-alive.
    #[arg(long)]
    pub no_keep_alive: bool,

    /// https trust options.
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,

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
    /// Serve the run's live metrics (Prometheus text format, docs/metrics.md) on
    /// `http://ADDR/metrics` while it goes, e.g. 127.0.0.1:9464 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--output text|json`.
    #[command(flatten)]
    pub output: crate::term::OutputArgs,
}

/// `shakedown load`.
pub async fn load(args: LoadArgs, command: Vec<String>) -> anyhow::Result<Outcome> {
    let profile = Arc::new(profile_for(&args)?);
    let mode = mode_for(&args, &profile)?;
    let settings = settings_for(&args, &profile);
    let plan = LoadPlan {
        profile,
        sandbox: args.sandbox.then(|| args.arch.unwrap_or_default()),
        tls: args.tls.over(&crate::tls::TlsOptions::default()),
        http2: args.http2,
        sandbox_tls: args.sandbox_tls,
        target: args.target,
        sqs_endpoint: args.sqs_endpoint,
        region: args.region,
        mode,
        settings,
        seed: args.seed,
        segment: args.segment,
        grace: args.grace,
        results: args.results,
        run_id: args.run_id,
        quiet: args.quiet,
        metrics_addr: args.metrics_addr,
    };
    run_load(plan, command).await
}

/// The profile file, or an ad-hoc single GET stream.
fn profile_for(args: &LoadArgs) -> anyhow::Result<Profile> {
    if let Some(path) = &args.profile {
        if args.rate.is_some() {
            bail!("--rate applies only without a profile (the profile's stages set the rates)");
        }
        return Ok(crate::config::profile::load(path)?);
    }
    let duration = args.duration;
    let stages = match (args.rate, args.concurrency) {
        (Some(rate), None) => {
            let duration = duration.context("an open-model run without a profile needs --duration, e.g. --rate 100/s --duration 30s")?;
            vec![Stage {
                duration,
                from: rate,
                to: rate,
            }]
        }
        (None, Some(_)) => vec![Stage {
            duration: duration.unwrap_or(CLOSED_MAX),
            from: 1.0,
            to: 1.0,
        }],
        (Some(_), Some(_)) => {
            bail!("--rate (open model) and --concurrency (closed model) exclude each other")
        }
        (None, None) => bail!(
            "nothing to send: give a profile (e.g. profiles/uploads.toml), or --rate R --duration D, or --concurrency N --duration D"
        ),
    };
    Ok(Profile {
        name: "adhoc".into(),
        seed: None,
        settings: Settings::default(),
        streams: vec![Stream {
            name: "get".into(),
            kind: StreamKind::Event,
            transport: Transport::Http,
            request: RequestSpec {
                method: http::Method::GET,
                path: Template::literal("/"),
                headers: vec![],
            },
            body: BodySpec::None,
            arrival: Arrival::Uniform,
            stages,
            ledger: false,
        }],
        path: None,
    })
}

fn mode_for(args: &LoadArgs, profile: &Profile) -> anyhow::Result<Mode> {
    match args.concurrency {
        None => {
            if args.requests.is_some() {
                bail!("--requests applies to the closed model; add --concurrency N");
            }
            if args.duration.is_some() && args.profile.is_some() {
                bail!(
                    "--duration applies to the closed model or a run without a profile (the profile's stages set the length)"
                );
            }
            Ok(Mode::Open)
        }
        Some(0) => bail!("--concurrency must be at least 1"),
        Some(concurrency) => {
            let duration = match (args.duration, args.requests) {
                (Some(d), _) => d,
                (None, Some(_)) => CLOSED_MAX,
                (None, None) if args.profile.is_some() => profile.duration(),
                (None, None) => bail!("the closed model needs --duration or --requests"),
            };
            Ok(Mode::Closed {
                concurrency,
                duration,
                requests: args.requests,
            })
        }
    }
}

fn settings_for(args: &LoadArgs, profile: &Profile) -> Settings {
    let mut s = profile.settings.clone();
    if let Some(n) = args.max_in_flight {
        s.max_in_flight = n.max(1);
    }
    if let Some(t) = args.max_lateness {
        s.max_lateness = t;
    }
    if let Some(t) = args.late_after {
        s.late_after = t;
    }
    if let Some(t) = args.timeout {
        s.request_timeout = t;
    }
    if args.no_keep_alive {
        s.keep_alive = false;
    }
    if let Some(t) = args.connect_timeout {
        s.connect_timeout = t;
    }
    s
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    crate::units::parse_rate(s).map_err(|e| e.to_string())
}
