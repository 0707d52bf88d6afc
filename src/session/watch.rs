//! An experiment's watchers, on the run's clock from its first second to the end of the
//! cool-down: the probe sampler (`probes.csv`), the harness heartbeat (`harness.csv`), the
//! completion sources (`completions.jsonl`), the accepted-ids spill (`accepted.jsonl`) and
//! the scaling activities (`activities.jsonl`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ledger::source::{CompletionSource, SourceStats, run_completions};
use crate::ledger::writer::run_accepted_spill;
use crate::ledger::{AcceptedIds, IdFormat, LedgerError};
use crate::probe::activity::{ActivitySourceSpec, run_sources};
use crate::probe::sampler::SamplerError;
use crate::probe::{Sampler, SamplerReport};
use crate::results::RunDir;
use crate::results::jsonl::JsonLinesWriter;
use crate::results::probes::ProbeCsv;
use crate::sandbox::Sandbox;

/// What the watchers are given when the clock starts.
pub struct WatchPlan<'a> {
    pub dir: &'a RunDir,
    pub start: Instant,
    pub start_wall: SystemTime,
    pub start_ms: u64,
    pub sampler: Sampler,
    pub probe_csv: ProbeCsv<std::io::BufWriter<std::fs::File>>,
    pub completions: Vec<CompletionSource>,
    pub accepted: Arc<AcceptedIds>,
    pub ids: IdFormat,
    pub names: Vec<String>,
    /// The sandbox writes its own activities; another system may name its scaling log.
    pub sandbox: Option<&'a Sandbox>,
    pub activity_sources: Vec<ActivitySourceSpec>,
    /// The client of HTTP activity sources (the run's trust options for https).
    pub http: reqwest::Client,
    /// The client of `asg` activity sources (none: the target serves no Auto Scaling).
    pub autoscaling: Option<aws_sdk_autoscaling::Client>,
}

/// The running watchers.
pub struct Watchers {
    cancel: CancellationToken,
    sampler: JoinHandle<Result<SamplerReport, SamplerError>>,
    heartbeat: JoinHandle<std::io::Result<()>>,
    completions: Vec<JoinHandle<Result<SourceStats, LedgerError>>>,
    spill: JoinHandle<Result<u64, LedgerError>>,
    activities: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What the watchers said when they stopped.
pub struct WatchReport {
    pub probes: Result<SamplerReport, SamplerError>,
    pub completion_errors: Vec<String>,
    /// Accepted ids written to `accepted.jsonl`.
    pub spilled: u64,
}

impl Watchers {
    pub fn start(plan: WatchPlan<'_>) -> Watchers {
        let WatchPlan {
            dir,
            start,
            start_wall,
            start_ms,
            sampler,
            probe_csv,
            completions,
            accepted,
            ids,
            names,
            sandbox,
            activity_sources,
            http,
            autoscaling,
        } = plan;
        let cancel = CancellationToken::new();
        let sampler = tokio::spawn(sampler.run(start, probe_csv, cancel.clone()));
        let heartbeat = tokio::spawn(crate::results::harness::heartbeat(
            start,
            dir.harness(),
            cancel.clone(),
        ));
        let completions_path = dir.completions();
        let completions = completions
            .into_iter()
            .map(|src| {
                tokio::spawn(run_completions(
                    src,
                    completions_path.clone(),
                    Duration::from_secs(1),
                    cancel.clone(),
                ))
            })
            .collect();
        let spill = tokio::spawn(run_accepted_spill(
            accepted,
            dir.accepted(),
            ids,
            names,
            cancel.clone(),
        ));
        let path = dir.activities();
        let activities = match sandbox {
            Some(sb) => Some(tokio::spawn(write_activities(
                sb.activities().clone(),
                path,
                start_wall,
                cancel.clone(),
            ))),
            None if !activity_sources.is_empty() => {
                let cancel = cancel.clone();
                Some(tokio::spawn(async move {
                    let stats =
                        run_sources(activity_sources, path, start_ms, http, autoscaling, cancel)
                            .await?;
                    if stats.errors > 0 || stats.last_error.is_some() {
                        crate::outln!(
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
        Watchers {
            cancel,
            sampler,
            heartbeat,
            completions,
            spill,
            activities,
        }
    }

    /// Stops every watcher and waits for its last write.
    pub async fn stop(self) -> anyhow::Result<WatchReport> {
        self.cancel.cancel();
        let probes = self.sampler.await.context("the probe sampler failed")?;
        if let Err(e) = self.heartbeat.await.context("the heartbeat failed")? {
            crate::outln!("harness.csv not written: {e}");
        }
        let mut completion_errors = Vec::new();
        for t in self.completions {
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
        let spilled = self
            .spill
            .await
            .context("the accepted-ids writer failed")??;
        if let Some(a) = self.activities {
            a.await.context("the activities writer failed")??;
        }
        Ok(WatchReport {
            probes,
            completion_errors,
            spilled,
        })
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
