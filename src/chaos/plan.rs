//! [`FaultPlan`]: the faults of an experiment with resolved start times, one entry per
//! occurrence, validated once.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::fault::{Env, FaultError};
use super::guard::{Choice, Guardrails};
use super::journal::FaultRef;
use super::proxy::ProxySpec;
use super::spec::{FaultKind, FaultSpec, PhaseRef, Start};
use crate::aws::AwsTarget;

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
    /// The faults.
    #[serde(default)]
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

    /// Parses a plan file's text (a whole experiment's chaos part) and builds the plan;
    /// phase references are refused (there is no profile to resolve them against).
    pub fn from_toml(text: &str) -> Result<FaultPlan, Vec<PlanError>> {
        let file: PlanFile = toml::from_str(text).map_err(|e| {
            vec![PlanError {
                fault: "(file)".into(),
                message: e.to_string(),
            }]
        })?;
        FaultPlan::build(file, |_| None)
    }
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
pub async fn dry_run(
    plan: &FaultPlan,
    env: &Env,
) -> Result<Vec<PlannedStep>, Vec<(FaultRef, FaultError)>> {
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
        Err(errors)
    }
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
        let file: PlanFile = toml::from_str(
            r#"
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
            "#,
        )
        .unwrap();
        let plan = FaultPlan::build(file, |p| {
            (p.phase == "stages[1]").then_some(Duration::from_secs(30))
        })
        .unwrap();
        let starts: Vec<_> = plan.occurrences.iter().map(|o| o.start.as_secs()).collect();
        assert_eq!(starts, [35, 95]);
        assert_eq!(plan.occurrences[1].fault.id, "d#1");
    }

    #[test]
    fn every_error_is_reported() {
        let errors = FaultPlan::from_toml(
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
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{text:#?}");
        assert!(text.iter().any(|t| t.contains("unknown phase")));
        assert!(text.iter().any(|t| t.contains("needs a `duration`")));
        assert!(text.iter().any(|t| t.contains("remove `duration`")));
        assert!(text.iter().any(|t| t.contains("no `[[proxy]]` named `db`")));
    }
}
