//! Command-line entry points: `shakedown recover` and the hidden `shakedown __chaos-run`
//! (runs a fault plan alone, for tests and for debugging experiments' chaos parts).

use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::fault::Env;
use super::plan::{FaultPlan, dry_run, render_dry_run};
use super::recover::{RecoverError, recover_run, run_dirs};
use super::runner::Runner;

/// `shakedown recover [RUN_DIR | --all [--results DIR]]`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverArgs {
    /// The run directory (`results/<run-id>`) whose faults to undo.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub run_dir: Option<PathBuf>,
    /// Recover every run under the results directory.
    #[arg(long)]
    pub all: bool,
    /// The results directory for `--all`.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// Undoes what dead runs left applied. Exit code 0: nothing is left applied; 2: an undo
/// failed (the journal and the output say what is still applied).
pub async fn recover(args: RecoverArgs) -> anyhow::Result<u8> {
    let dirs = match (&args.run_dir, args.all) {
        (Some(d), _) => vec![d.clone()],
        (None, _) => run_dirs(&args.results),
    };
    let env = Env::new(None);
    let mut code = 0;
    for dir in dirs {
        match recover_run(&dir, &env).await {
            Ok(r) => {
                if r.undone.is_empty() && r.failed.is_empty() {
                    println!("{}: nothing to undo", dir.display());
                }
                for u in &r.undone {
                    println!("{}: undone {u}", dir.display());
                }
                for n in &r.notes {
                    println!("{}: {n}", dir.display());
                }
                for f in &r.failed {
                    eprintln!("{}: UNDO FAILED, still applied: {f}", dir.display());
                    code = 2;
                }
            }
            Err(e @ RecoverError::Live { .. }) if args.all => {
                println!("{}: skipped: {e}", dir.display());
            }
            Err(e) => return Err(e).with_context(|| format!("recovering {}", dir.display())),
        }
    }
    Ok(code)
}

/// `shakedown __chaos-run <PLAN> --journal <RUN_DIR> [--dry-run]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosRunArgs {
    /// A TOML file with `[aws]`, `[[proxy]]`, `[[fault]]`, `[guardrails]`.
    pub plan: PathBuf,
    /// The run directory; the journal is `<RUN_DIR>/journal.jsonl`.
    #[arg(long)]
    pub journal: PathBuf,
    /// Resolve every selector, print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a fault plan with the [`Runner`]; Ctrl-C and SIGTERM undo every active fault before
/// exiting. Exit code as [`super::RunReport::exit_code`].
pub async fn chaos_run(args: ChaosRunArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("reading {}", args.plan.display()))?;
    let plan = FaultPlan::from_toml(&text).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!("{}:\n{}", args.plan.display(), list.join("\n"))
    })?;
    let env = Env::new(plan.aws.clone());
    if args.dry_run {
        let proxies = CancellationToken::new();
        let _guard = proxies.clone().drop_guard();
        for spec in &plan.proxies {
            env.proxies
                .insert(super::proxy::start(spec, &proxies).await?);
        }
        return match dry_run(&plan, &env).await {
            Ok(steps) => {
                print!("{}", render_dry_run(&steps));
                Ok(0)
            }
            Err(errors) => {
                for (f, e) in errors {
                    eprintln!("{}: {e}", f.id);
                }
                Ok(2)
            }
        };
    }
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signals(cancel.clone()));
    let report = Runner::new(plan, env, &args.journal).run(cancel).await;
    signals.abort();
    let report = report?;
    println!(
        "chaos run {:?}: {} applied, {} undone{}",
        report.outcome,
        report.applied,
        report.undone,
        report
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    for s in &report.still_applied {
        eprintln!("UNDO FAILED, still applied: {s}");
    }
    Ok(report.exit_code())
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub async fn cancel_on_signals(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    token.cancel();
}
