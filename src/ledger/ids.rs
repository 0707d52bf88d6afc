//! Message ids and the record of accepted messages.
//!
//! Every request carries `<run_tag>-<stream>-<seq>` (`driver::request::request_id`),
//! so an id is two integers once the run's tag is known: the ledger keeps bits, never strings.

use parking_lot::Mutex;

use crate::clock::now_ms;

use super::bits::{AtomicBitSet, BeyondCapacity};

/// Splits ids of one run into `(stream index, seq)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFormat {
    prefix: String,
}

impl IdFormat {
    /// The ids of run `run_tag`.
    pub fn new(run_tag: &str) -> Self {
        IdFormat {
            prefix: format!("{run_tag}-"),
        }
    }

    /// `(stream, seq)` of an id of this run; `None` for anything else.
    pub fn parse(&self, id: &str) -> Option<(usize, u64)> {
        let rest = id.strip_prefix(&self.prefix)?;
        let (stream, seq) = rest.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(stream) || !digits(seq) {
            return None;
        }
        Some((stream.parse().ok()?, seq.parse().ok()?))
    }

    /// The id of `(stream, seq)`.
    pub fn format(&self, stream: usize, seq: u64) -> String {
        format!("{}{stream}-{seq}", self.prefix)
    }
}

/// One accepted message waiting to be written to `accepted.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedEntry {
    /// Stream index.
    pub stream: usize,
    /// Sequence number in the stream's schedule.
    pub seq: u64,
    /// When it was accepted, ms since the Unix epoch.
    pub t_ms: u64,
}

/// Shards of the spill buffer (fewer lock collisions between driver tasks).
const SPILL_SHARDS: usize = 16;

/// A compact, concurrent record of the messages the target accepted, per stream.
///
/// [`AcceptedIds::accept`] sets one bit (lock-free) and, when the spill is on, queues an
/// [`AcceptedEntry`] for the `accepted.jsonl` writer, which takes them every second
/// ([`AcceptedIds::take_spill`]). Memory: about one bit per sequence number up to the
/// highest accepted one, per stream, plus one second of spill entries.
#[derive(Debug)]
pub struct AcceptedIds {
    streams: Vec<AtomicBitSet>,
    spill: Option<Vec<Mutex<Vec<AcceptedEntry>>>>,
}

/// A message of a stream the ledger does not know, or beyond its capacity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// The stream index is out of range.
    #[error("stream {stream} is not one of the {count} streams of the ledger")]
    UnknownStream {
        /// The index given.
        stream: usize,
        /// How many streams there are.
        count: usize,
    },
    /// The sequence number is too large.
    #[error(transparent)]
    Capacity(#[from] BeyondCapacity),
}

impl AcceptedIds {
    /// An empty record for `streams` streams, without the file spill.
    pub fn new(streams: usize) -> Self {
        AcceptedIds {
            streams: (0..streams).map(|_| AtomicBitSet::new()).collect(),
            spill: None,
        }
    }

    /// An empty record whose accepts are also queued for `accepted.jsonl`.
    pub fn with_spill(streams: usize) -> Self {
        AcceptedIds {
            spill: Some((0..SPILL_SHARDS).map(|_| Mutex::new(Vec::new())).collect()),
            ..Self::new(streams)
        }
    }

    /// Number of streams.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Records that `(stream, seq)` was accepted now; `Ok(true)` the first time.
    pub fn accept(&self, stream: usize, seq: u64) -> Result<bool, AcceptError> {
        self.accept_at(stream, seq, now_ms())
    }

    /// Records that `(stream, seq)` was accepted at `t_ms` (ms since the Unix epoch).
    pub fn accept_at(&self, stream: usize, seq: u64, t_ms: u64) -> Result<bool, AcceptError> {
        let count = self.streams.len();
        let bits = self
            .streams
            .get(stream)
            .ok_or(AcceptError::UnknownStream { stream, count })?;
        let first = bits.insert(seq)?;
        if let (true, Some(spill)) = (first, &self.spill) {
            spill[(seq as usize) % SPILL_SHARDS]
                .lock()
                .push(AcceptedEntry { stream, seq, t_ms });
        }
        Ok(first)
    }

    /// Whether `(stream, seq)` was accepted.
    pub fn contains(&self, stream: usize, seq: u64) -> bool {
        self.streams.get(stream).is_some_and(|b| b.contains(seq))
    }

    /// The accepted set of one stream.
    pub fn stream(&self, stream: usize) -> Option<&AtomicBitSet> {
        self.streams.get(stream)
    }

    /// Accepted messages over all streams.
    pub fn len(&self) -> u64 {
        self.streams.iter().map(AtomicBitSet::len).sum()
    }

    /// Whether nothing was accepted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spill entries queued since the last call, oldest first per shard.
    pub fn take_spill(&self) -> Vec<AcceptedEntry> {
        let Some(spill) = &self.spill else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in spill {
            out.append(&mut shard.lock());
        }
        out.sort_by_key(|e| e.t_ms);
        out
    }

    /// Heap bytes held by the bitsets (the spill buffer is transient and excluded).
    pub fn allocated_bytes(&self) -> usize {
        self.streams.capacity() * size_of::<AtomicBitSet>()
            + self
                .streams
                .iter()
                .map(AtomicBitSet::allocated_bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let f = IdFormat::new("a1b2-c3");
        assert_eq!(f.format(2, 17), "a1b2-c3-2-17");
        assert_eq!(f.parse("a1b2-c3-2-17"), Some((2, 17)));
        assert_eq!(f.parse("a1b2-c4-2-17"), None);
        assert_eq!(f.parse("a1b2-c3-2-"), None);
        assert_eq!(f.parse("a1b2-c3-x-1"), None);
        assert_eq!(f.parse("a1b2-c3-1-2-3"), None);
        assert_eq!(f.parse("a1b2-c3-+1-2"), None);
    }

    #[test]
    fn accept_counts_once_and_spills_once() {
        let ids = AcceptedIds::with_spill(2);
        assert_eq!(ids.accept_at(0, 3, 10), Ok(true));
        assert_eq!(ids.accept_at(0, 3, 11), Ok(false));
        assert_eq!(ids.accept_at(1, 3, 12), Ok(true));
        assert!(matches!(
            ids.accept(2, 0),
            Err(AcceptError::UnknownStream {
                stream: 2,
                count: 2
            })
        ));
        assert_eq!(ids.len(), 2);
        let spilled = ids.take_spill();
        assert_eq!(
            spilled,
            vec![
                AcceptedEntry {
                    stream: 0,
                    seq: 3,
                    t_ms: 10
                },
                AcceptedEntry {
                    stream: 1,
                    seq: 3,
                    t_ms: 12
                }
            ]
        );
        assert!(ids.take_spill().is_empty());
    }
}
