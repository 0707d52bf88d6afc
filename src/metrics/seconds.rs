//! [`SecondHistograms`]: the latency histogram of every second of a run, per stream, kept
//! encoded (HdrHistogram V2 deflate, as `latency.hlog` holds them). A second costs a few
//! hundred bytes; only the windows asked for are decoded, then merged exactly.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::fold::Folder;
use super::new_histogram;

/// One second's encoded histogram (cheap to clone).
pub type Encoded = Arc<[u8]>;

/// Encoded per-second histograms, by series (a stream, or any key) and second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondHistograms {
    series: BTreeMap<String, Vec<Option<Encoded>>>,
}

impl SecondHistograms {
    /// Sets the histogram of `second` of `series` (V2 or V2 deflate bytes).
    pub fn insert(&mut self, series: &str, second: usize, encoded: Vec<u8>) {
        let v = self.series.entry(series.to_owned()).or_default();
        if v.len() <= second {
            v.resize(second + 1, None);
        }
        v[second] = Some(encoded.into());
    }

    /// Encodes and sets a histogram (tests and synthetic runs).
    pub fn insert_histogram(&mut self, series: &str, second: usize, h: &Histogram<u64>) {
        self.insert(series, second, encode(h));
    }

    /// The histogram of `second` of `series`, when recorded.
    pub fn get(&self, series: &str, second: usize) -> Option<&Encoded> {
        self.series.get(series)?.get(second)?.as_ref()
    }

    /// The series names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }

    /// Removes and returns a series.
    pub fn take(&mut self, series: &str) -> Option<Vec<Option<Encoded>>> {
        self.series.remove(series)
    }

    /// Sets a whole series.
    pub fn set(&mut self, series: &str, seconds: Vec<Option<Encoded>>) {
        self.series.insert(series.to_owned(), seconds);
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Encodes a histogram as V2 deflate.
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .expect("a histogram encodes");
    out
}

/// Decodes one histogram.
pub fn decode(encoded: &[u8]) -> Result<Histogram<u64>, String> {
    Deserializer::new()
        .deserialize(&mut &encoded[..])
        .map_err(|e| format!("{e:?}"))
}

/// Adds up encoded histograms: the exact distribution of their union. Each is folded into
/// the total as encoded (`fold::Folder`); one of another shape is decoded and added.
pub fn merge<'a>(encoded: impl IntoIterator<Item = &'a Encoded>) -> Result<Histogram<u64>, String> {
    let mut folder = Folder::default();
    let mut d = Deserializer::new();
    let mut total = new_histogram();
    for e in encoded {
        if folder.fold(&mut total, e) {
            continue;
        }
        let h: Histogram<u64> = d.deserialize(&mut &e[..]).map_err(|e| format!("{e:?}"))?;
        total.add(&h).map_err(|e| format!("{e:?}"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_seconds_are_the_union() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=90u64 {
            a.record(v * 100).unwrap();
        }
        for _ in 0..10 {
            b.record(1_000_000).unwrap();
        }
        let mut s = SecondHistograms::default();
        s.insert_histogram("x", 0, &a);
        s.insert_histogram("x", 2, &b);
        assert!(s.get("x", 1).is_none());
        let m = merge([s.get("x", 0).unwrap(), s.get("x", 2).unwrap()]).unwrap();
        assert_eq!(m.len(), 100);
        assert_eq!(m.value_at_quantile(0.9), a.highest_equivalent(9_000));
        assert_eq!(m.value_at_quantile(0.99), b.max());
        assert_eq!(decode(s.get("x", 0).unwrap()).unwrap(), a);
        assert!(merge([&Encoded::from(vec![1u8, 2, 3])]).is_err());
    }
}
