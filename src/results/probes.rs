//! `probes.csv` (and `harness.csv`, which has the same shape): a header `second,<probe>,...`,
//! then one row per second of the run, in order and without holes; an empty cell is a gap.
//! Written and read with the `csv` crate; the writer flushes after every row.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Deserialize;

use super::file::FileError;
use super::table::{Columns, read_rows};

/// Writes `probes.csv` rows to `W`.
#[derive(Debug)]
pub struct ProbeCsv<W: Write> {
    out: csv::Writer<W>,
    columns: usize,
    next_second: u64,
}

fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

impl<W: Write> ProbeCsv<W> {
    /// Writes the header for probes `names`.
    pub fn new(out: W, names: &[String]) -> std::io::Result<Self> {
        let mut out = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        out.write_record(std::iter::once("second").chain(names.iter().map(String::as_str)))
            .map_err(csv_io)?;
        out.flush()?;
        Ok(ProbeCsv {
            out,
            columns: names.len(),
            next_second: 0,
        })
    }

    /// The next second to write.
    pub fn next_second(&self) -> u64 {
        self.next_second
    }

    /// Writes the row of the next second and flushes. `values` has one cell per probe.
    pub fn row(&mut self, values: &[Option<f64>]) -> std::io::Result<()> {
        debug_assert_eq!(values.len(), self.columns);
        let cells = std::iter::once(self.next_second.to_string()).chain(
            values
                .iter()
                .map(|v| v.map(format_number).unwrap_or_default()),
        );
        self.out.write_record(cells).map_err(csv_io)?;
        self.out.flush()?;
        self.next_second += 1;
        Ok(())
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(|e| panic!("flushed after every row: {}", e.error()))
    }
}

/// A plain decimal (no exponent; integers without `.0`).
pub fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One row of `probes.csv`: the second and one cell per probe (`None`: a gap).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProbeRow {
    pub second: u64,
    pub values: Vec<Option<f64>>,
}

/// Reads a `probes.csv` text: the probe names and the rows (a torn last row skipped).
pub fn read_rows_of(text: &[u8], path: &Path) -> Result<(Vec<String>, Vec<ProbeRow>), FileError> {
    // Rows read as plain cells: a run without probes has rows of one cell (`second`), which
    // a struct with a trailing `Vec` would refuse.
    let (header, rows) = read_rows::<Vec<Option<f64>>>(text, path, Columns::InOrder)?;
    if header.first().map(String::as_str) != Some("second") {
        return Err(FileError::parse(
            path,
            1,
            "the first column must be `second`",
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (line, mut cells) in rows {
        let second = match cells.first().copied().flatten() {
            Some(s) if s >= 0.0 && s == s.trunc() => s as u64,
            _ => {
                return Err(FileError::parse(
                    path,
                    line,
                    "the `second` cell must be a whole number of seconds",
                ));
            }
        };
        cells.remove(0);
        out.push(ProbeRow {
            second,
            values: cells,
        });
    }
    Ok((header[1..].to_vec(), out))
}

/// Rewrites columns of the `probes.csv` at `path` in one pass (atomically: a temporary file
/// beside it, then a rename): row `second` of column `names[k]` gets `value(k, second)`.
/// Returns the number of rows.
pub fn rewrite_columns(
    path: &Path,
    names: &[&str],
    value: impl Fn(usize, u64) -> Option<f64>,
) -> Result<u64, FileError> {
    let text = std::fs::read(path).map_err(|e| FileError::io(path, e))?;
    let (header, mut rows) = read_rows_of(&text, path)?;
    let columns = names
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| FileError::parse(path, 1, format!("no column `{name}`")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    for row in &mut rows {
        for (k, &column) in columns.iter().enumerate() {
            if let Some(cell) = row.values.get_mut(column) {
                *cell = value(k, row.second);
            }
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).map_err(|e| FileError::io(&tmp, e))?;
    let mut csv = ProbeCsv::new(std::io::BufWriter::new(file), &header)
        .map_err(|e| FileError::io(&tmp, e))?;
    for row in &rows {
        let mut cells = row.values.clone();
        cells.resize(header.len(), None);
        csv.row(&cells).map_err(|e| FileError::io(&tmp, e))?;
    }
    drop(csv.into_inner());
    std::fs::rename(&tmp, path).map_err(|e| FileError::io(path, e))?;
    Ok(rows.len() as u64)
}

/// Reads a `probes.csv` text into one series per probe, indexed by second; an empty cell
/// or a missing row is a gap (`None`).
pub fn read(text: &[u8], path: &Path) -> Result<BTreeMap<String, Vec<Option<f64>>>, FileError> {
    let (names, rows) = read_rows_of(text, path)?;
    let mut out: BTreeMap<String, Vec<Option<f64>>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for row in rows {
        let s = usize::try_from(row.second).unwrap_or(usize::MAX);
        for (name, v) in names.iter().zip(row.values) {
            let series = out.get_mut(name).expect("named in the header");
            if series.len() <= s {
                series.resize(s + 1, None);
            }
            series[s] = v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_probes_reads_back() {
        let csv = ProbeCsv::new(Vec::new(), &[]).map(|mut c| {
            c.row(&[]).unwrap();
            c.row(&[]).unwrap();
            c.into_inner()
        });
        let text = csv.unwrap();
        let (names, rows) = read_rows_of(&text, Path::new("probes.csv")).unwrap();
        assert!(names.is_empty());
        assert_eq!(rows.iter().map(|r| r.second).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn rows_round_trip_with_gaps() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut csv = ProbeCsv::new(Vec::new(), &names).unwrap();
        csv.row(&[Some(3.0), None]).unwrap();
        csv.row(&[Some(0.5), Some(-2.0)]).unwrap();
        let text = csv.into_inner();
        assert_eq!(text, b"second,a,b\n0,3,\n1,0.5,-2\n");
        let (n, rows) = read_rows_of(&text, Path::new("p.csv")).unwrap();
        assert_eq!(n, names);
        assert_eq!(
            rows[1],
            ProbeRow {
                second: 1,
                values: vec![Some(0.5), Some(-2.0)]
            }
        );
    }

    #[test]
    fn series_keep_gaps_and_a_torn_tail_is_skipped() {
        let p = read(
            b"second,depth,n\n0,1,2\n1,,2\n3,4,\n4,5",
            Path::new("p.csv"),
        )
        .unwrap();
        assert_eq!(p["depth"], [Some(1.0), None, None, Some(4.0)]);
        assert_eq!(p["n"], [Some(2.0), Some(2.0), None, None]);
        assert!(read(b"t,depth\n", Path::new("p.csv")).is_err());
        let bad = read(b"second,d\n0,x\n1,2\n", Path::new("p.csv"));
        assert!(
            matches!(bad, Err(FileError::Parse { line: 2, .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn named_columns_are_rewritten_and_the_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probes.csv");
        std::fs::write(&path, "second,a,b,c\n0,1,,7\n1,2,5,8\n2,,6,9\n").unwrap();
        let rows = rewrite_columns(&path, &["c", "b"], |k, s| match k {
            0 => Some(s as f64),
            _ => (s != 1).then_some(s as f64 * 10.0),
        })
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "second,a,b,c\n0,1,0,0\n1,2,,1\n2,,20,2\n"
        );
        assert!(rewrite_columns(&path, &["d"], |_, _| None).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "second,a,b,c\n0,1,0,0\n1,2,,1\n2,,20,2\n",
            "an unknown column changes nothing"
        );
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(format_number(1e20), "100000000000000000000");
        assert_eq!(format_number(1e-7), "0.0000001");
        assert_eq!(format_number(12.0), "12");
    }
}
