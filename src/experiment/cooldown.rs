//! `[cooldown]`: how long the run keeps watching after the load ends, and when it may stop
//! early. Pure: conditions are checked against probe values the run passes in.
//!
//! ```toml
//! [cooldown]
//! max = "90s"                          # the longest cool-down (default 30s)
//! min = "10s"                          # the shortest (default 0s)
//! until = ["depth <= 0", "workers <= 0"]  # ends early once all hold ...
//! hold = "3s"                          # ... for this long (default 3s)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::analyze::expr::Op;
use crate::analyze::expr::split_comparison;
use crate::config::diag::Collector;
use crate::units;

/// The validated `[cooldown]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Cooldown {
    /// Longest cool-down.
    pub max: Duration,
    /// Shortest cool-down.
    pub min: Duration,
    /// All must hold (for `hold`) for the cool-down to end before `max`; empty: it lasts `max`.
    pub until: Vec<Condition>,
    /// How long the conditions must hold.
    pub hold: Duration,
}

impl Default for Cooldown {
    fn default() -> Self {
        Cooldown {
            max: Duration::from_secs(30),
            min: Duration::ZERO,
            until: Vec::new(),
            hold: Duration::from_secs(3),
        }
    }
}

/// `<probe> <op> <number>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// A probe name.
    pub probe: String,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub value: f64,
}

impl Condition {
    /// Whether it holds for `values` (a probe without a value does not hold).
    pub fn holds(&self, values: &BTreeMap<String, f64>) -> bool {
        values
            .get(&self.probe)
            .is_some_and(|&v| self.op.holds(v, self.value))
    }
}

impl std::str::FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}` is not `<probe> <op> <number>` (op: <, <=, >, >=), e.g. `depth <= 0`")
        };
        let (probe, op, value) = split_comparison(s).ok_or_else(bad)?;
        let value: f64 = value.parse().map_err(|_| bad())?;
        if !value.is_finite() {
            return Err(bad());
        }
        Ok(Condition {
            probe: probe.to_owned(),
            op,
            value,
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.probe, self.op.symbol(), self.value)
    }
}

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCooldown {
    max: Option<Spanned<String>>,
    min: Option<Spanned<String>>,
    #[serde(default)]
    until: Vec<Spanned<String>>,
    hold: Option<Spanned<String>>,
}

impl RawCooldown {
    /// Where the `i`th `until` condition is written (the conditions of a read
    /// [`Cooldown`] are in the same order).
    pub(super) fn until_span(&self, i: usize) -> Option<std::ops::Range<usize>> {
        self.until.get(i).map(Spanned::span)
    }

    /// Where `max` is written.
    pub(super) fn max_span(&self) -> Option<std::ops::Range<usize>> {
        self.max.as_ref().map(Spanned::span)
    }
}

/// Validates the table (absent: the defaults).
pub(super) fn build(raw: Option<&Spanned<RawCooldown>>, c: &mut Collector<'_>) -> Option<Cooldown> {
    let d = Cooldown::default();
    let Some(raw) = raw else { return Some(d) };
    let raw = raw.get_ref();
    let mut ok = true;
    let mut duration = |v: &Option<Spanned<String>>, default: Duration, key: &str| match v {
        None => default,
        Some(s) => match units::parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                c.error_with_hint(
                    s.span(),
                    format!("[cooldown] `{key}`: {e}"),
                    "write a duration like `30s` or `2m`",
                );
                ok = false;
                default
            }
        },
    };
    let max = duration(&raw.max, d.max, "max");
    let min = duration(&raw.min, d.min, "min");
    let hold = duration(&raw.hold, d.hold, "hold");
    if min > max {
        c.error(
            raw.min.as_ref().map_or(0..0, |s| s.span()),
            "[cooldown] `min` is longer than `max`",
        );
        ok = false;
    }
    let mut until = Vec::new();
    for u in &raw.until {
        match u.get_ref().parse::<Condition>() {
            Ok(cond) => until.push(cond),
            Err(e) => {
                c.error(u.span(), format!("[cooldown] `until`: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(Cooldown {
        max,
        min,
        until,
        hold,
    })
}

/// Tracks whether the cool-down may end: feed it the probe values once a second.
#[derive(Debug, Clone)]
pub struct CooldownClock {
    spec: Cooldown,
    /// Since when all conditions have held.
    holding_since: Option<Duration>,
}

impl CooldownClock {
    /// A clock for `spec`.
    pub fn new(spec: Cooldown) -> Self {
        CooldownClock {
            spec,
            holding_since: None,
        }
    }

    /// Whether the cool-down is over at `elapsed` (since it began) given the latest values,
    /// and why.
    pub fn over(&mut self, elapsed: Duration, values: &BTreeMap<String, f64>) -> Option<String> {
        if elapsed >= self.spec.max {
            return Some(format!(
                "cool-down reached its bound ({})",
                units::format_duration(self.spec.max)
            ));
        }
        if self.spec.until.is_empty() {
            self.holding_since = None;
            return None;
        }
        if self.spec.until.iter().all(|c| c.holds(values)) {
            let since = *self.holding_since.get_or_insert(elapsed);
            if elapsed - since >= self.spec.hold && elapsed >= self.spec.min {
                let conds: Vec<String> = self.spec.until.iter().map(ToString::to_string).collect();
                return Some(format!(
                    "{} held for {}",
                    conds.join(" and "),
                    units::format_duration(self.spec.hold)
                ));
            }
        } else {
            self.holding_since = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_hold() {
        let c: Condition = "depth <= 0".parse().unwrap();
        assert_eq!((c.probe.as_str(), c.op, c.value), ("depth", Op::Le, 0.0));
        let c: Condition = "workers>2.5".parse().unwrap();
        assert_eq!(c.op, Op::Gt);
        assert!("depth = 0".parse::<Condition>().is_err());
        assert!("<= 3".parse::<Condition>().is_err());
        assert!("d <= x".parse::<Condition>().is_err());
        let mut v = BTreeMap::new();
        assert!(!c.holds(&v), "a missing probe never holds");
        v.insert("workers".into(), 3.0);
        assert!(c.holds(&v));
    }

    #[test]
    fn the_clock_ends_after_hold_min_or_max() {
        let spec = Cooldown {
            max: Duration::from_secs(60),
            min: Duration::from_secs(5),
            until: vec!["depth <= 0".parse().unwrap()],
            hold: Duration::from_secs(3),
        };
        let mut clock = CooldownClock::new(spec);
        let s = Duration::from_secs;
        let empty: BTreeMap<String, f64> = [("depth".to_string(), 0.0)].into();
        let full: BTreeMap<String, f64> = [("depth".to_string(), 9.0)].into();
        assert!(clock.over(s(0), &empty).is_none());
        assert!(clock.over(s(2), &full).is_none(), "reset");
        assert!(clock.over(s(3), &empty).is_none());
        assert!(clock.over(s(5), &empty).is_none(), "held 2s only");
        assert!(clock.over(s(6), &empty).unwrap().contains("held"));
        let mut clock = CooldownClock::new(Cooldown::default());
        assert!(clock.over(s(29), &empty).is_none());
        assert!(clock.over(s(30), &empty).unwrap().contains("bound"));
    }
}
