//! `timeline.csv`: one row per second per stream, a [`TimelineRow`] written and read with
//! the `csv` crate. Columns: `results/README.md`.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::file::FileError;
use super::table::{Columns, read_rows};
use crate::metrics::{ErrorClass, Window};

/// One row of `timeline.csv`. Latencies are milliseconds; `u_` columns are uncorrected
/// (service time), the others are measured from the intended time. A percentile cell is
/// empty when no response arrived in the second, so a reader can tell "no data" from "zero".
///
/// On reading, columns are found by name (added columns do not break it), and a missing or
/// empty count reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimelineRow {
    pub second: u32,
    pub stream: String,
    #[serde(deserialize_with = "count")]
    pub intended: u64,
    #[serde(deserialize_with = "count")]
    pub sent: u64,
    #[serde(deserialize_with = "count")]
    pub ok: u64,
    #[serde(deserialize_with = "count")]
    pub err_refused: u64,
    #[serde(deserialize_with = "count")]
    pub err_timeout: u64,
    #[serde(deserialize_with = "count")]
    pub err_reset: u64,
    #[serde(deserialize_with = "count")]
    pub err_4xx: u64,
    #[serde(deserialize_with = "count")]
    pub err_5xx: u64,
    #[serde(deserialize_with = "count")]
    pub err_other: u64,
    #[serde(deserialize_with = "count")]
    pub err_aborted: u64,
    #[serde(deserialize_with = "count")]
    pub err_throttled: u64,
    #[serde(deserialize_with = "count")]
    pub err_rejected: u64,
    #[serde(deserialize_with = "count")]
    pub err_tls_unknown_issuer: u64,
    #[serde(deserialize_with = "count")]
    pub err_tls_bad_name: u64,
    #[serde(deserialize_with = "count")]
    pub err_tls_expired: u64,
    #[serde(deserialize_with = "count")]
    pub err_tls_protocol: u64,
    #[serde(deserialize_with = "count")]
    pub late: u64,
    #[serde(deserialize_with = "count")]
    pub dropped: u64,
    #[serde(deserialize_with = "count")]
    pub in_flight: u64,
    #[serde(deserialize_with = "count")]
    pub bytes_sent: u64,
    #[serde(deserialize_with = "count")]
    pub bytes_received: u64,
    #[serde(serialize_with = "ms")]
    pub p50_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub p90_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub p99_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub p999_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub max_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub u_p50_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub u_p90_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub u_p99_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub u_p999_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub u_max_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub lag_p99_ms: Option<f64>,
    /// Connections opened in the second.
    #[serde(deserialize_with = "count")]
    pub connects: u64,
    /// TLS sessions resumed among them.
    #[serde(deserialize_with = "count")]
    pub tls_resumed: u64,
    #[serde(serialize_with = "ms")]
    pub connect_p50_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub connect_p99_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub tls_p50_ms: Option<f64>,
    #[serde(serialize_with = "ms")]
    pub tls_p99_ms: Option<f64>,
}

/// Milliseconds with three decimals (the histograms' microseconds, exactly).
fn ms<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&format!("{v:.3}")),
        None => s.serialize_none(),
    }
}

/// A count; an empty cell is 0.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

impl TimelineRow {
    /// The row of one second of one stream.
    pub fn new(second: u32, stream: &str, w: &Window, in_flight: i64) -> TimelineRow {
        let c = &w.counters;
        let e = |class| c.error(class);
        let ms = |us: u64| us as f64 / 1000.0;
        let quantiles = |h: &hdrhistogram::Histogram<u64>| {
            let at = |q| (!h.is_empty()).then(|| ms(h.value_at_quantile(q)));
            [
                at(0.5),
                at(0.9),
                at(0.99),
                at(0.999),
                (!h.is_empty()).then(|| ms(h.max())),
            ]
        };
        let [p50_ms, p90_ms, p99_ms, p999_ms, max_ms] = quantiles(&w.corrected);
        let [u_p50_ms, u_p90_ms, u_p99_ms, u_p999_ms, u_max_ms] = quantiles(&w.uncorrected);
        let two = |h: &hdrhistogram::Histogram<u64>| {
            let [p50, _, p99, _, _] = quantiles(h);
            (p50, p99)
        };
        let (connects, tls_resumed, (connect_p50_ms, connect_p99_ms), (tls_p50_ms, tls_p99_ms)) =
            match &w.connects {
                Some(c) => (c.opened, c.resumed, two(&c.tcp), two(&c.tls)),
                None => (0, 0, (None, None), (None, None)),
            };
        TimelineRow {
            second,
            stream: stream.to_owned(),
            intended: c.intended,
            sent: c.sent,
            ok: c.ok,
            err_refused: e(ErrorClass::Refused),
            err_timeout: e(ErrorClass::Timeout),
            err_reset: e(ErrorClass::Reset),
            err_4xx: e(ErrorClass::Status4xx),
            err_5xx: e(ErrorClass::Status5xx),
            err_other: e(ErrorClass::Other),
            err_aborted: e(ErrorClass::Aborted),
            err_throttled: e(ErrorClass::Throttled),
            err_rejected: e(ErrorClass::Rejected),
            err_tls_unknown_issuer: e(ErrorClass::TlsUnknownIssuer),
            err_tls_bad_name: e(ErrorClass::TlsBadName),
            err_tls_expired: e(ErrorClass::TlsExpired),
            err_tls_protocol: e(ErrorClass::TlsProtocol),
            late: c.late,
            dropped: c.dropped,
            in_flight: in_flight.max(0) as u64,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            p50_ms,
            p90_ms,
            p99_ms,
            p999_ms,
            max_ms,
            u_p50_ms,
            u_p90_ms,
            u_p99_ms,
            u_p999_ms,
            u_max_ms,
            lag_p99_ms: (!w.lateness.is_empty()).then(|| ms(w.lateness.value_at_quantile(0.99))),
            connects,
            tls_resumed,
            connect_p50_ms,
            connect_p99_ms,
            tls_p50_ms,
            tls_p99_ms,
        }
    }

    /// The error counts, indexed like [`ErrorClass::ALL`].
    pub fn errors(&self) -> [u64; ErrorClass::COUNT] {
        [
            self.err_refused,
            self.err_timeout,
            self.err_reset,
            self.err_4xx,
            self.err_5xx,
            self.err_other,
            self.err_aborted,
            self.err_throttled,
            self.err_rejected,
            self.err_tls_unknown_issuer,
            self.err_tls_bad_name,
            self.err_tls_expired,
            self.err_tls_protocol,
        ]
    }

    /// The latency percentiles from the intended time: p50, p90, p99, p99.9, max.
    pub fn latency_ms(&self) -> [Option<f64>; 5] {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
        ]
    }

    /// The row as CSV text, without the newline.
    pub fn to_line(&self) -> String {
        let mut out = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        out.serialize(self).expect("a timeline row serializes");
        let mut bytes = out.into_inner().expect("writing to memory");
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        String::from_utf8(bytes).expect("CSV of UTF-8 text")
    }
}

/// The header line (without newline).
pub fn header() -> String {
    let mut out = csv::WriterBuilder::new()
        .has_headers(true)
        .from_writer(Vec::new());
    out.serialize(TimelineRow::default())
        .expect("a timeline row serializes");
    let text = String::from_utf8(out.into_inner().expect("writing to memory")).expect("UTF-8");
    text.lines().next().expect("a header line").to_owned()
}

/// One row (without newline): [`TimelineRow::new`] as text.
pub fn row(second: u32, stream: &str, w: &Window, in_flight: i64) -> String {
    TimelineRow::new(second, stream, w, in_flight).to_line()
}

/// Reads `timeline.csv`: its rows with their line numbers (a torn last row skipped).
pub fn read(text: &[u8], path: &Path) -> Result<Vec<(usize, TimelineRow)>, FileError> {
    let (header, rows) = read_rows(text, path, Columns::ByName)?;
    for need in ["second", "stream"] {
        if !header.iter().any(|h| h == need) {
            return Err(FileError::parse(path, 1, format!("no `{need}` column")));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header as it was written by hand before the row type existed.
    fn header_by_hand() -> String {
        let mut h = String::from("second,stream,intended,sent,ok");
        for class in ErrorClass::ALL {
            h.push_str(&format!(",err_{}", class.name()));
        }
        h.push_str(",late,dropped,in_flight,bytes_sent,bytes_received");
        for prefix in ["", "u_"] {
            for q in ["p50", "p90", "p99", "p999", "max"] {
                h.push_str(&format!(",{prefix}{q}_ms"));
            }
        }
        h + ",lag_p99_ms,connects,tls_resumed,connect_p50_ms,connect_p99_ms,tls_p50_ms,tls_p99_ms"
    }

    #[test]
    fn the_header_follows_the_error_classes() {
        assert_eq!(header(), header_by_hand());
    }

    #[test]
    fn rows_are_written_as_before_and_read_back() {
        let mut w = Window::default();
        w.counters.sent = 2;
        w.record_response(12_345, 2_000, None);
        let cells = header().split(',').count();
        let line = row(3, "photos", &w, 1);
        assert_eq!(line.split(',').count(), cells);
        assert_eq!(
            row(3, "empty", &Window::default(), 0).split(',').count(),
            cells
        );
        assert!(
            line.contains(",12.351,") || line.contains(",12.345,"),
            "{line}"
        );
        assert!(row(0, "a,b", &w, 0).starts_with("0,\"a,b\","));
        let text = format!("{}\n{line}\n{}\n", header(), row(4, "a,b", &w, -3));
        let rows = read(text.as_bytes(), Path::new("t.csv")).unwrap();
        assert_eq!(rows[0].1, TimelineRow::new(3, "photos", &w, 1));
        assert_eq!((rows[1].0, rows[1].1.stream.as_str()), (3, "a,b"));
        assert_eq!(rows[1].1.in_flight, 0);
    }
}
