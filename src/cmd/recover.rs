//! `shakedown recover`: undo every fault a crashed run left applied, from the run's
//! journal (`recover RUN_DIR`, `--all`) or from the undo tags on the target's resources
//! (`--from-tags`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::aws::AwsTarget;
use crate::chaos::Env;
use crate::chaos::recover::tags::recover_from_tags;
use crate::chaos::recover::{RecoverError, recover_run, run_dirs};

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
        /// The target (boxed: it is most of the enum's size).
        target: Box<AwsTarget>,
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
            target: Box::new(target),
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
