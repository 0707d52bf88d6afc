//! Each finished second: taken from the recorder, appended to `timeline.csv` and
//! `latency.hlog`, shown in the live view, published to the metrics exporter
//! (`--metrics-addr`), and handed to a tap (the stop conditions' snapshot in `run`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::chaos::guard::Snapshot;
use crate::exporter::Live;
use crate::live::{LiveSnapshot, LiveView};
use crate::metrics::{Recorder, SecondStats, Window};
use crate::results::TimelineWriter;

/// Takes each finished second from the recorder, writes it, feeds the live
/// view, and returns the per-stream totals once `done` fires.
///
/// A second's work (merging the recorder's shards, encoding the histograms, writing) is
/// tens of milliseconds of CPU in a debug build and grows with streams: it runs on the
/// blocking pool, so it never holds up a runtime worker that a lane or the heartbeat
/// needs (it once showed as 100-300 ms of harness lag in every busy second).
pub async fn collect(
    recorder: Arc<Recorder>,
    timeline: TimelineWriter,
    live: LiveView,
    exported: Option<Arc<Live>>,
    done: CancellationToken,
    tap: impl FnMut(&SecondStats) + Send + 'static,
) -> Vec<Window> {
    let start = recorder.start();
    let mut state = Collector {
        totals: (0..recorder.streams()).map(|_| Window::default()).collect(),
        snap: LiveSnapshot::default(),
        next: 0,
        recorder,
        timeline,
        live,
        exported,
        tap,
    };
    // Tick just after each second boundary.
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_millis(1020)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.cancelled() => break,
        }
        let until = start.elapsed().as_secs() as u32;
        state = off_runtime(state, move |c| c.emit_until(until)).await;
    }
    // The last, partial second.
    let until = start.elapsed().as_secs() as u32 + 1;
    let mut state = off_runtime(state, move |c| c.emit_until(until)).await;
    state.live.finish();
    state.totals
}

/// Runs `f` on the collector on the blocking pool and hands the collector back.
async fn off_runtime<T: FnMut(&SecondStats) + Send + 'static>(
    mut state: Collector<T>,
    f: impl FnOnce(&mut Collector<T>) + Send + 'static,
) -> Collector<T> {
    tokio::task::spawn_blocking(move || {
        f(&mut state);
        state
    })
    .await
    .expect("the collector does not panic")
}

/// What the collector carries from second to second.
struct Collector<T> {
    recorder: Arc<Recorder>,
    timeline: TimelineWriter,
    live: LiveView,
    /// The metrics exporter's state (`--metrics-addr`).
    exported: Option<Arc<Live>>,
    tap: T,
    totals: Vec<Window>,
    snap: LiveSnapshot,
    /// The first second not yet taken.
    next: u32,
}

impl<T: FnMut(&SecondStats)> Collector<T> {
    /// Takes, writes and shows every second before `until`.
    fn emit_until(&mut self, until: u32) {
        for s in self.recorder.take_before(self.next, until) {
            if let Err(e) = self.timeline.write_second(&s) {
                tracing::error!("writing the timeline: {e}");
            }
            update_snapshot(&mut self.snap, &s);
            if let Some(e) = &self.exported {
                e.record_second(&s);
            }
            (self.tap)(&s);
            for (t, w) in self.totals.iter_mut().zip(&s.streams) {
                t.merge(w);
            }
            self.live.update(&self.snap);
        }
        self.next = until.max(self.next);
    }
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
    snap.p99_ms = corrected_p99(s).map(|p| p.as_secs_f64() * 1000.0);
}

/// The p99 of every stream's corrected latencies in one second (merging only that
/// histogram: the other two of a window are not needed here).
fn corrected_p99(s: &SecondStats) -> Option<Duration> {
    let mut with_data = s.streams.iter().filter(|w| !w.corrected.is_empty());
    let mut all = with_data.next()?.corrected.clone();
    for w in with_data {
        // Same bounds and auto-resize: adding never fails.
        let _ = all.add(&w.corrected);
    }
    Some(Duration::from_micros(all.value_at_quantile(0.99)))
}

/// The stop conditions' view of one second: error rate and p99 over every stream, and
/// the latest probe values.
pub fn snapshot(s: &SecondStats, probes: &BTreeMap<String, f64>) -> Snapshot {
    let ok: u64 = s.streams.iter().map(|w| w.counters.ok).sum();
    let failed: u64 = s.streams.iter().map(|w| w.counters.errors_total()).sum();
    Snapshot {
        error_rate: (ok + failed > 0).then(|| failed as f64 / (ok + failed) as f64),
        p99: corrected_p99(s),
        probes: probes.clone(),
    }
}
