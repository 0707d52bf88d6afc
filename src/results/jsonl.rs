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
    let file = File::open(path).map_err(io_error(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(256);
    let mut pending: Option<(usize, serde_json::Error)> = None;
    let mut number = 0;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?
            == 0
        {
            return Ok(());
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some((line, source)) = pending.take() {
            return Err(JsonlError::Parse {
                path: path.to_path_buf(),
                line,
                source,
            });
        }
        if let Err(e) = parse(&line) {
            pending = Some((number, e));
        }
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
