//! [`Runner`]: executes a [`FaultPlan`] on the run's clock.
//!
//! Before anything is touched it checks that no earlier run left faults applied
//! ([`check_clean`](crate::chaos::check_clean)), takes the run lock, starts the plan's proxies and resolves every
//! occurrence against the guardrails. Then each occurrence is applied at its time (journal
//! `intent` first) and undone when its duration ends. However the run ends (normal end, a
//! failed apply, [`AbortHandle::abort`] or a stop condition, or the caller's cancellation
//! token on Ctrl-C / SIGTERM) every change still active is undone, newest first, and each
//! undo is verified before `run` returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::change::Change;
use super::fault::{Env, FaultError};
use super::guard::{LockError, RunLock, Snapshot, evaluate};
use super::journal::{Event, FaultRef, Journal, JournalError, RunOutcome, Undoer};
use super::plan::{FaultPlan, deferrable, dry_run, resolve_occurrence};
use super::proxy;
use super::recover::{Unrecovered, check_clean_except};

/// How a run ended (as journaled).
pub type Outcome = RunOutcome;

/// Why a run could not start (nothing was touched) or its journal failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Another run holds the lock, or a dead run's lock is still there.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// An earlier run's faults are still applied.
    #[error(transparent)]
    Unrecovered(#[from] Unrecovered),
    /// A proxy could not be started.
    #[error("proxy `{name}`: {source}")]
    Proxy {
        /// The proxy.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Selectors or guardrails refused faults (every one is listed).
    #[error("refused, nothing was touched:\n{}", list_refusals(.0))]
    Refused(Vec<(FaultRef, FaultError)>),
}

fn list_refusals(r: &[(FaultRef, FaultError)]) -> String {
    r.iter()
        .map(|(f, e)| format!("  {}: {e}", f.id))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Why it ended early, if it did.
    pub reason: Option<String>,
    /// Changes applied (reversible and irreversible).
    pub applied: usize,
    /// Of those, changes that cannot be undone (terminated instances, killed processes).
    pub irreversible: usize,
    /// Changes undone and verified.
    pub undone: usize,
    /// Changes whose undo failed: what is still applied.
    pub still_applied: Vec<String>,
    /// The journal file.
    pub journal: PathBuf,
}

impl RunReport {
    /// One line for the terminal: `completed: 3 applied (1 irreversible), 2 undone and verified`.
    pub fn summary(&self) -> String {
        let outcome = match self.outcome {
            RunOutcome::Completed => "completed",
            RunOutcome::Aborted => "aborted",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
        };
        let irreversible = if self.irreversible > 0 {
            format!(" ({} irreversible)", self.irreversible)
        } else {
            String::new()
        };
        let reason = self
            .reason
            .as_deref()
            .map(|r| format!("; {r}"))
            .unwrap_or_default();
        format!(
            "{outcome}: {} applied{irreversible}, {} undone and verified{reason}",
            self.applied, self.undone
        )
    }

    /// 0 completed, 1 aborted by a stop condition, 2 failed or any undo failed, 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        if !self.still_applied.is_empty() {
            return 2;
        }
        match self.outcome {
            RunOutcome::Completed => 0,
            RunOutcome::Aborted => 1,
            RunOutcome::Failed => 2,
            RunOutcome::Interrupted => 130,
        }
    }
}

/// Ends a run early (undoing everything); cloneable, usable from any task.
#[derive(Debug, Clone, Default)]
pub struct AbortHandle {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl AbortHandle {
    /// Aborts the run with `reason` (the first reason wins).
    pub fn abort(&self, reason: impl Into<String>) {
        self.reason.lock().get_or_insert_with(|| reason.into());
        self.token.cancel();
    }
}

/// Executes a fault plan. See the module docs.
pub struct Runner {
    plan: FaultPlan,
    env: Env,
    run_dir: PathBuf,
    abort: AbortHandle,
    snapshots: Option<watch::Receiver<Snapshot>>,
    ephemeral: Vec<String>,
}

enum Step {
    Undo(usize),
    Apply(usize),
}

impl Runner {
    /// A runner for `plan` acting in `env`, journaling to `run_dir/journal.jsonl`. The lock
    /// lives in `run_dir`'s parent (the results directory).
    pub fn new(plan: FaultPlan, mut env: Env, run_dir: &Path) -> Runner {
        if env.run_dir.is_none() {
            env.run_dir = std::path::absolute(run_dir).ok();
        }
        Runner {
            plan,
            env,
            run_dir: run_dir.to_owned(),
            abort: AbortHandle::default(),
            snapshots: None,
            ephemeral: Vec::new(),
        }
    }

    /// Watches the run's per-second figures: the `[guardrails] stop` conditions are checked
    /// against the latest one every second.
    pub fn watch(mut self, snapshots: watch::Receiver<Snapshot>) -> Runner {
        self.snapshots = Some(snapshots);
        self
    }

    /// A handle to abort the run from elsewhere.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// Declares endpoints that end with this process (an embedded sandbox): journaled, so
    /// that `recover` after a `kill -9` knows changes made through them died with it.
    pub fn ephemeral(mut self, endpoints: Vec<String>) -> Runner {
        self.ephemeral = endpoints;
        self
    }

    /// Aborts the run: every active fault is undone and `run` returns `Aborted`.
    pub fn abort(&self, reason: impl Into<String>) {
        self.abort.abort(reason);
    }

    /// Runs the plan until its last undo, an abort, a failure, or `cancel`, on a clock
    /// that starts once the run is prepared (see [`Runner::prepare`]).
    pub async fn run(self, cancel: CancellationToken) -> Result<RunReport, RunError> {
        self.prepare().await?.start(Instant::now(), cancel).await
    }

    /// Everything before the first fault, touching nothing: refuses to go on if an earlier
    /// run left faults applied, takes the run lock, starts the plan's proxies, resolves
    /// every occurrence against the guardrails and opens the journal. A run that drives
    /// load and faults on one clock prepares first, then starts both at the same instant.
    pub async fn prepare(self) -> Result<Prepared, RunError> {
        let results_dir = self
            .run_dir
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        check_clean_except(&results_dir, Some(&self.run_dir))?;
        let run_id = super::journal::run_id_of(&self.run_dir);
        let lock = RunLock::acquire(&results_dir, &run_id)?;
        let proxy_stop = CancellationToken::new();
        let stop_proxies = proxy_stop.clone().drop_guard();
        for spec in &self.plan.proxies {
            let handle =
                proxy::start(spec, &proxy_stop)
                    .await
                    .map_err(|source| RunError::Proxy {
                        name: spec.name.clone(),
                        source,
                    })?;
            self.env.proxies.insert(handle);
        }
        let mut deferred = Vec::new();
        if let Err(refused) = dry_run(&self.plan, &self.env).await {
            let (later, now): (Vec<_>, Vec<_>) = refused
                .errors
                .into_iter()
                .partition(|(f, e)| deferrable(&self.plan, f, e));
            if !now.is_empty() {
                return Err(RunError::Refused(now));
            }
            deferred = later
                .into_iter()
                .map(|(f, e)| format!("{}: {e} now; resolved again when it fires", f.id))
                .collect();
        }
        let journal = Journal::open(&self.run_dir)?;
        Ok(Prepared {
            deferred,
            runner: self,
            run_id,
            journal,
            _lock: lock,
            _stop_proxies: stop_proxies,
        })
    }
}

/// A run ready to start: lock held, proxies up, every occurrence resolved once.
pub struct Prepared {
    /// Occurrences whose selector matches nothing yet (see [`deferrable`]).
    pub deferred: Vec<String>,
    runner: Runner,
    run_id: String,
    journal: Journal,
    _lock: RunLock,
    _stop_proxies: tokio_util::sync::DropGuard,
}

impl Prepared {
    /// A handle to abort the run from elsewhere.
    pub fn abort_handle(&self) -> AbortHandle {
        self.runner.abort.clone()
    }

    /// Runs the plan with occurrence times counted from `t0` (the run's clock), until its
    /// last undo, an abort, a failure, or `cancel`; then undoes whatever is still active
    /// and journals `run-ended`: the run is the plan.
    pub async fn start(
        self,
        t0: Instant,
        cancel: CancellationToken,
    ) -> Result<RunReport, RunError> {
        let (report, end) = self.start_open(t0, cancel).await?;
        end.finish(false)?;
        Ok(report)
    }

    /// As [`Prepared::start`], for a run that goes on after its faults (load, cool-down,
    /// ledger): `run-ended` is journaled, and the lock and proxies released, only by
    /// [`RunEnd::finish`] when that run ends.
    pub async fn start_open(
        self,
        t0: Instant,
        cancel: CancellationToken,
    ) -> Result<(RunReport, RunEnd), RunError> {
        let Prepared {
            deferred: _,
            runner,
            run_id,
            mut journal,
            _lock,
            _stop_proxies,
        } = self;
        journal.append(Event::RunStarted {
            pid: std::process::id(),
            occurrences: runner.plan.occurrences.len(),
            ephemeral: runner.ephemeral.clone(),
        })?;
        let mut state = State {
            env: &runner.env,
            journal,
            run_id,
            active: Vec::new(),
            applied: 0,
            irreversible: 0,
            undone: 0,
            still_applied: Vec::new(),
        };
        let (outcome, reason) = runner.drive(&mut state, t0, &cancel).await?;
        // Undo everything still active, newest first, whatever ended the run.
        while let Some((_, fault, change)) = state.active.pop() {
            state.undo(&fault, &change, Undoer::Runner).await?;
        }
        let report = RunReport {
            outcome,
            reason: reason.clone(),
            applied: state.applied,
            irreversible: state.irreversible,
            undone: state.undone,
            still_applied: state.still_applied,
            journal: state.journal.path().to_owned(),
        };
        let end = RunEnd {
            journal: state.journal,
            outcome,
            reason,
            _lock,
            _stop_proxies,
        };
        Ok((report, end))
    }
}

/// The end of a run whose faults are over: holds the journal, the lock and the proxies
/// until [`RunEnd::finish`] writes `run-ended` with the time the run really ended.
/// Dropped without `finish`, the journal has no `run-ended` (as after a crash; `recover`
/// closes it).
pub struct RunEnd {
    journal: Journal,
    outcome: RunOutcome,
    reason: Option<String>,
    _lock: RunLock,
    _stop_proxies: tokio_util::sync::DropGuard,
}

impl RunEnd {
    /// Journals `run-ended` now. `interrupted`: a signal ended the run after its faults
    /// (e.g. during the cool-down), which makes a completed plan an interrupted run.
    pub fn finish(mut self, interrupted: bool) -> Result<(), JournalError> {
        let (outcome, reason) = match self.outcome {
            RunOutcome::Completed if interrupted => (
                RunOutcome::Interrupted,
                Some("interrupted (signal) after the last fault".to_owned()),
            ),
            o => (o, self.reason.take()),
        };
        self.journal.append(Event::RunEnded { outcome, reason })
    }
}

impl Runner {
    async fn drive(
        &self,
        state: &mut State<'_>,
        t0: Instant,
        cancel: &CancellationToken,
    ) -> Result<(RunOutcome, Option<String>), RunError> {
        let mut steps: Vec<(Duration, Step)> = Vec::new();
        for (i, o) in self.plan.occurrences.iter().enumerate() {
            steps.push((o.start, Step::Apply(i)));
            if let Some(d) = o.duration {
                steps.push((o.start + d, Step::Undo(i)));
            }
        }
        // Undos before applies at the same instant.
        steps.sort_by_key(|(t, s)| (*t, matches!(s, Step::Apply(_))));
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let conditions = &self.plan.guardrails.stop;
        let mut next = 0;
        while next < steps.len() {
            let due = t0 + steps[next].0;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    return Ok((RunOutcome::Interrupted, Some("interrupted (signal or cancellation)".into())));
                }
                _ = self.abort.token.cancelled() => {
                    return Ok((RunOutcome::Aborted, self.abort.reason.lock().clone()));
                }
                _ = ticker.tick() => {
                    if let Some(rx) = &self.snapshots
                        && let Some(why) = evaluate(conditions, &rx.borrow())
                    {
                        return Ok((RunOutcome::Aborted, Some(format!("stop condition: {why}"))));
                    }
                }
                _ = tokio::time::sleep_until(due) => {
                    match steps[next].1 {
                        Step::Apply(i) => {
                            let occ = &self.plan.occurrences[i];
                            if let Err(e) = state.apply(i, occ, &self.plan).await? {
                                return Ok((RunOutcome::Failed, Some(format!("{}: {e}", occ.fault.id))));
                            }
                        }
                        Step::Undo(i) => {
                            if let Some(pos) = state.active.iter().position(|(j, ..)| *j == i) {
                                let (_, fault, change) = state.active.remove(pos);
                                state.undo(&fault, &change, Undoer::Runner).await?;
                            }
                        }
                    }
                    next += 1;
                }
            }
        }
        Ok((RunOutcome::Completed, None))
    }
}

struct State<'e> {
    env: &'e Env,
    journal: Journal,
    run_id: String,
    active: Vec<(usize, FaultRef, Change)>,
    applied: usize,
    irreversible: usize,
    undone: usize,
    still_applied: Vec<String>,
}

impl State<'_> {
    /// Applies one occurrence. The outer error is the journal's; the inner one the fault's
    /// (already journaled, and whatever was applied already undone).
    async fn apply(
        &mut self,
        i: usize,
        occ: &super::plan::Occurrence,
        plan: &FaultPlan,
    ) -> Result<Result<(), FaultError>, RunError> {
        let occurrence_id = format!("{}-{i}", self.run_id);
        let (choice, change) =
            match resolve_occurrence(occ, &plan.guardrails, self.env, &occurrence_id).await {
                Ok(x) => x,
                Err(e) => {
                    self.journal.append(Event::ApplyFailed {
                        fault: occ.fault.clone(),
                        error: e.to_string(),
                    })?;
                    return Ok(Err(e));
                }
            };
        let ops = change.ops();
        self.journal.append(Event::Intent {
            fault: occ.fault.clone(),
            choice,
            change: Box::new(change.clone()),
            summary: ops.summary(),
        })?;
        let mut warnings = Vec::new();
        if ops.reversible()
            && let Err(e) = ops.tag(self.env, &self.run_id).await
        {
            warnings.push(format!(
                "recovery tag not written (the journal still has the undo): {e}"
            ));
        }
        match ops.apply(self.env).await {
            Ok(()) => {
                self.applied += 1;
                if ops.reversible() {
                    self.journal.append(Event::Applied {
                        fault: occ.fault.clone(),
                        warnings,
                    })?;
                    self.active.push((i, occ.fault.clone(), change));
                } else {
                    self.irreversible += 1;
                    self.journal.append(Event::Irreversible {
                        fault: occ.fault.clone(),
                    })?;
                }
                Ok(Ok(()))
            }
            Err(e) => {
                self.journal.append(Event::ApplyFailed {
                    fault: occ.fault.clone(),
                    error: e.to_string(),
                })?;
                if ops.reversible() {
                    self.undo(&occ.fault, &change, Undoer::Runner).await?;
                }
                Ok(Err(e))
            }
        }
    }

    async fn undo(
        &mut self,
        fault: &FaultRef,
        change: &Change,
        by: Undoer,
    ) -> Result<(), RunError> {
        match undo_and_verify(self.env, &mut self.journal, fault, change, by).await? {
            Ok(()) => self.undone += 1,
            Err(still) => self.still_applied.push(still),
        }
        Ok(())
    }
}

/// Undoes `change`, verifies it, removes its recovery tag and journals the outcome.
/// The inner error says what is still applied (already journaled as `undo-failed`).
pub async fn undo_and_verify(
    env: &Env,
    journal: &mut Journal,
    fault: &FaultRef,
    change: &Change,
    by: Undoer,
) -> Result<Result<(), String>, JournalError> {
    match change.undo_verified(env, journal.run_id()).await {
        Ok(notes) => {
            journal.append(Event::Undone {
                fault: fault.clone(),
                by,
                notes,
            })?;
            Ok(Ok(()))
        }
        Err(e) => {
            let still = format!("{}: {}", fault.id, change.ops().summary());
            tracing::error!(fault = %fault.id, error = %e, "undo failed: still applied: {still}");
            journal.append(Event::UndoFailed {
                fault: fault.clone(),
                by,
                error: e.to_string(),
                still_applied: still.clone(),
            })?;
            Ok(Err(format!("{still} ({e})")))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The runner's clock on tokio's paused time: faults on a built-in proxy (toxics, no
    //! system calls that wait) are applied and undone at their exact virtual times, and a
    //! stop condition is read on the one-second tick. Nothing sleeps in real time.

    use super::*;
    use crate::chaos::journal::{self, JOURNAL_FILE};
    use crate::chaos::proxy::ProxySet;

    /// A plan with one proxy (`p`, on a free port) and `faults` (TOML `[[fault]]` tables).
    fn plan(faults: &str) -> FaultPlan {
        FaultPlan::parse(
            &format!(
                "[[proxy]]\nname = \"p\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\n{faults}"
            ),
            std::path::Path::new("plan.toml"),
        )
        .unwrap()
    }

    /// The toxics on `p` right now, by kind.
    fn toxics(proxies: &ProxySet) -> Vec<&'static str> {
        let mut kinds: Vec<_> = proxies
            .get("p")
            .expect("the runner started proxy p")
            .toxics()
            .values()
            .map(|t| match t {
                crate::chaos::proxy::Toxic::Latency { .. } => "latency",
                crate::chaos::proxy::Toxic::Blackhole => "blackhole",
                crate::chaos::proxy::Toxic::ResetPeer => "reset-peer",
                crate::chaos::proxy::Toxic::Bandwidth { .. } => "bandwidth",
            })
            .collect();
        kinds.sort_unstable();
        kinds
    }

    /// A prepared run of `faults` in a temp results directory, and its proxies.
    async fn prepared(faults: &str, dir: &Path) -> (Prepared, ProxySet) {
        let env = Env::new(None);
        let proxies = env.proxies.clone();
        let prepared = Runner::new(plan(faults), env, &dir.join("r"))
            .prepare()
            .await
            .unwrap();
        (prepared, proxies)
    }

    fn undone_in_order(dir: &Path) -> Vec<String> {
        journal::read(&dir.join("r").join(JOURNAL_FILE))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Undone { fault, .. } => Some(fault.name),
                _ => None,
            })
            .collect()
    }

    const TWO_FAULTS: &str = "[[fault]]\nname = \"slow\"\ntype = \"latency\"\nat = \"10s\"\nduration = \"30s\"\nproxy = \"p\"\nlatency = \"100ms\"\n\
         [[fault]]\nname = \"hole\"\ntype = \"blackhole\"\nat = \"20s\"\nduration = \"5s\"\nproxy = \"p\"\n";

    #[tokio::test(start_paused = true)]
    async fn faults_are_applied_and_undone_at_their_times() {
        let tmp = tempfile::tempdir().unwrap();
        let (prepared, proxies) = prepared(TWO_FAULTS, tmp.path()).await;
        let t0 = Instant::now();
        let run = tokio::spawn(prepared.start(t0, CancellationToken::new()));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        tokio::time::sleep_until(at(9_999)).await;
        assert_eq!(toxics(&proxies), Vec::<&str>::new(), "nothing before 10 s");
        tokio::time::sleep_until(at(10_001)).await;
        assert_eq!(toxics(&proxies), ["latency"]);
        tokio::time::sleep_until(at(20_001)).await;
        assert_eq!(toxics(&proxies), ["blackhole", "latency"]);
        tokio::time::sleep_until(at(25_001)).await;
        assert_eq!(toxics(&proxies), ["latency"], "the blackhole ended at 25 s");
        let report = run.await.unwrap().unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(40), "the run is the plan");
        assert_eq!(
            (report.outcome, report.applied, report.undone),
            (Outcome::Completed, 2, 2)
        );
        assert!(report.still_applied.is_empty(), "{report:?}");
        assert_eq!(undone_in_order(tmp.path()), ["hole", "slow"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_condition_aborts_at_the_next_tick_and_undoes() {
        let tmp = tempfile::tempdir().unwrap();
        let faults = "[guardrails]\nstop = [ { metric = \"error_rate\", above = 0.05 } ]\n\
             [[fault]]\nname = \"slow\"\ntype = \"latency\"\nat = \"0s\"\nduration = \"60s\"\nproxy = \"p\"\nlatency = \"100ms\"\n";
        let env = Env::new(None);
        let proxies = env.proxies.clone();
        let (tx, rx) = watch::channel(Snapshot::default());
        let prepared = Runner::new(plan(faults), env, &tmp.path().join("r"))
            .watch(rx)
            .prepare()
            .await
            .unwrap();
        let t0 = Instant::now();
        let run = tokio::spawn(prepared.start(t0, CancellationToken::new()));
        tokio::time::sleep_until(t0 + Duration::from_millis(5_500)).await;
        assert_eq!(toxics(&proxies), ["latency"], "a healthy run goes on");
        tx.send(Snapshot {
            error_rate: Some(0.5),
            ..Snapshot::default()
        })
        .unwrap();
        let report = run.await.unwrap().unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(6),
            "read on the next tick"
        );
        assert_eq!(report.outcome, Outcome::Aborted);
        assert!(report.reason.unwrap().contains("error_rate"));
        assert_eq!(toxics(&proxies), Vec::<&str>::new());
        assert_eq!(undone_in_order(tmp.path()), ["slow"]);
    }

    #[tokio::test(start_paused = true)]
    async fn abort_and_cancellation_undo_newest_first_at_once() {
        for cancelled in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let faults = TWO_FAULTS
                .replace("\"30s\"", "\"60s\"")
                .replace("\"5s\"", "\"60s\"");
            let (prepared, proxies) = prepared(&faults, tmp.path()).await;
            let abort = prepared.abort_handle();
            let cancel = CancellationToken::new();
            let t0 = Instant::now();
            let run = tokio::spawn(prepared.start(t0, cancel.clone()));
            tokio::time::sleep_until(t0 + Duration::from_secs(21)).await;
            assert_eq!(toxics(&proxies), ["blackhole", "latency"]);
            if cancelled {
                cancel.cancel();
            } else {
                abort.abort("operator said so");
            }
            let report = run.await.unwrap().unwrap();
            assert_eq!(
                t0.elapsed(),
                Duration::from_secs(21),
                "no waiting for the plan"
            );
            if cancelled {
                assert_eq!(
                    (report.outcome, report.exit_code()),
                    (Outcome::Interrupted, 130)
                );
            } else {
                assert_eq!(report.outcome, Outcome::Aborted);
                assert_eq!(report.reason.as_deref(), Some("operator said so"));
            }
            assert_eq!(toxics(&proxies), Vec::<&str>::new());
            assert_eq!(undone_in_order(tmp.path()), ["hole", "slow"]);
        }
    }
}
