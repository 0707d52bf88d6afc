//! The `[[promise]]` tables of an experiment file.
//!
//! Parsed in the two passes every config file goes through (see [`crate::config`]):
//! [`RawPromise`] is the structural form (every key any promise type takes, each with its
//! span, `deny_unknown_fields`), and [`build`] turns it into validated [`Promise`]s,
//! recording every error (a key the type does not take, a missing key, a bad duration or
//! expression) with file:line:col. The user documentation of each key is on [`RawPromise`];
//! `docs/promises.md` gives the formulas.
//!
//! ```toml
//! [[promise]]
//! type = "failover"
//! fault = "kill-web"
//! within = "30s"
//! ```

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::expr::{Expr, Over};
use super::promises::{
    buffering::Buffering, cost::Cost, drain::Drain, failover::Failover, no_loss::NoLoss,
    scale_in::ScaleIn, scale_out::ScaleOut, threshold::Threshold,
};
use crate::config::diag::{Collector, Diagnostics, name_hint, quoted_list};
use crate::config::{parse_toml, read_config};
use crate::units;

/// One `[[promise]]` table as written. Which keys apply depends on `type`; a key the type
/// does not take is an error. Durations are written like `30s`, `2m`, `1h30m`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromise {
    /// A name for reports (default: the type, plus the fault or group it is about).
    pub name: Option<Spanned<String>>,
    /// `failover`, `buffering`, `no-loss`, `drain`, `scale-out`, `scale-in`, `threshold`, `cost`.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// failover, buffering, drain: the fault (its `name` in `[[fault]]`, or `<name>#<n>` for
    /// one occurrence of a repeated fault; default: the first occurrence).
    pub fault: Option<Spanned<String>>,
    /// failover, buffering, drain, threshold: only this stream's traffic (default: all streams).
    pub stream: Option<Spanned<String>>,
    /// failover: error-rate tolerance over the baseline (default 0.01); buffering: tolerance
    /// on the producer success rate and the depth slope (default 0.05). A fraction, or `"1%"`.
    pub eps: Option<Spanned<Ratio>>,
    /// failover, buffering: allowed factor on the baseline p99 (default 2.0).
    pub k: Option<Spanned<f64>>,
    /// failover: how long the service must stay healthy to count as recovered (default `10s`).
    pub hold: Option<Spanned<String>>,
    /// failover: max recovery time; drain: max drain time; scale-out: max time from breach to
    /// added capacity; scale-in: max time from drained to minimum capacity. Required for these.
    pub within: Option<Spanned<String>>,
    /// failover: most requests that may fail between the fault and recovery (default: no limit,
    /// reported only).
    pub max_failed: Option<Spanned<u64>>,
    /// failover, buffering, drain: length of the baseline window before the first fault
    /// (default `60s`).
    pub baseline: Option<Spanned<String>>,
    /// failover (replacement leg), scale-out, scale-in, cost: the probe counting running instances.
    pub instances: Option<Spanned<String>>,
    /// failover: instance count that means "replaced" (default: the count just before the fault).
    pub desired: Option<Spanned<u32>>,
    /// failover: max time until the instance count is back (default: reported only).
    pub replace_within: Option<Spanned<String>>,
    /// buffering, drain, scale-out, scale-in: the queue depth (backlog) probe.
    pub depth: Option<Spanned<String>>,
    /// no-loss: whether jobs completed more than once pass (default true; always reported).
    pub allow_duplicates: Option<Spanned<bool>>,
    /// drain: processing capacity (e.g. `"50/s"`), for the predicted drain time.
    pub capacity: Option<Spanned<String>>,
    /// drain: depth counted as drained at or below baseline + tolerance (default 0).
    pub tolerance: Option<Spanned<f64>>,
    /// scale-out, scale-in: the group in `activities.jsonl` (default: any group).
    pub group: Option<Spanned<String>>,
    /// scale-out: the policy's target backlog per instance. Required.
    pub target: Option<Spanned<f64>>,
    /// scale-out, the older form: instances each breach must add. Without it, each breach
    /// must be answered by capacity that brings backlog per instance under `target` (or
    /// reaches `max`).
    pub n: Option<Spanned<u32>>,
    /// scale-out: the group's maximum capacity. At `max` a breach is answered (the policy
    /// can do no more), but a backlog that keeps growing there for longer than `within`
    /// (outside fault windows) fails: the max is below what the load needs.
    pub max: Option<Spanned<u32>>,
    /// scale-in: the minimum capacity to return to (default 0).
    pub min: Option<Spanned<u32>>,
    /// scale-in: measure from the end of this fault instead of from when the backlog drained.
    pub after: Option<Spanned<String>>,
    /// scale-in: most direction changes of desired capacity in any `flap_window` (default 2).
    pub max_direction_changes: Option<Spanned<u32>>,
    /// scale-in: the flapping window (default `5m`).
    pub flap_window: Option<Spanned<String>>,
    /// threshold: expressions, all of which must hold, e.g. `["p99 < 300ms", "error_rate < 0.1%"]`.
    pub checks: Option<Spanned<Vec<Spanned<String>>>>,
    /// threshold: `whole` (default), `before`, `after`, `during:<fault>`, `after:<fault>`.
    pub over: Option<Spanned<String>>,
    /// cost: price of one instance-hour.
    pub instance_hour: Option<Spanned<f64>>,
    /// cost: a probe of cumulative function GB-seconds billed.
    pub gb_seconds: Option<Spanned<String>>,
    /// cost: price of one GB-second.
    pub gb_second: Option<Spanned<f64>>,
    /// cost: the most the run may cost; without it the verdict only reports figures.
    pub budget: Option<Spanned<f64>>,
}

/// A fraction written as a number (`0.01`) or a percentage (`"1%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(pub f64);

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ratio, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum R {
            N(f64),
            I(i64),
            S(String),
        }
        let v = match R::deserialize(d)? {
            R::N(v) => v,
            R::I(v) => v as f64,
            R::S(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a fraction like 0.01 or a percentage like \"1%\", found `{s}`"
                    ))
                })?,
        };
        if !(0.0..=1.0).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "expected a fraction between 0 and 1, found {v}"
            )));
        }
        Ok(Ratio(v))
    }
}

/// A validated promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Promise {
    pub name: String,
    pub kind: PromiseKind,
}

/// The promise types and their parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum PromiseKind {
    Failover(Failover),
    Buffering(Buffering),
    NoLoss(NoLoss),
    Drain(Drain),
    ScaleOut(ScaleOut),
    ScaleIn(ScaleIn),
    Threshold(Threshold),
    Cost(Cost),
}

/// Every `type`, with the keys it takes besides `name` and `type`.
const TYPES: [(&str, &[&str]); 8] = [
    (
        "failover",
        &[
            "fault",
            "stream",
            "eps",
            "k",
            "hold",
            "within",
            "max_failed",
            "baseline",
            "instances",
            "desired",
            "replace_within",
        ],
    ),
    (
        "buffering",
        &["fault", "stream", "eps", "k", "depth", "baseline"],
    ),
    ("no-loss", &["allow_duplicates"]),
    (
        "drain",
        &[
            "fault",
            "stream",
            "depth",
            "within",
            "capacity",
            "tolerance",
            "baseline",
        ],
    ),
    (
        "scale-out",
        &[
            "group",
            "instances",
            "depth",
            "target",
            "n",
            "max",
            "within",
        ],
    ),
    (
        "scale-in",
        &[
            "group",
            "instances",
            "depth",
            "min",
            "within",
            "after",
            "max_direction_changes",
            "flap_window",
        ],
    ),
    ("threshold", &["checks", "over", "stream"]),
    (
        "cost",
        &[
            "instances",
            "instance_hour",
            "gb_seconds",
            "gb_second",
            "budget",
        ],
    ),
];

impl RawPromise {
    /// The keys present (besides `name` and `type`), with their spans.
    fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        fn s<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
            v.as_ref().map(Spanned::span)
        }
        [
            ("fault", s(&self.fault)),
            ("stream", s(&self.stream)),
            ("eps", s(&self.eps)),
            ("k", s(&self.k)),
            ("hold", s(&self.hold)),
            ("within", s(&self.within)),
            ("max_failed", s(&self.max_failed)),
            ("baseline", s(&self.baseline)),
            ("instances", s(&self.instances)),
            ("desired", s(&self.desired)),
            ("replace_within", s(&self.replace_within)),
            ("depth", s(&self.depth)),
            ("allow_duplicates", s(&self.allow_duplicates)),
            ("capacity", s(&self.capacity)),
            ("tolerance", s(&self.tolerance)),
            ("group", s(&self.group)),
            ("target", s(&self.target)),
            ("n", s(&self.n)),
            ("max", s(&self.max)),
            ("min", s(&self.min)),
            ("after", s(&self.after)),
            ("max_direction_changes", s(&self.max_direction_changes)),
            ("flap_window", s(&self.flap_window)),
            ("checks", s(&self.checks)),
            ("over", s(&self.over)),
            ("instance_hour", s(&self.instance_hour)),
            ("gb_seconds", s(&self.gb_seconds)),
            ("gb_second", s(&self.gb_second)),
            ("budget", s(&self.budget)),
        ]
        .into_iter()
        .filter_map(|(k, span)| span.map(|sp| (k, sp)))
        .collect()
    }
}

/// Reads the values of one raw promise, recording errors.
struct Reader<'r, 'c, 'a> {
    raw: &'r RawPromise,
    c: &'c mut Collector<'a>,
    kind: &'static str,
}

impl Reader<'_, '_, '_> {
    fn missing(&mut self, key: &str) {
        let span = self.raw.kind.span();
        self.c
            .error(span, format!("a `{}` promise needs `{key}`", self.kind));
    }

    fn string(&self, v: &Option<Spanned<String>>) -> Option<String> {
        v.as_ref().map(|s| s.get_ref().clone())
    }

    fn required_string(&mut self, v: &Option<Spanned<String>>, key: &str) -> String {
        match v {
            Some(s) => s.get_ref().clone(),
            None => {
                self.missing(key);
                String::new()
            }
        }
    }

    fn duration(&mut self, v: &Option<Spanned<String>>) -> Option<Duration> {
        let s = v.as_ref()?;
        match units::parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                let hint = e.hint();
                self.c.error_with_hint(s.span(), e.to_string(), hint);
                None
            }
        }
    }

    fn required_duration(&mut self, v: &Option<Spanned<String>>, key: &str) -> Duration {
        if v.is_none() {
            self.missing(key);
        }
        self.duration(v).unwrap_or_default()
    }

    fn positive(&mut self, v: &Option<Spanned<f64>>, default: f64) -> f64 {
        match v {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) => {
                self.c.error(
                    s.span(),
                    format!("must be a number > 0, found {}", s.get_ref()),
                );
                default
            }
            Some(s) => *s.get_ref(),
            None => default,
        }
    }

    fn value<T: Copy>(&self, v: &Option<Spanned<T>>) -> Option<T> {
        v.as_ref().map(|s| *s.get_ref())
    }
}

/// Validates raw promises (all errors recorded in `c`); promises with errors are left out.
pub fn build(raws: &[RawPromise], c: &mut Collector<'_>) -> Vec<Promise> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for raw in raws {
        let before = c.take();
        let ty = raw.kind.get_ref().as_str();
        let Some(&(kind, allowed)) = TYPES.iter().find(|(t, _)| *t == ty) else {
            let types: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
            for d in before {
                c.push(d);
            }
            c.error_with_hint(
                raw.kind.span(),
                format!("unknown promise type `{ty}`"),
                name_hint(ty, &types),
            );
            continue;
        };
        let mut errors = before;
        for (key, span) in raw.present() {
            if !allowed.contains(&key) {
                c.error_with_hint(
                    span,
                    format!("`{key}` does not apply to a `{kind}` promise"),
                    format!("a `{kind}` promise takes {}", quoted_list(allowed)),
                );
            }
        }
        let mut r = Reader { raw, c, kind };
        let parsed = build_kind(&mut r);
        let default_name = match &parsed {
            PromiseKind::Failover(p) => format!("failover:{}", p.fault),
            PromiseKind::Buffering(p) => format!("buffering:{}", p.fault),
            PromiseKind::Drain(p) => format!("drain:{}", p.fault),
            PromiseKind::ScaleOut(p) => format!(
                "scale-out{}",
                p.group
                    .as_deref()
                    .map(|g| format!(":{g}"))
                    .unwrap_or_default()
            ),
            PromiseKind::ScaleIn(p) => format!(
                "scale-in{}",
                p.group
                    .as_deref()
                    .map(|g| format!(":{g}"))
                    .unwrap_or_default()
            ),
            PromiseKind::Threshold(p) => format!("threshold:{}", p.over),
            PromiseKind::NoLoss(_) | PromiseKind::Cost(_) => kind.to_string(),
        };
        let name = raw
            .name
            .as_ref()
            .map_or(default_name, |n| n.get_ref().clone());
        if !names.insert(name.clone()) {
            let span = raw.name.as_ref().map_or(raw.kind.span(), Spanned::span);
            c.error_with_hint(
                span,
                format!("two promises are named `{name}`"),
                "give one of them another `name`",
            );
        }
        let ok = !c.has_errors();
        errors.extend(c.take());
        for d in errors {
            c.push(d);
        }
        if ok {
            out.push(Promise { name, kind: parsed });
        }
    }
    out
}

fn build_kind(r: &mut Reader<'_, '_, '_>) -> PromiseKind {
    let raw = r.raw;
    let baseline = r.duration(&raw.baseline).unwrap_or(Duration::from_secs(60));
    match r.kind {
        "failover" => PromiseKind::Failover(Failover {
            fault: r.required_string(&raw.fault, "fault"),
            stream: r.string(&raw.stream),
            eps: raw.eps.as_ref().map_or(0.01, |e| e.get_ref().0),
            k: r.positive(&raw.k, 2.0),
            hold: r.duration(&raw.hold).unwrap_or(Duration::from_secs(10)),
            within: r.required_duration(&raw.within, "within"),
            max_failed: r.value(&raw.max_failed),
            baseline,
            instances: r.string(&raw.instances),
            desired: r.value(&raw.desired),
            replace_within: r.duration(&raw.replace_within),
        }),
        "buffering" => PromiseKind::Buffering(Buffering {
            fault: r.required_string(&raw.fault, "fault"),
            stream: r.string(&raw.stream),
            eps: raw.eps.as_ref().map_or(0.05, |e| e.get_ref().0),
            k: r.positive(&raw.k, 2.0),
            depth: r.required_string(&raw.depth, "depth"),
            baseline,
        }),
        "no-loss" => PromiseKind::NoLoss(NoLoss {
            allow_duplicates: r.value(&raw.allow_duplicates).unwrap_or(true),
        }),
        "drain" => {
            let capacity =
                raw.capacity
                    .as_ref()
                    .and_then(|s| match units::parse_rate(s.get_ref()) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            let hint = e.hint();
                            r.c.error_with_hint(s.span(), e.to_string(), hint);
                            None
                        }
                    });
            let tolerance = match &raw.tolerance {
                Some(t) if *t.get_ref() < 0.0 => {
                    r.c.error(t.span(), "must be >= 0");
                    0.0
                }
                Some(t) => *t.get_ref(),
                None => 0.0,
            };
            PromiseKind::Drain(Drain {
                fault: r.required_string(&raw.fault, "fault"),
                stream: r.string(&raw.stream),
                depth: r.required_string(&raw.depth, "depth"),
                within: r.required_duration(&raw.within, "within"),
                capacity,
                tolerance,
                baseline,
            })
        }
        "scale-out" => {
            if raw.target.is_none() {
                r.missing("target");
            }
            for (key, v) in [("n", &raw.n), ("max", &raw.max)] {
                if let Some(v) = v
                    && *v.get_ref() == 0
                {
                    r.c.error(v.span(), format!("`{key}` must be at least 1"));
                }
            }
            PromiseKind::ScaleOut(ScaleOut {
                group: r.string(&raw.group),
                instances: r.required_string(&raw.instances, "instances"),
                depth: r.required_string(&raw.depth, "depth"),
                target: r.positive(&raw.target, 1.0),
                n: r.value(&raw.n),
                max: r.value(&raw.max),
                within: r.required_duration(&raw.within, "within"),
            })
        }
        "scale-in" => PromiseKind::ScaleIn(ScaleIn {
            group: r.string(&raw.group),
            instances: r.required_string(&raw.instances, "instances"),
            depth: r.string(&raw.depth),
            min: r.value(&raw.min).unwrap_or(0),
            within: r.required_duration(&raw.within, "within"),
            after: r.string(&raw.after),
            max_direction_changes: r.value(&raw.max_direction_changes).unwrap_or(2),
            flap_window: r
                .duration(&raw.flap_window)
                .unwrap_or(Duration::from_secs(300)),
        }),
        "threshold" => {
            let mut checks = Vec::new();
            match &raw.checks {
                None => r.missing("checks"),
                Some(list) if list.get_ref().is_empty() => r.c.error(
                    list.span(),
                    "`checks` is empty: list at least one expression like \"p99 < 300ms\"",
                ),
                Some(list) => {
                    for item in list.get_ref() {
                        match item.get_ref().parse::<Expr>() {
                            Ok(e) => checks.push(e),
                            Err(e) => match e.hint() {
                                Some(h) => r.c.error_with_hint(item.span(), e.to_string(), h),
                                None => r.c.error(item.span(), e.to_string()),
                            },
                        }
                    }
                }
            }
            let over = match &raw.over {
                None => Over::Whole,
                Some(s) => s
                    .get_ref()
                    .parse()
                    .unwrap_or_else(|e: super::expr::ExprError| {
                        r.c.error(s.span(), e.to_string());
                        Over::Whole
                    }),
            };
            PromiseKind::Threshold(Threshold {
                checks,
                over,
                stream: r.string(&raw.stream),
            })
        }
        "cost" => {
            let mut price = |v: &Option<Spanned<f64>>| match v {
                Some(p) if !(p.get_ref().is_finite() && *p.get_ref() >= 0.0) => {
                    r.c.error(p.span(), "a price must be a number >= 0");
                    None
                }
                other => other.as_ref().map(|p| *p.get_ref()),
            };
            let instance_hour = price(&raw.instance_hour);
            let gb_second = price(&raw.gb_second);
            let budget = price(&raw.budget);
            if raw.instances.is_some() != raw.instance_hour.is_some() {
                r.c.error(
                    raw.kind.span(),
                    "`instances` and `instance_hour` go together",
                );
            }
            if raw.gb_seconds.is_some() != raw.gb_second.is_some() {
                r.c.error(raw.kind.span(), "`gb_seconds` and `gb_second` go together");
            }
            if raw.instances.is_none() && raw.gb_seconds.is_none() {
                r.c.error(raw.kind.span(), "a `cost` promise needs `instances` + `instance_hour` or `gb_seconds` + `gb_second`");
            }
            PromiseKind::Cost(Cost {
                instances: r.string(&raw.instances),
                instance_hour: instance_hour.unwrap_or(0.0),
                gb_seconds: r.string(&raw.gb_seconds),
                gb_second: gb_second.unwrap_or(0.0),
                budget,
            })
        }
        other => unreachable!("type `{other}` is in TYPES"),
    }
}

/// The `[[promise]]` tables of a file; other tables are ignored (the experiment loader
/// owns them).
#[derive(Debug, Default, Deserialize)]
pub struct PromisesOnly {
    #[serde(default)]
    pub promise: Vec<RawPromise>,
}

/// Parses and validates the promises of an experiment text; every error at once.
pub fn parse_promises(text: &str, path: &Path) -> Result<Vec<Promise>, Diagnostics> {
    let (file, diagnostics) = parse_toml::<PromisesOnly>(text, path);
    let mut c = Collector::new(path, text);
    for d in diagnostics {
        c.push(d);
    }
    let promises = file.map(|f| build(&f.promise, &mut c)).unwrap_or_default();
    c.finish(promises)
}

/// Reads and parses the promises of an experiment file.
pub fn load_promises(path: &Path) -> Result<Vec<Promise>, Diagnostics> {
    let text = read_config(path)?;
    parse_promises(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Promise>, Diagnostics> {
        parse_promises(text, Path::new("exp.toml"))
    }

    #[test]
    fn parses_defaults_and_names() {
        let p = parse(
            r#"
            [target]
            whatever = 1
            [[promise]]
            type = "failover"
            fault = "kill-web"
            within = "30s"
            eps = "2%"
            [[promise]]
            type = "threshold"
            checks = ["p99 < 300ms", "error_rate < 0.1%"]
            over = "during:kill-web"
            "#,
        )
        .unwrap();
        assert_eq!(p[0].name, "failover:kill-web");
        let PromiseKind::Failover(f) = &p[0].kind else {
            panic!()
        };
        assert_eq!(
            (f.eps, f.k, f.hold, f.within),
            (0.02, 2.0, Duration::from_secs(10), Duration::from_secs(30))
        );
        assert_eq!(p[1].name, "threshold:during:kill-web");
    }

    #[test]
    fn reports_every_error_with_its_place() {
        let text = "[[promise]]\ntype = \"failover\"\nfault = \"f\"\ndepth = \"q\"\nwithin = \"soon\"\n\n[[promise]]\ntype = \"threshold\"\nchecks = [\"p98 < 1s\"]\n\n[[promise]]\ntype = \"scale-up\"\n";
        let err = parse(text).unwrap_err();
        let msgs: Vec<String> = err
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(err.count(), 4, "{msgs:?}");
        assert!(
            msgs[0].starts_with("4:9 `depth` does not apply"),
            "{msgs:?}"
        );
        assert!(msgs[1].starts_with("5:10 expected a duration"), "{msgs:?}");
        assert!(msgs[2].starts_with("9:11 unknown metric `p98`"), "{msgs:?}");
        assert!(
            msgs[3].starts_with("12:8 unknown promise type `scale-up`"),
            "{msgs:?}"
        );
    }

    #[test]
    fn unknown_keys_and_missing_keys() {
        let err =
            parse("[[promise]]\ntype = \"drain\"\nfault = \"f\"\ndepht = \"q\"\n").unwrap_err();
        let msgs: Vec<String> = err
            .iter()
            .map(|d| format!("{} {:?}", d.message, d.hint))
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("unknown field `depht`") && m.contains("depth")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("needs `depth`")), "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.contains("needs `within`")),
            "{msgs:?}"
        );
        let err = parse("[[promise]]\ntype = \"no-loss\"\n[[promise]]\ntype = \"no-loss\"\n")
            .unwrap_err();
        assert!(
            err.iter()
                .any(|d| d.message.contains("two promises are named `no-loss`"))
        );
        assert!(
            parse("[[promise]]\ntype = \"buffering\"\nfault=\"f\"\ndepth=\"q\"\neps = 2\n")
                .is_err()
        );
    }
}
