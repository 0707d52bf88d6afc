//! JSON lines: the one reader and the one writer of every `.jsonl` file of a run directory
//! (`journal.jsonl`, `accepted.jsonl`, `completions.jsonl`, `activities.jsonl`).
//!
//! **The torn-last-line rule:** a run killed mid-write leaves a partial last line. On
//! reading, a line that does not parse is skipped when nothing but blank lines follows it;
//! any other bad line is an error naming its 1-based line number. Blank lines are ignored.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a JSON-lines file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: {source}", path.display())]
    Parse {
        path: PathBuf,
        /// 1-based.
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> JsonlError + '_ {
    move |source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The records of a JSON-lines file, one at a time, never all in memory. A read error or a
/// bad line that is not the last ends the iteration; [`JsonLines::finish`] then returns it.
pub struct JsonLines<T> {
    path: PathBuf,
    lines: std::iter::Enumerate<io::Lines<BufReader<File>>>,
    /// A bad line: an error only if another line follows it.
    pending: Option<(usize, serde_json::Error)>,
    error: Option<JsonlError>,
    _record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonLines<T> {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, JsonlError> {
        let file = File::open(path).map_err(io_error(path))?;
        Ok(JsonLines {
            path: path.to_path_buf(),
            lines: BufReader::new(file).lines().enumerate(),
            pending: None,
            error: None,
            _record: PhantomData,
        })
    }

    /// What ended the iteration early, if anything did.
    pub fn finish(self) -> Result<(), JsonlError> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<T: DeserializeOwned> Iterator for JsonLines<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        for (n, line) in self.lines.by_ref() {
            let line = match line {
                Ok(line) => line,
                Err(source) => {
                    self.error = Some(JsonlError::Io {
                        path: self.path.clone(),
                        source,
                    });
                    return None;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            if let Some((line, source)) = self.pending.take() {
                self.error = Some(JsonlError::Parse {
                    path: self.path.clone(),
                    line,
                    source,
                });
                return None;
            }
            match serde_json::from_str(&line) {
                Ok(item) => return Some(item),
                Err(e) => self.pending = Some((n + 1, e)),
            }
        }
        None
    }
}

/// Streams a JSON-lines file through `f` without keeping it in memory.
pub fn for_each<T: DeserializeOwned>(path: &Path, mut f: impl FnMut(T)) -> Result<(), JsonlError> {
    for_each_line(path, |line| {
        f(serde_json::from_slice(line)?);
        Ok(())
    })
}

/// Hands every non-blank line of a JSON-lines file to `parse` as bytes, from one reused
/// buffer: no allocation per line, and `parse` may deserialize records that borrow from the
/// line (`&str` or `Cow<str>` fields marked `#[serde(borrow)]`), which is how the analyzer
/// reads ledgers of millions of messages. `parse` must have no effect when it returns an
/// error: the error is reported only if another non-blank line follows (the torn-last-line
/// rule), naming the bad line.
pub fn for_each_line(
    path: &Path,
    mut parse: impl FnMut(&[u8]) -> Result<(), serde_json::Error>,
) -> Result<(), JsonlError> {
    let mut pending: Option<(usize, serde_json::Error)> = None;
    let mut number = 0;
    for_each_raw_line(path, |line| {
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if let Some((line, source)) = pending.take() {
            return Err(JsonlError::Parse {
                path: path.to_path_buf(),
                line,
                source,
            });
        }
        if let Err(e) = parse(line) {
            pending = Some((number, e));
        }
        Ok(())
    })
}

/// Calls `line` with each line of the file (its `\n` included, the last one's maybe not),
/// read in blocks of 1 MiB and handed out where they lie in the block: no copy per line.
/// A line longer than the block grows it.
fn for_each_raw_line(
    path: &Path,
    mut line: impl FnMut(&[u8]) -> Result<(), JsonlError>,
) -> Result<(), JsonlError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut block = vec![0u8; 1 << 20];
    let mut filled = 0;
    loop {
        if filled == block.len() {
            block.resize(block.len() * 2, 0);
        }
        let read = loop {
            match io::Read::read(&mut file, &mut block[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(io_error(path))?,
            }
        };
        filled += read;
        let mut start = 0;
        while let Some(n) = memchr::memchr(b'\n', &block[start..filled]) {
            line(&block[start..=start + n])?;
            start += n + 1;
        }
        if read == 0 {
            if start < filled {
                line(&block[start..filled])?;
            }
            return Ok(());
        }
        block.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Hands a file to `parse` in blocks of whole lines (about 4 MiB each) on `workers` threads;
/// `parse` fills `out` and says whether every line parsed; `apply` then gets each block, that
/// answer and `out`, on the calling thread, in no set order. For readers whose records can be
/// applied in any order (the analyzer's ledger). A block's lines each end with their `\n`
/// (the file's last maybe without). At most two parsed blocks per worker wait for `apply`.
///
/// The file is mapped, not read: the workers parse the page cache in place, which saves
/// copying it (a quarter of the time on a 2 GB ledger). An error mapping it (a file system
/// that cannot) is returned, and the caller reads it another way.
pub fn for_each_block<R: Send>(
    path: &Path,
    workers: usize,
    parse: impl Fn(&[u8], &mut Vec<R>) -> bool + Sync,
    apply: impl FnMut(&[u8], bool, &mut Vec<R>),
) -> Result<(), JsonlError> {
    for_each_block_of(path, 4 << 20, workers, parse, apply)
}

/// [`for_each_block`] with blocks of about `size` bytes.
fn for_each_block_of<R: Send>(
    path: &Path,
    size: usize,
    workers: usize,
    parse: impl Fn(&[u8], &mut Vec<R>) -> bool + Sync,
    mut apply: impl FnMut(&[u8], bool, &mut Vec<R>),
) -> Result<(), JsonlError> {
    let size = size.max(1);
    let file = File::open(path).map_err(io_error(path))?;
    if file.metadata().map_err(io_error(path))?.len() == 0 {
        return Ok(());
    }
    // SAFETY: a mapped file changed by another process while mapped changes the bytes under
    // the slice (or, truncated, faults). Run files are only ever appended to, by the run that
    // writes them; bytes appended after the mapping are not in it. `parse` must not assume
    // two reads of a byte agree (it reads each once, and a line that does not parse is read
    // again by the line-by-line reader).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path))?;
    let _ = map.advise(memmap2::Advice::Sequential);
    let bytes: &[u8] = &map;
    // Cut after the first newline past each `size` bytes: every block is whole lines.
    let mut cuts = vec![0];
    let mut at = size;
    while at < bytes.len() {
        let Some(n) = memchr::memchr(b'\n', &bytes[at..]) else {
            break;
        };
        cuts.push(at + n + 1);
        at += n + 1 + size;
    }
    if cuts.last() != Some(&bytes.len()) {
        cuts.push(bytes.len());
    }
    let blocks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
    let workers = workers.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let pool: std::sync::Mutex<Vec<Vec<R>>> = std::sync::Mutex::new(Vec::new());
    let (to_main, done) = std::sync::mpsc::sync_channel(2 * workers);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (blocks, next, pool, parse) = (&blocks, &next, &pool, &parse);
            let to_main = to_main.clone();
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(block) = blocks.get(i) else { return };
                    let mut out = pool
                        .lock()
                        .ok()
                        .and_then(|mut p| p.pop())
                        .unwrap_or_default();
                    let ok = parse(block, &mut out);
                    if to_main.send((i, ok, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(to_main);
        // Owned here: should `apply` panic, the receiver goes with the unwinding and the
        // workers' sends fail, instead of blocking the scope's join forever.
        let done = done;
        for (i, ok, mut out) in done.iter() {
            apply(blocks[i], ok, &mut out);
            release(&map, cuts[i], cuts[i + 1]);
            out.clear();
            if let Ok(mut p) = pool.lock() {
                p.push(out);
            }
        }
    });
    Ok(())
}

/// Drops the whole pages of `[from, to)` from the process's mapping once that block is done,
/// so the mapped file does not count in its resident memory (the page cache keeps them):
/// the analyzer of a 2 GB ledger stays within its few hundred MB.
fn release(map: &memmap2::Mmap, from: usize, to: usize) {
    const PAGE: usize = 4096;
    let first = from.div_ceil(PAGE) * PAGE;
    let end = to / PAGE * PAGE;
    if end > first {
        // SAFETY: the mapping is a read-only, shared mapping of a file: a page dropped here
        // reads back from the file, unchanged, if anything touches it again (a worker reading
        // a neighbouring block); nothing in the process writes to it.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
        };
    }
}

/// Reads a whole JSON-lines file.
pub fn read_all<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JsonlError> {
    let mut out = Vec::new();
    for_each(path, |item| out.push(item))?;
    Ok(out)
}

/// Appends JSON lines to a file: flushed after each batch, and with [`JsonLinesWriter::durable`]
/// also fsynced (the chaos journal).
#[derive(Debug)]
pub struct JsonLinesWriter {
    path: PathBuf,
    out: BufWriter<File>,
    durable: bool,
}

impl JsonLinesWriter {
    /// Opens `path` for appending (created if missing).
    pub fn append(path: &Path) -> Result<Self, JsonlError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(JsonLinesWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            durable: false,
        })
    }

    /// Opens `path` for appending, each batch fsynced before a write returns.
    pub fn durable(path: &Path) -> Result<Self, JsonlError> {
        Ok(JsonLinesWriter {
            durable: true,
            ..Self::append(path)?
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every item as one line, then flushes (and fsyncs when durable).
    pub fn write_all<T: Serialize>(
        &mut self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), JsonlError> {
        for item in items {
            serde_json::to_writer(&mut self.out, &item).map_err(|e| JsonlError::Io {
                path: self.path.clone(),
                source: e.into(),
            })?;
            self.out.write_all(b"\n").map_err(io_error(&self.path))?;
        }
        self.out.flush().map_err(io_error(&self.path))?;
        if self.durable {
            self.out
                .get_ref()
                .sync_data()
                .map_err(io_error(&self.path))?;
        }
        Ok(())
    }

    /// Writes one item as one line, then flushes (and fsyncs when durable).
    pub fn write<T: Serialize>(&mut self, item: &T) -> Result<(), JsonlError> {
        self.write_all(std::iter::once(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        id: u32,
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2}\n{\"id\"").unwrap();
        assert_eq!(read_all::<Rec>(&path).unwrap().len(), 2);
        // A torn tail followed by blank lines is still the last line.
        std::fs::write(&path, "{\"id\":1}\n{\"i\n\n  \n").unwrap();
        assert_eq!(read_all::<Rec>(&path).unwrap(), [Rec { id: 1 }]);
        std::fs::write(&path, "nonsense\n{\"id\":1}\n").unwrap();
        let err = read_all::<Rec>(&path).unwrap_err();
        assert!(matches!(err, JsonlError::Parse { line: 1, .. }), "{err}");
    }

    #[test]
    fn lines_reach_the_parser_as_bytes_that_records_can_borrow() {
        #[derive(serde::Deserialize)]
        struct Borrowed<'a> {
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\"}\r\n\n{\"id\":\"b\\u00e9\"}\n{\"id\":\"c",
        )
        .unwrap();
        let mut ids = Vec::new();
        for_each_line(&path, |line| {
            let record: Borrowed = serde_json::from_slice(line)?;
            ids.push((
                record.id.to_string(),
                matches!(record.id, std::borrow::Cow::Borrowed(_)),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, [("a".to_owned(), true), ("bé".to_owned(), false)]);
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"i\n{\"id\":\"c\"}\n").unwrap();
        let err = for_each_line(&path, |line| {
            serde_json::from_slice::<Borrowed>(line).map(drop)
        })
        .unwrap_err();
        assert!(matches!(err, JsonlError::Parse { line: 2, .. }), "{err}");
    }

    /// Lines of every length, some longer than the reader's block, some blank.
    fn ragged_lines() -> Vec<String> {
        (0..400)
            .map(|i| match i % 7 {
                0 => String::new(),
                3 if i % 100 == 3 => format!("{{\"id\":\"{}\"}}", "x".repeat((3 << 20) / 2)),
                k => format!("{{\"id\":{i},\"pad\":\"{}\"}}", "p".repeat(k * 13)),
            })
            .collect()
    }

    #[test]
    fn every_line_reaches_the_parser_once_across_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let lines = ragged_lines();
        // With and without a final newline.
        for tail in ["\n", ""] {
            std::fs::write(&path, format!("{}{tail}", lines.join("\n"))).unwrap();
            let mut seen = Vec::new();
            for_each_line(&path, |line| {
                seen.push(
                    String::from_utf8(line.to_vec())
                        .unwrap()
                        .trim_end()
                        .to_owned(),
                );
                Ok(())
            })
            .unwrap();
            let expected: Vec<&String> = lines.iter().filter(|l| !l.is_empty()).collect();
            assert_eq!(seen.len(), expected.len());
            assert!(seen.iter().zip(&expected).all(|(a, b)| a == *b));

            // Blocks of every size, on 1 and 3 workers: each holds whole lines, and together
            // they hold each line once.
            for (size, workers) in [(1, 1), (7, 3), (100, 2), (4096, 3), (1 << 20, 2)] {
                let mut got: Vec<String> = Vec::new();
                for_each_block_of(
                    &path,
                    size,
                    workers,
                    |block, out: &mut Vec<String>| {
                        assert!(block.ends_with(b"\n") || tail.is_empty());
                        out.extend(
                            block
                                .split(|b| *b == b'\n')
                                .filter(|l| !l.is_empty())
                                .map(|l| String::from_utf8(l.to_vec()).unwrap()),
                        );
                        true
                    },
                    |_, ok, out| {
                        assert!(ok);
                        got.append(out);
                    },
                )
                .unwrap();
                let mut want: Vec<String> = expected.iter().map(|l| (*l).clone()).collect();
                got.sort();
                want.sort();
                assert!(got == want, "size {size}, {workers} workers, tail {tail:?}");
            }
        }
        // An empty file has no block.
        std::fs::write(&path, "").unwrap();
        for_each_block(
            &path,
            2,
            |_, _: &mut Vec<()>| true,
            |_, _, _| panic!("a block"),
        )
        .unwrap();
    }

    #[test]
    fn the_iterator_stops_at_a_bad_line_and_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let good = "{\"id\":7}";
        std::fs::write(&path, format!("{good}\n\n{good}\nbad\n{good}\n{good}\n")).unwrap();
        let mut lines = JsonLines::<Rec>::open(&path).unwrap();
        assert_eq!(lines.by_ref().count(), 2, "the records before the bad line");
        let err = lines.finish().unwrap_err();
        assert!(matches!(err, JsonlError::Parse { line: 4, .. }), "{err}");
    }

    #[test]
    fn written_lines_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut w = JsonLinesWriter::durable(&path).unwrap();
        w.write(&Rec { id: 1 }).unwrap();
        w.write_all([Rec { id: 2 }, Rec { id: 3 }]).unwrap();
        let mut w = JsonLinesWriter::append(&path).unwrap();
        w.write_all(Vec::<Rec>::new()).unwrap();
        w.write(&Rec { id: 4 }).unwrap();
        let ids: Vec<u32> = read_all::<Rec>(&path)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4}\n"
        );
    }
}
