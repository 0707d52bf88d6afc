//! `shakedown run` of an experiment with a `[sweep]`: the experiment once per memory size
//! of the swept function, each a complete run (its own fresh sandbox and run directory,
//! `<sweep dir>/sweep/<size>mb/`), one after the other; then each run's `verdict.json` and
//! `bus.json` are read back, judged ([`crate::sweep::judge`]), written to `sweep.json` and
//! printed. Ctrl-C/SIGTERM stops the run going on as every run stops (faults undone,
//! results analyzed) and starts no further size.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use crate::analyze::verdict::Figure;
use crate::analyze::{Status, VerdictFile};
use crate::cmd::Outcome;
use crate::experiment::sweep::{Sweep, set_memory};
use crate::experiment::{Experiment, TargetSpec};
use crate::results::file::{read_json, write_json_atomic};
use crate::results::{RunDir, RunMeta, RunStatus};
use crate::sweep::{Accounting, Plan, PromiseOutcome, SizeRun, join, judge, render_table};

use super::experiment::{RunOptions, run_experiment};

/// The sub-directory of a sweep's directory holding one run per size.
pub const RUNS_DIR: &str = "sweep";

/// Runs `exp`'s sweep (it must have one): one run per size, then `sweep.json` and the table.
pub async fn run_sweep(
    exp: Experiment,
    opts: &RunOptions,
    command: Vec<String>,
) -> anyhow::Result<Outcome> {
    let Some(sweep) = exp.sweep.clone() else {
        bail!("internal: run_sweep on an experiment without [sweep]");
    };
    if opts.arch.is_some() {
        bail!(
            "--arch does not apply to a sweep: [sweep] sets the memory of a function of the file's event-driven sandbox"
        );
    }
    if opts.dry_run {
        crate::outln!(
            "sweep: would run the experiment {} times, function `{}` at {} MB; the plan of one run:",
            sweep.memory_mb.len(),
            sweep.function,
            join(&sweep.memory_mb)
        );
        return run_experiment(sized(&exp, &sweep, sweep.memory_mb[0])?, opts, command).await;
    }

    let id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| crate::results::run_id(&exp.name, SystemTime::now()));
    let dir = RunDir::create(&opts.results, &id).with_context(|| {
        format!(
            "cannot create a run directory under {}",
            opts.results.display()
        )
    })?;
    dir.write_experiment(&exp.text)
        .with_context(|| format!("writing {}", dir.experiment().display()))?;
    crate::outln!(
        "shakedown run: sweep of function `{}` over {} MB, one run each, results in {}",
        sweep.function,
        join(&sweep.memory_mb),
        dir.path().display()
    );

    // Every run listens for Ctrl-C while it records; this listener also hears one that
    // comes between runs (while a sandbox starts), so that no further size is started.
    let stop = CancellationToken::new();
    let listener = crate::shutdown::listen(stop.clone(), crate::shutdown::Announce::Log);
    let mut runs = Vec::new();
    let mut outcome = None;
    for (i, &mb) in sweep.memory_mb.iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        crate::outln!(
            "\n== sweep {}/{}: function `{}` at {mb} MB ==",
            i + 1,
            sweep.memory_mb.len(),
            sweep.function
        );
        let name = format!("{mb}mb");
        let sub_opts = RunOptions {
            results: dir.path().join(RUNS_DIR),
            run_id: Some(name.clone()),
            ..opts.clone()
        };
        let sub = sized(&exp, &sweep, mb)?;
        let result = run_experiment(sub, &sub_opts, command.clone()).await;
        let run_dir = RunDir::at(&dir.path().join(RUNS_DIR).join(&name));
        let relative = format!("{RUNS_DIR}/{name}");
        match result {
            Err(e) => {
                eprintln!("sweep: the run at {mb} MB failed: {e:#}");
                runs.push(SizeRun {
                    memory_mb: mb,
                    run_dir: relative,
                    verdict: Err(format!("the run failed: {e:#}")),
                    accounting: Err("the run failed".into()),
                });
                outcome = Some(Outcome::Error);
                break;
            }
            Ok(o) => {
                runs.push(read_size(&run_dir, &relative, mb, &sweep));
                let interrupted = stop.is_cancelled()
                    || matches!(run_status(&run_dir), Some(RunStatus::Interrupted));
                if interrupted {
                    stop.cancel();
                    break;
                }
                if o == Outcome::Error {
                    // Faults that failed or an undo that failed: the sweep's other sizes
                    // would run on a system in an unknown state.
                    eprintln!(
                        "sweep: the run at {mb} MB ended in an error; stopping the sweep (see {})",
                        run_dir.path().display()
                    );
                    outcome = Some(Outcome::Error);
                    break;
                }
            }
        }
    }
    let interrupted = stop.is_cancelled();
    listener.abort();
    if interrupted {
        crate::outln!(
            "sweep: interrupted after {} of {} sizes",
            runs.len(),
            sweep.memory_mb.len()
        );
    }

    let file = judge(&plan(&sweep), &runs);
    let path = dir.path().join(crate::results::dir::SWEEP_FILE);
    write_json_atomic(&path, &file).with_context(|| format!("writing {}", path.display()))?;
    crate::outln!();
    crate::out!("{}", render_table(&file));
    crate::outln!("results: {}", path.display());
    // `--output json`: the sweep, not the last size's run, which each run put there.
    crate::term::document(|d| {
        d.run_dir = Some(dir.path().to_path_buf());
        d.verdict = None;
        d.streams = None;
        d.sweep = Some(file.clone());
    });
    if interrupted {
        return Ok(Outcome::Error);
    }
    if let Some(o) = outcome {
        return Ok(o);
    }
    Ok(match file.status {
        Status::Pass => Outcome::Ok,
        Status::Fail | Status::NotEvaluable => Outcome::Failed,
    })
}

/// The experiment with the swept function at `mb`, as one ordinary run of it (no sweep);
/// its `experiment.toml` copy says which size it ran.
fn sized(exp: &Experiment, sweep: &Sweep, mb: u32) -> anyhow::Result<Experiment> {
    let mut sub = exp.clone();
    sub.sweep = None;
    let set = match &mut sub.target {
        TargetSpec::Sandbox(sb) => set_memory(&mut sb.config, &sweep.function, mb),
        TargetSpec::System(_) => false,
    };
    if !set {
        bail!(
            "internal: [sweep] function `{}` is not a sandbox function",
            sweep.function
        );
    }
    sub.text = format!(
        "# shakedown run of a [sweep]: this run set function `{}` to memory_mb = {mb}.\n{}",
        sweep.function, exp.text
    );
    Ok(sub)
}

fn plan(sweep: &Sweep) -> Plan {
    Plan {
        function: sweep.function.clone(),
        promise: sweep.promise.clone(),
        figure: sweep.figure.clone(),
        memory_mb: sweep.memory_mb.clone(),
        price_per_gb_second: sweep.price_per_gb_second,
        price_per_request: sweep.price_per_request,
    }
}

fn run_status(dir: &RunDir) -> Option<RunStatus> {
    read_json::<RunMeta>(&dir.run_json())
        .ok()
        .flatten()
        .map(|m| m.status)
}

/// What one size's run recorded: the latency promise's verdict, the function's accounting.
fn read_size(dir: &RunDir, relative: &str, mb: u32, sweep: &Sweep) -> SizeRun {
    SizeRun {
        memory_mb: mb,
        run_dir: relative.to_string(),
        verdict: read_verdict(&dir.verdict(), sweep),
        accounting: read_accounting(&dir.bus(), &sweep.function),
    }
}

fn read_verdict(path: &Path, sweep: &Sweep) -> Result<PromiseOutcome, String> {
    let file: VerdictFile = read_json(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no {} in the run", file_name(path)))?;
    let v = file
        .verdicts
        .iter()
        .find(|v| v.promise == sweep.promise)
        .ok_or_else(|| format!("no verdict for `{}` in {}", sweep.promise, path.display()))?;
    Ok(PromiseOutcome {
        status: v.status,
        figure: match v.figures.get(&sweep.figure) {
            Some(Figure::Number(n)) => Some(*n),
            _ => None,
        },
        reason: v
            .reason
            .clone()
            .or_else(|| (v.status != Status::Pass).then(|| v.summary.clone())),
    })
}

/// The function's `invocations` and `billed_gb_seconds` in the run's `bus.json`.
fn read_accounting(path: &Path, function: &str) -> Result<Accounting, String> {
    let stats: serde_json::Value = read_json(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no {} in the run (the bus's counters)", file_name(path)))?;
    let f = stats
        .get("functions")
        .and_then(|f| f.get(function))
        .ok_or_else(|| format!("{} has no function `{function}`", path.display()))?;
    let invocations = f
        .get("invocations")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("{}: `{function}` has no `invocations`", path.display()))?;
    let billed_gb_seconds = f
        .get("billed_gb_seconds")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| {
            format!(
                "{}: `{function}` has no `billed_gb_seconds`",
                path.display()
            )
        })?;
    Ok(Accounting {
        invocations,
        billed_gb_seconds,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
