//! Each finished second: taken from the recorder, appended to `timeline.csv` and
//! `latency.hlog`, shown in the live view, and handed to a tap (the stop conditions'
//! snapshot in `run`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::chaos::guard::Snapshot;
use crate::live::{LiveSnapshot, LiveView};
use crate::metrics::{Recorder, SecondStats, Window};
use crate::results::TimelineWriter;

/// Takes each finished second from the recorder, writes it, feeds the live
/// view, and returns the per-stream totals once `done` fires.
pub async fn collect(
    recorder: Arc<Recorder>,
    mut timeline: TimelineWriter,
    mut live: LiveView,
    done: CancellationToken,
    mut tap: impl FnMut(&SecondStats) + Send,
) -> Vec<Window> {
    let start = recorder.start();
    let mut totals: Vec<Window> = (0..recorder.streams()).map(|_| Window::default()).collect();
    let mut snap = LiveSnapshot::default();
    let mut next = 0u32;
    // Tick just after each second boundary.
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_millis(1020)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut emit =
        |seconds: Vec<SecondStats>, timeline: &mut TimelineWriter, live: &mut LiveView| {
            for s in seconds {
                if let Err(e) = timeline.write_second(&s) {
                    tracing::error!("writing the timeline: {e}");
                }
                update_snapshot(&mut snap, &s);
                tap(&s);
                for (t, w) in totals.iter_mut().zip(&s.streams) {
                    t.merge(w);
                }
                live.update(&snap);
            }
        };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.cancelled() => break,
        }
        let until = start.elapsed().as_secs() as u32;
        emit(recorder.take_before(next, until), &mut timeline, &mut live);
        next = until.max(next);
    }
    // The last, partial second.
    let until = start.elapsed().as_secs() as u32 + 1;
    emit(recorder.take_before(next, until), &mut timeline, &mut live);
    live.finish();
    totals
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
    let mut all = Window::default();
    s.streams.iter().for_each(|w| all.merge(w));
    snap.p99_ms =
        (!all.corrected.is_empty()).then(|| all.corrected.value_at_quantile(0.99) as f64 / 1000.0);
}

/// The stop conditions' view of one second: error rate and p99 over every stream, and
/// the latest probe values.
pub fn snapshot(s: &SecondStats, probes: &BTreeMap<String, f64>) -> Snapshot {
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
