//! `shakedown load`: profile -> plan -> driver + collector + live view ->
//! results on disk and a summary table.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::cli::LoadArgs;
use crate::cmd::Outcome;
use crate::config::profile::{
    Arrival, BodySpec, Profile, RequestSpec, Settings, Stage, Stream, StreamKind, Transport,
};
use crate::driver::{self, DriverPlan, Mode, RequestFactory, Target};
use crate::live::{LiveSnapshot, LiveView};
use crate::metrics::{Recorder, SecondStats, StreamSummary, Window, render_table};
use crate::results::meta::{ModeInfo, ProfileInfo, SettingsInfo, StreamInfo, Tool};
use crate::results::{RunDir, RunMeta, RunStatus, TimelineWriter, create_run_files, run_id};
use crate::sandbox::asg::ActivityKind;
use crate::sandbox::config::{ArchChoice, SandboxConfig};
use crate::sandbox::{Sandbox, StartOptions};
use crate::template::Template;

/// Recorder shards: enough that lanes rarely contend on 2-16 cores.
const SHARDS: usize = 16;
/// Closed model with only a request count: still bounded in time.
const CLOSED_MAX: Duration = Duration::from_secs(24 * 3600);

pub async fn load(args: LoadArgs, command: Vec<String>) -> anyhow::Result<Outcome> {
    let profile = Arc::new(profile_for(&args)?);
    let sandbox = if args.sandbox {
        Some(start_sandbox(args.arch.unwrap_or_default()).await?)
    } else {
        None
    };
    let http_streams = profile
        .streams
        .iter()
        .any(|s| s.transport == Transport::Http);
    let target_url = match (&sandbox, &args.target) {
        (Some(sb), _) => sb.endpoints().web_url.clone(),
        (None, Some(url)) => url.clone(),
        // Only SQS streams: nothing is sent over HTTP.
        (None, None) if !http_streams => "http://127.0.0.1:9".into(),
        (None, None) => bail!("give --target URL, or --sandbox to start the embedded one"),
    };
    let target: Target = target_url.parse().map_err(anyhow::Error::msg)?;
    let mode = mode_for(&args, &profile)?;
    let settings = settings_for(&args, &profile);
    let sqs = sqs_sink(&args, &profile, sandbox.as_ref(), mode).await?;
    let addr = if http_streams {
        resolve(&target).await?
    } else {
        ([127, 0, 0, 1], 9).into()
    };
    let seed = args.seed.or(profile.seed).unwrap_or_else(rand::random);
    let run_tag = format!("{:08x}", rand::random::<u32>());

    let start_wall = SystemTime::now();
    let dir_name = args
        .run_id
        .clone()
        .unwrap_or_else(|| run_id(&profile.name, start_wall));
    let dir = RunDir::create(&args.results, &dir_name)
        .map(RunDir::into_path)
        .with_context(|| {
            format!(
                "cannot create the run directory under {}",
                args.results.display()
            )
        })?;
    let meta = run_meta(MetaInput {
        kind: "load",
        profile: &profile,
        target: target.to_string(),
        mode,
        settings: &settings,
        seed,
        segment: args.segment,
        run_tag: &run_tag,
        dir: &dir,
        command,
    });
    let names: Vec<String> = profile.streams.iter().map(|s| s.name.clone()).collect();

    let start = Instant::now();
    let (mut writer, timeline) = create_run_files(&dir, meta, names.clone(), start_wall)
        .with_context(|| format!("cannot write results in {}", dir.display()))?;
    let planned = planned_duration(mode, &profile);
    println!(
        "shakedown load: profile \"{}\" -> {} ({}, {}), results in {}",
        profile.name,
        target,
        describe_mode(mode),
        humantime::format_duration(Duration::from_secs(planned.as_secs())),
        dir.display()
    );

    let recorder = Arc::new(Recorder::new(start, profile.streams.len(), SHARDS));
    let stop = CancellationToken::new();
    let signals = crate::shutdown::cancel_on_signals(stop.clone());
    let collecting = CancellationToken::new();
    let live = LiveView::new(planned, args.quiet, 5);
    let collector = tokio::spawn(collect(
        recorder.clone(),
        timeline,
        live,
        collecting.clone(),
        |_| {},
    ));

    let plan = DriverPlan {
        factory: Arc::new(RequestFactory::new(&profile, target, seed, run_tag)),
        profile: profile.clone(),
        addr,
        seed,
        mode,
        segment: args.segment,
        settings,
        grace: args.grace,
        accepted: None,
        sqs,
    };
    let report = driver::run(plan, recorder.clone(), stop.clone()).await;
    let elapsed = start.elapsed();
    collecting.cancel();
    let totals = collector.await.context("the collector task failed")?;
    signals.abort();

    let summaries: Vec<StreamSummary> = names
        .iter()
        .zip(&totals)
        .map(|(name, w)| StreamSummary::new(name, w, elapsed.as_secs_f64()))
        .collect();
    let status = if report.stopped_early {
        RunStatus::Interrupted
    } else {
        RunStatus::Completed
    };
    writer.meta_mut().summary = summaries.clone();
    writer.meta_mut().peak_rss_kib = crate::results::meta::peak_rss_kib();
    writer.finish(status).context("cannot finish run.json")?;

    println!();
    print!("{}", render_table(&summaries));
    println!(
        "{} in {:.1}s, {} connection{} used{}",
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
    println!("results: {}", dir.display());
    if let Some(sb) = sandbox {
        print_sandbox_activity(&sb);
        sb.shutdown().await;
    }
    Ok(if report.stopped_early {
        Outcome::Error
    } else {
        Outcome::Ok
    })
}

/// The SQS client and queue URLs for streams with `transport = "sqs"`, if any.
async fn sqs_sink(
    args: &LoadArgs,
    profile: &Profile,
    sandbox: Option<&Sandbox>,
    mode: Mode,
) -> anyhow::Result<Option<crate::driver::sqs::SqsSink>> {
    if !profile
        .streams
        .iter()
        .any(|s| matches!(s.transport, Transport::Sqs { .. }))
    {
        return Ok(None);
    }
    if matches!(mode, Mode::Closed { .. }) {
        bail!("streams with transport = \"sqs\" follow the open model: drop --concurrency");
    }
    let aws = match sandbox {
        Some(sb) => {
            let e = sb.endpoints();
            crate::chaos::aws::AwsTarget {
                region: Some(e.region.clone()),
                ..crate::chaos::aws::AwsTarget::local(&e.sqs_endpoint)
            }
        }
        None => crate::chaos::aws::AwsTarget {
            region: args.region.clone(),
            sqs_endpoint_url: args.sqs_endpoint.clone(),
            ..Default::default()
        },
    };
    let clients = crate::chaos::aws::aws_clients(&aws).map_err(|e| anyhow::anyhow!("SQS: {e}"))?;
    let sink = crate::driver::sqs::SqsSink::resolve(&clients.sqs, profile)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(sink))
}

/// Starts the embedded sandbox for `--sandbox`, printing where it runs.
async fn start_sandbox(arch: ArchChoice) -> anyhow::Result<Sandbox> {
    println!("starting the sandbox...");
    let sandbox = Sandbox::start(SandboxConfig::for_arch(arch), StartOptions::default())
        .await
        .context("starting the sandbox")?;
    let e = sandbox.endpoints();
    println!(
        "sandbox up (arch {}): web {}  sqs {}  ec2 {}  instance logs {}",
        e.arch,
        e.web_url,
        e.sqs_endpoint,
        e.ec2_endpoint,
        e.run_dir.display()
    );
    Ok(sandbox)
}

/// What the sandbox's fleet did during the run: its scaling decisions.
pub(crate) fn print_sandbox_activity(sandbox: &Sandbox) {
    let activities = sandbox.activities().since(0);
    let scalings: Vec<_> = activities
        .iter()
        .filter(|a| a.kind == ActivityKind::Scaling)
        .collect();
    println!("\nsandbox scaling activity ({} decisions):", scalings.len());
    for a in scalings {
        println!("  {a}");
    }
}

/// Takes each finished second from the recorder, writes it, feeds the live
/// view, and returns the per-stream totals once `done` fires.
pub(crate) async fn collect(
    recorder: Arc<Recorder>,
    mut timeline: TimelineWriter,
    mut live: LiveView,
    done: CancellationToken,
    mut tap: impl FnMut(&SecondStats) + Send,
) -> Vec<Window> {
    let start = recorder.start();
    let mut totals: Vec<Window> = (0..recorder.streams()).map(|_| Window::default()).collect();
    let mut snap = LiveSnapshot::default();
    let mut next = 0u32;
    // Tick just after each second boundary.
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_millis(1020)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut emit =
        |seconds: Vec<SecondStats>, timeline: &mut TimelineWriter, live: &mut LiveView| {
            for s in seconds {
                if let Err(e) = timeline.write_second(&s) {
                    tracing::error!("writing the timeline: {e}");
                }
                update_snapshot(&mut snap, &s);
                tap(&s);
                for (t, w) in totals.iter_mut().zip(&s.streams) {
                    t.merge(w);
                }
                live.update(&snap);
            }
        };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.cancelled() => break,
        }
        let until = start.elapsed().as_secs() as u32;
        emit(recorder.take_before(next, until), &mut timeline, &mut live);
        next = until.max(next);
    }
    // The last, partial second.
    let until = start.elapsed().as_secs() as u32 + 1;
    emit(recorder.take_before(next, until), &mut timeline, &mut live);
    live.finish();
    totals
}

fn update_snapshot(snap: &mut LiveSnapshot, s: &SecondStats) {
    snap.elapsed = Duration::from_secs(u64::from(s.second) + 1);
    snap.intended = s.streams.iter().map(|w| w.counters.intended).sum();
    snap.sent = s.streams.iter().map(|w| w.counters.sent).sum();
    snap.ok_total += s.streams.iter().map(|w| w.counters.ok).sum::<u64>();
    snap.errors_total += s
        .streams
        .iter()
        .map(|w| w.counters.errors_total())
        .sum::<u64>();
    snap.dropped_total += s.streams.iter().map(|w| w.counters.dropped).sum::<u64>();
    snap.in_flight = s.in_flight.iter().sum();
    let mut all = Window::default();
    s.streams.iter().for_each(|w| all.merge(w));
    snap.p99_ms =
        (!all.corrected.is_empty()).then(|| all.corrected.value_at_quantile(0.99) as f64 / 1000.0);
}

/// The profile file, or an ad-hoc single GET stream.
fn profile_for(args: &LoadArgs) -> anyhow::Result<Profile> {
    if let Some(path) = &args.profile {
        if args.rate.is_some() {
            bail!("--rate applies only without a profile (the profile's stages set the rates)");
        }
        return crate::config::profile::load(path).map_err(|d| anyhow::anyhow!("{d}"));
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
    if let Some(t) = args.connect_timeout {
        s.connect_timeout = t;
    }
    s
}

pub(crate) async fn resolve(target: &Target) -> anyhow::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot resolve {}", target.host))?;
    addrs
        .next()
        .with_context(|| format!("{} resolves to no address", target.host))
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

/// What `run.json` is made from.
pub(crate) struct MetaInput<'a> {
    /// `load` or `run`.
    pub kind: &'a str,
    pub profile: &'a Profile,
    pub target: String,
    pub mode: Mode,
    pub settings: &'a Settings,
    pub seed: u64,
    pub segment: crate::schedule::Segment,
    pub run_tag: &'a str,
    pub dir: &'a Path,
    pub command: Vec<String>,
}

/// The initial `run.json` (status `running`, started now).
pub(crate) fn run_meta(input: MetaInput<'_>) -> RunMeta {
    let MetaInput {
        kind,
        profile,
        target,
        mode,
        settings,
        seed,
        segment,
        run_tag,
        dir,
        command,
    } = input;
    let streams = profile
        .streams
        .iter()
        .map(|s| StreamInfo {
            name: s.name.clone(),
            kind: match s.kind {
                StreamKind::Upload => "upload".into(),
                StreamKind::Event => "event".into(),
            },
            transport: match &s.transport {
                Transport::Http => "http".into(),
                Transport::Sqs { .. } => "sqs".into(),
            },
            arrival: match s.arrival {
                Arrival::Uniform => "uniform".into(),
                Arrival::Poisson => "poisson".into(),
            },
            stages: s
                .stages
                .iter()
                .map(|st| [st.duration.as_secs_f64(), st.from, st.to])
                .collect(),
            scheduled: s.expected_requests(),
        })
        .collect();
    let ms = |d: Duration| d.as_millis() as u64;
    RunMeta {
        format_version: crate::results::meta::FORMAT_VERSION,
        run_id: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        kind: kind.into(),
        tool: Tool::current(),
        command,
        host: hostname(),
        target,
        profile: ProfileInfo {
            name: profile.name.clone(),
            path: profile.path.as_ref().map(|p| p.display().to_string()),
            streams,
        },
        mode: match mode {
            Mode::Open => ModeInfo {
                model: "open".into(),
                concurrency: None,
                requests: None,
                duration_s: profile.duration().as_secs_f64(),
            },
            Mode::Closed {
                concurrency,
                duration,
                requests,
            } => ModeInfo {
                model: "closed".into(),
                concurrency: Some(concurrency),
                requests,
                duration_s: duration.as_secs_f64(),
            },
        },
        seed,
        segment: format!("{}/{}", segment.index, segment.count),
        run_tag: run_tag.into(),
        settings: SettingsInfo {
            max_in_flight: settings.max_in_flight,
            max_lateness_ms: ms(settings.max_lateness),
            late_after_ms: ms(settings.late_after),
            connect_timeout_ms: ms(settings.connect_timeout),
            request_timeout_ms: ms(settings.request_timeout),
        },
        started_at: chrono::Utc::now(),
        ended_at: None,
        status: RunStatus::Running,
        error: None,
        summary: Vec::new(),
        peak_rss_kib: None,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
