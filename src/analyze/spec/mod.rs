//! The `[[promise]]` tables of an experiment file.
//!
//! Read the way every "type"-tagged table is (see [`crate::config::document`]): each
//! `[[promise]]` is taken out of the document on its own, its `type` picks the promise's
//! raw parameter struct (in its module under [`super::promises`], `deny_unknown_fields`,
//! every key spanned, the doc comments the user docs), and that struct's
//! [`PromiseParams::build`] validates the values with a [`Reader`], recording every error
//! at its place and declaring the names the promise refers to (faults, probes, streams,
//! completions), which the experiment then checks without knowing any promise type.
//! `docs/promises.md` gives the formulas.
//!
//! Adding a promise type: its module in [`super::promises`] (parameters, raw struct with
//! [`PromiseParams`], `evaluate`), one line in `promise_types!` below, one arm in
//! `promises::evaluate_unguarded`, and its section in `docs/promises.md`.
//!
//! ```toml
//! [[promise]]
//! type = "failover"
//! fault = "kill-web"
//! within = "30s"
//! ```

mod read;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::promises::{
    buffering, cost, drain, failover, function, idle, independent_scaling, isolation, no_loss,
    scale_in, scale_out, threshold,
};
use crate::config::diag::{Collector, Diagnostics, quoted_list};
use crate::config::{Document, Table, read_config};

pub use read::{Ratio, Reader, RefKind, Reference};

/// The raw parameters of one promise type: the keys of its `[[promise]]` table besides
/// `name` and `type`.
pub trait PromiseParams: DeserializeOwned {
    /// Validates the values (every error recorded in `r`, every name the promise refers to
    /// declared there) and returns the promise and its default name.
    fn build(self, r: &mut Reader<'_, '_>) -> (PromiseKind, String);
}

/// A validated promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Promise {
    pub name: String,
    pub kind: PromiseKind,
}

/// A promise as read from its table, with what it refers to.
#[derive(Debug, Clone)]
pub struct ReadPromise {
    /// The validated promise; `None` when its table has errors (recorded).
    pub promise: Option<Promise>,
    /// Its name (given, or the default).
    pub name: String,
    /// The faults, probes and streams it names, each with the span of its value.
    pub refs: Vec<Reference>,
    /// It reads the message ledger's completions (no-loss, end-to-end latency).
    pub completions: bool,
    /// Its `name` (or, unnamed, its `type`) value: where errors about the whole promise go.
    pub span: Range<usize>,
}

/// The promise types: `"type" => Variant(module::Params, module::RawParams)`, one line each.
/// Generates [`PromiseKind`], [`TYPES`] and the dispatch from `type` to the raw struct.
macro_rules! promise_types {
    ($($name:literal => $variant:ident($params:ty, $raw:ty)),* $(,)?) => {
        /// The promise types and their parameters.
        #[derive(Debug, Clone, PartialEq)]
        pub enum PromiseKind {
            $($variant($params),)*
        }

        /// Every `type` of `[[promise]]`.
        pub const TYPES: &[&str] = &[$($name),*];

        /// Reads the parameters of a table of type `ty` (one of [`TYPES`]).
        fn read_params(
            ty: &str,
            table: Table<'_>,
            c: &mut Collector<'_>,
            at: Range<usize>,
        ) -> Read {
            match ty {
                $($name => read_as::<$raw>($name, table, c, at),)*
                _ => unreachable!("`{ty}` is one of TYPES"),
            }
        }
    };
}

promise_types! {
    "failover" => Failover(failover::Failover, failover::RawFailover),
    "buffering" => Buffering(buffering::Buffering, buffering::RawBuffering),
    "no-loss" => NoLoss(no_loss::NoLoss, no_loss::RawNoLoss),
    "drain" => Drain(drain::Drain, drain::RawDrain),
    "scale-out" => ScaleOut(scale_out::ScaleOut, scale_out::RawScaleOut),
    "scale-in" => ScaleIn(scale_in::ScaleIn, scale_in::RawScaleIn),
    "threshold" => Threshold(threshold::Threshold, threshold::RawThreshold),
    "cost" => Cost(cost::Cost, cost::RawCost),
    "function" => Function(function::Function, function::RawFunction),
    "isolation" => Isolation(isolation::Isolation, isolation::RawIsolation),
    "independent-scaling" => IndependentScaling(
        independent_scaling::IndependentScaling,
        independent_scaling::RawIndependentScaling
    ),
    "idle" => Idle(idle::Idle, idle::RawIdle),
}

impl PromiseKind {
    /// How long after the load ends the run must keep watching for this promise to judge
    /// a system that keeps it slowly (`None`: the promise is judged during the load).
    /// Scale-in counts from the backlog's draining, which is never before the load ends
    /// when the load keeps the queue busy: its `within` is the least cool-down that can
    /// tell a slow fleet from one that never scales in.
    pub fn watch_after_load(&self) -> Option<std::time::Duration> {
        match self {
            PromiseKind::ScaleIn(s) if s.after.is_none() => Some(s.within),
            PromiseKind::Idle(i) => Some(i.within),
            _ => None,
        }
    }
}

/// A table read as one promise type's keys: the promise when it has no error, and what it
/// names either way (so that a promise with a bad value still has its names checked).
struct Read {
    built: Option<(PromiseKind, String)>,
    /// The default name, also when the promise has errors.
    name: Option<String>,
    refs: Vec<Reference>,
    completions: bool,
}

/// Reads a table as `R`'s keys and builds it (errors recorded in `c`).
fn read_as<R: PromiseParams>(
    ty: &'static str,
    table: Table<'_>,
    c: &mut Collector<'_>,
    at: Range<usize>,
) -> Read {
    let unknown = |key: &str, takes: &[&str], closest: Option<&str>| {
        closest.is_none().then(|| {
            (
                format!("`{key}` does not apply to a `{ty}` promise"),
                format!("a `{ty}` promise takes {}", quoted_list(takes)),
            )
        })
    };
    let before = c.take();
    let (raw, clean) = table.read_leniently::<R>(c, &unknown);
    let mut r = Reader::new(c, ty, at);
    let built = raw.map(|raw| raw.build(&mut r));
    let (refs, completions) = r.finish();
    let ok = clean && !c.has_errors();
    let mut errors = before;
    errors.extend(c.take());
    errors.into_iter().for_each(|d| c.push(d));
    Read {
        name: built.as_ref().map(|(_, name)| name.clone()),
        built: built.filter(|_| ok),
        refs,
        completions,
    }
}

/// Reads and validates the `[[promise]]` tables (all errors recorded in `c`). Every
/// promise is returned with what it names; `promise` is `None` when it has errors.
pub fn build(tables: Vec<Table<'_>>, c: &mut Collector<'_>) -> Vec<ReadPromise> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for mut table in tables {
        let type_span = table.value_span("type").unwrap_or_else(|| table.span());
        let named = table.split_off(&["name"]);
        let name = named.str("name").map(str::to_owned);
        let name_span = named.value_span("name");
        if let Some(span) = named.value_span("name")
            && name.is_none()
        {
            c.error(span, "`name` must be a string");
        }
        let Some(ty) = table.tag("type", TYPES, c) else {
            continue;
        };
        let read = read_params(ty, table, c, type_span.clone());
        let Some(name) = name.or(read.name) else {
            continue;
        };
        let span = name_span.unwrap_or(type_span);
        let mut built = read.built;
        if !names.insert(name.clone()) {
            c.error_with_hint(
                span.clone(),
                format!("two promises are named `{name}`"),
                "give one of them another `name`",
            );
            built = None;
        }
        out.push(ReadPromise {
            promise: built.map(|(kind, _)| Promise {
                name: name.clone(),
                kind,
            }),
            name,
            refs: read.refs,
            completions: read.completions,
            span,
        });
    }
    out
}

/// Parses and validates the promises of an experiment text (its other tables are the
/// experiment loader's); every error at once.
pub fn parse_promises(text: &str, path: &Path) -> Result<Vec<Promise>, Diagnostics> {
    let mut c = Collector::new(path, text);
    let promises = match Document::parse(&mut c) {
        Some(mut doc) => {
            let tables = doc.take_tables("promise", &mut c);
            build(tables, &mut c)
        }
        None => Vec::new(),
    };
    c.finish(promises.into_iter().filter_map(|p| p.promise).collect())
}

/// Reads and parses the promises of an experiment file.
pub fn load_promises(path: &Path) -> Result<Vec<Promise>, Diagnostics> {
    let text = read_config(path)?;
    parse_promises(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            msgs[0].starts_with("4:1 `depth` does not apply"),
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
