//! `latency.hlog`: the standard HdrHistogram interval log (V2 deflate, values in µs), one
//! histogram per second per stream: tag `<stream>` is latency from the intended send time,
//! `<stream>.service` from the actual send. Written with hdrhistogram's interval-log writer,
//! read with its interval-log iterator into [`SecondHistograms`] keyed by tag.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};

use super::file::FileError;
use crate::metrics::{SecondHistograms, decode_histogram};

/// Appends one second at a time to `latency.hlog`.
pub struct HlogWriter {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl HlogWriter {
    /// Creates the file with its header: comments, start and base time, the legend.
    pub fn create(path: &Path, run_id: &str, start: SystemTime) -> io::Result<HlogWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut builder = IntervalLogWriterBuilder::new();
            builder
                .add_comment(&format!("shakedown {} run {run_id}", env!("CARGO_PKG_VERSION")))
                .add_comment("values and Interval_Max are microseconds; tag <stream> is latency from the intended send time, <stream>.service from the actual send")
                .with_start_time(start)
                .with_base_time(start);
            builder.begin_log_with(&mut out, &mut serializer)?;
            writeln!(
                out,
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
            )?;
        }
        out.flush()?;
        Ok(HlogWriter { out, serializer })
    }

    /// Appends second `second`: per stream its corrected and uncorrected histogram (empty
    /// ones are left out), then flushes.
    pub fn write_second<'h>(
        &mut self,
        second: u32,
        streams: impl IntoIterator<Item = (&'h str, &'h Histogram<u64>, &'h Histogram<u64>)>,
    ) -> io::Result<()> {
        let start = Duration::from_secs(u64::from(second));
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.serializer)?;
        for (stream, corrected, uncorrected) in streams {
            let name = tag(stream);
            let service = format!("{name}.service");
            for (h, tag) in [(corrected, &name), (uncorrected, &service)] {
                if h.is_empty() {
                    continue;
                }
                log.write_histogram(h, start, Duration::from_secs(1), Tag::new(tag))
                    .map_err(|e| io::Error::other(format!("writing latency.hlog: {e:?}")))?;
            }
        }
        self.out.flush()
    }
}

/// A stream's tag: interval-log tags may not contain spaces or commas.
pub fn tag(stream: &str) -> String {
    stream
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Reads a `latency.hlog` text: every tagged interval, keyed by tag and by its start second
/// (from the log's base time). A torn last line (a run killed mid-write) is skipped, as is
/// an interval whose histogram does not decode when it is the last line; any other bad line
/// is an error naming it.
pub fn read(text: &[u8], path: &Path) -> Result<SecondHistograms, FileError> {
    let mut out = SecondHistograms::default();
    let lines: Vec<(usize, &[u8])> = text
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| (i + 1, l))
        .collect();
    let last = lines.last().map(|(n, _)| *n);
    let mut base: Option<Duration> = None;
    for (n, line) in lines {
        let mut owned = line.to_vec();
        owned.push(b'\n');
        let parsed = (|| -> Result<Option<(String, usize, Vec<u8>)>, String> {
            let mut entries = IntervalLogIterator::new(&owned);
            let entry = match entries.next() {
                None => return Ok(None),
                Some(Err(_)) => return Err("not an interval-log line".into()),
                Some(Ok(e)) => e,
            };
            match entry {
                LogEntry::StartTime(t) => {
                    base.get_or_insert(t);
                    Ok(None)
                }
                LogEntry::BaseTime(t) => {
                    base = Some(t);
                    Ok(None)
                }
                LogEntry::Interval(i) => {
                    let Some(tag) = i.tag() else { return Ok(None) };
                    let mut start = i.start_timestamp();
                    // Absolute timestamps (a log without a base time of its own).
                    if let Some(b) = base
                        && start >= b
                        && start > Duration::from_secs(1_000_000_000)
                    {
                        start -= b;
                    }
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram().trim())
                        .map_err(|e| format!("histogram: {e}"))?;
                    if Some(n) == last {
                        decode_histogram(&bytes).map_err(|e| format!("histogram: {e}"))?;
                    }
                    let second = start.as_secs_f64().round() as usize;
                    Ok(Some((tag.as_str().to_owned(), second, bytes)))
                }
            }
        })();
        match parsed {
            Ok(Some((tag, second, bytes))) => out.insert(&tag, second, bytes),
            Ok(None) => {}
            Err(_) if Some(n) == last => break,
            Err(message) => return Err(FileError::parse(path, n, message)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn written_seconds_read_back_by_tag_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hlog");
        let start = SystemTime::now();
        let mut w = HlogWriter::create(&path, "r1", start).unwrap();
        let mut a = new_histogram();
        a.record(1_500).unwrap();
        let mut b = new_histogram();
        b.record(900).unwrap();
        let empty = new_histogram();
        w.write_second(0, [("up", &a, &b), ("a b", &b, &empty)])
            .unwrap();
        w.write_second(2, [("up", &b, &a)]).unwrap();
        drop(w);
        let text = std::fs::read(&path).unwrap();
        let log = read(&text, &path).unwrap();
        let names: Vec<&str> = log.names().collect();
        assert_eq!(names, ["a_b", "up", "up.service"]);
        assert_eq!(decode_histogram(log.get("up", 0).unwrap()).unwrap(), a);
        assert_eq!(decode_histogram(log.get("up", 2).unwrap()).unwrap(), b);
        assert!(log.get("up", 1).is_none());
        assert!(log.get("a_b.service", 0).is_none());
        // Cut inside the last line: that interval is dropped, the rest is kept.
        let cut = &text[..text.len() - 7];
        let log = read(cut, &path).unwrap();
        assert!(log.get("up", 0).is_some() && log.get("up", 2).is_some());
        assert!(log.get("up.service", 2).is_none());
        // A bad line in the middle is an error.
        let mut bad = text.clone();
        let at = bad.windows(4).position(|w| w == b"Tag=").unwrap();
        bad.splice(at..at, b"nonsense\n".iter().copied());
        assert!(matches!(read(&bad, &path), Err(FileError::Parse { .. })));
    }
}
