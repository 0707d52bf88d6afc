//! `probes.csv`: a header `second,<probe>,...`, then one row per second of the run, in
//! order and without holes; an empty cell is a gap. Flushed after every row.

use std::io::Write;

/// Writes `probes.csv` rows to `W`.
#[derive(Debug)]
pub struct ProbeCsv<W: Write> {
    out: W,
    columns: usize,
    next_second: u64,
}

impl<W: Write> ProbeCsv<W> {
    /// Writes the header for probes `names` (validated names hold no commas or quotes).
    pub fn new(mut out: W, names: &[String]) -> std::io::Result<Self> {
        let mut header = String::from("second");
        for n in names {
            header.push(',');
            header.push_str(n);
        }
        writeln!(out, "{header}")?;
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
        let mut line = self.next_second.to_string();
        for v in values {
            line.push(',');
            if let Some(v) = v {
                line.push_str(&format_number(*v));
            }
        }
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        self.next_second += 1;
        Ok(())
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
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

/// One parsed row of `probes.csv`: the second and one cell per probe.
pub type CsvRow = (u64, Vec<Option<f64>>);

/// Parses a `probes.csv` text: the probe names and the rows.
pub fn parse(text: &str) -> Result<(Vec<String>, Vec<CsvRow>), String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty file")?;
    let mut columns = header.split(',');
    if columns.next() != Some("second") {
        return Err(format!("bad header {header:?}"));
    }
    let names: Vec<String> = columns.map(str::to_owned).collect();
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let mut cells = line.split(',');
        let second = cells
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("line {}: bad second", n + 2))?;
        let values = cells
            .map(|c| {
                if c.is_empty() {
                    Ok(None)
                } else {
                    c.parse()
                        .map(Some)
                        .map_err(|_| format!("line {}: {c:?}", n + 2))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if values.len() != names.len() {
            return Err(format!("line {}: {} cells", n + 2, values.len()));
        }
        rows.push((second, values));
    }
    Ok((names, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_gaps() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut csv = ProbeCsv::new(Vec::new(), &names).unwrap();
        csv.row(&[Some(3.0), None]).unwrap();
        csv.row(&[Some(0.5), Some(-2.0)]).unwrap();
        let text = String::from_utf8(csv.into_inner()).unwrap();
        assert_eq!(text, "second,a,b\n0,3,\n1,0.5,-2\n");
        let (n, rows) = parse(&text).unwrap();
        assert_eq!(n, names);
        assert_eq!(rows[1], (1, vec![Some(0.5), Some(-2.0)]));
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(format_number(1e20), "100000000000000000000");
        assert_eq!(format_number(1e-7), "0.0000001");
        assert_eq!(format_number(12.0), "12");
    }
}
