//! `shakedown run EXPERIMENT`: the main job. Validate, resolve the target, prepare the
//! faults (selectors resolved, guardrails checked, lock taken: nothing touched yet), then
//! load + faults + probes + completion feed on one clock, a bounded cool-down, the ledger,
//! and the verdicts. Results are written as the run goes; Ctrl-C/SIGTERM undo the faults,
//! flush what exists and analyze it. File formats: `results/README.md`, `docs/experiments.md`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::analyze::{self, Status, VerdictFile};
use crate::chaos::aws::{AwsClients, AwsTarget, QueueRef, aws_clients};
use crate::chaos::guard::Snapshot;
use crate::chaos::plan::{deferrable, dry_run, render_dry_run};
use crate::chaos::{Env, RunReport, Runner};
use crate::cmd::Outcome;
use crate::cmd::load::{MetaInput, collect, resolve, run_meta};
use crate::config::profile::Transport;
use crate::driver::{self, DriverPlan, Mode, RequestFactory, Target};
use crate::experiment::{CooldownClock, Experiment, TargetSpec};
use crate::ledger::census::{self, QueueCensus};
use crate::ledger::source::{CompletionSource, CompletionSourceSpec, FeedSpec, run_completions};
use crate::ledger::summary::{IntendedTimes, SummaryInput, summarize};
use crate::ledger::writer::{run_accepted_spill, write_summary};
use crate::ledger::{AcceptedIds, IdFormat};
use crate::live::LiveView;
use crate::metrics::{Recorder, SecondStats, StreamSummary, Window, render_table};
use crate::probe::activity::{ActivitySourceSpec, run_sources};
use crate::probe::{ProbeContext, Sampler};
use crate::results::jsonl::{JsonLines, JsonLinesWriter};
use crate::results::probes::ProbeCsv;
use crate::results::{RunDir, RunStatus, create_run_files, run_id};
use crate::sandbox::config::{ArchChoice, SandboxConfig};
use crate::sandbox::{Sandbox, StartOptions};
use crate::schedule::Segment;

/// Recorder shards (as `load`).
const SHARDS: usize = 16;
/// The copy of the experiment file kept with the results (`analyze` re-reads its promises).
pub use crate::results::dir::EXPERIMENT_FILE;
/// Longest the dead-letter drain at the end may take.
const DLQ_DRAIN: Duration = Duration::from_secs(20);
/// Most dead-lettered messages read at the end.
const DLQ_MAX: usize = 1_000_000;
/// Between the census's reads and the final completion poll: a completion reported just
/// after a read still counts.
const CENSUS_SETTLE: Duration = Duration::from_secs(1);

/// `shakedown run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The experiment (e.g. chaos/failover.toml).
    pub experiment: PathBuf,
    /// Resolve the target and every selector, print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With a sandbox target: run this architecture or broken variant instead of the file's.
    #[arg(long)]
    pub arch: Option<ArchChoice>,
    /// Seed for the schedule and fault choices (default: the file's, else random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories are created.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Name of the run directory (default: `<timestamp>-<experiment name>`).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Send every AWS call of an existing-system target to this endpoint instead (LocalStack,
    /// moto); a loopback endpoint gets placeholder credentials.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Exit 0 even when some promises are not evaluable (failures still exit 1).
    #[arg(long)]
    pub allow_not_evaluable: bool,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `shakedown run`: load the file, then [`run_experiment`].
pub async fn run(args: RunArgs, command: Vec<String>) -> anyhow::Result<Outcome> {
    let experiment = match crate::experiment::load(&args.experiment) {
        Ok(e) => e,
        Err(d) => {
            eprint!("{d}");
            return Ok(Outcome::Error);
        }
    };
    run_experiment(experiment, &args, command).await
}

/// The target, resolved: where traffic goes and what probes, faults and the ledger use.
struct Resolved {
    /// Human description for run.json and the header line.
    describe: String,
    http: Option<(Target, std::net::SocketAddr)>,
    aws: Option<AwsTarget>,
    clients: Option<AwsClients>,
    control_url: Option<String>,
    queue: Option<QueueRef>,
    dlq: Option<QueueRef>,
    completions: Vec<CompletionSourceSpec>,
    /// The system's own scaling log (none for the sandbox, which writes its activities).
    activities: Vec<ActivitySourceSpec>,
}

/// Runs a loaded experiment (also `demo`'s entry point).
pub async fn run_experiment(
    mut exp: Experiment,
    args: &RunArgs,
    command: Vec<String>,
) -> anyhow::Result<Outcome> {
    let sandbox = match &exp.target {
        TargetSpec::Sandbox(_) if args.endpoint_url.is_some() => {
            bail!(
                "--endpoint-url applies to an existing-system target; the sandbox has its own endpoints"
            )
        }
        TargetSpec::Sandbox(sb) => {
            let mut config = sb.config.clone();
            if let Some(arch) = args.arch {
                config.select(arch);
            }
            Some(start_sandbox(config).await?)
        }
        TargetSpec::System(_) if args.arch.is_some() => {
            bail!(
                "--arch applies to a sandbox target; this experiment's [target] is an existing system"
            )
        }
        TargetSpec::System(_) => None,
    };
    let result = with_target(&mut exp, args, command, sandbox.as_ref()).await;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    result
}

async fn start_sandbox(config: SandboxConfig) -> anyhow::Result<Sandbox> {
    println!("starting the sandbox (arch {})...", config_arch(&config));
    let sandbox = Sandbox::start(config, StartOptions::default())
        .await
        .context("starting the sandbox")?;
    let e = sandbox.endpoints();
    println!(
        "sandbox up: web {}  sqs {}  ec2 {}  instance logs {}",
        e.web_url,
        e.sqs_endpoint,
        e.ec2_endpoint,
        e.run_dir.display()
    );
    Ok(sandbox)
}

fn config_arch(config: &SandboxConfig) -> String {
    match config.variant {
        Some(v) => format!("{} with {v}", config.arch),
        None => config.arch.to_string(),
    }
}

async fn resolve_target(
    exp: &Experiment,
    args: &RunArgs,
    sandbox: Option<&Sandbox>,
) -> anyhow::Result<Resolved> {
    let (http_url, aws, control_url, queue, dlq, completions, activities, describe) =
        match (&exp.target, sandbox) {
            (TargetSpec::Sandbox(_), Some(sb)) => {
                let e = sb.endpoints();
                let aws = AwsTarget {
                    region: Some(e.region.clone()),
                    ec2_endpoint_url: Some(e.ec2_endpoint.clone()),
                    sqs_endpoint_url: Some(e.sqs_endpoint.clone()),
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
                match &args.endpoint_url {
                    Some(url) => Some(AwsTarget {
                        endpoint_url: Some(url.clone()),
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
    let needs_aws = exp
        .profile
        .streams
        .iter()
        .any(|s| matches!(s.transport, Transport::Sqs { .. }))
        || !exp.probes.is_empty()
        || queue.is_some()
        || dlq.is_some();
    let http = match (&http_url, needs_http) {
        (Some(url), _) => {
            let target: Target = url
                .parse()
                .map_err(|e| anyhow::anyhow!("[target] http = \"{url}\": {e}"))?;
            if args.dry_run {
                // A dry run sends nothing: the name is not even looked up.
                Some((target, ([0, 0, 0, 0], 0).into()))
            } else {
                let addr = resolve(&target).await?;
                Some((target, addr))
            }
        }
        (None, true) => bail!(
            "{}: the profile has HTTP streams but [target] has no `http` base URL",
            exp.path.display()
        ),
        (None, false) => None,
    };
    let aws = aws.or_else(|| needs_aws.then(AwsTarget::default));
    let clients = match &aws {
        Some(t) => Some(aws_clients(t).map_err(|e| anyhow::anyhow!("[target.aws]: {e}"))?),
        None => None,
    };
    Ok(Resolved {
        describe,
        http,
        aws,
        clients,
        control_url,
        queue,
        dlq,
        completions,
        activities,
    })
}

async fn with_target(
    exp: &mut Experiment,
    args: &RunArgs,
    command: Vec<String>,
    sandbox: Option<&Sandbox>,
) -> anyhow::Result<Outcome> {
    let target = resolve_target(exp, args, sandbox).await?;
    exp.plan.aws = target.aws.clone();
    let env = Env::new(target.aws.clone());
    let probe_ctx = ProbeContext {
        aws: target.clients.clone(),
        control_url: target.control_url.clone(),
    };
    let seed = args
        .seed
        .or(exp.seed)
        .or(exp.profile.seed)
        .unwrap_or_else(rand::random);

    if args.dry_run {
        return dry_run_report(exp, &env, &target, &probe_ctx, seed).await;
    }

    let profile = Arc::new(exp.profile.clone());
    // Queues of SQS streams, resolved before anything is touched.
    let sqs_sink = match (&target.clients, has_sqs_streams(&profile)) {
        (_, false) => None,
        (Some(c), true) => Some(
            crate::driver::sqs::SqsSink::resolve(&c.sqs, &profile)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", exp.path.display()))?,
        ),
        (None, true) => bail!("internal: SQS streams without an SQS client"),
    };

    let start_wall = SystemTime::now();
    let dir_name = args
        .run_id
        .clone()
        .unwrap_or_else(|| run_id(&exp.name, start_wall));
    let dir = RunDir::create(&args.results, &dir_name)
        .map(RunDir::into_path)
        .with_context(|| {
            format!(
                "cannot create a run directory under {}",
                args.results.display()
            )
        })?;
    std::fs::write(dir.join(EXPERIMENT_FILE), &exp.text)
        .with_context(|| format!("writing {}", dir.join(EXPERIMENT_FILE).display()))?;

    // Faults first: refuses (touching nothing) when an earlier run left faults applied, the
    // lock is held, or a selector or guardrail fails.
    let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
    let ephemeral = sandbox.map_or_else(Vec::new, |sb| {
        let e = sb.endpoints();
        vec![e.ec2_endpoint.clone(), e.sqs_endpoint.clone()]
    });
    let runner = Runner::new(exp.plan.clone(), env, &dir)
        .watch(snap_rx)
        .ephemeral(ephemeral);
    let prepared = match runner.prepare().await {
        Ok(p) => p,
        Err(e) => {
            match e {
                crate::chaos::runner::RunError::Refused(_) => eprintln!("shakedown run: {e}"),
                e => eprintln!("shakedown run: refused, nothing was touched: {e}"),
            }
            // Nothing ran: leave no run directory behind (unless a journal was started).
            if !dir.join(crate::chaos::journal::JOURNAL_FILE).exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Ok(Outcome::Error);
        }
    };

    for d in &prepared.deferred {
        println!("note: {d}");
    }
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let settings = profile.settings.clone();
    let (target_str, addr, http_target) = match &target.http {
        Some((t, a)) => (t.to_string(), Some(*a), Some(t.clone())),
        None => (target.describe.clone(), None, None),
    };
    let mut meta = run_meta(MetaInput {
        kind: "run",
        profile: &profile,
        target: target_str,
        mode: Mode::Open,
        settings: &settings,
        seed,
        segment: Segment::ALL,
        run_tag: &run_tag,
        dir: &dir,
        command,
    });
    let names: Vec<String> = profile.streams.iter().map(|s| s.name.clone()).collect();
    let sampler = Sampler::from_specs(&exp.probes, &probe_ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", exp.path.display()))?;
    let mut completion_sources = Vec::new();
    for spec in &target.completions {
        completion_sources.push(
            CompletionSource::new(spec, target.clients.as_ref().map(|c| &c.sqs))
                .map_err(|e| anyhow::anyhow!("completions: {e}"))?,
        );
    }
    let probes_file = std::fs::File::create(dir.join(crate::results::dir::PROBES_FILE))
        .context("creating probes.csv")?;
    let probe_csv = ProbeCsv::new(std::io::BufWriter::new(probes_file), &sampler.names())
        .context("writing probes.csv")?;
    let probe_values = sampler.subscribe();

    println!(
        "shakedown run: experiment \"{}\" -> {} ({} of load, faults: {}), results in {}",
        exp.name,
        target.describe,
        crate::units::format_duration(profile.duration()),
        exp.plan.occurrences.len(),
        dir.display()
    );

    // One clock for everything from here.
    let start = Instant::now();
    let start_wall = SystemTime::now();
    meta.started_at = chrono::DateTime::<chrono::Utc>::from(start_wall);
    let start_ms = start_wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (mut writer, timeline) = create_run_files(&dir, meta, names.clone(), start_wall)
        .with_context(|| format!("cannot write results in {}", dir.display()))?;

    let signal = CancellationToken::new();
    let signals = tokio::spawn(crate::chaos::cli::cancel_on_signals(signal.clone()));
    let load_stop = signal.child_token();

    let recorder = Arc::new(Recorder::new(start, profile.streams.len(), SHARDS));
    let collecting = CancellationToken::new();
    let live = LiveView::new(profile.duration(), args.quiet, 5);
    let snap_probe = probe_values.clone();
    let collector = tokio::spawn(collect(
        recorder.clone(),
        timeline,
        live,
        collecting.clone(),
        move |s: &SecondStats| {
            let _ = snap_tx.send(snapshot(s, &snap_probe.borrow().values()));
        },
    ));
    let watching = CancellationToken::new();
    let sampler_task = tokio::spawn(sampler.run(start, probe_csv, watching.clone()));
    let heartbeat = tokio::spawn(crate::results::harness::heartbeat(
        start,
        dir.join(crate::results::harness::HARNESS_FILE),
        watching.clone(),
    ));
    let completions_path = dir.join(crate::results::dir::COMPLETIONS_FILE);
    let completion_tasks: Vec<_> = completion_sources
        .into_iter()
        .map(|src| {
            tokio::spawn(run_completions(
                src,
                completions_path.clone(),
                Duration::from_secs(1),
                watching.clone(),
            ))
        })
        .collect();
    let accepted = Arc::new(AcceptedIds::with_spill(profile.streams.len()));
    let ids = IdFormat::new(&run_tag);
    let spill = tokio::spawn(run_accepted_spill(
        accepted.clone(),
        dir.join(crate::results::dir::ACCEPTED_FILE),
        ids.clone(),
        names.clone(),
        watching.clone(),
    ));
    let activities = match sandbox {
        Some(sb) => Some(tokio::spawn(write_activities(
            sb.activities().clone(),
            dir.join(crate::results::dir::ACTIVITIES_FILE),
            start_wall,
            watching.clone(),
        ))),
        None if !target.activities.is_empty() => {
            let sources = target.activities.clone();
            let path = dir.join(crate::results::dir::ACTIVITIES_FILE);
            let cancel = watching.clone();
            Some(tokio::spawn(async move {
                let stats = run_sources(sources, path, start_ms, cancel).await?;
                if stats.errors > 0 || stats.last_error.is_some() {
                    println!(
                        "activities: {} read, {} lines skipped, {} failed polls; last problem: {}",
                        stats.activities,
                        stats.skipped_lines,
                        stats.errors,
                        stats.last_error.unwrap_or_default()
                    );
                }
                anyhow::Ok(())
            }))
        }
        None => None,
    };
    // `run-ended` is journaled when the whole run ends (`run_end.finish` below).
    let chaos =
        tokio::spawn(prepared.start_open(tokio::time::Instant::from_std(start), signal.clone()));
    let mut run_end = None;

    let plan = DriverPlan {
        factory: Arc::new(RequestFactory::new(
            &profile,
            http_target.unwrap_or_else(placeholder_target),
            seed,
            run_tag.clone(),
        )),
        profile: profile.clone(),
        addr: addr.unwrap_or_else(|| ([127, 0, 0, 1], 9).into()),
        seed,
        mode: Mode::Open,
        segment: Segment::ALL,
        settings,
        grace: Duration::from_secs(5),
        accepted: Some(accepted.clone()),
        sqs: sqs_sink,
    };
    let driver = tokio::spawn(driver::run(plan, recorder.clone(), load_stop.clone()));
    let mut chaos = chaos;
    let mut chaos_report: Option<Result<RunReport, String>> = None;
    let mut driver = driver;
    let report = loop {
        tokio::select! {
            r = &mut driver => break r.context("the load driver failed")?,
            r = &mut chaos, if chaos_report.is_none() => {
                let r = flatten(r, &mut run_end);
                if !matches!(&r, Ok(rep) if rep.outcome == crate::chaos::Outcome::Completed) {
                    load_stop.cancel();
                }
                chaos_report = Some(r);
            }
        }
    };
    let load_elapsed = start.elapsed();
    let chaos_report = match chaos_report {
        Some(r) => r,
        None => {
            if !chaos.is_finished() && !signal.is_cancelled() {
                println!("load done; waiting for the remaining faults to end...");
            }
            flatten(chaos.await, &mut run_end)
        }
    };

    // Cool-down: probes and completions keep running until drained or bounded.
    let ended_early = signal.is_cancelled()
        || !matches!(&chaos_report, Ok(r) if r.outcome == crate::chaos::Outcome::Completed);
    let cooldown_note = if ended_early {
        "skipped (the run ended early)".to_string()
    } else {
        cool_down(&exp.cooldown, probe_values, &signal).await
    };
    collecting.cancel();
    let totals: Vec<Window> = collector.await.context("the collector task failed")?;
    // The first half of the queue census, while the completion sources still poll: what
    // leaves the queue after these reads is completed by the final poll, or was counted.
    let census = census_before(&target, sandbox).await;
    watching.cancel();
    let probe_report = sampler_task.await.context("the probe sampler failed")?;
    if let Err(e) = heartbeat.await.context("the heartbeat failed")? {
        println!("harness.csv not written: {e}");
    }
    let mut completion_errors = Vec::new();
    for t in completion_tasks {
        match t.await {
            Ok(Ok(stats)) if stats.errors > 0 => completion_errors.push(format!(
                "{} failed poll(s) of the completion source, last: {}",
                stats.errors,
                stats.last_error.unwrap_or_default()
            )),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => completion_errors.push(e.to_string()),
            Err(e) => completion_errors.push(e.to_string()),
        }
    }
    let spilled = spill.await.context("the accepted-ids writer failed")??;
    if let Some(a) = activities {
        a.await.context("the activities writer failed")??;
    }
    signals.abort();

    // The ledger: dead letters, what is still queued, the balance.
    let ledger_note = finish_ledger(
        &dir,
        &target,
        &accepted,
        &ids,
        &names,
        &profile,
        seed,
        start_ms,
        &completions_path,
        census,
    )
    .await;

    let elapsed = start.elapsed();
    let summaries: Vec<StreamSummary> = names
        .iter()
        .zip(&totals)
        .map(|(name, w)| StreamSummary::new(name, w, load_elapsed.as_secs_f64()))
        .collect();
    let interrupted = signal.is_cancelled();
    let status = if interrupted {
        RunStatus::Interrupted
    } else {
        RunStatus::Completed
    };
    writer.meta_mut().summary = summaries.clone();
    writer.meta_mut().peak_rss_kib = crate::results::meta::peak_rss_kib();
    if let Err(e) = &chaos_report {
        writer.meta_mut().error = Some(e.clone());
    }
    writer.finish(status).context("cannot finish run.json")?;
    if let Some(end) = run_end.take()
        && let Err(e) = end.finish(interrupted)
    {
        eprintln!("faults: {e}");
    }

    println!();
    print!("{}", render_table(&summaries));
    println!(
        "load {} after {:.1}s; run ended after {:.1}s; cool-down: {cooldown_note}",
        if report.stopped_early {
            "stopped"
        } else {
            "completed"
        },
        load_elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    match &probe_report {
        Ok(r) => {
            for s in &r.probes {
                let gaps = s.failed + s.timed_out + s.skipped;
                if gaps > 0 {
                    println!(
                        "probe {}: {gaps} gap(s){}",
                        s.name,
                        s.last_error
                            .as_deref()
                            .map(|e| format!(", last: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Err(e) => println!("probes: {e}"),
    }
    for e in &completion_errors {
        println!("completions: {e}");
    }
    println!("ledger: {ledger_note} ({spilled} accepted ids written)");
    let chaos_code = match &chaos_report {
        Ok(r) => {
            println!("faults: {}", r.summary());
            for s in &r.still_applied {
                eprintln!(
                    "UNDO FAILED, still applied: {s}  (run `shakedown recover {}`)",
                    dir.display()
                );
            }
            if !r.still_applied.is_empty() || r.outcome == crate::chaos::Outcome::Failed {
                Some(Outcome::Error)
            } else if r.outcome == crate::chaos::Outcome::Aborted {
                // A stop condition tripped: the system crossed a guardrail, whatever the
                // verdicts of what was measured before it (docs/experiments.md, exit codes).
                Some(Outcome::Failed)
            } else {
                None
            }
        }
        Err(e) => {
            eprintln!("faults: {e}");
            Some(Outcome::Error)
        }
    };

    let verdicts = analyze_and_report(&dir, &exp.promises)?;
    println!("results: {}", dir.display());
    if let Some(sb) = sandbox {
        crate::cmd::load::print_sandbox_activity(sb);
    }
    if interrupted {
        return Ok(Outcome::Error);
    }
    if let Some(code) = chaos_code {
        return Ok(code);
    }
    Ok(verdict_outcome(&verdicts, args.allow_not_evaluable))
}

/// The exit outcome of a set of verdicts: any fail (or, unless allowed, any not evaluable)
/// is a failed run.
pub fn verdict_outcome(v: &VerdictFile, allow_not_evaluable: bool) -> Outcome {
    let failed = v.verdicts.iter().any(|x| x.status == Status::Fail);
    let unknown = v.verdicts.iter().any(|x| x.status == Status::NotEvaluable);
    if failed || (unknown && !allow_not_evaluable) {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

/// Loads the run, evaluates, writes `verdict.json`, prints the table.
pub fn analyze_and_report(
    dir: &Path,
    promises: &[analyze::Promise],
) -> anyhow::Result<VerdictFile> {
    let file = analyze::analyze_dir(dir, promises)
        .with_context(|| format!("analyzing {}", dir.display()))?;
    analyze::write_verdict(dir, &file).context("writing verdict.json")?;
    println!();
    print!("{}", analyze::render_table(&file.verdicts));
    println!(
        "overall: {}",
        match file.overall {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotEvaluable => "not evaluable",
        }
    );
    Ok(file)
}

fn flatten(
    r: Result<
        Result<(RunReport, crate::chaos::RunEnd), crate::chaos::runner::RunError>,
        tokio::task::JoinError,
    >,
    end: &mut Option<crate::chaos::RunEnd>,
) -> Result<RunReport, String> {
    match r {
        Ok(Ok((r, e))) => {
            *end = Some(e);
            Ok(r)
        }
        Ok(Err(e)) => Err(format!("the fault runner failed: {e}")),
        Err(e) => Err(format!("the fault runner panicked: {e}")),
    }
}

fn has_sqs_streams(profile: &crate::config::profile::Profile) -> bool {
    profile
        .streams
        .iter()
        .any(|s| matches!(s.transport, Transport::Sqs { .. }))
}

fn placeholder_target() -> Target {
    "http://127.0.0.1:9".parse().expect("a valid URL")
}

/// The stop conditions' view of one second: error rate and p99 over every stream, and
/// the latest probe values.
fn snapshot(s: &SecondStats, probes: &BTreeMap<String, f64>) -> Snapshot {
    let mut all = Window::default();
    s.streams.iter().for_each(|w| all.merge(w));
    let ok = all.counters.ok;
    let failed = all.counters.errors_total();
    Snapshot {
        error_rate: (ok + failed > 0).then(|| failed as f64 / (ok + failed) as f64),
        p99: (!all.corrected.is_empty())
            .then(|| Duration::from_micros(all.corrected.value_at_quantile(0.99))),
        probes: probes.clone(),
    }
}

/// Waits until the cool-down is over (or a signal); says why it ended.
async fn cool_down(
    spec: &crate::experiment::Cooldown,
    probes: watch::Receiver<crate::probe::sampler::ProbeSnapshot>,
    signal: &CancellationToken,
) -> String {
    let began = Instant::now();
    let mut clock = CooldownClock::new(spec.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = signal.cancelled() => return "interrupted".into(),
        }
        let values = probes.borrow().values();
        if let Some(why) = clock.over(began.elapsed(), &values) {
            return format!(
                "{} ({why})",
                crate::units::format_duration(Duration::from_secs(began.elapsed().as_secs()))
            );
        }
    }
}

/// Appends the sandbox's activities (times relative to the run's start) every second.
async fn write_activities(
    log: crate::sandbox::asg::ActivityLog,
    path: PathBuf,
    start: SystemTime,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let start = chrono::DateTime::<chrono::Utc>::from(start);
    let mut out = JsonLinesWriter::append(&path)?;
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = cancel.cancelled() => true,
        };
        let items = log.since(last);
        if let Some(a) = items.last() {
            last = a.seq;
        }
        let lines: Vec<serde_json::Value> = items
            .iter()
            .filter(|a| a.time >= start)
            .map(|a| {
                serde_json::json!({
                    "t_ms": (a.time - start).num_milliseconds(),
                    "group": a.group,
                    "kind": a.kind,
                    "from": a.from,
                    "to": a.to,
                    "instance": a.instance,
                    "cause": a.cause,
                })
            })
            .collect();
        out.write_all(lines)?;
        if stop {
            return Ok(());
        }
    }
}

/// Dead letters, the final queue depth, and `ledger.json`. Returns a one-line summary.
#[allow(clippy::too_many_arguments)]
async fn finish_ledger(
    dir: &Path,
    target: &Resolved,
    accepted: &AcceptedIds,
    ids: &IdFormat,
    names: &[String],
    profile: &crate::config::profile::Profile,
    seed: u64,
    start_ms: u64,
    completions_path: &Path,
    census: Result<Option<QueueCensus>, String>,
) -> String {
    if target.completions.is_empty() {
        return "no completion source in [target]: end-to-end accounting not measured".into();
    }
    let mut notes = Vec::new();
    if let (Some(dlq), Some(c)) = (&target.dlq, &target.clients) {
        let deadline = tokio::time::Instant::now() + DLQ_DRAIN;
        match crate::ledger::source::drain_dlq(&c.sqs, dlq, "/id", DLQ_MAX, deadline.into_std())
            .await
        {
            Ok((records, _)) => {
                if let Err(e) = JsonLinesWriter::append(completions_path)
                    .and_then(|mut w| w.write_all(&records))
                {
                    notes.push(format!("dead letters not written: {e}"));
                }
            }
            Err(e) => notes.push(format!("dead-letter queue not read: {e}")),
        }
    }
    // The census's second half: one more read after the final poll and the DLQ drain.
    let census = match census {
        Ok(Some(mut census)) => {
            if let (Some(q), Some(c)) = (&target.queue, &target.clients) {
                match queue_depth(&c.sqs, q).await {
                    Ok(n) => census.after = Some(n),
                    Err(e) => notes.push(format!("last queue read failed: {e}")),
                }
            }
            Some(census)
        }
        Ok(None) => None,
        Err(e) => {
            notes.push(format!("final queue depth not measured: {e}"));
            None
        }
    };
    let still_queued = census.as_ref().and_then(QueueCensus::upper);
    let queued_ids: Option<std::collections::HashSet<String>> = census
        .as_ref()
        .and_then(|c| c.ids.as_ref())
        .map(|ids| ids.iter().cloned().collect());
    // Streamed: the completions of a long run are never held in memory at once.
    let mut completions = match JsonLines::<crate::ledger::CompletionRecord>::open(completions_path)
    {
        Ok(c) => c,
        Err(e) => return format!("completions not readable: {e}"),
    };
    let mut intended = IntendedTimes::new(profile, seed, start_ms);
    let (mut summary, _hist) = summarize(
        SummaryInput {
            accepted,
            ids,
            stream_names: names,
            still_queued,
            queued_ids: queued_ids.as_ref(),
        },
        completions.by_ref(),
        Some(&mut intended),
    );
    if let Err(e) = completions.finish() {
        return format!("completions not readable: {e}");
    }
    summary.queue = census.clone();
    if let Err(e) = write_summary(&dir.join(crate::results::dir::LEDGER_FILE), &summary) {
        notes.push(format!("ledger.json not written: {e}"));
    }
    let mut line = format!(
        "{} accepted, {} completed, {} dead-lettered, {}, {} lost, {} duplicated",
        summary.accepted,
        summary.completed,
        summary.dead_lettered,
        match (
            still_queued,
            census.as_ref().is_some_and(|c| c.ids.is_some())
        ) {
            (Some(n), true) => format!("{n} still queued (ids listed)"),
            (Some(n), false) => format!("up to {n} still queued"),
            (None, _) => "still queued unknown".into(),
        },
        summary.lost,
        summary.duplicates
    );
    if let Some(p99) = summary.latency.p99_ms {
        line.push_str(&format!("; end-to-end p99 {p99} ms"));
    }
    for n in notes {
        line.push_str(&format!("; {n}"));
    }
    line
}

/// The census's reads before the final completion poll (until two agree) and, on the
/// sandbox, the ids in the queue; then a second so a completion reported right after the
/// reads reaches that poll. `Ok(None)`: nothing to count (no ledger, or no queue).
async fn census_before(
    target: &Resolved,
    sandbox: Option<&Sandbox>,
) -> Result<Option<QueueCensus>, String> {
    let (Some(q), Some(c)) = (&target.queue, &target.clients) else {
        return Ok(None);
    };
    if target.completions.is_empty() {
        return Ok(None);
    }
    let (before, error) = census::settle(|| queue_depth(&c.sqs, q), Duration::from_secs(1)).await;
    if before.is_empty() {
        return Err(error.map_or_else(String::new, |e| format!("{e:#}")));
    }
    let ids = sandbox.and_then(Sandbox::queued_job_ids);
    tokio::time::sleep(CENSUS_SETTLE).await;
    Ok(Some(QueueCensus {
        before,
        after: None,
        ids,
    }))
}

/// Visible + in flight + delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &QueueRef) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let url = queue.url(sqs).await?;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let attrs = out.attributes.unwrap_or_default();
    Ok([
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|a| attrs.get(a)?.parse::<u64>().ok())
    .sum())
}

/// `--dry-run`: the target, traffic, fault plan (selectors resolved, nothing changed),
/// probes and promises.
async fn dry_run_report(
    exp: &Experiment,
    env: &Env,
    target: &Resolved,
    probes: &ProbeContext,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "experiment \"{}\" ({})", exp.name, exp.path.display())?;
    writeln!(out, "target: {}", target.describe)?;
    writeln!(
        out,
        "traffic: profile \"{}\", {} stream(s), {}, seed {seed}",
        exp.profile.name,
        exp.profile.streams.len(),
        crate::units::format_duration(exp.profile.duration())
    )?;
    writeln!(
        out,
        "cool-down: up to {}",
        crate::units::format_duration(exp.cooldown.max)
    )?;
    drop(out);
    let mut code = Outcome::Ok;
    if let Err(e) = Sampler::from_specs(&exp.probes, probes) {
        eprintln!("probes: {e}");
        code = Outcome::Error;
    }
    for p in &exp.probes {
        println!("probe {}: every {}s", p.name, p.every_secs());
    }
    for p in &exp.promises {
        println!("promise {}", p.name);
    }
    match dry_run(&exp.plan, env).await {
        Ok(steps) => print!("{}", render_dry_run(&steps)),
        Err(errors) => {
            for (f, e) in errors {
                if deferrable(&exp.plan, &f, &e) {
                    println!("\n{}: {e} now; it is resolved again when it fires", f.id);
                } else {
                    eprintln!("fault {}: {e}", f.id);
                    code = Outcome::Error;
                }
            }
        }
    }
    Ok(code)
}
