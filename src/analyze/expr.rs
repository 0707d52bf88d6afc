//! Threshold expressions, k6-style: `p99 < 300ms`, `error_rate < 0.1%`, `rate >= 95/s`,
//! `e2e_p99 < 30s`, and the windows they apply to (`whole`, `before`, `during:<fault>`,
//! `after`, `after:<fault>`). Parsing only; evaluation is in `promises::threshold`.

use std::fmt;

use thiserror::Error;

use crate::units::{self, format_duration};

/// What an expression measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency quantile of responses (from the intended send time), e.g. `p99`; `max` is 1.0.
    Latency(Quantile),
    /// (failed + dropped) / (ok + failed + dropped).
    ErrorRate,
    /// Successful responses per second.
    Rate,
    /// Requests never sent (count).
    Dropped,
    /// A quantile of end-to-end message latency (accepted -> completed), from the ledger.
    E2e(Quantile),
}

/// A latency quantile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Quantile {
    pub fn level(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P90 => 0.9,
            Quantile::P99 => 0.99,
            Quantile::P999 => 0.999,
            Quantile::Max => 1.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P90 => "p90",
            Quantile::P99 => "p99",
            Quantile::P999 => "p999",
            Quantile::Max => "max",
        }
    }

    fn parse(s: &str) -> Option<Quantile> {
        Some(match s {
            "p50" | "med" => Quantile::P50,
            "p90" => Quantile::P90,
            "p99" => Quantile::P99,
            "p999" | "p99.9" => Quantile::P999,
            "max" => Quantile::Max,
            _ => return None,
        })
    }
}

impl Metric {
    /// Every metric name the parser accepts, for hints.
    pub const NAMES: [&'static str; 13] = [
        "p50",
        "p90",
        "p99",
        "p999",
        "max",
        "error_rate",
        "rate",
        "dropped",
        "e2e_p50",
        "e2e_p90",
        "e2e_p99",
        "e2e_p999",
        "e2e_max",
    ];

    fn parse(s: &str) -> Option<Metric> {
        if let Some(q) = Quantile::parse(s) {
            return Some(Metric::Latency(q));
        }
        if let Some(q) = s.strip_prefix("e2e_").and_then(Quantile::parse) {
            return Some(Metric::E2e(q));
        }
        Some(match s {
            "error_rate" => Metric::ErrorRate,
            "rate" => Metric::Rate,
            "dropped" => Metric::Dropped,
            _ => return None,
        })
    }

    /// The figure key, e.g. `p99_ms`, `error_rate`, `rate_per_s`.
    pub fn key(self) -> String {
        match self {
            Metric::Latency(q) => format!("{}_ms", q.name()),
            Metric::E2e(q) => format!("e2e_{}_ms", q.name()),
            Metric::ErrorRate => "error_rate".into(),
            Metric::Rate => "rate_per_s".into(),
            Metric::Dropped => "dropped".into(),
        }
    }

    /// Formats a measured value in the metric's unit.
    pub fn format(self, v: f64) -> String {
        match self {
            Metric::Latency(_) | Metric::E2e(_) => {
                format_duration(std::time::Duration::from_millis(v.max(0.0).round() as u64))
            }
            Metric::ErrorRate => format!("{}%", round3(v * 100.0)),
            Metric::Rate => format!("{}/s", round3(v)),
            Metric::Dropped => format!("{v}"),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
        }
    }

    /// `<`, `<=`, `>`, `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// Splits `<left> <op> <right>` at its first comparison operator, both sides trimmed and
/// non-empty.
pub fn split_comparison(text: &str) -> Option<(&str, Op, &str)> {
    let pos = text.find(['<', '>'])?;
    let (left, rest) = text.split_at(pos);
    let (op, right) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else {
        (Op::Gt, &rest[1..])
    };
    let (left, right) = (left.trim(), right.trim());
    (!left.is_empty() && !right.is_empty()).then_some((left, op, right))
}

/// A parsed expression. The limit is in the metric's base unit: ms for latencies, a
/// fraction for `error_rate`, per second for `rate`, a count for `dropped`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
    /// The text as written.
    pub text: String,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why an expression or window does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    #[error("expected `<metric> <op> <value>` like `p99 < 300ms`, found `{0}`")]
    Shape(String),
    #[error("unknown metric `{0}`")]
    Metric(String),
    #[error("`{metric}` needs {expected}, found `{found}`")]
    Value {
        metric: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "unknown window `{0}`: expected `whole`, `before`, `after`, `during:<fault>` or `after:<fault>`"
    )]
    Over(String),
}

impl ExprError {
    /// A hint for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ExprError::Metric(m) => Some(crate::config::diag::name_hint(m, &Metric::NAMES)),
            _ => None,
        }
    }
}

impl std::str::FromStr for Expr {
    type Err = ExprError;

    fn from_str(text: &str) -> Result<Expr, ExprError> {
        let (name, op, value) =
            split_comparison(text).ok_or_else(|| ExprError::Shape(text.to_string()))?;
        let metric = Metric::parse(name).ok_or_else(|| ExprError::Metric(name.to_string()))?;
        let bad = |expected| ExprError::Value {
            metric: name.to_string(),
            expected,
            found: value.to_string(),
        };
        let limit = match metric {
            Metric::Latency(_) | Metric::E2e(_) => {
                units::parse_duration(value)
                    .map_err(|_| bad("a duration like `300ms`"))?
                    .as_secs_f64()
                    * 1000.0
            }
            Metric::ErrorRate => match value.strip_suffix('%') {
                Some(p) => {
                    p.trim()
                        .parse::<f64>()
                        .map_err(|_| bad("a percentage like `0.1%` or a fraction like `0.001`"))?
                        / 100.0
                }
                None => value
                    .parse::<f64>()
                    .map_err(|_| bad("a percentage like `0.1%` or a fraction like `0.001`"))?,
            },
            Metric::Rate => units::parse_rate(value)
                .or_else(|_| value.parse::<f64>())
                .map_err(|_| bad("a rate like `95/s`"))?,
            Metric::Dropped => value.parse::<f64>().map_err(|_| bad("a count like `0`"))?,
        };
        if !limit.is_finite() || limit < 0.0 {
            return Err(bad("a value of zero or more"));
        }
        Ok(Expr {
            metric,
            op,
            limit,
            text: format!("{name} {} {value}", op.symbol()),
        })
    }
}

/// The window an expression is checked over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    /// The whole run.
    Whole,
    /// From the start to the first fault.
    Before,
    /// While the named fault was applied (from applied to undone, or to the end of the run).
    During(String),
    /// From the end of the last fault (or of the named one) to the end of the run.
    After(Option<String>),
}

impl std::str::FromStr for Over {
    type Err = ExprError;

    fn from_str(s: &str) -> Result<Over, ExprError> {
        let s = s.trim();
        Ok(match s {
            "whole" => Over::Whole,
            "before" => Over::Before,
            "after" => Over::After(None),
            _ => match s.split_once(':') {
                Some(("during", f)) if !f.trim().is_empty() => Over::During(f.trim().into()),
                Some(("after", f)) if !f.trim().is_empty() => Over::After(Some(f.trim().into())),
                _ => return Err(ExprError::Over(s.to_string())),
            },
        })
    }
}

impl fmt::Display for Over {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Over::Whole => f.write_str("whole"),
            Over::Before => f.write_str("before"),
            Over::During(x) => write!(f, "during:{x}"),
            Over::After(None) => f.write_str("after"),
            Over::After(Some(x)) => write!(f, "after:{x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Expr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_units() {
        assert_eq!(e("p99 < 300ms").limit, 300.0);
        assert_eq!(e("p99<300ms").op, Op::Lt);
        assert_eq!(e("e2e_p99 <= 30s").limit, 30_000.0);
        assert_eq!(e("e2e_p99 <= 30s").metric, Metric::E2e(Quantile::P99));
        assert!((e("error_rate < 0.1%").limit - 0.001).abs() < 1e-12);
        assert_eq!(e("error_rate < 0.01").limit, 0.01);
        assert_eq!(e("rate >= 95/s").limit, 95.0);
        assert_eq!(e("rate >= 95/s").op, Op::Ge);
        assert_eq!(e("rate > 60/m").limit, 1.0);
        assert_eq!(e("p99.9 < 1s").metric, Metric::Latency(Quantile::P999));
        assert_eq!(e("dropped <= 0").limit, 0.0);
    }

    #[test]
    fn rejects_with_reasons() {
        let err = |s: &str| s.parse::<Expr>().unwrap_err();
        assert!(matches!(err("p99 300ms"), ExprError::Shape(_)));
        assert!(matches!(err("p98 < 1s"), ExprError::Metric(_)));
        assert_eq!(err("p89 < 1s").hint().unwrap(), "did you mean `p99`?");
        assert!(matches!(err("p99 < 300"), ExprError::Value { .. }));
        assert!(matches!(err("error_rate < lots"), ExprError::Value { .. }));
        assert!(matches!(err("< 3"), ExprError::Shape(_)));
    }

    #[test]
    fn windows() {
        assert_eq!("whole".parse::<Over>().unwrap(), Over::Whole);
        assert_eq!(
            "during:kill-web".parse::<Over>().unwrap(),
            Over::During("kill-web".into())
        );
        assert_eq!(
            "after:x".parse::<Over>().unwrap(),
            Over::After(Some("x".into()))
        );
        assert!("during:".parse::<Over>().is_err());
        assert!("sometimes".parse::<Over>().is_err());
        assert_eq!(Metric::ErrorRate.format(0.0012), "0.12%");
        assert_eq!(Metric::Latency(Quantile::P99).format(250.0), "250ms");
    }
}
