//! `harness.csv`: how well shakedown itself kept time during a run, one row per second.
//!
//! A heartbeat task asks for a wake-up every [`TICK`] and records how late each wake-up
//! came. On a healthy machine that is well under a millisecond; when the harness is starved
//! of CPU (a busy machine, the sandbox's own processes, a noisy neighbour) it grows, and so
//! does everything the harness measures with the same clock: send times, latencies, probe
//! samples. The analyzer reads this file to refuse blaming the system for what the harness
//! did (`analyze::view::RunView::harness_lag`).
//!
//! ```text
//! second,lag_max_ms,ticks,cpu_busy
//! 0,0.4,100,0.31
//! 1,312.7,69,1.00
//! ```
//! `lag_max_ms`: the latest wake-up of the second, in ms; `ticks`: wake-ups in it (100 when
//! none was missed); `cpu_busy`: the share of the whole machine's CPU time that was busy in
//! the second (all cores, from `/proc/stat`; steal counts as busy; empty where unknown). A
//! machine busy to the last cycle delays the harness in ways a 10 ms heartbeat can miss,
//! and the system too when it runs there (the sandbox, a local target).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The heartbeat's period.
pub const TICK: Duration = Duration::from_millis(10);

/// The file's name in a run directory.
pub use super::dir::HARNESS_FILE;

/// The file's header line.
pub const HEADER: &str = "second,lag_max_ms,ticks,cpu_busy";

/// One row of the file.
#[derive(Debug, serde::Serialize)]
struct Row {
    second: u64,
    /// Rounded to 0.1 ms.
    lag_max_ms: f64,
    ticks: u32,
    /// Rounded to 0.01; empty where unknown.
    cpu_busy: Option<f64>,
}

/// The machine's CPU counters, for the busy share between two readings.
struct CpuMeter {
    last: Option<(u64, u64)>,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter { last: cpu_times() }
    }

    /// The busy share since the previous call (`None` where `/proc/stat` is unreadable or
    /// no time passed).
    fn busy_since_last(&mut self) -> Option<f64> {
        let now = cpu_times();
        let share = match (self.last, now) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                Some(busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64)
            }
            _ => None,
        };
        self.last = now;
        share
    }
}

/// (busy, total) jiffies of all CPUs from the first line of `/proc/stat`.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(text.lines().next()?)
}

/// `cpu  user nice system idle iowait irq softirq steal ...`: idle and iowait are the idle
/// time; everything else (steal too) is busy. Guest time is already inside user.
fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// Runs the heartbeat from `start` until `cancel`, appending a row per completed second
/// (flushed each second, so a crash keeps what was measured).
pub async fn heartbeat(
    start: Instant,
    path: PathBuf,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    // The header is written at once, so a run that dies in its first second still has it.
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(&path)
        .map_err(std::io::Error::other)?;
    out.write_record(HEADER.split(','))?;
    out.flush()?;
    let mut second = 0u64;
    let (mut lag_max, mut ticks) = (0.0f64, 0u32);
    let mut cpu = CpuMeter::new();
    let mut next = start + TICK;
    loop {
        let due = next;
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
            () = cancel.cancelled() => break,
        }
        let now = Instant::now();
        let at = now.duration_since(start).as_secs();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Close every second that ended before this wake-up. A tick due in one of them and
        // still not run at its end was already late by `end - due` there (a stall spanning
        // seconds shows in each of them).
        while second < at {
            let end = start + Duration::from_secs(second + 1);
            if due < end {
                lag_max = lag_max.max(ms(end.duration_since(due)));
            }
            // The share over the time since the last row: the second just ended, or the
            // whole stall when several close at once.
            let row = Row {
                second,
                lag_max_ms: (lag_max * 10.0).round() / 10.0,
                ticks,
                cpu_busy: cpu.busy_since_last().map(|b| (b * 100.0).round() / 100.0),
            };
            out.serialize(row).map_err(std::io::Error::other)?;
            second += 1;
            (lag_max, ticks) = (0.0, 0);
        }
        out.flush()?;
        lag_max = lag_max.max(ms(now.saturating_duration_since(due)));
        ticks += 1;
        // The next tick after now: missed ticks are not replayed in a burst.
        next = due + TICK;
        if next <= now {
            let behind = now.duration_since(due).as_nanos() / TICK.as_nanos();
            next = due + TICK * (behind as u32 + 1);
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blocked_runtime_shows_as_lag_in_its_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HARNESS_FILE);
        let cancel = CancellationToken::new();
        let start = Instant::now();
        // A current-thread runtime: blocking it starves the heartbeat as a busy machine would.
        let task = tokio::spawn(heartbeat(start, path.clone(), cancel.clone()));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        std::thread::sleep(Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cancel.cancel();
        task.await.unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<(u64, f64)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap())
            })
            .collect();
        assert!(rows.len() >= 2, "{text}");
        assert!(rows[0].1 < 100.0, "second 0 was not starved: {text}");
        let worst = rows.iter().map(|r| r.1).fold(0.0, f64::max);
        assert!(worst >= 350.0, "the 400 ms block shows: {text}");
        // Every row has the machine's busy share (this is Linux), a fraction.
        for l in text.lines().skip(1) {
            let busy: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&busy), "{l}");
        }
    }

    #[test]
    fn the_busy_share_counts_steal_and_not_iowait() {
        // user nice system idle iowait irq softirq steal
        let (busy, total) = parse_cpu_line("cpu  10 0 5 70 10 0 0 5 0 0").unwrap();
        assert_eq!((busy, total), (20, 100));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
        assert_eq!(parse_cpu_line("cpu  x 2 3 4 5"), None);
    }
}
