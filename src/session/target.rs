//! The system a run drives: the sandbox started for it, or an existing system, resolved
//! into what the driver, probes, faults and the ledger use.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};

use crate::aws::{AwsClients, AwsTarget, QueueRef, aws_clients};
use crate::config::profile::Transport;
use crate::driver::{Connector, Target};
use crate::experiment::{Experiment, TargetSpec};
use crate::ledger::source::{CompletionSourceSpec, FeedSpec};
use crate::probe::activity::ActivitySourceSpec;
use crate::sandbox::asg::ActivityKind;
use crate::sandbox::config::SandboxConfig;
use crate::sandbox::{Sandbox, StartOptions};
use crate::tls::{Alpn, TlsOptions};

/// The target, resolved: where traffic goes and what probes, faults and the ledger use.
pub struct Resolved {
    /// Human description for run.json and the header line.
    pub describe: String,
    pub http: Option<(Target, Connector)>,
    /// The driver speaks HTTP/2 (`[target] http2 = true`).
    pub http2: bool,
    /// The HTTP client of probes, completion and activity sources, trusting https servers as
    /// the driver does.
    pub http_client: reqwest::Client,
    pub aws: Option<AwsTarget>,
    pub clients: Option<AwsClients>,
    pub control_url: Option<String>,
    pub queue: Option<QueueRef>,
    pub dlq: Option<QueueRef>,
    pub completions: Vec<CompletionSourceSpec>,
    /// The system's own scaling log (none for the sandbox, which writes its activities).
    pub activities: Vec<ActivitySourceSpec>,
}

/// A sandbox serves EventBridge only with an event bus (arch `event-driven`, or `bus.url`):
/// streams with `transport = "eventbridge"` against one without are refused with that fix.
pub fn check_sandbox_bus(
    profile: &crate::config::profile::Profile,
    sandbox: Option<&Sandbox>,
) -> anyhow::Result<()> {
    let Some(sb) = sandbox else {
        return Ok(());
    };
    let stream = profile
        .streams
        .iter()
        .find(|s| matches!(s.transport, Transport::EventBridge { .. }));
    match (stream, sb.endpoints().bus_api_url()) {
        (Some(s), None) => bail!(
            "stream `{}` puts events on an EventBridge bus, and the sandbox (arch {}) runs none: use arch \"event-driven\" (`[target.sandbox] arch`, `--arch event-driven`)",
            s.name,
            sb.endpoints().arch
        ),
        _ => Ok(()),
    }
}

/// Starts the embedded sandbox, printing where it runs.
pub async fn start_sandbox(config: SandboxConfig) -> anyhow::Result<Sandbox> {
    crate::outln!("starting the sandbox (arch {})...", config_arch(&config));
    let sandbox = Sandbox::start(config, StartOptions::default())
        .await
        .context("starting the sandbox")?;
    let e = sandbox.endpoints();
    crate::outln!(
        "sandbox up (arch {}): web {}  sqs {}  ec2 {}  instance logs {}",
        e.arch,
        e.web_url,
        e.sqs_endpoint,
        e.ec2_endpoint,
        e.run_dir.display()
    );
    if let Some(ca) = &e.ca_file {
        crate::outln!("sandbox CA (trusted for this run): {}", ca.display());
    }
    Ok(sandbox)
}

fn config_arch(config: &SandboxConfig) -> String {
    match config.variant {
        Some(v) => format!("{} with {v}", config.arch),
        None => config.arch.to_string(),
    }
}

pub async fn resolve_target(
    exp: &Experiment,
    endpoint_url: Option<&str>,
    dry_run: bool,
    tls_args: &crate::tls::TlsArgs,
    sandbox: Option<&Sandbox>,
) -> anyhow::Result<Resolved> {
    let tls = match (&exp.target, sandbox) {
        (TargetSpec::System(t), _) => t.tls.clone(),
        (TargetSpec::Sandbox(_), Some(sb)) => TlsOptions {
            ca_file: sb.endpoints().ca_file.clone(),
            ..TlsOptions::default()
        },
        (TargetSpec::Sandbox(_), None) => TlsOptions::default(),
    };
    let tls = tls_args.over(&tls);
    let http2 = matches!(&exp.target, TargetSpec::System(t) if t.http2);
    let (http_url, aws, control_url, queue, dlq, completions, activities, describe) =
        match (&exp.target, sandbox) {
            (TargetSpec::Sandbox(_), Some(sb)) => {
                let e = sb.endpoints();
                let aws = AwsTarget {
                    region: Some(e.region.clone()),
                    ec2_endpoint_url: Some(e.ec2_endpoint.clone()),
                    sqs_endpoint_url: Some(e.sqs_endpoint.clone()),
                    events_endpoint_url: e.bus_api_url(),
                    access_key_id: Some("sandbox".into()),
                    secret_access_key: Some("sandbox".into()),
                    ..AwsTarget::default()
                };
                (
                    Some(e.web_url.clone()),
                    Some(aws),
                    Some(e.control_url.clone()),
                    Some(QueueRef::Plain(e.queue_url.clone())),
                    Some(QueueRef::Plain(e.dlq_url.clone())),
                    vec![CompletionSourceSpec::SandboxFeed(FeedSpec {
                        url: e.feed_url.clone(),
                    })],
                    Vec::new(),
                    format!("sandbox (arch {}) at {}", e.arch, e.web_url),
                )
            }
            (TargetSpec::System(t), _) => (
                t.http.clone(),
                match endpoint_url {
                    Some(url) => Some(AwsTarget {
                        endpoint_url: Some(url.to_string()),
                        ..t.aws.clone().unwrap_or_default()
                    }),
                    None => t.aws.clone(),
                },
                None,
                t.queue.clone(),
                t.dlq.clone(),
                t.completions.clone(),
                t.activities.clone(),
                t.http
                    .clone()
                    .unwrap_or_else(|| "(no HTTP endpoint)".into()),
            ),
            (TargetSpec::Sandbox(_), None) => bail!("internal: sandbox target without a sandbox"),
        };
    let needs_http = exp
        .profile
        .streams
        .iter()
        .any(|s| s.transport == Transport::Http);
    // Anything that calls AWS: then the AWS CLI's chain gives region and credentials even
    // without a `[target.aws]` table.
    let needs_aws = !crate::experiment::iam::aws_actions(exp).is_empty();
    let http = match (&http_url, needs_http) {
        (Some(url), _) => {
            let target: Target = url
                .parse()
                .map_err(|e| anyhow::anyhow!("[target] http = \"{url}\": {e}"))?;
            let addr = if dry_run {
                // A dry run sends nothing: the name is not even looked up.
                ([0, 0, 0, 0], 0).into()
            } else {
                resolve(&target).await?
            };
            let connector = connector(&target, addr, &tls, http2)
                .with_context(|| format!("[target] http = \"{url}\""))?;
            Some((target, connector))
        }
        (None, true) => bail!(
            "{}: the profile has HTTP streams but [target] has no `http` base URL",
            exp.path.display()
        ),
        (None, false) => None,
    };
    let aws = aws.or_else(|| needs_aws.then(AwsTarget::default));
    let clients = match &aws {
        Some(t) => Some(
            aws_clients(t)
                .await
                .map_err(|e| anyhow::anyhow!("[target.aws]: {e}"))?,
        ),
        None => None,
    };
    let http_client = crate::tls::http_client(&tls, crate::probe::http::HTTP_TIMEOUT)
        .context("the HTTP client of probes and completion sources")?;
    Ok(Resolved {
        describe,
        http,
        http2,
        http_client,
        aws,
        clients,
        control_url,
        queue,
        dlq,
        completions,
        activities,
    })
}

/// How the driver reaches `target` at `addr`: plain TCP, or TLS trusting as `tls` says
/// and offering HTTP/2 or HTTP/1.1 by ALPN (the rustls configuration is built once here, so
/// connections share its session cache).
pub fn connector(
    target: &Target,
    addr: SocketAddr,
    tls: &TlsOptions,
    http2: bool,
) -> anyhow::Result<Connector> {
    if !target.https {
        return Ok(Connector::plain(addr));
    }
    let config = tls.client_config(if http2 { Alpn::Http2 } else { Alpn::Http1 })?;
    let name = tls.server_name(&target.host)?;
    Ok(Connector::tls(addr, config, name))
}

pub async fn resolve(target: &Target) -> anyhow::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot resolve {}", target.host))?;
    addrs
        .next()
        .with_context(|| format!("{} resolves to no address", target.host))
}

/// What the sandbox's fleet did during the run: its scaling decisions.
pub fn print_sandbox_activity(sandbox: &Sandbox) {
    let activities = sandbox.activities().since(0);
    let scalings: Vec<_> = activities
        .iter()
        .filter(|a| a.kind == ActivityKind::Scaling)
        .collect();
    crate::outln!("\nsandbox scaling activity ({} decisions):", scalings.len());
    for a in scalings {
        crate::outln!("  {a}");
    }
}
