//! `kind = "cloudwatch"`: a CloudWatch metric's statistic per period.
//!
//! CloudWatch publishes a period's datapoint minutes after the period (its reporting
//! delay), and later datapoints of a period may still change it. So a probe has two lives:
//! - **during the run** ([`CloudWatchSampler`]), each sample is the newest *complete* period
//!   CloudWatch has: late by design, good for stop conditions ("stop if Lambda throttles"),
//!   never for the timeline;
//! - **after the run** ([`settle`]), the whole run is fetched again once CloudWatch has
//!   caught up (its last period has a datapoint and one more period, at most a minute,
//!   has passed since that period ended; or `settle` has passed), and the probe's column of `probes.csv` is rewritten:
//!   each second holds the statistic of the period it falls in (or a gap, or zero with
//!   `missing = "zero"`). The datapoints themselves go to `cloudwatch.csv`. A run that ended
//!   early is not waited for: the column is blanked, so late values never stand as the
//!   run's own.
//!
//! A `cumulative` probe is a counter built from per-period sums (Lambda `Duration`,
//! `Invocations`, `Throttles`): live, each sample is the total of the complete periods since
//! the probe started; settled, its column holds the running total only where it is known
//! exactly, at the run's first second (0) and at each period boundary within the run, and
//! gaps between ([`column()`]). Counting starts at the period holding the run's first second,
//! so up to one period before the run is counted with it; a period still open when the run
//! ends is left out (it is in `cloudwatch.csv`).

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::ProbeError;
use super::spec::{CloudWatchProbe, Missing, ProbeKind, ProbeSpec};
use crate::aws::AwsError;
use crate::aws::cloudwatch::{CloudWatch, Datapoint, epoch_now};

/// How far back a live sample looks for the newest complete period.
const LOOKBACK: i64 = 20 * 60;
/// After the period that holds the run's last second has a datapoint, how long more to
/// wait for the rest of that period's values: one period, between 5 s and a minute.
fn grace(period: u32) -> i64 {
    i64::from(period).clamp(5, 60)
}
/// How often settling asks again.
const POLL: Duration = Duration::from_secs(20);

/// Samples the newest complete period, or the total since the probe began (see the module
/// docs).
#[derive(Debug)]
pub struct CloudWatchSampler {
    client: CloudWatch,
    spec: CloudWatchProbe,
    /// The start of the period the sampler was made in (epoch seconds).
    since: i64,
}

impl CloudWatchSampler {
    /// A sampler for `spec`.
    pub fn new(client: CloudWatch, spec: CloudWatchProbe) -> Self {
        let now = epoch_now();
        let since = now - now.rem_euclid(i64::from(spec.period_secs()));
        CloudWatchSampler {
            client,
            spec,
            since,
        }
    }

    /// The statistic of the newest complete period CloudWatch has (zero when it has none
    /// and `missing = "zero"`); for a `cumulative` probe, the sum of the complete periods
    /// since the sampler was made.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let period = i64::from(self.spec.period_secs());
        let now = epoch_now();
        let end = now - now.rem_euclid(period);
        let start = if self.spec.cumulative {
            self.since.min(end)
        } else {
            end - LOOKBACK.max(3 * period)
        };
        let points = self
            .client
            .get_metric_data(&self.spec.query(), start, end)
            .await?;
        if self.spec.cumulative && (!points.is_empty() || start == end) {
            return Ok(self.spec.scaled(points.iter().map(|p| p.value).sum()));
        }
        match (points.last(), self.spec.missing) {
            (Some(p), _) => Ok(self.spec.scaled(p.value)),
            (None, Missing::Zero) => Ok(0.0),
            (None, Missing::Gap) => Err(ProbeError::NoData(format!(
                "CloudWatch has no datapoint of {} {} in the last {} min (it publishes minutes late; are the namespace, metric and every dimension right?)",
                self.spec.namespace,
                self.spec.metric,
                (end - start) / 60
            ))),
        }
    }
}

/// The periods a run spans: from the one holding its first second to the one holding its
/// last, as `[first, end)` in epoch seconds.
pub fn periods(start_ms: u64, rows: u64, period: u32) -> (i64, i64) {
    let period = i64::from(period.max(1));
    let first_second = (start_ms / 1000) as i64;
    let last_second = first_second + rows.max(1) as i64 - 1;
    let first = first_second - first_second.rem_euclid(period);
    let last = last_second - last_second.rem_euclid(period);
    (first, last + period)
}

/// Whether the series has caught up: the run's last period has a datapoint and its
/// [`grace`] has passed since it ended.
fn caught_up(points: &[Datapoint], end: i64, period: u32, now: i64) -> bool {
    let last = end - i64::from(period);
    points.last().is_some_and(|p| p.start >= last) && now >= end + grace(period)
}

/// The value of run second `second`: the statistic of the period it falls in.
pub fn value_at(
    points: &[Datapoint],
    start_ms: u64,
    second: u64,
    period: u32,
    missing: Missing,
) -> Option<f64> {
    let at = (start_ms / 1000) as i64 + second as i64;
    let start = at - at.rem_euclid(i64::from(period.max(1)));
    period_value(points, start, missing)
}

/// The datapoint of the period starting at `start`, or what a missing one is.
fn period_value(points: &[Datapoint], start: i64, missing: Missing) -> Option<f64> {
    match points.binary_search_by_key(&start, |p| p.start) {
        Ok(i) => Some(points[i].value),
        Err(_) => (missing == Missing::Zero).then_some(0.0),
    }
}

/// A probe's settled column, `rows` seconds from `start_ms`. Each second holds its period's
/// value ([`value_at`]); with `cumulative`, the running total of the periods from the one
/// holding the first second: 0 at second 0, then the total at each second that begins a
/// period (the periods before it added up), and gaps between, where the total is not known.
/// With `missing = "gap"` a period without a datapoint leaves the total unknown from there on.
pub fn column(
    points: &[Datapoint],
    start_ms: u64,
    rows: u64,
    period: u32,
    missing: Missing,
    cumulative: bool,
) -> Vec<Option<f64>> {
    if !cumulative {
        return (0..rows)
            .map(|s| value_at(points, start_ms, s, period, missing))
            .collect();
    }
    let period = i64::from(period.max(1));
    let first_second = (start_ms / 1000) as i64;
    let mut open = first_second - first_second.rem_euclid(period);
    let mut total = Some(0.0);
    (0..rows)
        .map(|s| {
            let at = first_second + s as i64;
            if s == 0 {
                return Some(0.0);
            }
            if at.rem_euclid(period) != 0 {
                return None;
            }
            // Close every period that ended by `at`.
            while open < at {
                total = total
                    .zip(period_value(points, open, missing))
                    .map(|(t, v)| t + v);
                open += period;
            }
            total
        })
        .collect()
}

/// One probe's settled series.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The datapoints of the run's periods, oldest first.
    pub points: Vec<Datapoint>,
    /// Whether CloudWatch had caught up by the last fetch (its last period present, and one
    /// more period, at most a minute, passed).
    pub complete: bool,
    /// How long settling took.
    pub waited: Duration,
}

/// Fetches the run's periods until CloudWatch has caught up, `spec.settle` has passed, or
/// `cancel` fires (then with what the last fetch had).
pub async fn settle_one(
    client: &CloudWatch,
    spec: &CloudWatchProbe,
    start_ms: u64,
    rows: u64,
    cancel: &CancellationToken,
) -> Result<Settled, AwsError> {
    let began = Instant::now();
    let (first, end) = periods(start_ms, rows, spec.period_secs());
    let query = spec.query();
    loop {
        let mut points = client.get_metric_data(&query, first, end).await?;
        for p in &mut points {
            p.value = spec.scaled(p.value);
        }
        let complete = caught_up(&points, end, spec.period_secs(), epoch_now());
        let left = spec.settle.saturating_sub(began.elapsed());
        if complete || left.is_zero() || cancel.is_cancelled() {
            return Ok(Settled {
                points,
                complete,
                waited: began.elapsed(),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(POLL.min(left)) => {}
            () = cancel.cancelled() => {}
        }
    }
}

/// Settles every `cloudwatch` probe of a finished run in `dir` (see the module docs) and
/// returns one line per probe for the report. `interrupted`: the run ended early, nothing
/// is waited for and the columns are blanked.
pub async fn settle(
    dir: &Path,
    probes: &[ProbeSpec],
    client: Option<&CloudWatch>,
    start_ms: u64,
    interrupted: bool,
    cancel: &CancellationToken,
) -> Vec<String> {
    let specs: Vec<(&str, &CloudWatchProbe)> = probes
        .iter()
        .filter_map(|p| match &p.kind {
            ProbeKind::CloudWatch(c) => Some((p.name.as_str(), c)),
            _ => None,
        })
        .collect();
    if specs.is_empty() {
        return Vec::new();
    }
    let path = dir.join(crate::results::dir::PROBES_FILE);
    let rows = match std::fs::read(&path).map(|t| crate::results::probes::read_rows_of(&t, &path)) {
        Ok(Ok((_, rows))) => rows.len() as u64,
        Ok(Err(e)) => return vec![format!("cloudwatch: not settled: {e}")],
        Err(e) => {
            return vec![format!("cloudwatch: not settled: {}: {e}", path.display())];
        }
    };
    let outcomes = futures::future::join_all(specs.iter().map(|(_, spec)| async {
        match client {
            _ if interrupted => Err("the run ended early; its column is blank".to_string()),
            None => Err(crate::aws::unserved("CloudWatch")),
            Some(c) => settle_one(c, spec, start_ms, rows, cancel)
                .await
                .map_err(|e| format!("{e}; its column is blank")),
        }
    }))
    .await;
    // Every CloudWatch column at once: the settled series, or blank.
    let names: Vec<&str> = specs.iter().map(|(name, _)| *name).collect();
    let columns: Vec<Vec<Option<f64>>> = specs
        .iter()
        .zip(&outcomes)
        .map(|((_, spec), outcome)| match outcome {
            Ok(s) => column(
                &s.points,
                start_ms,
                rows,
                spec.period_secs(),
                spec.missing,
                spec.cumulative,
            ),
            Err(_) => Vec::new(),
        })
        .collect();
    let written = crate::results::probes::rewrite_columns(&path, &names, |k, second| {
        columns[k].get(second as usize).copied().flatten()
    });
    if let Err(e) = written {
        return vec![format!("cloudwatch: not settled: {e}")];
    }
    let mut notes = Vec::new();
    let mut datapoints = Vec::new();
    for ((name, spec), outcome) in specs.iter().zip(outcomes) {
        let period = spec.period_secs();
        let note = match outcome {
            Err(why) => format!("cloudwatch `{name}`: not settled: {why}"),
            Ok(s) => {
                let line = format!(
                    "cloudwatch `{name}`: {} after {}: {} datapoint(s) of {} ({} {}){}{}{}",
                    if s.complete {
                        "settled"
                    } else {
                        "NOT caught up"
                    },
                    crate::units::format_duration(Duration::from_secs(s.waited.as_secs())),
                    s.points.len(),
                    crate::units::format_duration(spec.period),
                    spec.stat,
                    spec.metric,
                    if spec.missing == Missing::Zero {
                        "; periods without one count as 0"
                    } else {
                        ""
                    },
                    if spec.cumulative {
                        "; the column is their running total"
                    } else {
                        ""
                    },
                    if s.complete {
                        ""
                    } else {
                        "; the last periods may still be missing or partial (raise `settle`)"
                    }
                );
                datapoints.extend(s.points.iter().map(|p| (name.to_string(), period, *p)));
                line
            }
        };
        notes.push(note);
    }
    if let Err(e) = write_datapoints(dir, start_ms, &datapoints) {
        notes.push(format!("cloudwatch: writing cloudwatch.csv: {e}"));
    }
    notes
}

/// `cloudwatch.csv`: `probe,period_start,second,period_s,value`, where `second` is the
/// period's start on the run's clock (negative when it began before the run) and `value`
/// the datapoint with the probe's `scale` applied.
fn write_datapoints(
    dir: &Path,
    start_ms: u64,
    points: &[(String, u32, Datapoint)],
) -> std::io::Result<()> {
    let path = dir.join(crate::results::dir::CLOUDWATCH_FILE);
    let mut out = csv::Writer::from_path(&path)?;
    out.write_record(["probe", "period_start", "second", "period_s", "value"])?;
    let run_start = (start_ms / 1000) as i64;
    for (name, period, p) in points {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(p.start.max(0) as u64);
        out.write_record([
            name.clone(),
            humantime::format_rfc3339_seconds(at).to_string(),
            (p.start - run_start).to_string(),
            period.to_string(),
            crate::results::probes::format_number(p.value),
        ])?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start: i64, value: f64) -> Datapoint {
        Datapoint { start, value }
    }

    #[test]
    fn a_run_spans_whole_periods() {
        // 10:00:30.5 for 100 s (to 10:02:10): the minutes of 10:00, 10:01 and 10:02.
        let start_ms = 36_030_500;
        assert_eq!(periods(start_ms, 100, 60), (36_000, 36_180));
        assert_eq!(periods(start_ms, 30, 60), (36_000, 36_060));
        assert_eq!(periods(start_ms, 100, 1), (36_030, 36_130));
    }

    #[test]
    fn each_second_holds_its_periods_statistic() {
        let points = [point(36_000, 4.0), point(36_120, 9.0)];
        let at = |s| value_at(&points, 36_030_500, s, 60, Missing::Gap);
        assert_eq!(at(0), Some(4.0));
        assert_eq!(at(29), Some(4.0));
        assert_eq!(at(30), None, "10:01 has no datapoint: a gap");
        assert_eq!(at(90), Some(9.0));
        let zero = value_at(&points, 36_030_500, 30, 60, Missing::Zero);
        assert_eq!(zero, Some(0.0));
    }

    #[test]
    fn a_cumulative_column_holds_the_total_at_each_period_boundary() {
        // 10:00:30.5 for 100 s, minute periods: the total is known at 10:00:30 (0, counting
        // from 10:00), 10:01:00 (the 10:00 minute) and 10:02:00 (both minutes); 10:02 is
        // still open at the end and left out.
        let points = [point(36_000, 4.0), point(36_060, 2.5), point(36_120, 9.0)];
        let col = column(&points, 36_030_500, 100, 60, Missing::Gap, true);
        assert_eq!(col.len(), 100);
        let known: Vec<(usize, f64)> = col
            .iter()
            .enumerate()
            .filter_map(|(s, v)| v.map(|v| (s, v)))
            .collect();
        assert_eq!(known, [(0, 0.0), (30, 4.0), (90, 6.5)]);

        // A missing minute: with `gap` the total is unknown from it on, with `zero` it adds 0.
        let holed = [point(36_000, 4.0), point(36_120, 9.0)];
        let gap = column(&holed, 36_030_500, 160, 60, Missing::Gap, true);
        assert_eq!((gap[30], gap[90], gap[150]), (Some(4.0), None, None));
        let zero = column(&holed, 36_030_500, 160, 60, Missing::Zero, true);
        assert_eq!(
            (zero[30], zero[90], zero[150]),
            (Some(4.0), Some(4.0), Some(13.0))
        );

        // One-second periods: a dense counter, each second the total of those before it.
        let dense = [point(36_030, 1.0), point(36_031, 2.0), point(36_032, 3.0)];
        let col = column(&dense, 36_030_000, 4, 1, Missing::Zero, true);
        assert_eq!(col, [Some(0.0), Some(1.0), Some(3.0), Some(6.0)]);
        // Not cumulative: each second its period's value, as `value_at` gives.
        let col = column(&dense, 36_030_000, 4, 1, Missing::Gap, false);
        assert_eq!(col, [Some(1.0), Some(2.0), Some(3.0), None]);
    }

    #[test]
    fn caught_up_needs_the_last_period_and_a_minute_more() {
        let points = [point(36_000, 1.0), point(36_060, 2.0)];
        assert!(
            !caught_up(&points[..1], 36_120, 60, 36_500),
            "last period missing"
        );
        assert!(!caught_up(&points, 36_120, 60, 36_150), "within the grace");
        assert!(caught_up(&points, 36_120, 60, 36_180));
        let high_resolution = [point(36_119, 1.0)];
        assert!(!caught_up(&high_resolution, 36_120, 1, 36_124));
        assert!(caught_up(&high_resolution, 36_120, 1, 36_125));
    }
}
