//! What is still in the job queue when a run ends: the evidence that tells "still queued"
//! from "lost" (`ledger.json`'s `queue`).
//!
//! A single read of a queue's approximate counts, taken at another moment than the last
//! completion poll, cannot do that: a message processed between the two reads is neither
//! counted as queued nor seen as completed, and looks lost. So the run takes the census
//! around its final completion poll:
//!
//! 1. `before`: visible + in flight + delayed, read every second until two reads agree
//!    (at most [`MAX_READS`]); where the queue can list its messages (the sandbox), their
//!    ids are listed right after;
//! 2. the completion sources are polled one last time (a message that left the queue
//!    after step 1 is either completed by then or was counted in step 1);
//! 3. `after`: one more read.
//!
//! The upper bound of messages possibly still in the system is the largest read. The
//! no-loss promise (`analyze::promises::no_loss`) calls messages lost only beyond it.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Most reads taken while waiting for two equal ones.
pub const MAX_READS: usize = 5;

/// The end-of-run queue census.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueCensus {
    /// Reads of visible + in flight + delayed before the final completion poll, in order.
    pub before: Vec<u64>,
    /// The read after the final completion poll (`None`: it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The ids of the messages in the queue (any state), listed after the `before` reads,
    /// when the queue can list them (the sandbox). Exact, unlike the counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

impl QueueCensus {
    /// A census of one read (files written before the census existed: `still_queued` only).
    pub fn single(count: u64) -> QueueCensus {
        QueueCensus {
            before: vec![count],
            after: None,
            ids: None,
        }
    }

    /// Most messages that may still be in the queue: the largest read (or the listed ids).
    pub fn upper(&self) -> Option<u64> {
        let reads = self.before.iter().chain(&self.after).copied().max();
        let listed = self.ids.as_ref().map(|ids| ids.len() as u64);
        match (reads, listed) {
            (Some(r), Some(l)) => Some(r.max(l)),
            (r, l) => r.or(l),
        }
    }

    /// The count, when nothing moved while the census was taken: the last two `before` reads
    /// and the `after` read (when there is one) agree. A one-read census counts as settled.
    pub fn settled(&self) -> Option<u64> {
        let tail: Vec<u64> = self
            .before
            .iter()
            .rev()
            .take(2)
            .chain(&self.after)
            .copied()
            .collect();
        (!tail.is_empty() && tail.iter().all(|v| *v == tail[0])).then(|| tail[0])
    }
}

/// Reads `count` every `interval` until two reads in a row agree, at most [`MAX_READS`]
/// times; stops at the first error (returned with the reads so far).
pub async fn settle<F, Fut, E>(mut count: F, interval: Duration) -> (Vec<u64>, Option<E>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
{
    let mut reads: Vec<u64> = Vec::new();
    for i in 0..MAX_READS {
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        match count().await {
            Ok(n) => reads.push(n),
            Err(e) => return (reads, Some(e)),
        }
        if let [.., a, b] = reads.as_slice()
            && a == b
        {
            break;
        }
    }
    (reads, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_is_the_largest_read_and_stability_needs_agreement() {
        let c = QueueCensus {
            before: vec![500, 498, 498],
            after: Some(480),
            ids: None,
        };
        assert_eq!(c.upper(), Some(500));
        assert_eq!(c.settled(), None);
        let still = QueueCensus {
            before: vec![12, 10, 10],
            after: Some(10),
            ids: None,
        };
        assert_eq!(still.settled(), Some(10));
        assert_eq!(QueueCensus::single(7).upper(), Some(7));
        assert_eq!(QueueCensus::single(7).settled(), Some(7));
        assert_eq!(QueueCensus::default().upper(), None);
        assert_eq!(QueueCensus::default().settled(), None);
        let listed = QueueCensus {
            before: vec![2, 2],
            after: Some(2),
            ids: Some(vec!["a".into(), "b".into(), "c".into()]),
        };
        assert_eq!(listed.upper(), Some(3));
    }

    #[tokio::test]
    async fn settle_reads_until_two_agree() {
        let mut values = vec![9u64, 7, 5, 5, 1].into_iter();
        let (reads, err) = settle(
            || std::future::ready(Ok::<_, ()>(values.next().unwrap())),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(reads, [9, 7, 5, 5]);
        assert!(err.is_none());
        let mut n = 0u64;
        let (reads, _) = settle(
            || {
                n += 1;
                std::future::ready(Ok::<_, ()>(n))
            },
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(reads.len(), MAX_READS);
        let (reads, err) = settle(
            || std::future::ready(Err::<u64, _>("down")),
            Duration::from_secs(1),
        )
        .await;
        assert!(reads.is_empty());
        assert_eq!(err, Some("down"));
    }
}
