//! The open model's job queue between the pacer and the lanes.
//!
//! Jobs leave first in, first out. Idle lanes are woken last in, first out: the lane that
//! went idle most recently (its connection and buffers still warm) takes the next job, and
//! lanes the rate does not need stay asleep instead of taking turns. One lock guards both
//! lists; the pacer releases a whole batch of arrivals under one lock and wakes at most one
//! idle lane per job.
//!
//! (A general channel did this worse here: flume serves waiting async receivers oldest
//! first, so every lane took turns and each kept a cold connection, and a receiver
//! re-registering scanned all the waiting ones, a cost per job that grew with the lanes.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Job;

/// Jobs released by the pacer, waiting for lanes.
#[derive(Default)]
pub(super) struct JobQueue {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Lanes waiting for a job, the most recently idle last.
    idle: Vec<Arc<Notify>>,
    /// No more jobs will come: lanes finish what is queued, then stop.
    closed: bool,
}

impl JobQueue {
    /// Queues `jobs` in order and wakes up to one idle lane per job, newest idle first.
    pub fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut wake = Vec::new();
        {
            let mut state = self.state.lock();
            let before = state.jobs.len();
            state.jobs.extend(jobs);
            let added = state.jobs.len() - before;
            let n = added.min(state.idle.len());
            let from = state.idle.len() - n;
            wake.extend(state.idle.drain(from..).rev());
        }
        for lane in wake {
            lane.notify_one();
        }
    }

    /// Ends the queue: lanes take what is left, then get `None`.
    pub fn close(&self) {
        let idle = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for lane in idle {
            lane.notify_one();
        }
    }

    /// The next job for the lane whose wake-up is `me`; waits while the queue is empty and
    /// open; `None` once it is closed and empty.
    pub async fn next(&self, me: &Arc<Notify>) -> Option<Job> {
        loop {
            {
                let mut state = self.state.lock();
                if let Some(job) = state.jobs.pop_front() {
                    return Some(job);
                }
                if state.closed {
                    return None;
                }
                state.idle.push(me.clone());
            }
            // Woken by `push` or `close`; the job may have gone to a lane that finished
            // meanwhile, in which case this lane waits again.
            me.notified().await;
        }
    }

    /// How many jobs wait for a lane, and the intended time of the oldest.
    pub fn waiting(&self) -> (usize, Option<Instant>) {
        let state = self.state.lock();
        (state.jobs.len(), state.jobs.front().map(|j| j.intended))
    }

    /// Takes every job still queued (arrivals due but never picked up).
    pub fn drain(&self) -> Vec<Job> {
        self.state.lock().jobs.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(seq: u64) -> Job {
        Job {
            stream: 0,
            seq,
            intended: Instant::now(),
        }
    }

    #[tokio::test]
    async fn jobs_leave_in_order_and_a_closed_queue_drains_then_ends() {
        let q = JobQueue::default();
        let me = Arc::new(Notify::new());
        assert_eq!(q.waiting(), (0, None));
        let jobs: Vec<Job> = (0..3).map(job).collect();
        q.push(jobs.clone());
        assert_eq!(q.waiting(), (3, Some(jobs[0].intended)));
        q.close();
        let mut seqs = Vec::new();
        while let Some(j) = q.next(&me).await {
            seqs.push(j.seq);
        }
        assert_eq!(seqs, vec![0, 1, 2]);
        assert!(q.next(&me).await.is_none());
    }

    #[tokio::test]
    async fn the_most_recently_idle_lane_is_woken_first_and_only_as_many_as_jobs() {
        let q = Arc::new(JobQueue::default());
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for lane in 0..3u64 {
            let q = q.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let me = Arc::new(Notify::new());
                while let Some(j) = q.next(&me).await {
                    done.send((lane, j.seq)).unwrap();
                }
            });
            // Let each lane register before the next, so lane 2 is the newest idle.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        q.push([job(7)]);
        let (lane, seq) = tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((lane, seq), (2, 7));
        // Only one job: the other lanes still sleep (and stay registered as idle).
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(done_rx.try_recv().is_err());
        assert_eq!(q.state.lock().idle.len(), 3);
        q.close();
    }

    #[tokio::test]
    async fn every_job_is_taken_exactly_once_by_racing_lanes() {
        let q = Arc::new(JobQueue::default());
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let q = q.clone();
            lanes.spawn(async move {
                let me = Arc::new(Notify::new());
                let mut got = Vec::new();
                while let Some(j) = q.next(&me).await {
                    got.push(j.seq);
                    tokio::task::yield_now().await;
                }
                got
            });
        }
        for batch in 0..100u64 {
            q.push((0..10).map(|i| job(batch * 10 + i)));
            tokio::task::yield_now().await;
        }
        q.close();
        let mut all = Vec::new();
        while let Some(got) = lanes.join_next().await {
            all.extend(got.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(q.drain().is_empty());
    }
}
