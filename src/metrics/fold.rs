//! [`Folder`]: adds an encoded histogram (HdrHistogram V2, plain or deflate, as
//! `latency.hlog` and [`super::SecondHistograms`] hold them) into a running total without
//! making it a `Histogram` first.
//!
//! Why: a whole-run total is the sum of thousands of seconds. Decoding each second makes a
//! histogram of the encoded range (tens of thousands of counters, zeroed), and
//! `Histogram::add` then walks every counter; a second has a few hundred non-zero ones. Here
//! the run-length encoded counts are walked and only the non-zero ones recorded, at the value
//! of their bucket (`record_n` of the bucket's lowest value: what `add` does between
//! histograms of different layouts, and the same counter when the layouts agree). The counts,
//! and so every quantile, min, max and mean, come out as `add` makes them; an auto-resizing
//! total grows to the values recorded, where `add` grows it to each part's declared top.
//!
//! Only the usual shape takes this path: a V2 or V2-deflate cookie, no normalizing offset, an
//! integer-to-double ratio of 1, bounds `Histogram::new_with_bounds` accepts, and counts that
//! decode whole and fit the layout. For anything else [`Folder::fold`] changes nothing and
//! says so, and the caller decodes with `hdrhistogram`, which decides and words the error.

use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

/// HdrHistogram's V2 cookies (encoding plain, and deflate-compressed).
const V2: u32 = 0x1c84_9313;
const V2_DEFLATE: u32 = 0x1c84_9314;
/// The V2 header: cookie, payload length, normalizing offset, significant digits (4 bytes
/// each), lowest and highest trackable value, integer-to-double ratio (8 bytes each).
const HEADER: usize = 40;
/// The largest counts payload taken here (a histogram of the widest range, 3 significant
/// digits, encodes in about a megabyte); larger goes to the general path.
const MAX_PAYLOAD: usize = 16 << 20;

/// A histogram's layout as V2 encodes it: lowest and highest trackable value, significant
/// digits.
type Layout = (u64, u64, u8);

/// Reusable state for folding many encoded histograms: the inflater, its output, the decoded
/// counts, and the value of each counter of the layouts seen.
pub struct Folder {
    inflater: Decompress,
    inflated: Vec<u8>,
    counts: Vec<(usize, u64)>,
    /// Per layout `(lowest, highest, significant digits)`: the lowest value of each counter.
    layouts: Vec<(Layout, Vec<u64>)>,
}

impl Default for Folder {
    fn default() -> Self {
        Folder {
            inflater: Decompress::new(true),
            inflated: Vec::new(),
            counts: Vec::new(),
            layouts: Vec::new(),
        }
    }
}

impl Folder {
    /// Adds the histogram `encoded` to `total`. False, with `total` unchanged, when the bytes
    /// are not of the usual shape (see the module's doc) or `total` cannot hold its values.
    pub fn fold(&mut self, total: &mut Histogram<u64>, encoded: &[u8]) -> bool {
        let Some((layout, payload)) = open(&mut self.inflater, &mut self.inflated, encoded) else {
            return false;
        };
        let Some(values) = value_table(&mut self.layouts, layout) else {
            return false;
        };
        if !decode_counts(payload, values.len(), &mut self.counts) {
            return false;
        }
        let top = self.counts.last().map_or(0, |&(i, _)| values[i]);
        if !total.is_auto_resize() && top > total.high() {
            return false;
        }
        for &(i, n) in &self.counts {
            if total.record_n(values[i], n).is_err() {
                // Unreachable after the check above; the counts recorded so far stay, as
                // `add` would have left them.
                return false;
            }
        }
        true
    }
}

/// The layout and the counts payload of a V2 or V2-deflate encoding.
fn open<'a>(
    inflater: &mut Decompress,
    inflated: &'a mut Vec<u8>,
    encoded: &'a [u8],
) -> Option<(Layout, &'a [u8])> {
    let v2: &[u8] = match be32(encoded, 0)? {
        V2 => encoded,
        V2_DEFLATE => {
            let len = be32(encoded, 4)? as usize;
            let compressed = encoded.get(8..8usize.checked_add(len)?)?;
            inflate(inflater, inflated, compressed)?;
            &inflated[..]
        }
        _ => return None,
    };
    if be32(v2, 0)? != V2 {
        return None;
    }
    let payload_len = be32(v2, 4)? as usize;
    let offset = be32(v2, 8)?;
    let digits = u8::try_from(be32(v2, 12)?).ok()?;
    let low = be64(v2, 16)?;
    let high = be64(v2, 24)?;
    let ratio = f64::from_bits(be64(v2, 32)?);
    if offset != 0 || ratio != 1.0 {
        return None;
    }
    let payload = v2.get(HEADER..HEADER.checked_add(payload_len)?)?;
    Some(((low, high, digits), payload))
}

/// Inflates a zlib stream into `inflated`: the V2 header, then as much of the payload as
/// the header announces (at most [`MAX_PAYLOAD`]).
fn inflate(inflater: &mut Decompress, inflated: &mut Vec<u8>, compressed: &[u8]) -> Option<()> {
    inflater.reset(true);
    inflated.clear();
    let mut want = None;
    loop {
        let have = inflated.len();
        if want.is_none() && have >= HEADER {
            let payload_len = be32(inflated, 4)? as usize;
            if payload_len > MAX_PAYLOAD {
                return None;
            }
            want = Some(HEADER + payload_len);
        }
        let target = want.unwrap_or(HEADER);
        if have >= target {
            return Some(());
        }
        inflated.reserve(target - have);
        let consumed = usize::try_from(inflater.total_in()).ok()?;
        let status = inflater
            // `None`, not `Finish`: a first call with `Finish` must inflate everything at once.
            .decompress_vec(compressed.get(consumed..)?, inflated, FlushDecompress::None)
            .ok()?;
        if inflated.len() == have || (status == Status::StreamEnd && inflated.len() < target) {
            return None; // cut short, or no progress
        }
    }
}

/// The lowest value of each counter of a layout, made once per layout: counter `i + 1`
/// starts where counter `i`'s equivalence range ends.
fn value_table(layouts: &mut Vec<(Layout, Vec<u64>)>, layout: Layout) -> Option<&[u64]> {
    let at = match layouts.iter().position(|(l, _)| *l == layout) {
        Some(at) => at,
        None => {
            let (low, high, digits) = layout;
            let h = Histogram::<u64>::new_with_bounds(low, high, digits).ok()?;
            let mut values = Vec::with_capacity(h.distinct_values());
            let mut v = 0u64;
            for _ in 0..h.distinct_values() {
                values.push(v);
                let next = h.next_non_equivalent(v);
                if next <= v {
                    break; // the top of u64: no counter past here
                }
                v = next;
            }
            layouts.push((layout, values));
            layouts.len() - 1
        }
    };
    Some(&layouts[at].1)
}

/// The non-zero counts of a V2 payload as `(counter, count)`, in counter order: zig-zag
/// LEB128 numbers, a negative one a run of that many empty counters. False when a number is
/// cut short or too long, a count is negative past `i64`, or a counter lies past `len`.
fn decode_counts(mut payload: &[u8], len: usize, out: &mut Vec<(usize, u64)>) -> bool {
    out.clear();
    let mut at = 0usize;
    while !payload.is_empty() {
        let Some((n, used)) = leb128(payload) else {
            return false;
        };
        payload = &payload[used..];
        let n = ((n >> 1) as i64) ^ -((n & 1) as i64);
        if n == i64::MIN {
            return false; // hdrhistogram refuses a run it cannot negate
        }
        if n < 0 {
            let Some(next) = usize::try_from(n.unsigned_abs())
                .ok()
                .and_then(|zeros| at.checked_add(zeros))
            else {
                return false;
            };
            at = next;
        } else {
            if n > 0 {
                if at >= len {
                    return false;
                }
                out.push((at, n as u64));
            }
            let Some(next) = at.checked_add(1) else {
                return false;
            };
            at = next;
        }
    }
    true
}

/// One LEB128 number as HdrHistogram writes it: up to nine bytes, the ninth giving all
/// eight of its bits. `None` when the bytes end first.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return Some((value | u64::from(b) << 56, 9));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::{
        Deserializer, Serializer, V2DeflateSerializer, V2Serializer,
    };
    use proptest::prelude::*;

    use super::*;

    fn encode(h: &Histogram<u64>, deflate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if deflate {
            V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
        } else {
            V2Serializer::new().serialize(h, &mut out).unwrap();
        }
        out
    }

    /// The total `hdrhistogram` itself makes: decode each, then `add`.
    fn reference(parts: &[Vec<u8>]) -> Histogram<u64> {
        let mut total = crate::metrics::new_histogram();
        for p in parts {
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut &p[..]).unwrap();
            total.add(&h).unwrap();
        }
        total
    }

    fn assert_same(a: &Histogram<u64>, b: &Histogram<u64>) {
        assert_eq!(a.len(), b.len());
        assert_eq!((a.min(), a.max()), (b.min(), b.max()));
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(recorded(a), recorded(b));
    }

    proptest! {
        /// Folding equals decoding and adding, for histograms of any layout (bounds and
        /// significant digits), plain and deflated, empty or not.
        #[test]
        fn folding_equals_decoding_and_adding(
            parts in proptest::collection::vec(
                (
                    1u64..2000,
                    0u32..40,
                    1u8..=4,
                    proptest::collection::vec((0u64..u64::MAX, 1u64..1000), 0..60),
                    any::<bool>(),
                ),
                1..6,
            ),
        ) {
            let encoded: Vec<Vec<u8>> = parts
                .iter()
                .map(|(low, span, digits, values, deflate)| {
                    let high = (low * 2).max(1) << span.min(&20);
                    let mut h = Histogram::<u64>::new_with_bounds(*low, high, *digits).unwrap();
                    for (v, n) in values {
                        // Values from 0 to a little past the declared top (auto-resize).
                        let _ = h.record_n(v % (high * 4), *n);
                    }
                    encode(&h, *deflate)
                })
                .collect();
            let mut total = crate::metrics::new_histogram();
            let mut folder = Folder::default();
            for e in &encoded {
                prop_assert!(folder.fold(&mut total, e));
            }
            assert_same(&total, &reference(&encoded));
        }
    }

    #[test]
    fn latency_histograms_of_a_run_fold_like_they_add() {
        let mut parts = Vec::new();
        for second in 0..50u64 {
            let mut h = crate::metrics::new_histogram();
            for i in 0..2_000 {
                h.record(1 + (i * 7919 + second * 104_729) % 3_000_000)
                    .unwrap();
            }
            parts.push(encode(&h, second % 2 == 0));
        }
        let mut total = crate::metrics::new_histogram();
        let mut folder = Folder::default();
        for p in &parts {
            assert!(folder.fold(&mut total, p));
        }
        assert_same(&total, &reference(&parts));
        assert_eq!(total.len(), 100_000);
    }

    #[test]
    fn anything_unusual_is_left_to_hdrhistogram_and_changes_nothing() {
        let mut h = crate::metrics::new_histogram();
        h.record(1234).unwrap();
        let good = encode(&h, true);
        let plain = encode(&h, false);
        let mut total = crate::metrics::new_histogram();
        total.record(5).unwrap();
        let before = total.clone();
        let mut folder = Folder::default();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![1, 2, 3],
            good[..good.len() - 3].to_vec(), // compressed stream cut short
            plain[..plain.len() - 1].to_vec(), // counts payload cut short
        ];
        let mut offset = plain.clone();
        offset[11] = 1; // a normalizing offset
        cases.push(offset);
        let mut ratio = plain.clone();
        ratio[32..40].copy_from_slice(&2.0f64.to_bits().to_be_bytes());
        cases.push(ratio);
        let mut bounds = plain.clone();
        bounds[16..24].copy_from_slice(&0u64.to_be_bytes()); // lowest 0: invalid
        cases.push(bounds);
        let mut long = plain.clone();
        long.extend([0x02; 4]); // counts past the announced payload are not read...
        assert!(folder.fold(&mut total.clone(), &long));
        let mut past = plain.clone();
        let len = u32::from_be_bytes(past[4..8].try_into().unwrap()) + 5;
        past[4..8].copy_from_slice(&len.to_be_bytes());
        // ...but a run of zeros that leaves the layout is refused: -10,000,000 zig-zagged.
        let mut zz = 19_999_999u64;
        while zz >= 0x80 {
            past.push((zz as u8) | 0x80);
            zz >>= 7;
        }
        past.extend([zz as u8, 0x02]);
        cases.push(past);
        // Runs of zeros hdrhistogram refuses: -i64::MIN (nine 0xff bytes), and runs that take
        // the counter past usize::MAX.
        let zigzag = |n: i64| ((n << 1) ^ (n >> 63)) as u64;
        let leb = |mut v: u64, out: &mut Vec<u8>| {
            for _ in 0..8 {
                if v < 0x80 {
                    out.push(v as u8);
                    return;
                }
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        };
        let with_payload = |extra: &[u8]| {
            let mut e = plain.clone();
            let len = u32::from_be_bytes(e[4..8].try_into().unwrap()) + extra.len() as u32;
            e[4..8].copy_from_slice(&len.to_be_bytes());
            e.extend_from_slice(extra);
            e
        };
        cases.push(with_payload(&[0xff; 9]));
        let mut runs = Vec::new();
        leb(zigzag(-i64::MAX), &mut runs);
        leb(zigzag(-i64::MAX), &mut runs);
        leb(zigzag(-1), &mut runs);
        leb(zigzag(0), &mut runs);
        leb(zigzag(5), &mut runs);
        cases.push(with_payload(&runs));
        for (i, case) in cases.iter().enumerate() {
            assert!(!folder.fold(&mut total, case), "case {i} folded");
            assert_same(&total, &before);
        }
        assert!(folder.fold(&mut total, &good));
        assert_eq!(total.len(), 2);
    }
}
