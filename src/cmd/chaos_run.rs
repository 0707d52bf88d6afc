//! The hidden `shakedown __chaos-run`: a fault plan alone, without load (tests, and
//! debugging an experiment's chaos part).

use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::chaos::Env;
use crate::chaos::plan::{FaultPlan, dry_run, render_dry_run};
use crate::chaos::runner::Runner;

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
/// exiting. Exit code as [`crate::chaos::RunReport::exit_code`].
pub async fn chaos_run(args: ChaosRunArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("reading {}", args.plan.display()))?;
    let plan = FaultPlan::parse(&text, &args.plan).map_err(anyhow::Error::new)?;
    let env = Env::new(plan.aws.clone());
    if args.dry_run {
        let proxies = CancellationToken::new();
        let _guard = proxies.clone().drop_guard();
        for spec in &plan.proxies {
            env.proxies
                .insert(crate::chaos::proxy::start(spec, &proxies).await?);
        }
        return match dry_run(&plan, &env).await {
            Ok(steps) => {
                print!("{}", render_dry_run(&steps));
                Ok(0)
            }
            Err(refused) => {
                print!("{}", render_dry_run(&refused.steps));
                for (f, e) in refused.errors {
                    eprintln!("{}: {e}", f.id);
                }
                Ok(2)
            }
        };
    }
    let cancel = CancellationToken::new();
    let signals = crate::shutdown::cancel_on_signals(cancel.clone());
    let report = Runner::new(plan, env, &args.journal).run(cancel).await;
    signals.abort();
    let report = report?;
    println!("chaos run {}", report.summary());
    for s in &report.still_applied {
        eprintln!("UNDO FAILED, still applied: {s}");
    }
    Ok(report.exit_code())
}
