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

struct Slot {
    every: u64,
    timeout: Duration,
    /// `None` while a sample is running.
    prober: Option<Prober>,
    stats: ProbeStats,
}

struct Row {
    cells: Vec<Option<f64>>,
    outstanding: usize,
}

/// The probes of a run.
pub struct Sampler {
    slots: Vec<Slot>,
    snapshot: watch::Sender<ProbeSnapshot>,
}

type SampleResult = (usize, u64, Prober, Result<f64, ProbeError>);

impl Sampler {
    /// A sampler over built probes, in column order.
    pub fn new(probes: Vec<(ProbeSpec, Prober)>) -> Self {
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
        let mut tasks: JoinSet<SampleResult> = JoinSet::new();
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
        tasks: &mut JoinSet<SampleResult>,
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
        joined: Result<(tokio::task::Id, SampleResult), tokio::task::JoinError>,
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
