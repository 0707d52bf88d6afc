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
//! second,lag_max_ms,ticks
//! 0,0.4,100
//! 1,312.7,69
//! ```
//! `lag_max_ms`: the latest wake-up of the second, in ms; `ticks`: wake-ups in it (100 when
//! none was missed).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The heartbeat's period.
pub const TICK: Duration = Duration::from_millis(10);

/// The file's name in a run directory.
pub use super::dir::HARNESS_FILE;

/// The file's header line.
pub const HEADER: &str = "second,lag_max_ms,ticks";

/// Runs the heartbeat from `start` until `cancel`, appending a row per completed second
/// (flushed each second, so a crash keeps what was measured).
pub async fn heartbeat(
    start: Instant,
    path: PathBuf,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(out, "{HEADER}")?;
    out.flush()?;
    let mut second = 0u64;
    let (mut lag_max, mut ticks) = (0.0f64, 0u32);
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
            writeln!(out, "{second},{lag_max:.1},{ticks}")?;
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
    }
}
