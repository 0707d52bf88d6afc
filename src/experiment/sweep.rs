//! `[sweep]`: run the experiment once per memory size of one sandbox function and find the
//! cheapest size that keeps a latency promise (what AWS Lambda Power Tuning does for real
//! functions). This module reads and validates the table; the sub-runs are
//! [`crate::session::sweep`], the table and `sweep.json` are [`crate::sweep`].
//! User documentation: `docs/experiments.md`, `[sweep]`.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::TargetSpec;
use crate::analyze::PromiseKind;
use crate::analyze::expr::Metric;
use crate::analyze::spec::ReadPromise;
use crate::config::diag::{Collector, name_hint};
use crate::sandbox::config::{Arch, SandboxConfig};

/// Lambda's smallest memory size, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Lambda's largest memory size, in MB.
pub const MAX_MEMORY_MB: u32 = 10_240;
/// AWS Lambda's x86 on-demand price per GB-second (USD, us-east-1).
pub const DEFAULT_PRICE_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// AWS Lambda's price per request (USD: 0.20 per million).
pub const DEFAULT_PRICE_PER_REQUEST: f64 = 0.000_000_2;

/// A validated `[sweep]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The sandbox bus function whose `memory_mb` is swept.
    pub function: String,
    /// The sizes, in the order written (each in 128..=10240, no duplicates).
    pub memory_mb: Vec<u32>,
    /// The latency promise each size must meet (a `threshold` promise with a latency check).
    pub promise: String,
    /// The figure of that promise's verdict the table shows: its first latency check's
    /// (`e2e_p99_ms`, `p99_ms`...).
    pub figure: String,
    /// USD per GB-second.
    pub price_per_gb_second: f64,
    /// USD per invocation.
    pub price_per_request: f64,
}

/// The keys of `[sweep]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweep {
    /// A function of `[[target.sandbox.bus.embedded.functions]]`. Required.
    function: Option<Spanned<String>>,
    /// The sizes to run, in MB. Required, non-empty.
    memory_mb: Option<Spanned<Vec<Spanned<i64>>>>,
    /// The name of the latency promise to meet. Required.
    promise: Option<Spanned<String>>,
    /// USD per GB-second (default: Lambda x86, 0.0000166667).
    price_per_gb_second: Option<Spanned<f64>>,
    /// USD per request (default 0.0000002).
    price_per_request: Option<Spanned<f64>>,
}

/// Validates `[sweep]` against the target and the promises (every error recorded in `c`,
/// at its value). `None` when it has errors.
pub(super) fn build(
    raw: &Spanned<RawSweep>,
    target: Option<&TargetSpec>,
    promises: &[ReadPromise],
    c: &mut Collector<'_>,
) -> Option<Sweep> {
    let table = raw.span();
    let r = raw.get_ref();
    let mut errors = 0;
    let mut error = |c: &mut Collector<'_>, span: Range<usize>, msg: String, hint: String| {
        errors += 1;
        c.error_with_hint(span, msg, hint);
    };

    let function = match &r.function {
        None => {
            error(
                c,
                table.clone(),
                "[sweep] has no `function`".into(),
                "add `function = \"<name>\"`: a function of [[target.sandbox.bus.embedded.functions]]"
                    .into(),
            );
            None
        }
        Some(f) => Some(f),
    };
    match target {
        Some(TargetSpec::System(_)) => error(
            c,
            table.clone(),
            "[sweep] needs a `[target.sandbox]`: a memory sweep sets the memory of the sandbox's own functions, and cannot yet change a function on AWS".into(),
            "run the sweep on a sandbox model of the function (docs/bus.md), or remove [sweep]".into(),
        ),
        Some(TargetSpec::Sandbox(sb)) => {
            if let Some(f) = function
                && let Err((msg, hint)) = check_function(&sb.config, f.get_ref())
            {
                error(c, f.span(), msg, hint);
            }
        }
        None => {}
    }

    let mut sizes = Vec::new();
    match &r.memory_mb {
        None => error(
            c,
            table.clone(),
            "[sweep] has no `memory_mb`".into(),
            "add the sizes to run, e.g. `memory_mb = [128, 512, 1024, 1769, 3008]`".into(),
        ),
        Some(list) if list.get_ref().is_empty() => error(
            c,
            list.span(),
            "[sweep] `memory_mb` is empty".into(),
            "list at least one size, e.g. `memory_mb = [128, 1024]`".into(),
        ),
        Some(list) => {
            for v in list.get_ref() {
                let mb = *v.get_ref();
                match u32::try_from(mb) {
                    Ok(mb) if (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb) => {
                        if sizes.contains(&mb) {
                            error(
                                c,
                                v.span(),
                                format!("[sweep] `memory_mb` lists {mb} twice"),
                                "remove one: each size is run once".into(),
                            );
                        } else {
                            sizes.push(mb);
                        }
                    }
                    _ => error(
                        c,
                        v.span(),
                        format!("[sweep] memory size {mb} MB is out of range"),
                        format!(
                            "a Lambda function has {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB of memory"
                        ),
                    ),
                }
            }
        }
    }

    let mut figure = None;
    match &r.promise {
        None => error(
            c,
            table.clone(),
            "[sweep] has no `promise`".into(),
            "add `promise = \"<name>\"`: the latency promise (a `threshold` with a latency check, e.g. `e2e_p99 < 1s`) each size must meet".into(),
        ),
        Some(p) => match promises.iter().find(|rp| rp.name == *p.get_ref()) {
            None => {
                let names: Vec<&str> = promises.iter().map(|p| p.name.as_str()).collect();
                error(
                    c,
                    p.span(),
                    format!(
                        "[sweep] `promise` names `{}`, which is not a `[[promise]]` of this file",
                        p.get_ref()
                    ),
                    name_hint(p.get_ref(), &names),
                );
            }
            // A promise with errors has them reported already.
            Some(ReadPromise { promise: None, .. }) => {}
            Some(ReadPromise {
                promise: Some(promise),
                ..
            }) => match latency_figure(&promise.kind) {
                Some(key) => figure = Some(key),
                None => error(
                    c,
                    p.span(),
                    format!(
                        "[sweep] `promise` names `{}`, which is not a latency promise",
                        p.get_ref()
                    ),
                    "name a `threshold` promise with a latency check (`p99 < 300ms`, `e2e_p99 < 1s`): the sweep looks for the cheapest size that meets it".into(),
                ),
            },
        },
    }

    let mut price = |v: &Option<Spanned<f64>>, key: &str, default: f64| match v {
        None => Some(default),
        Some(p) if p.get_ref().is_finite() && *p.get_ref() >= 0.0 => Some(*p.get_ref()),
        Some(p) => {
            error(
                c,
                p.span(),
                format!("[sweep] `{key}` must be a price of zero or more (USD)"),
                format!("for example `{key} = {default}`"),
            );
            None
        }
    };
    let price_per_gb_second = price(
        &r.price_per_gb_second,
        "price_per_gb_second",
        DEFAULT_PRICE_PER_GB_SECOND,
    );
    let price_per_request = price(
        &r.price_per_request,
        "price_per_request",
        DEFAULT_PRICE_PER_REQUEST,
    );
    if errors > 0 {
        return None;
    }
    Some(Sweep {
        function: function?.get_ref().clone(),
        memory_mb: sizes,
        promise: r.promise.as_ref()?.get_ref().clone(),
        figure: figure?,
        price_per_gb_second: price_per_gb_second?,
        price_per_request: price_per_request?,
    })
}

/// The function must be one of the sandbox's embedded bus: arch `event-driven`, no external
/// `bus.url`, and declared there (or the default `handler` when no `[bus.embedded]`).
fn check_function(config: &SandboxConfig, function: &str) -> Result<(), (String, String)> {
    if config.arch != Arch::EventDriven {
        return Err((
            format!(
                "[sweep] sweeps function `{function}`, and this sandbox (arch `{}`) runs no functions",
                config.arch.name()
            ),
            "functions run on the event bus of `arch = \"event-driven\"` (docs/bus.md)".into(),
        ));
    }
    if config.bus.url.is_some() {
        return Err((
            format!(
                "[sweep] sweeps function `{function}`, and this sandbox forwards events to an external bus (`bus.url`)"
            ),
            "remove `bus.url` so that the sandbox runs its own bus and functions".into(),
        ));
    }
    let bus = config.embedded_bus();
    if bus.functions.iter().any(|f| f.name == function) {
        return Ok(());
    }
    let names: Vec<&str> = bus.functions.iter().map(|f| f.name.as_str()).collect();
    Err((
        format!(
            "[sweep] sweeps function `{function}`, which is not a function of the sandbox's bus"
        ),
        format!(
            "{} ([[target.sandbox.bus.embedded.functions]])",
            name_hint(function, &names)
        ),
    ))
}

/// The figure key of a latency promise's first latency check (`e2e_p99_ms`), `None` for a
/// promise that judges no latency.
fn latency_figure(kind: &PromiseKind) -> Option<String> {
    match kind {
        PromiseKind::Threshold(t) => t
            .checks
            .iter()
            .find(|c| matches!(c.metric, Metric::Latency(_) | Metric::E2e(_)))
            .map(|c| c.metric.key()),
        _ => None,
    }
}

/// `config` with function `function` at `memory_mb` (the default bus made explicit when the
/// file has no `[bus.embedded]`). `false` when there is no such function.
pub fn set_memory(config: &mut SandboxConfig, function: &str, memory_mb: u32) -> bool {
    let mut bus = config.embedded_bus();
    let Some(f) = bus.functions.iter_mut().find(|f| f.name == function) else {
        return false;
    };
    f.memory_mb = memory_mb;
    config.bus.embedded = Some(bus);
    true
}
