//! `shakedown run` (and `demo`): an experiment as four steps over one run.
//!
//! 1. [`prepare`]: the sandbox or the target resolved, the run directory, the faults
//!    prepared (selectors resolved, guardrails checked, lock taken: nothing touched yet),
//!    probes and completion sources built;
//! 2. [`Prepared::run`]: load + faults + watchers on one clock, until the load and the
//!    faults are over (or a stop condition or a signal ends them);
//! 3. [`Ran::cool_down`]: probes and completions keep running until drained or bounded;
//! 4. [`Ran::finish`]: the queue census, the ledger, `run.json`, the verdicts.
//!
//! Results are written as the run goes; Ctrl-C/SIGTERM undo the faults, flush what exists
//! and analyze it. File formats: `results/README.md`, `docs/experiments.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::watch;

use crate::chaos::guard::Snapshot;
use crate::chaos::runner::{Prepared as PreparedFaults, RunError};
use crate::chaos::{Env, RunEnd, RunReport, Runner};
use crate::cmd::Outcome;
use crate::config::profile::Profile;
use crate::driver::{self, DriverPlan, Mode, RequestFactory, Target};
use crate::experiment::{CooldownClock, Experiment, TargetSpec};
use crate::exporter::{Exporter, Live, Phase};
use crate::ledger::census::QueueCensus;
use crate::ledger::source::CompletionSource;
use crate::ledger::{AcceptedIds, IdFormat};
use crate::metrics::render_table;
use crate::probe::sampler::ProbeSnapshot;
use crate::probe::{ProbeContext, ProbeKind, Sampler};
use crate::results::RunStatus;
use crate::results::probes::ProbeCsv;
use crate::sandbox::Sandbox;
use crate::sandbox::config::ArchChoice;
use crate::schedule::Segment;

use super::collect::snapshot;
use super::ledger::{LedgerInput, census_before, finish_ledger};
use super::meta::{MetaInput, run_meta};
use super::report::{analyze_and_report, dry_run_report, verdict_outcome};
use super::target::{Resolved, print_sandbox_activity, resolve_target, start_sandbox};
use super::watch::{WatchPlan, WatchReport, Watchers};
use super::{Recording, Session};

/// The copy of the experiment file kept with the results (`analyze` re-reads its promises).
pub use crate::results::dir::EXPERIMENT_FILE;

/// How to run an experiment (from `run`'s or `demo`'s arguments).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Resolve the target and every selector, print the plan, change nothing.
    pub dry_run: bool,
    /// With a sandbox target: this architecture or broken variant instead of the file's.
    pub arch: Option<ArchChoice>,
    /// Seed for the schedule and fault choices (default: the file's, else random).
    pub seed: Option<u64>,
    /// Where run directories are created.
    pub results: PathBuf,
    /// Name of the run directory (default: `<timestamp>-<experiment name>`).
    pub run_id: Option<String>,
    /// Every AWS call of an existing-system target goes here instead.
    pub endpoint_url: Option<String>,
    /// Exit 0 even when some promises are not evaluable.
    pub allow_not_evaluable: bool,
    /// https trust options from the command line, over the experiment's `[target.tls]`.
    pub tls: crate::tls::TlsArgs,
    /// No live progress line.
    pub quiet: bool,
    /// Serve the live metrics here (`GET /metrics`, Prometheus text format).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs a loaded experiment: the sandbox if its target is one, then the four steps.
pub async fn run_experiment(
    mut exp: Experiment,
    opts: &RunOptions,
    command: Vec<String>,
) -> anyhow::Result<Outcome> {
    // Bound first: a taken address is an error before anything starts.
    let exporter = Exporter::start_if(opts.metrics_addr).await?;
    let sandbox = match &exp.target {
        TargetSpec::Sandbox(_) if opts.endpoint_url.is_some() => {
            bail!(
                "--endpoint-url applies to an existing-system target; the sandbox has its own endpoints"
            )
        }
        TargetSpec::Sandbox(sb) => {
            let mut config = sb.config.clone();
            if let Some(arch) = opts.arch {
                config.select(arch);
            }
            Some(start_sandbox(config).await?)
        }
        TargetSpec::System(_) if opts.arch.is_some() => {
            bail!(
                "--arch applies to a sandbox target; this experiment's [target] is an existing system"
            )
        }
        TargetSpec::System(_) => None,
    };
    let live = exporter.as_ref().map(Exporter::live);
    let result = steps(&mut exp, opts, command, sandbox.as_ref(), live).await;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    if let Some(e) = exporter {
        e.stop().await;
    }
    result
}

async fn steps(
    exp: &mut Experiment,
    opts: &RunOptions,
    command: Vec<String>,
    sandbox: Option<&Sandbox>,
    live: Option<Arc<Live>>,
) -> anyhow::Result<Outcome> {
    let prepared = match prepare(exp, opts, command, sandbox, live).await? {
        Ok(p) => p,
        Err(outcome) => return Ok(outcome),
    };
    let mut ran = prepared.run().await?;
    ran.cool_down().await;
    ran.finish().await
}

/// Step 1's result: everything built, nothing touched, the clock not started.
pub struct Prepared<'a> {
    exp: &'a Experiment,
    opts: &'a RunOptions,
    sandbox: Option<&'a Sandbox>,
    target: Resolved,
    session: Session,
    faults: PreparedFaults,
    snapshots: watch::Sender<Snapshot>,
    profile: Arc<Profile>,
    seed: u64,
    run_tag: String,
    meta: crate::results::RunMeta,
    sampler: Sampler,
    probe_csv: ProbeCsv<std::io::BufWriter<std::fs::File>>,
    completions: Vec<CompletionSource>,
    sinks: Option<crate::driver::batch::Sinks>,
    live: Option<Arc<Live>>,
}

/// Step 1: resolves and builds everything; `Err(outcome)` when the run ends here (a dry
/// run, or faults refused: then nothing was touched and no run directory is left).
pub async fn prepare<'a>(
    exp: &'a mut Experiment,
    opts: &'a RunOptions,
    command: Vec<String>,
    sandbox: Option<&'a Sandbox>,
    live: Option<Arc<Live>>,
) -> anyhow::Result<Result<Prepared<'a>, Outcome>> {
    let target = resolve_target(
        exp,
        opts.endpoint_url.as_deref(),
        opts.dry_run,
        &opts.tls,
        sandbox,
    )
    .await?;
    exp.plan.aws = target.aws.clone();
    let exp: &'a Experiment = exp;
    let mut env = Env::new(target.aws.clone());
    env.control_url = target.control_url.clone();
    let probe_ctx = ProbeContext {
        aws: target.clients.clone(),
        control_url: target.control_url.clone(),
        http: target.http_client.clone(),
    };
    let seed = opts
        .seed
        .or(exp.seed)
        .or(exp.profile.seed)
        .unwrap_or_else(rand::random);
    if opts.dry_run {
        return Ok(Err(
            dry_run_report(exp, &env, &target, &probe_ctx, seed).await?
        ));
    }

    let profile = Arc::new(exp.profile.clone());
    // Queues and buses of the AWS streams, resolved before anything is touched.
    super::target::check_sandbox_bus(&profile, sandbox)?;
    let sinks = match (&target.clients, has_aws_streams(&profile)) {
        (_, false) => None,
        (Some(c), true) => Some(
            crate::driver::batch::Sinks::resolve(c, &profile)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", exp.path.display()))?,
        ),
        (None, true) => bail!("internal: AWS streams without AWS clients"),
    };

    let session = Session::create(&opts.results, opts.run_id.as_deref(), &exp.name)?;
    let dir = session.dir();
    dir.write_experiment(&exp.text)
        .with_context(|| format!("writing {}", dir.experiment().display()))?;

    // Faults first: refuses (touching nothing) when an earlier run left faults applied, the
    // lock is held, or a selector or guardrail fails.
    let (snapshots, snap_rx) = watch::channel(Snapshot::default());
    let ephemeral = sandbox.map_or_else(Vec::new, |sb| {
        let e = sb.endpoints();
        vec![
            e.ec2_endpoint.clone(),
            e.sqs_endpoint.clone(),
            e.control_url.clone(),
        ]
    });
    let runner = Runner::new(exp.plan.clone(), env, dir.path())
        .watch(snap_rx)
        .ephemeral(ephemeral);
    let faults = match runner.prepare().await {
        Ok(p) => p,
        Err(e) => {
            match e {
                RunError::Refused(_) => eprintln!("shakedown run: {e}"),
                e => eprintln!("shakedown run: refused, nothing was touched: {e}"),
            }
            // Nothing ran: leave no run directory behind (unless a journal was started).
            if !dir.journal().exists() {
                let _ = std::fs::remove_dir_all(dir.path());
            }
            return Ok(Err(Outcome::Error));
        }
    };
    for d in &faults.deferred {
        crate::outln!("note: {d}");
    }

    let run_tag = format!("{:08x}", rand::random::<u32>());
    let target_str = match &target.http {
        Some((t, _)) => t.to_string(),
        None => target.describe.clone(),
    };
    let meta = run_meta(MetaInput {
        kind: "run",
        profile: &profile,
        target: target_str,
        mode: Mode::Open,
        settings: &profile.settings,
        seed,
        segment: Segment::ALL,
        run_tag: &run_tag,
        dir: dir.path(),
        command,
    });
    let sampler = Sampler::from_specs(&exp.probes, &probe_ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", exp.path.display()))?;
    let mut completions = Vec::new();
    for spec in &target.completions {
        completions.push(
            CompletionSource::new(
                spec,
                target.clients.as_ref().map(|c| &c.sqs),
                &target.http_client,
            )
            .map_err(|e| anyhow::anyhow!("completions: {e}"))?,
        );
    }
    let probes_file = std::fs::File::create(dir.probes()).context("creating probes.csv")?;
    let probe_csv = ProbeCsv::new(std::io::BufWriter::new(probes_file), &sampler.names())
        .context("writing probes.csv")?;
    Ok(Ok(Prepared {
        exp,
        opts,
        sandbox,
        target,
        session,
        faults,
        snapshots,
        profile,
        seed,
        run_tag,
        meta,
        sampler,
        probe_csv,
        completions,
        sinks,
        live,
    }))
}

/// Steps 2 and 3's result: the load and the faults are over; the watchers still run.
pub struct Ran<'a> {
    exp: &'a Experiment,
    opts: &'a RunOptions,
    sandbox: Option<&'a Sandbox>,
    target: Resolved,
    session: Session,
    recording: Recording,
    watchers: Watchers,
    probe_values: watch::Receiver<ProbeSnapshot>,
    accepted: Arc<AcceptedIds>,
    ids: IdFormat,
    profile: Arc<Profile>,
    seed: u64,
    load_elapsed: Duration,
    stopped_early: bool,
    chaos: Result<RunReport, String>,
    run_end: Option<RunEnd>,
    cooldown_note: String,
}

impl<'a> Prepared<'a> {
    /// Step 2: starts the clock, the watchers, the faults and the load; returns when the
    /// load is done and every fault has ended (a fault that ends the run early stops the
    /// load).
    pub async fn run(self) -> anyhow::Result<Ran<'a>> {
        let Prepared {
            exp,
            opts,
            sandbox,
            target,
            session,
            faults,
            snapshots,
            profile,
            seed,
            run_tag,
            meta,
            sampler,
            probe_csv,
            completions,
            sinks,
            live,
        } = self;
        let names: Vec<String> = profile.streams.iter().map(|s| s.name.clone()).collect();
        let probe_values = sampler.subscribe();
        crate::outln!(
            "shakedown run: experiment \"{}\" -> {} ({} of load, faults: {}), results in {}",
            exp.name,
            target.describe,
            crate::units::format_duration(profile.duration()),
            exp.plan.occurrences.len(),
            session.path().display()
        );

        // The request factory is made before the clock starts: the first arrivals are due
        // at once.
        let (http_target, connector) = match &target.http {
            Some((t, c)) => (t.clone(), c.clone()),
            None => (
                placeholder_target(),
                crate::driver::Connector::plain(([127, 0, 0, 1], 9).into()),
            ),
        };
        let factory = Arc::new(RequestFactory::new(
            &profile,
            http_target,
            seed,
            run_tag.clone(),
        ));

        // One clock for everything from here.
        let snap_probe = probe_values.clone();
        let recording = session.start_recording(
            meta,
            names.clone(),
            profile.duration(),
            opts.quiet,
            live,
            move |s| {
                let _ = snapshots.send(snapshot(s, &snap_probe.borrow().values()));
            },
        )?;
        if let Some(l) = recording.live() {
            l.watch_probes(probe_values.clone());
            l.watch_faults(&exp.plan, session.dir().journal());
        }
        let start = recording.start;
        let accepted = Arc::new(AcceptedIds::with_spill(profile.streams.len()));
        let ids = IdFormat::new(&run_tag);
        let watchers = Watchers::start(WatchPlan {
            dir: session.dir(),
            start,
            start_wall: recording.start_wall,
            start_ms: recording.start_ms(),
            sampler,
            probe_csv,
            completions,
            accepted: accepted.clone(),
            ids: ids.clone(),
            names,
            sandbox,
            activity_sources: target.activities.clone(),
            http: target.http_client.clone(),
            autoscaling: target.clients.as_ref().and_then(|c| c.autoscaling.clone()),
        });
        let signal = recording.signal.clone();
        let load_stop = signal.child_token();
        // `run-ended` is journaled when the whole run ends (`run_end.finish` in `finish`).
        let mut chaos =
            tokio::spawn(faults.start_open(tokio::time::Instant::from_std(start), signal.clone()));
        let mut run_end = None;

        let plan = DriverPlan {
            factory,
            profile: profile.clone(),
            connector,
            http2: target.http2,
            seed,
            mode: Mode::Open,
            segment: Segment::ALL,
            settings: profile.settings.clone(),
            grace: Duration::from_secs(5),
            accepted: Some(accepted.clone()),
            sinks,
        };
        let mut driver = tokio::spawn(driver::run(
            plan,
            recording.recorder.clone(),
            load_stop.clone(),
        ));
        let mut chaos_report: Option<Result<RunReport, String>> = None;
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
                    crate::outln!("load done; waiting for the remaining faults to end...");
                }
                flatten(chaos.await, &mut run_end)
            }
        };
        Ok(Ran {
            exp,
            opts,
            sandbox,
            target,
            session,
            recording,
            watchers,
            probe_values,
            accepted,
            ids,
            profile,
            seed,
            load_elapsed,
            stopped_early: report.stopped_early,
            chaos: chaos_report,
            run_end,
            cooldown_note: String::new(),
        })
    }
}

impl Ran<'_> {
    /// Step 3: waits until the cool-down is over (drained, bounded, or a signal); skipped
    /// when the run ended early.
    pub async fn cool_down(&mut self) {
        let ended_early = self.recording.interrupted()
            || !matches!(&self.chaos, Ok(r) if r.outcome == crate::chaos::Outcome::Completed);
        self.recording.set_phase(Phase::Cooldown);
        self.cooldown_note = if ended_early {
            "skipped (the run ended early)".to_string()
        } else {
            let began = Instant::now();
            let mut clock = CooldownClock::new(self.exp.cooldown.clone());
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = self.recording.signal.cancelled() => break "interrupted".into(),
                }
                let values = self.probe_values.borrow().values();
                if let Some(why) = clock.over(began.elapsed(), &values) {
                    break format!(
                        "{} ({why})",
                        crate::units::format_duration(Duration::from_secs(
                            began.elapsed().as_secs()
                        ))
                    );
                }
            }
        };
    }

    /// Step 4: the queue census, the watchers' last writes, the ledger, `run.json`, the
    /// report and the verdicts; the exit outcome.
    pub async fn finish(self) -> anyhow::Result<Outcome> {
        let Ran {
            exp,
            opts,
            sandbox,
            target,
            session,
            mut recording,
            watchers,
            accepted,
            ids,
            profile,
            seed,
            load_elapsed,
            stopped_early,
            chaos,
            mut run_end,
            cooldown_note,
            ..
        } = self;
        let dir = session.path();
        recording.stop_collecting().await?;
        // The first half of the queue census, while the completion sources still poll: what
        // leaves the queue after these reads is completed by the final poll, or was counted.
        let census: Result<Option<QueueCensus>, String> = census_before(&target, sandbox).await;
        let watched = watchers.stop().await?;
        let interrupted = recording.interrupted();
        let start = recording.start;
        let start_ms = recording.start_ms();
        let names = recording.names.clone();

        // The ledger: dead letters, what is still queued, the balance.
        let ledger_note = finish_ledger(
            LedgerInput {
                dir: session.dir(),
                target: &target,
                accepted: &accepted,
                ids: &ids,
                names: &names,
                profile: &profile,
                seed,
                start_ms,
            },
            census,
        )
        .await;

        // The bus's counters at the end (what a memory sweep prices): after the cool-down,
        // so the invocations the load started have finished and are billed.
        if let Some(bus) = sandbox.and_then(Sandbox::bus) {
            let path = session.dir().bus();
            let written = serde_json::to_vec_pretty(&bus.stats())
                .map_err(std::io::Error::other)
                .and_then(|json| std::fs::write(&path, json));
            if let Err(e) = written {
                eprintln!("writing {}: {e}", path.display());
            }
        }

        // CloudWatch's reporting delay: its probes' columns are rewritten from the settled
        // series before anything reads them (while Ctrl-C still reaches the run).
        let settle = exp
            .probes
            .iter()
            .filter_map(|p| match &p.kind {
                ProbeKind::CloudWatch(c) => Some(c.settle),
                _ => None,
            })
            .max();
        if let Some(settle) = settle.filter(|_| !interrupted) {
            crate::outln!(
                "cloudwatch: waiting up to {} for the run's datapoints (CloudWatch publishes minutes late; Ctrl-C stops waiting)...",
                crate::units::format_duration(settle)
            );
        }
        let cloudwatch_notes = crate::probe::cloudwatch::settle(
            dir,
            &exp.probes,
            target.clients.as_ref().and_then(|c| c.cloudwatch.as_ref()),
            start_ms,
            interrupted,
            &recording.signal,
        )
        .await;

        let elapsed = start.elapsed();
        let status = if interrupted {
            RunStatus::Interrupted
        } else {
            RunStatus::Completed
        };
        let summaries = recording
            .finish(status, load_elapsed, chaos.as_ref().err().cloned())
            .await?;
        if let Some(end) = run_end.take()
            && let Err(e) = end.finish(interrupted)
        {
            eprintln!("faults: {e}");
        }

        crate::outln!();
        crate::out!("{}", render_table(&summaries));
        crate::outln!(
            "load {} after {:.1}s; run ended after {:.1}s; cool-down: {cooldown_note}",
            if stopped_early {
                "stopped"
            } else {
                "completed"
            },
            load_elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
        );
        print_watch_report(&watched);
        crate::outln!(
            "ledger: {ledger_note} ({} accepted ids written)",
            watched.spilled
        );
        for note in &cloudwatch_notes {
            crate::outln!("{note}");
        }
        let chaos_code = chaos_outcome(&chaos, dir);

        let (verdicts, view) = analyze_and_report(dir, &exp.promises)?;
        super::report::write_documents(dir, Some(view));
        crate::outln!("results: {}", dir.display());
        if let Some(sb) = sandbox {
            print_sandbox_activity(sb);
        }
        if interrupted {
            return Ok(Outcome::Error);
        }
        if let Some(code) = chaos_code {
            return Ok(code);
        }
        Ok(verdict_outcome(&verdicts, opts.allow_not_evaluable))
    }
}

/// Probe gaps and completion-source errors.
fn print_watch_report(watched: &WatchReport) {
    match &watched.probes {
        Ok(r) => {
            for s in &r.probes {
                let gaps = s.failed + s.timed_out + s.skipped;
                if gaps > 0 {
                    crate::outln!(
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
        Err(e) => crate::outln!("probes: {e}"),
    }
    for e in &watched.completion_errors {
        crate::outln!("completions: {e}");
    }
}

/// Prints how the faults ended; the outcome they force, if any.
fn chaos_outcome(chaos: &Result<RunReport, String>, dir: &std::path::Path) -> Option<Outcome> {
    match chaos {
        Ok(r) => {
            crate::outln!("faults: {}", r.summary());
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
    }
}

fn flatten(
    r: Result<Result<(RunReport, RunEnd), RunError>, tokio::task::JoinError>,
    end: &mut Option<RunEnd>,
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

fn has_aws_streams(profile: &Profile) -> bool {
    profile.streams.iter().any(|s| s.transport.is_aws())
}

fn placeholder_target() -> Target {
    "http://127.0.0.1:9".parse().expect("a valid URL")
}
