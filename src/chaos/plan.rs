//! [`FaultPlan`]: the faults of an experiment with resolved start times, one entry per
//! occurrence, validated once.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::fault::{Env, FaultError};
use super::guard::{Choice, Guardrails};
use super::journal::FaultRef;
use super::proxy::ProxySpec;
use super::spec::{FaultKind, FaultSpec, PhaseRef, Start};
use crate::aws::AwsTarget;
use crate::config::Document;
use crate::config::diag::{Collector, Diagnostic, Diagnostics};

/// The chaos part of an experiment file: what `__chaos-run` reads (the full experiment file
/// adds target, profile, probes and promises around it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The AWS (or AWS-compatible) target AWS faults act on.
    pub aws: Option<AwsTarget>,
    /// Built-in TCP proxies the run starts before its faults.
    #[serde(default)]
    pub proxy: Vec<ProxySpec>,
    /// The faults: `[[fault]]` tables are taken out of the document and read one by one
    /// ([`read_faults`]) before serde reads the rest.
    #[serde(skip)]
    pub fault: Vec<FaultSpec>,
    /// The guardrails.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Seed for random choices of faults that do not set their own (default: random, journaled).
    pub seed: Option<u64>,
}

/// One occurrence of one fault, at a resolved time.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// Journal identity.
    pub fault: FaultRef,
    /// Offset from the run's start.
    pub start: Duration,
    /// How long until the undo (`None`: instant, irreversible).
    pub duration: Option<Duration>,
    /// The fault.
    pub kind: Arc<FaultKind>,
    /// Seed for the random choice.
    pub seed: u64,
}

/// The validated plan.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// AWS target.
    pub aws: Option<AwsTarget>,
    /// Proxies to start.
    pub proxies: Vec<ProxySpec>,
    /// Guardrails.
    pub guardrails: Guardrails,
    /// Occurrences, by start time.
    pub occurrences: Vec<Occurrence>,
}

/// A problem in the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault `{fault}`: {message}")]
pub struct PlanError {
    /// The fault's name.
    pub fault: String,
    /// What is wrong.
    pub message: String,
}

impl FaultPlan {
    /// Validates `file` and resolves start times; `phase` resolves a profile phase reference
    /// to its offset from the run's start. Every error is returned at once.
    pub fn build(
        file: PlanFile,
        phase: impl Fn(&PhaseRef) -> Option<Duration>,
    ) -> Result<FaultPlan, Vec<PlanError>> {
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        let base_seed = file.seed.unwrap_or_else(rand::random);
        let mut occurrences = Vec::new();
        for (index, spec) in file.fault.iter().enumerate() {
            let fault = spec.kind.fault();
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{index}", fault.type_name()));
            let mut err = |message: String| {
                errors.push(PlanError {
                    fault: name.clone(),
                    message,
                })
            };
            if !names.insert(name.clone()) {
                err("duplicate name".into());
            }
            let start = match &spec.at {
                Start::Offset(d) => Some(*d),
                Start::Phase(p) => match phase(p) {
                    Some(s) => Some(s + p.offset),
                    None => {
                        err(format!("unknown phase `{}`", p.phase));
                        None
                    }
                },
            };
            match (fault.lasts(), spec.duration) {
                (true, None) => err("needs a `duration` (it is undone when it ends)".into()),
                (false, Some(_)) => err(format!(
                    "`{}` is instant and irreversible: remove `duration`",
                    fault.type_name()
                )),
                (true, Some(d)) if d.is_zero() => err("`duration` must be > 0".into()),
                _ => {}
            }
            if let Some(r) = spec.repeat {
                if r.times == 0 {
                    err("`times` must be at least 1".into());
                }
                if r.every < spec.duration.unwrap_or_default() || r.every.is_zero() {
                    err("`every` must be at least `duration` (occurrences may not overlap)".into());
                }
            }
            if let Err(e) = fault.check() {
                err(e.to_string());
            }
            if let Some(p) = fault_proxy(&spec.kind)
                && !file.proxy.iter().any(|x| x.name == p)
            {
                err(format!("no `[[proxy]]` named `{p}`"));
            }
            let Some(start) = start else { continue };
            let repeat = spec.repeat.unwrap_or(super::spec::Repeat {
                every: Duration::ZERO,
                times: 1,
            });
            let kind = Arc::new(spec.kind.clone());
            for k in 0..repeat.times {
                let seed = fault.seed().unwrap_or(base_seed).wrapping_add(
                    (index as u64)
                        .wrapping_mul(1_000_003)
                        .wrapping_add(u64::from(k)),
                );
                occurrences.push(Occurrence {
                    fault: FaultRef {
                        id: format!("{name}#{k}"),
                        name: name.clone(),
                        type_name: fault.type_name().to_owned(),
                    },
                    start: start + repeat.every * k,
                    duration: spec.duration,
                    kind: kind.clone(),
                    seed,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        occurrences.sort_by_key(|o| o.start);
        Ok(FaultPlan {
            aws: file.aws,
            proxies: file.proxy,
            guardrails: file.guardrails,
            occurrences,
        })
    }

    /// Parses a plan file (the chaos part of an experiment, alone: `__chaos-run`) and builds
    /// the plan, every error at its place as in an experiment file; phase references are
    /// refused (there is no profile to resolve them against).
    pub fn parse(text: &str, path: &Path) -> Result<FaultPlan, Diagnostics> {
        let mut c = Collector::new(path, text);
        let plan = Document::parse(&mut c).and_then(|mut doc| {
            let faults = read_faults(&mut doc, &mut c);
            let file: Option<PlanFile> = doc.read(&mut c);
            let (file, specs) = (file?, faults.specs?);
            let file = PlanFile {
                fault: specs,
                ..file
            };
            FaultPlan::build_reporting(file, |_| None, &faults.names, &mut c)
        });
        match (c.finish(()), plan) {
            (Ok(()), Some(plan)) => Ok(plan),
            (Err(d), _) => Err(d),
            (Ok(()), None) => Err(Diagnostics::single(Diagnostic::whole_file(
                path,
                "the fault plan could not be read",
            ))),
        }
    }

    /// [`FaultPlan::parse`] of a text without a file (diagnostics name it `plan.toml`).
    pub fn from_toml(text: &str) -> Result<FaultPlan, Diagnostics> {
        FaultPlan::parse(text, Path::new("plan.toml"))
    }

    /// [`FaultPlan::build`], each error recorded at its fault's table (`names`: every
    /// table's plan name and span, as [`read_faults`] gives them).
    pub fn build_reporting(
        file: PlanFile,
        phase: impl Fn(&PhaseRef) -> Option<Duration>,
        names: &[(String, Range<usize>)],
        c: &mut Collector<'_>,
    ) -> Option<FaultPlan> {
        match FaultPlan::build(file, phase) {
            Ok(plan) => Some(plan),
            Err(errors) => {
                for e in errors {
                    // `name#k` is occurrence k of `name`.
                    let base = e
                        .fault
                        .rsplit_once('#')
                        .map_or(e.fault.as_str(), |(b, _)| b);
                    let span = names
                        .iter()
                        .find(|(n, _)| *n == e.fault || n == base)
                        .map_or(0..0, |(_, s)| s.clone());
                    let hint = if e.message.starts_with("unknown phase") {
                        "phases are `stages[i]` (the first stream's) or `<stream>.stages[i]`, counted from 0"
                    } else {
                        ""
                    };
                    c.error_with_hint(span, e.to_string(), hint);
                }
                None
            }
        }
    }
}

/// The `[[fault]]` tables of a document, read.
pub struct ReadFaults {
    /// `None` when one of them has errors (recorded).
    pub specs: Option<Vec<FaultSpec>>,
    /// Every table's name as the plan names it (`<type>-<index>` when unnamed) and its
    /// span, also of those with errors.
    pub names: Vec<(String, Range<usize>)>,
}

/// Takes the `[[fault]]` tables out of `doc` and reads each on its own
/// ([`FaultSpec::from_table`]), recording every error in `c`.
pub fn read_faults(doc: &mut Document<'_>, c: &mut Collector<'_>) -> ReadFaults {
    let mut specs = Some(Vec::new());
    let mut names = Vec::new();
    for (i, table) in doc.take_tables("fault", c).into_iter().enumerate() {
        let name = table.str("name").map_or_else(
            || format!("{}-{i}", table.str("type").unwrap_or("?")),
            str::to_owned,
        );
        names.push((name, table.span()));
        match (FaultSpec::from_table(table, c), &mut specs) {
            (Some(f), Some(v)) => v.push(f),
            (Some(_), None) => {}
            (None, _) => specs = None,
        }
    }
    ReadFaults { specs, names }
}

fn fault_proxy(kind: &FaultKind) -> Option<&str> {
    match kind {
        FaultKind::Latency(f) => Some(&f.proxy),
        FaultKind::Blackhole(f) => Some(&f.proxy),
        FaultKind::ResetPeer(f) => Some(&f.proxy),
        FaultKind::Bandwidth(f) => Some(&f.proxy),
        _ => None,
    }
}

/// One step of a dry run: what would happen, on what, when, and the undo.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// The occurrence.
    pub fault: FaultRef,
    /// When.
    pub start: Duration,
    /// For how long.
    pub duration: Option<Duration>,
    /// Matches and choice.
    pub choice: Choice,
    /// What the change would do and how it would be undone (with current values).
    pub summary: String,
}

/// Resolves one occurrence: selector, guardrails, and the change (previous values read,
/// nothing changed).
pub async fn resolve_occurrence(
    occ: &Occurrence,
    guardrails: &Guardrails,
    env: &Env,
    occurrence_id: &str,
) -> Result<(Choice, super::Change), FaultError> {
    let fault = occ.kind.fault();
    let matched = fault.resolve(env).await?;
    let choice = guardrails.choose(
        &occ.fault.id,
        fault.impact(),
        fault.cap(),
        matched,
        occ.seed,
    )?;
    let change = fault.prepare(env, &choice.chosen, occurrence_id).await?;
    Ok((choice, change))
}

/// Resolves every selector and prints nothing, changes nothing: the plan as it would run.
/// Every failing occurrence is reported.
pub async fn dry_run(plan: &FaultPlan, env: &Env) -> Result<Vec<PlannedStep>, DryRunRefused> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (n, occ) in plan.occurrences.iter().enumerate() {
        match resolve_occurrence(occ, &plan.guardrails, env, &format!("dryrun-{n}")).await {
            Ok((choice, change)) => steps.push(PlannedStep {
                fault: occ.fault.clone(),
                start: occ.start,
                duration: occ.duration,
                choice,
                summary: change.ops().summary(),
            }),
            Err(e) => errors.push((occ.fault.clone(), e)),
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(DryRunRefused { steps, errors })
    }
}

/// A dry run in which some occurrences could not be resolved: those that could, and why
/// the others could not.
#[derive(Debug)]
pub struct DryRunRefused {
    /// The occurrences that resolved.
    pub steps: Vec<PlannedStep>,
    /// The others, each with its error.
    pub errors: Vec<(FaultRef, FaultError)>,
}

/// Whether a dry-run refusal may wait until the fault fires: a selector that matches
/// nothing *now*, for an occurrence that starts later (an autoscaled fleet may be at zero
/// before the load begins). It is resolved again, and refused if still empty, when it fires.
pub fn deferrable(plan: &FaultPlan, fault: &FaultRef, error: &FaultError) -> bool {
    matches!(
        error,
        FaultError::Guard(super::guard::GuardError::EmptySelection { .. })
    ) && plan
        .occurrences
        .iter()
        .any(|o| o.fault.id == fault.id && !o.start.is_zero())
}

/// The dry-run plan as a user reads it.
pub fn render_dry_run(steps: &[PlannedStep]) -> String {
    let mut out = String::from("dry run: nothing will be changed\n");
    for s in steps {
        let when = match s.duration {
            Some(d) => format!(
                "at {} for {}",
                humantime::format_duration(s.start),
                humantime::format_duration(d)
            ),
            None => format!("at {} (instant)", humantime::format_duration(s.start)),
        };
        let _ = writeln!(out, "\n{} [{}] {when}", s.fault.id, s.fault.type_name);
        let matched: Vec<String> = s.choice.matched.iter().map(|r| r.to_string()).collect();
        let chosen: Vec<String> = s.choice.chosen.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(out, "  matched: {}", matched.join(", "));
        let _ = writeln!(
            out,
            "  chosen:  {} (seed {})",
            chosen.join(", "),
            s.choice.seed
        );
        let _ = writeln!(out, "  change:  {}", s.summary);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences_are_expanded_and_phases_resolved() {
        let text = r#"
            seed = 7
            [[fault]]
            name = "d"
            type = "delay-queue"
            at = { phase = "stages[1]", offset = "5s" }
            duration = "10s"
            every = "1m"
            times = 2
            queue = "q"
            delay = "3s"
            "#;
        let mut c = Collector::new(Path::new("p.toml"), text);
        let mut doc = Document::parse(&mut c).unwrap();
        let faults = read_faults(&mut doc, &mut c);
        let file = PlanFile {
            fault: faults.specs.unwrap(),
            ..doc.read(&mut c).unwrap()
        };
        let plan = FaultPlan::build_reporting(
            file,
            |p| (p.phase == "stages[1]").then_some(Duration::from_secs(30)),
            &faults.names,
            &mut c,
        )
        .unwrap();
        let starts: Vec<_> = plan.occurrences.iter().map(|o| o.start.as_secs()).collect();
        assert_eq!(starts, [35, 95]);
        assert_eq!(plan.occurrences[1].fault.id, "d#1");
    }

    #[test]
    fn every_error_is_reported() {
        let errors = FaultPlan::parse(
            r#"
            [[fault]]
            type = "delay-queue"
            at = { phase = "nope" }
            queue = "q"
            delay = "3s"
            [[fault]]
            type = "kill-process"
            at = "1s"
            duration = "1s"
            processes = { pid_file = "/x" }
            count = 1
            [[fault]]
            type = "latency"
            at = "1s"
            duration = "1s"
            proxy = "db"
            latency = "10ms"
            "#,
            Path::new("plan.toml"),
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.count(), 4, "{text:#?}");
        // Each at its fault's table: lines 2, 2 (the first fault has two errors), 7, 13.
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 2, 7, 13], "{text:#?}");
        assert!(text.iter().any(|t| t.contains("unknown phase")));
        assert!(text.iter().any(|t| t.contains("needs a `duration`")));
        assert!(text.iter().any(|t| t.contains("remove `duration`")));
        assert!(text.iter().any(|t| t.contains("no `[[proxy]]` named `db`")));
    }
}
