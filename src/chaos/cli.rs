//! Command-line entry points: `shakedown recover` and the hidden `shakedown __chaos-run`
//! (runs a fault plan alone, for tests and for debugging experiments' chaos parts).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::fault::Env;
use super::plan::{FaultPlan, dry_run, render_dry_run};
use super::recover::tags::recover_from_tags;
use super::recover::{RecoverError, recover_run, run_dirs};
use super::runner::Runner;
use crate::aws::AwsTarget;

/// `shakedown recover [RUN_DIR | --all | --from-tags] [--results DIR]`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverArgs {
    /// The run directory (`results/<run-id>`) whose faults to undo.
    #[arg(
        required_unless_present_any = ["all", "from_tags"],
        conflicts_with_all = ["all", "from_tags"]
    )]
    pub run_dir: Option<PathBuf>,
    /// Recover every run under the results directory.
    #[arg(long, conflicts_with = "from_tags")]
    pub all: bool,
    /// The results directory (for `--all`; with `--from-tags`, where live runs' locks and
    /// journals are looked for).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Recover from the `shakedown:undo:<run-id>` tags on the target's queues and
    /// instances, without the journal (e.g. after losing the disk).
    #[arg(long)]
    pub from_tags: bool,
    /// With `--from-tags`: the experiment file whose `[target.aws]` (or `[aws]`) table names
    /// the target.
    #[arg(long, value_name = "FILE", requires = "from_tags")]
    pub experiment: Option<PathBuf>,
    /// With `--from-tags`: the endpoint of every service (replaces the file's endpoints).
    #[arg(long, value_name = "URL", requires = "from_tags")]
    pub endpoint_url: Option<String>,
    /// With `--from-tags`: the region (replaces the file's).
    #[arg(long, requires = "from_tags")]
    pub region: Option<String>,
    /// With `--from-tags`: only the tags of this run.
    #[arg(long, value_name = "ID", requires = "from_tags")]
    pub run_id: Option<String>,
}

/// What `recover` does, validated from [`RecoverArgs`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecoverMode {
    /// Run directories, from their journals.
    Journals(Vec<PathBuf>),
    /// The undo tags on a target's resources.
    Tags {
        /// The target.
        target: AwsTarget,
        /// Only this run's tags.
        run_id: Option<String>,
        /// Where live runs' locks and journals are.
        results: PathBuf,
    },
}

impl RecoverArgs {
    /// The mode, with the `--from-tags` target read from the experiment file and flags.
    pub fn mode(&self) -> anyhow::Result<RecoverMode> {
        if !self.from_tags {
            return Ok(RecoverMode::Journals(match &self.run_dir {
                Some(d) => vec![d.clone()],
                None => run_dirs(&self.results),
            }));
        }
        let mut target = match &self.experiment {
            Some(path) => experiment_target(path)?,
            None if self.endpoint_url.is_none() && self.region.is_none() => anyhow::bail!(
                "--from-tags needs the target: --experiment FILE, --endpoint-url URL or --region REGION"
            ),
            None => AwsTarget::default(),
        };
        if let Some(url) = &self.endpoint_url {
            target.endpoint_url = Some(url.clone());
            target.ec2_endpoint_url = None;
            target.sqs_endpoint_url = None;
        }
        if let Some(region) = &self.region {
            target.region = Some(region.clone());
        }
        Ok(RecoverMode::Tags {
            target,
            run_id: self.run_id.clone(),
            results: self.results.clone(),
        })
    }
}

/// The `[target.aws]` (or, as in a plan file, `[aws]`) table of an experiment file; the
/// rest of the file is not read.
pub fn experiment_target(path: &Path) -> anyhow::Result<AwsTarget> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let nested = table
        .get("target")
        .and_then(|t| t.as_table())
        .and_then(|t| t.get("aws"));
    let aws = match (nested, table.get("aws")) {
        (Some(_), Some(_)) => {
            anyhow::bail!("{}: both [target.aws] and [aws]: keep one", path.display())
        }
        (Some(t), None) | (None, Some(t)) => t.clone(),
        (None, None) => anyhow::bail!("{}: no [target.aws] or [aws] table", path.display()),
    };
    aws.try_into()
        .with_context(|| format!("{}: the AWS target", path.display()))
}

/// Undoes what dead runs left applied. Exit code 0: nothing is left applied; 2: an undo
/// failed (the journal and the output say what is still applied).
pub async fn recover(args: RecoverArgs) -> anyhow::Result<u8> {
    let dirs = match args.mode()? {
        RecoverMode::Journals(dirs) => dirs,
        RecoverMode::Tags {
            target,
            run_id,
            results,
        } => return recover_tags(&target, run_id.as_deref(), &results).await,
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

async fn recover_tags(
    target: &AwsTarget,
    run_id: Option<&str>,
    results: &Path,
) -> anyhow::Result<u8> {
    let env = Env::new(Some(target.clone()));
    let r = recover_from_tags(&env, target, results, run_id)
        .await
        .context("recovering from undo tags")?;
    if r.undone.is_empty() && r.failed.is_empty() && r.skipped.is_empty() {
        println!("no undo tags: nothing to undo");
    }
    for line in r.undone.iter().map(|u| format!("undone {u}")) {
        println!("{line}");
    }
    for line in r.skipped.iter().chain(&r.notes) {
        println!("{line}");
    }
    for f in &r.failed {
        eprintln!("UNDO FAILED, still applied: {f}");
    }
    Ok(if r.failed.is_empty() { 0 } else { 2 })
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
    println!("chaos run {}", report.summary());
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
