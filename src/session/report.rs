//! What the terminal shows: the dry-run plan, the verdict table, and the exit outcome of
//! a set of verdicts.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::analyze::{self, Status, VerdictFile};
use crate::chaos::Env;
use crate::chaos::plan::{deferrable, dry_run, render_dry_run};
use crate::cmd::Outcome;
use crate::experiment::Experiment;
use crate::probe::{ProbeContext, Sampler};

use super::target::Resolved;

/// The exit outcome of a set of verdicts: any fail (or, unless allowed, any not evaluable)
/// is a failed run.
pub fn verdict_outcome(v: &VerdictFile, allow_not_evaluable: bool) -> Outcome {
    let failed = v.verdicts.iter().any(|x| x.status == Status::Fail);
    let unknown = v.verdicts.iter().any(|x| x.status == Status::NotEvaluable);
    if failed || (unknown && !allow_not_evaluable) {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

/// Loads the run, evaluates, writes `verdict.json`, prints the table.
pub fn analyze_and_report(
    dir: &Path,
    promises: &[analyze::Promise],
) -> anyhow::Result<VerdictFile> {
    let file = analyze::analyze_dir(dir, promises)
        .with_context(|| format!("analyzing {}", dir.display()))?;
    analyze::write_verdict(dir, &file).context("writing verdict.json")?;
    println!();
    print!("{}", analyze::render_table(&file.verdicts));
    println!(
        "overall: {}",
        match file.overall {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotEvaluable => "not evaluable",
        }
    );
    Ok(file)
}

/// `--dry-run`: the target, traffic, fault plan (selectors resolved, nothing changed),
/// probes and promises.
pub async fn dry_run_report(
    exp: &Experiment,
    env: &Env,
    target: &Resolved,
    probes: &ProbeContext,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "experiment \"{}\" ({})", exp.name, exp.path.display())?;
    writeln!(out, "target: {}", target.describe)?;
    writeln!(
        out,
        "traffic: profile \"{}\", {} stream(s), {}, seed {seed}",
        exp.profile.name,
        exp.profile.streams.len(),
        crate::units::format_duration(exp.profile.duration())
    )?;
    writeln!(
        out,
        "cool-down: up to {}",
        crate::units::format_duration(exp.cooldown.max)
    )?;
    drop(out);
    let mut code = Outcome::Ok;
    if let Err(e) = Sampler::from_specs(&exp.probes, probes) {
        eprintln!("probes: {e}");
        code = Outcome::Error;
    }
    for p in &exp.probes {
        println!("probe {}: every {}s", p.name, p.every_secs());
    }
    for p in &exp.promises {
        println!("promise {}", p.name);
    }
    match dry_run(&exp.plan, env).await {
        Ok(steps) => print!("{}", render_dry_run(&steps)),
        Err(errors) => {
            for (f, e) in errors {
                if deferrable(&exp.plan, &f, &e) {
                    println!("\n{}: {e} now; it is resolved again when it fires", f.id);
                } else {
                    eprintln!("fault {}: {e}", f.id);
                    code = Outcome::Error;
                }
            }
        }
    }
    Ok(code)
}
