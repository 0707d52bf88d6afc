//! A concurrent, growable bitset: one bit per message sequence number.
//!
//! Bits live in chunks of 64 Ki bits (8 KiB) allocated on first use, found through a two-level
//! directory of `OnceLock`s, so [`AtomicBitSet::insert`] is lock-free (one atomic `fetch_or`
//! once the chunk exists) and memory is about one bit per sequence number up to the highest
//! one set, plus a fixed 6 KiB of directory.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per chunk.
const CHUNK_BITS: u64 = 1 << 16;
/// 64-bit words per chunk.
const CHUNK_WORDS: usize = (CHUNK_BITS / 64) as usize;
/// Chunks per second-level directory.
const LEAF_CHUNKS: usize = 1024;
/// Second-level directories.
const ROOT_DIRS: usize = 256;

type Chunk = Box<[AtomicU64]>;
type Leaf = Box<[OnceLock<Chunk>]>;

/// A sequence number beyond [`AtomicBitSet::CAPACITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sequence number {0} is beyond the ledger's capacity of {cap} per stream", cap = AtomicBitSet::CAPACITY)]
pub struct BeyondCapacity(pub u64);

/// A set of `u64` below [`AtomicBitSet::CAPACITY`], safe to update from many threads.
pub struct AtomicBitSet {
    root: Box<[OnceLock<Leaf>]>,
}

impl std::fmt::Debug for AtomicBitSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicBitSet")
            .field("len", &self.len())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

impl Default for AtomicBitSet {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicBitSet {
    /// Largest value + 1 the set can hold (2^34, about 17 billion).
    pub const CAPACITY: u64 = CHUNK_BITS * (LEAF_CHUNKS as u64) * (ROOT_DIRS as u64);

    /// An empty set; allocates only the root directory.
    pub fn new() -> Self {
        AtomicBitSet {
            root: (0..ROOT_DIRS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn split(i: u64) -> (usize, usize, usize, u64) {
        let chunk = i / CHUNK_BITS;
        let within = i % CHUNK_BITS;
        (
            (chunk / LEAF_CHUNKS as u64) as usize,
            (chunk % LEAF_CHUNKS as u64) as usize,
            (within / 64) as usize,
            1u64 << (within % 64),
        )
    }

    fn chunk(&self, dir: usize, leaf: usize) -> Option<&Chunk> {
        self.root[dir].get()?[leaf].get()
    }

    fn chunk_or_alloc(&self, dir: usize, leaf: usize) -> &Chunk {
        let leaf_dir =
            self.root[dir].get_or_init(|| (0..LEAF_CHUNKS).map(|_| OnceLock::new()).collect());
        leaf_dir[leaf].get_or_init(|| (0..CHUNK_WORDS).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `i`; `Ok(true)` when it was not set before.
    pub fn insert(&self, i: u64) -> Result<bool, BeyondCapacity> {
        if i >= Self::CAPACITY {
            return Err(BeyondCapacity(i));
        }
        let (dir, leaf, word, mask) = Self::split(i);
        let previous = self.chunk_or_alloc(dir, leaf)[word].fetch_or(mask, Ordering::Relaxed);
        Ok(previous & mask == 0)
    }

    /// Whether bit `i` is set.
    pub fn contains(&self, i: u64) -> bool {
        if i >= Self::CAPACITY {
            return false;
        }
        let (dir, leaf, word, mask) = Self::split(i);
        self.chunk(dir, leaf)
            .is_some_and(|c| c[word].load(Ordering::Relaxed) & mask != 0)
    }

    /// Number of bits set.
    pub fn len(&self) -> u64 {
        self.chunks()
            .flat_map(|(_, c)| c.iter())
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The allocated chunks with the value of their first bit, in increasing order.
    fn chunks(&self) -> impl Iterator<Item = (u64, &Chunk)> {
        self.root.iter().enumerate().flat_map(|(d, leaf)| {
            leaf.get().into_iter().flat_map(move |leaf| {
                leaf.iter().enumerate().filter_map(move |(l, c)| {
                    let base = ((d * LEAF_CHUNKS + l) as u64) * CHUNK_BITS;
                    c.get().map(|c| (base, c))
                })
            })
        })
    }

    /// The set values in increasing order (a snapshot per word while others insert).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.chunks().flat_map(|(base, chunk)| {
            chunk.iter().enumerate().flat_map(move |(w, word)| {
                let mut bits = word.load(Ordering::Relaxed);
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some(base + (w as u64) * 64 + u64::from(b))
                })
            })
        })
    }

    /// Heap bytes held by the set (directories and chunks; not the `AtomicBitSet` itself).
    pub fn allocated_bytes(&self) -> usize {
        let root = self.root.len() * size_of::<OnceLock<Leaf>>();
        let leaves = self.root.iter().filter(|l| l.get().is_some()).count()
            * LEAF_CHUNKS
            * size_of::<OnceLock<Chunk>>();
        let chunks = self.chunks().count() * CHUNK_WORDS * size_of::<AtomicU64>();
        root + leaves + chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_reports_first_time_only() {
        let s = AtomicBitSet::new();
        assert_eq!(s.insert(5), Ok(true));
        assert_eq!(s.insert(5), Ok(false));
        assert!(s.contains(5));
        assert!(!s.contains(4));
        assert_eq!(
            s.insert(AtomicBitSet::CAPACITY),
            Err(BeyondCapacity(AtomicBitSet::CAPACITY))
        );
        assert_eq!(s.insert(AtomicBitSet::CAPACITY - 1), Ok(true));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn concurrent_inserts_are_all_kept() {
        let s = AtomicBitSet::new();
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..50_000u64 {
                        s.insert(i * 4 + t).unwrap();
                    }
                });
            }
        });
        assert_eq!(s.len(), 200_000);
        assert!(s.iter().eq(0..200_000));
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(values in proptest::collection::vec(0u64..3_000_000, 0..300)) {
            let s = AtomicBitSet::new();
            let mut model = BTreeSet::new();
            for v in &values {
                prop_assert_eq!(s.insert(*v).unwrap(), model.insert(*v));
            }
            prop_assert_eq!(s.len(), model.len() as u64);
            prop_assert!(s.iter().eq(model.iter().copied()));
        }
    }
}
