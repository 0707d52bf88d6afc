//! Reading the CSV files of a run directory (`timeline.csv`, `probes.csv`, `harness.csv`)
//! with the `csv` crate into serde row types, under the same torn-last-line rule as
//! [`super::jsonl`]: a bad *last* row (a run killed mid-write) is skipped, any other bad
//! row is an error naming its line.

use std::path::Path;

use csv::{ReaderBuilder, StringRecord, Trim};
use serde::de::DeserializeOwned;

use super::file::FileError;

/// How rows map to the row type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Struct fields by header name: added columns are ignored, missing ones take the field's
    /// default.
    ByName,
    /// Fields in column order (a row type ending in a `Vec` takes the remaining cells).
    InOrder,
}

/// A CSV text read: its header, and each row with its 1-based line number.
pub type Rows<T> = (Vec<String>, Vec<(usize, T)>);

/// The header and the rows of a CSV text, each row with its 1-based line number.
pub fn read_rows<T: DeserializeOwned>(
    text: &[u8],
    path: &Path,
    columns: Columns,
) -> Result<Rows<T>, FileError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .trim(match columns {
            Columns::ByName => Trim::None,
            Columns::InOrder => Trim::Fields,
        })
        .from_reader(text);
    let header: StringRecord = reader
        .headers()
        .map_err(|e| FileError::parse(path, 1, e.to_string()))?
        .clone();
    let names: Vec<String> = header.iter().map(str::to_owned).collect();
    let mut rows = Vec::new();
    // A bad row: an error only if another row follows it.
    let mut pending: Option<(usize, String)> = None;
    let mut record = StringRecord::new();
    // Lines from byte offsets (csv's own line count skips blank lines), counted on from the
    // last offset asked for: counting from the start every row made reading quadratic (an
    // hour's timeline took minutes).
    let counted = std::cell::Cell::new((0usize, 1usize));
    let line_at = |p: &csv::Position| {
        // A record's position may be that of the blank lines before it.
        let mut end = (p.byte() as usize).min(text.len());
        while end < text.len() && matches!(text[end], b'\n' | b'\r') {
            end += 1;
        }
        let (mut from, mut line) = counted.get();
        if end < from {
            (from, line) = (0, 1);
        }
        line += text[from..end].iter().filter(|b| **b == b'\n').count();
        counted.set((end, line));
        line
    };
    loop {
        let line = line_at(reader.position());
        let read = reader.read_record(&mut record);
        let row = match read {
            Ok(false) => break,
            Ok(true) if record.iter().all(|c| c.trim().is_empty()) => continue,
            Ok(true) => {
                let line = record.position().map_or(line, line_at);
                let by_name = (columns == Columns::ByName).then_some(&header);
                record
                    .deserialize::<T>(by_name)
                    .map(|row| (line, row))
                    .map_err(|e| (line, describe(&e)))
            }
            Err(e) => Err((e.position().map_or(line, line_at), describe(&e))),
        };
        if let Some((line, message)) = pending.take() {
            return Err(FileError::parse(path, line, message));
        }
        match row {
            Ok(row) => rows.push(row),
            Err(bad) => pending = Some(bad),
        }
    }
    Ok((names, rows))
}

/// A csv error without its position (the line is reported apart).
fn describe(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} cells, the header has {expected_len}"),
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(i) => format!("column {}: {}", i + 1, err.kind()),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Row {
        a: u32,
        #[serde(default)]
        b: Option<f64>,
    }

    #[test]
    fn rows_by_name_skip_blank_lines_and_a_torn_tail() {
        let text = b"x,a,b\n1,2,3.5\n\n2,3,\n3,4";
        let (names, rows) = read_rows::<Row>(text, Path::new("t.csv"), Columns::ByName).unwrap();
        assert_eq!(names, ["x", "a", "b"]);
        assert_eq!(
            rows,
            [(2, Row { a: 2, b: Some(3.5) }), (4, Row { a: 3, b: None }),]
        );
        let bad = read_rows::<Row>(b"a,b\nx,1\n1,2\n", Path::new("t.csv"), Columns::ByName);
        assert!(
            matches!(bad, Err(FileError::Parse { line: 2, .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn rows_in_order_take_the_rest_as_a_vec() {
        let text = b"second,p,q\n0, 1 ,\n1,,2\n";
        let (_, rows) =
            read_rows::<(u64, Vec<Option<f64>>)>(text, Path::new("p.csv"), Columns::InOrder)
                .unwrap();
        assert_eq!(rows[0].1, (0, vec![Some(1.0), None]));
        assert_eq!(rows[1].1, (1, vec![None, Some(2.0)]));
    }

    #[test]
    fn an_hour_of_rows_reads_in_linear_time() {
        // 50k rows (an hour of 14 streams): quadratic line counting took minutes.
        let mut text = String::from("a,b\n");
        for i in 0..50_000 {
            text.push_str(&format!("{i},0.5\n"));
        }
        let start = std::time::Instant::now();
        let (_, rows) =
            read_rows::<Row>(text.as_bytes(), Path::new("t.csv"), Columns::ByName).unwrap();
        assert_eq!(rows.len(), 50_000);
        assert_eq!(
            rows[49_999].0, 50_001,
            "line numbers still count from the header"
        );
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }
}
