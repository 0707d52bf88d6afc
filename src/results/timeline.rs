//! `timeline.csv`: one row per second per stream.

use std::fmt::Write;

use crate::metrics::{ErrorClass, Window};

/// The header line (without newline). Latencies are milliseconds; `u_` columns
/// are uncorrected (service time), the others are measured from the intended time.
pub fn header() -> String {
    let mut h = String::from("second,stream,intended,sent,ok");
    for class in ErrorClass::ALL {
        let _ = write!(h, ",err_{}", class.name());
    }
    h.push_str(",late,dropped,in_flight,bytes_sent,bytes_received");
    for prefix in ["", "u_"] {
        for q in ["p50", "p90", "p99", "p999", "max"] {
            let _ = write!(h, ",{prefix}{q}_ms");
        }
    }
    h.push_str(",lag_p99_ms");
    h
}

/// One row (without newline). Percentile cells are empty when no response
/// arrived in the second, so a reader can tell "no data" from "zero".
pub fn row(second: u32, stream: &str, w: &Window, in_flight: i64) -> String {
    let c = &w.counters;
    let mut r = format!(
        "{second},{},{},{},{}",
        csv_field(stream),
        c.intended,
        c.sent,
        c.ok
    );
    for class in ErrorClass::ALL {
        let _ = write!(r, ",{}", c.error(class));
    }
    let _ = write!(
        r,
        ",{},{},{},{},{}",
        c.late,
        c.dropped,
        in_flight.max(0),
        c.bytes_sent,
        c.bytes_received
    );
    for h in [&w.corrected, &w.uncorrected] {
        for q in [0.5, 0.9, 0.99, 0.999] {
            if h.is_empty() {
                r.push(',');
            } else {
                let _ = write!(r, ",{:.3}", h.value_at_quantile(q) as f64 / 1000.0);
            }
        }
        if h.is_empty() {
            r.push(',');
        } else {
            let _ = write!(r, ",{:.3}", h.max() as f64 / 1000.0);
        }
    }
    if w.lateness.is_empty() {
        r.push(',');
    } else {
        let _ = write!(
            r,
            ",{:.3}",
            w.lateness.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    r
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_has_as_many_cells_as_the_header() {
        let mut w = Window::default();
        w.counters.sent = 2;
        w.record_response(12_345, 2_000, None);
        let cells = header().split(',').count();
        assert_eq!(row(3, "photos", &w, 1).split(',').count(), cells);
        assert_eq!(
            row(3, "empty", &Window::default(), 0).split(',').count(),
            cells
        );
        assert!(
            row(3, "photos", &w, 1).contains(",12.351,")
                || row(3, "photos", &w, 1).contains(",12.345,")
        );
        assert!(row(0, "a,b", &w, 0).starts_with("0,\"a,b\","));
    }
}
