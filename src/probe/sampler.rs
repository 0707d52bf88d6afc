//! Runs every probe on the run's clock and writes `probes.csv`.
//!
//! At each second boundary `start + s` the probes due at `s` (`s % every == 0`) start, each
//! in its own task with its timeout. Row `s` is written once every sample started at `s`
//! has ended, rows strictly in order; so row `s` is on disk at most `timeout` after `s`.
//! A probe still busy with an earlier sample when due again skips that second (a gap).
//! If the process stalls past boundaries, the missed seconds get rows of gaps: rows are
//! contiguous. Successful values go to a `watch` channel at once, for stop conditions.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ProbeContext, ProbeError, ProbeSpec, Prober};
use crate::results::probes::ProbeCsv;

/// The latest successful value of a probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The value.
    pub value: f64,
    /// The run second its sample started at.
    pub second: u64,
}

/// What the run sees of the probes, updated as each sample ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeSnapshot {
    /// Latest successful reading per probe name (absent until a sample succeeds).
    pub latest: BTreeMap<String, Reading>,
}

impl ProbeSnapshot {
    /// Latest values by name, as stop conditions take them.
    pub fn values(&self) -> BTreeMap<String, f64> {
        self.latest
            .iter()
            .map(|(k, r)| (k.clone(), r.value))
            .collect()
    }
}

/// Counts per probe over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// The probe's name.
    pub name: String,
    /// Samples with a value.
    pub ok: u64,
    /// Samples that failed (error from the target or the command).
    pub failed: u64,
    /// Samples given up at the timeout.
    pub timed_out: u64,
    /// Seconds the probe was due but still busy with an earlier sample.
    pub skipped: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// What [`Sampler::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplerReport {
    /// Rows written (seconds 0 to `rows - 1`).
    pub rows: u64,
    /// Per probe, in column order.
    pub probes: Vec<ProbeStats>,
}

/// Why the sampler stopped early or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// A probe could not be built.
    #[error("probe `{name}`: {source}")]
    Build {
        /// The probe.
        name: String,
        /// Why.
        #[source]
        source: ProbeError,
    },
    /// `probes.csv` could not be written.
    #[error("writing probes.csv: {0}")]
    Io(#[from] std::io::Error),
}

/// What the sampler runs: one sample, given up after a timeout. [`Prober`] is the real one;
/// the tests script theirs on tokio's paused clock.
pub trait Sample: Send + 'static {
    /// One sample, given up after `timeout` ([`ProbeError::Timeout`]).
    fn sample_within(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<f64, ProbeError>> + Send;
}

impl Sample for Prober {
    fn sample_within(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<f64, ProbeError>> + Send {
        Prober::sample_within(self, timeout)
    }
}

struct Slot<P> {
    every: u64,
    timeout: Duration,
    /// `None` while a sample is running.
    prober: Option<P>,
    stats: ProbeStats,
}

struct Row {
    cells: Vec<Option<f64>>,
    outstanding: usize,
}

/// The probes of a run.
pub struct Sampler<P = Prober> {
    slots: Vec<Slot<P>>,
    snapshot: watch::Sender<ProbeSnapshot>,
}

type SampleResult<P> = (usize, u64, P, Result<f64, ProbeError>);

impl Sampler {
    /// Builds every probe of `specs` against `ctx`.
    pub fn from_specs(specs: &[ProbeSpec], ctx: &ProbeContext) -> Result<Self, SamplerError> {
        let probes = specs
            .iter()
            .map(|s| {
                Prober::new(&s.kind, ctx)
                    .map(|p| (s.clone(), p))
                    .map_err(|source| SamplerError::Build {
                        name: s.name.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(probes))
    }
}

impl<P: Sample> Sampler<P> {
    /// A sampler over built probes, in column order.
    pub fn new(probes: Vec<(ProbeSpec, P)>) -> Self {
        let slots = probes
            .into_iter()
            .map(|(spec, prober)| Slot {
                every: spec.every_secs(),
                timeout: spec.timeout,
                prober: Some(prober),
                stats: ProbeStats {
                    name: spec.name,
                    ..ProbeStats::default()
                },
            })
            .collect();
        Sampler {
            slots,
            snapshot: watch::channel(ProbeSnapshot::default()).0,
        }
    }

    /// The probe names, in column order.
    pub fn names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.stats.name.clone()).collect()
    }

    /// A receiver of the latest values.
    pub fn subscribe(&self) -> watch::Receiver<ProbeSnapshot> {
        self.snapshot.subscribe()
    }

    /// Samples until `cancel`, writing one row per second since `start` (second 0 is the
    /// boundary at `start`). On cancellation, samples in progress are abandoned (commands
    /// killed) and the rows started so far are written, their unfinished cells empty.
    pub async fn run<W: Write>(
        mut self,
        start: std::time::Instant,
        mut csv: ProbeCsv<W>,
        cancel: CancellationToken,
    ) -> Result<SamplerReport, SamplerError> {
        let start = Instant::from_std(start);
        let n = self.slots.len();
        let mut pending: BTreeMap<u64, Row> = BTreeMap::new();
        let mut tasks: JoinSet<SampleResult<P>> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (usize, u64)> = HashMap::new();
        let mut next_tick = csv.next_second();
        loop {
            let boundary = start + Duration::from_secs(next_tick);
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(joined) = tasks.join_next_with_id() => {
                    self.finish(joined, &mut running, &mut pending);
                }
                () = tokio::time::sleep_until(boundary) => {
                    let now = Instant::now().saturating_duration_since(start).as_secs().max(next_tick);
                    for missed in next_tick..now {
                        pending.insert(missed, Row { cells: vec![None; n], outstanding: 0 });
                    }
                    let row = self.start_due(now, &mut tasks, &mut running);
                    pending.insert(now, row);
                    next_tick = now + 1;
                }
            }
            write_complete(&mut pending, &mut csv, false)?;
        }
        tasks.abort_all();
        while let Some(joined) = tasks.join_next_with_id().await {
            self.finish(joined, &mut running, &mut pending);
        }
        write_complete(&mut pending, &mut csv, true)?;
        Ok(SamplerReport {
            rows: csv.next_second(),
            probes: self.slots.into_iter().map(|s| s.stats).collect(),
        })
    }

    fn start_due(
        &mut self,
        second: u64,
        tasks: &mut JoinSet<SampleResult<P>>,
        running: &mut HashMap<tokio::task::Id, (usize, u64)>,
    ) -> Row {
        let mut row = Row {
            cells: vec![None; self.slots.len()],
            outstanding: 0,
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !second.is_multiple_of(slot.every) {
                continue;
            }
            let Some(mut prober) = slot.prober.take() else {
                slot.stats.skipped += 1;
                continue;
            };
            let timeout = slot.timeout;
            let handle = tasks.spawn(async move {
                let result = prober.sample_within(timeout).await;
                (i, second, prober, result)
            });
            running.insert(handle.id(), (i, second));
            row.outstanding += 1;
        }
        row
    }

    fn finish(
        &mut self,
        joined: Result<(tokio::task::Id, SampleResult<P>), tokio::task::JoinError>,
        running: &mut HashMap<tokio::task::Id, (usize, u64)>,
        pending: &mut BTreeMap<u64, Row>,
    ) {
        let (i, second, value) = match joined {
            Ok((id, (i, second, prober, result))) => {
                running.remove(&id);
                let slot = &mut self.slots[i];
                slot.prober = Some(prober);
                let value = match result {
                    Ok(v) => {
                        slot.stats.ok += 1;
                        Some(v)
                    }
                    Err(e) => {
                        if matches!(e, ProbeError::Timeout(_)) {
                            slot.stats.timed_out += 1;
                        } else {
                            slot.stats.failed += 1;
                        }
                        slot.stats.last_error = Some(e.to_string());
                        None
                    }
                };
                (i, second, value)
            }
            Err(e) => {
                // Aborted at the end of the run, or a panic: the probe is gone either way.
                let Some((i, second)) = running.remove(&e.id()) else {
                    return;
                };
                if e.is_panic() {
                    self.slots[i].stats.failed += 1;
                    self.slots[i].stats.last_error = Some("the probe panicked".into());
                }
                (i, second, None)
            }
        };
        if let Some(value) = value {
            let name = self.slots[i].stats.name.clone();
            self.snapshot.send_modify(|s| {
                let newer = s.latest.get(&name).is_none_or(|r| r.second <= second);
                if newer {
                    s.latest.insert(name, Reading { value, second });
                }
            });
        }
        if let Some(row) = pending.get_mut(&second) {
            row.cells[i] = value;
            row.outstanding = row.outstanding.saturating_sub(1);
        }
    }
}

/// Writes the complete rows at the front of `pending`; `all` writes the rest too.
fn write_complete<W: Write>(
    pending: &mut BTreeMap<u64, Row>,
    csv: &mut ProbeCsv<W>,
    all: bool,
) -> std::io::Result<()> {
    while let Some(entry) = pending.first_entry() {
        if entry.get().outstanding > 0 && !all {
            break;
        }
        debug_assert_eq!(*entry.key(), csv.next_second());
        csv.row(&entry.remove().cells)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::probe::spec::{CommandLine, CommandProbe, ProbeKind};

    /// A probe whose samples take scripted times (on tokio's paused clock) and give
    /// scripted values; past its script it answers at once with `rest`.
    struct Scripted {
        script: VecDeque<(u64, Result<f64, &'static str>)>,
        rest: f64,
    }

    impl Sample for Scripted {
        async fn sample_within(&mut self, timeout: Duration) -> Result<f64, ProbeError> {
            let (ms, result) = self.script.pop_front().unwrap_or((0, Ok(self.rest)));
            let sample = async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                result.map_err(|e| ProbeError::Config(e.into()))
            };
            tokio::time::timeout(timeout, sample)
                .await
                .unwrap_or(Err(ProbeError::Timeout(timeout)))
        }
    }

    type Step = (u64, Result<f64, &'static str>);

    fn probe(
        name: &str,
        every: u64,
        timeout_ms: u64,
        script: &[Step],
        rest: f64,
    ) -> (ProbeSpec, Scripted) {
        let spec = ProbeSpec {
            name: name.into(),
            every: Duration::from_secs(every),
            timeout: Duration::from_millis(timeout_ms),
            kind: ProbeKind::Command(CommandProbe {
                command: CommandLine::Shell("unused".into()),
            }),
        };
        let script = script.iter().cloned().collect();
        (spec, Scripted { script, rest })
    }

    /// A `Write` the test keeps a handle on while the sampler owns the CSV writer.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Starts `sampler` now on the paused clock and cancels it after `ms`; returns what it
    /// wrote and its report.
    async fn run_for(sampler: Sampler<Scripted>, ms: u64) -> (String, SamplerReport) {
        let out = Shared::default();
        let csv = ProbeCsv::new(out.clone(), &sampler.names()).unwrap();
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
            stop.cancel();
        });
        let report = sampler.run(start.into_std(), csv, cancel).await.unwrap();
        (out.text(), report)
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_are_empty_cells_and_a_busy_probe_skips_its_second() {
        let sampler = Sampler::new(vec![
            probe("steady", 1, 2000, &[], 7.0),
            // Its first sample takes 1.5 s: due again at 1 s while busy, it skips it.
            probe("slow", 1, 2000, &[(1500, Ok(1.0))], 2.0),
            probe("hung", 1, 300, &[(10_000, Ok(0.0)); 8], 0.0),
            probe("every2", 2, 2000, &[], 5.0),
            probe("broken", 1, 2000, &[(0, Err("no")); 8], 0.0),
        ]);
        let snapshots = sampler.subscribe();
        let (text, report) = run_for(sampler, 3_500).await;
        assert_eq!(
            text,
            "second,steady,slow,hung,every2,broken\n\
             0,7,1,,5,\n\
             1,7,,,,\n\
             2,7,2,,5,\n\
             3,7,2,,,\n"
        );
        assert_eq!(report.rows, 4);
        let [steady, slow, hung, every2, broken] = &report.probes[..] else {
            panic!("{report:?}")
        };
        assert_eq!((steady.ok, steady.skipped), (4, 0));
        assert_eq!((slow.ok, slow.skipped), (3, 1));
        assert_eq!((hung.ok, hung.timed_out), (0, 4));
        assert_eq!(every2.ok, 2);
        assert_eq!(broken.failed, 4);
        assert!(broken.last_error.as_deref().unwrap().contains("no"));
        // The latest successful values, for stop conditions; a probe that never answered
        // is absent, not zero.
        let values = snapshots.borrow().values();
        assert_eq!(values.get("slow"), Some(&2.0));
        assert_eq!(values.get("hung"), None);
        assert_eq!(snapshots.borrow().latest["steady"].second, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_row_waits_for_its_slow_sample_and_rows_stay_in_order() {
        // Second 0's sample ends at 1.8 s: row 0 (and row 1 behind it) cannot be written
        // before; then both are, in order, with the late value in row 0.
        let sampler = Sampler::new(vec![
            probe("late", 1, 5000, &[(1800, Ok(9.0))], 1.0),
            probe("quick", 1, 5000, &[], 3.0),
        ]);
        let (text, _) = run_for(sampler, 2_500).await;
        assert_eq!(text, "second,late,quick\n0,9,3\n1,,3\n2,1,3\n");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_mid_sample_writes_the_started_rows_with_empty_cells() {
        let sampler = Sampler::new(vec![probe("long", 1, 60_000, &[(30_000, Ok(1.0))], 1.0)]);
        let (text, report) = run_for(sampler, 1_200).await;
        // Row 0's sample was abandoned at the cancel; row 1 was skipped (busy).
        assert_eq!(text, "second,long\n0,\n1,\n");
        assert_eq!(report.probes[0].skipped, 1);
        assert_eq!(report.probes[0].ok, 0);
    }
}
