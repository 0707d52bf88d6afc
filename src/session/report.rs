//! What the terminal shows: the dry-run plan, the verdict table, and the exit outcome of
//! a set of verdicts.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::analyze::{self, RunView, Status, VerdictFile};
use crate::aws::AwsClients;
use crate::chaos::Env;
use crate::chaos::plan::{deferrable, dry_run, render_dry_run};
use crate::cmd::Outcome;
use crate::experiment::Experiment;
use crate::ledger::source::CompletionSourceSpec;
use crate::probe::{ProbeContext, ProbeError, Prober, Sampler};

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

/// Loads the run, evaluates, writes `verdict.json`, prints the table. The loaded view is
/// returned too, for [`write_documents`] to render from without reading the run again.
pub fn analyze_and_report(
    dir: &Path,
    promises: &[analyze::Promise],
) -> anyhow::Result<(VerdictFile, RunView)> {
    let progress = crate::term::spinner("analyzing the run");
    let view = analyze::load_run(dir).with_context(|| format!("analyzing {}", dir.display()))?;
    let file = analyze::verdict_file(dir, promises, &view);
    drop(progress);
    analyze::write_verdict(dir, &file).context("writing verdict.json")?;
    crate::term::document(|d| {
        d.run_dir = Some(dir.to_path_buf());
        d.verdict = Some(file.clone());
    });
    crate::outln!();
    crate::out!(
        "{}",
        analyze::render_table_with(&file.verdicts, &crate::term::paint)
    );
    let overall = match file.overall {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotEvaluable => "not evaluable",
    };
    crate::outln!("overall: {}", crate::term::paint(file.overall, overall));
    Ok((file, view))
}

/// The documents a finished run leaves for people and CI, written (again) from its files:
/// `report.html`, `junit.xml` and `summary.md`. A document that cannot be written is said on
/// stderr and never changes the run's exit code: the run's data is already on disk.
/// `view`, when given, is the run as [`analyze_and_report`] just loaded it.
pub fn write_documents(dir: &Path, view: Option<RunView>) {
    crate::report::write_and_announce_with(dir, view);
    crate::ci::write_reports_or_warn(dir);
}

/// How long a dry run waits for one sample of an AWS probe.
const DRY_RUN_SAMPLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The AWS part of a dry run: who the credentials act as, the region, and every queue the
/// run reads, resolved. Whether the credentials work, and whether every queue resolved
/// (what did not is printed).
async fn dry_run_aws(clients: &AwsClients, target: &Resolved) -> (bool, bool) {
    match clients.identity().await {
        Ok(Some(id)) => crate::outln!(
            "aws: acting as {} (account {}), region {}",
            id.arn,
            id.account,
            clients.region
        ),
        Ok(None) => crate::outln!(
            "aws: region {}, local endpoints (no STS endpoint to ask who the credentials are)",
            clients.region
        ),
        Err(e) => {
            eprintln!("aws: {e}");
            return (false, false);
        }
    }
    let completions = target.completions.iter().filter_map(|c| match c {
        CompletionSourceSpec::Sqs(s) => Some(("completions queue", &s.queue)),
        _ => None,
    });
    let queues = [
        ("queue", target.queue.as_ref()),
        ("dlq", target.dlq.as_ref()),
    ]
    .into_iter()
    .filter_map(|(label, q)| Some((label, q?)))
    .chain(completions);
    let mut ok = true;
    for (label, queue) in queues {
        match queue.url(&clients.sqs).await {
            Ok(url) => crate::outln!("{label}: {url}"),
            Err(e) => {
                eprintln!("{label}: {e}");
                ok = false;
            }
        }
    }
    (true, ok)
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
    let mut out = crate::term::human();
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
    // `aws_ok`: the credentials work (no point sampling AWS probes otherwise).
    let aws_ok = match &target.clients {
        Some(clients) => {
            let (credentials, queues) = dry_run_aws(clients, target).await;
            if !(credentials && queues) {
                code = Outcome::Error;
            }
            credentials
        }
        None => true,
    };
    if let Err(e) = Sampler::from_specs(&exp.probes, probes) {
        eprintln!("probes: {e}");
        code = Outcome::Error;
    }
    for p in &exp.probes {
        // AWS probes are read-only: one sample proves the resource exists and may be read.
        let aws_probe = p.kind.is_aws();
        if !(aws_probe && aws_ok) {
            crate::outln!("probe {}: every {}s", p.name, p.every_secs());
            continue;
        }
        match Prober::new(&p.kind, probes) {
            Ok(mut prober) => match prober.sample_within(p.timeout.max(DRY_RUN_SAMPLE)).await {
                Ok(v) => crate::outln!("probe {}: every {}s, now {v}", p.name, p.every_secs()),
                // The call was allowed and the metric is simply quiet (or late): not a fault
                // of the experiment, but worth seeing.
                Err(e @ ProbeError::NoData(_)) => {
                    crate::outln!(
                        "probe {}: every {}s, no value yet: {e}",
                        p.name,
                        p.every_secs()
                    )
                }
                Err(e) => {
                    eprintln!("probe {}: {e}", p.name);
                    code = Outcome::Error;
                }
            },
            Err(e) => {
                eprintln!("probe {}: {e}", p.name);
                code = Outcome::Error;
            }
        }
    }
    for p in &exp.promises {
        crate::outln!("promise {}", p.name);
    }
    let actions = crate::experiment::iam::aws_actions(exp);
    if !actions.is_empty() {
        let actions: Vec<&str> = actions.into_iter().collect();
        crate::outln!("IAM actions this run calls: {}", actions.join(", "));
    }
    match dry_run(&exp.plan, env).await {
        Ok(steps) => crate::out!("{}", render_dry_run(&steps)),
        Err(refused) => {
            crate::out!("{}", render_dry_run(&refused.steps));
            for (f, e) in refused.errors {
                if deferrable(&exp.plan, &f, &e) {
                    crate::outln!("\n{}: {e} now; it is resolved again when it fires", f.id);
                } else {
                    eprintln!("fault {}: {e}", f.id);
                    code = Outcome::Error;
                }
            }
        }
    }
    Ok(code)
}
