//! Experiment files (`chaos/*.toml`): target + profile(s) + faults + probes + promises +
//! guardrails + cool-down, in one file. User documentation: `docs/experiments.md`.
//!
//! Parsed in the two passes of every config file (see [`crate::config`]): the `[[fault]]`,
//! `[[probe]]`, `[[promise]]` and `[[target.activities]]` tables are taken out of the
//! document and each read on its own (`tables.rs`), the rest read as `RawExperiment`
//! (`check.rs`); every unknown key is reported with a hint. The semantic pass (`Checker`)
//! loads the profiles, builds the fault plan (phases resolved against the profile), and
//! checks that what the promises declare they refer to (faults, probes, streams,
//! completions) exists; every error at the span of the key or value it is about.
//! Everything here is pure except reading the profile files, which goes through a
//! [`Files`] reader so that `demo` can run an experiment built into the binary.

mod check;
mod cooldown;
pub mod iam;
pub mod sweep;
mod tables;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::cooldown::{Condition, Cooldown, CooldownClock, Op};
use crate::analyze::Promise;
use crate::aws::{AwsTarget, QueueRef};
use crate::chaos::plan::FaultPlan;
use crate::chaos::spec::PhaseRef;
use crate::config::Document;
use crate::config::diag::{Collector, Diagnostic, Diagnostics};
use crate::config::profile::Profile;
use crate::ledger::source::CompletionSourceSpec;
use crate::probe::activity::ActivitySourceSpec;
use crate::probe::spec::ProbeSpec;
use crate::sandbox::config::SandboxConfig;

/// Reads the files an experiment names (profiles), given a path as written, resolved
/// against the experiment's directory.
pub trait Files {
    /// The text of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Files built into the binary (the `demo` experiments), by path.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(&'static str, &'static str)]);

impl Files for Embedded {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let wanted = normalize(path);
        self.0
            .iter()
            .find(|(p, _)| normalize(Path::new(p)) == wanted)
            .map(|(_, text)| (*text).to_owned())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not built into the binary")
            })
    }
}

/// `a/b/../c` -> `a/c` (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// A validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// `name`.
    pub name: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// The file.
    pub path: PathBuf,
    /// Its text (copied into the run directory, so `analyze` can re-read the promises).
    pub text: String,
    /// `seed`: schedule and fault choices (`None`: random, recorded in `run.json`).
    pub seed: Option<u64>,
    /// The profiles' streams, merged in file order.
    pub profile: Profile,
    /// The profile files, as resolved.
    pub profile_files: Vec<PathBuf>,
    /// What the run acts on.
    pub target: TargetSpec,
    /// The faults, start times resolved (`aws` is filled in from the target by the run).
    pub plan: FaultPlan,
    /// The probes.
    pub probes: Vec<ProbeSpec>,
    /// The promises.
    pub promises: Vec<Promise>,
    /// The cool-down after the load.
    pub cooldown: Cooldown,
    /// `[sweep]`: run once per memory size of a sandbox function (docs/experiments.md).
    pub sweep: Option<sweep::Sweep>,
}

/// The `[target]` table.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// `[target.sandbox]`: start the embedded sandbox.
    Sandbox(Box<SandboxTarget>),
    /// An existing system: HTTP base URL, AWS (or compatible) endpoints, queues, completions.
    System(Box<SystemTarget>),
}

/// `[target.sandbox]`: a sandbox configuration (the keys of `shakedown sandbox --config`,
/// docs/sandbox.md: `arch`, `variant`, `workers`, `web`, `queue`...), all optional.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxTarget {
    /// The configuration, variant applied and validated (`--arch` may still override).
    pub config: SandboxConfig,
}

/// An existing system.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemTarget {
    /// `http`: base URL the HTTP streams are sent to.
    pub http: Option<String>,
    /// `[target.aws]`: region, profile, endpoints, for SQS streams, probes and faults.
    pub aws: Option<AwsTarget>,
    /// `queue`: the work queue; its depth at the end is the ledger's "still queued".
    pub queue: Option<QueueRef>,
    /// `dlq`: the dead-letter queue, drained at the end into the ledger.
    pub dlq: Option<QueueRef>,
    /// `[[target.completions]]`: where finished work is reported.
    pub completions: Vec<CompletionSourceSpec>,
    /// `[[target.activities]]`: where the system's autoscaler records its decisions.
    pub activities: Vec<ActivitySourceSpec>,
    /// `[target.tls]`: how every HTTP client of the run trusts https servers (paths
    /// resolved against the experiment's directory).
    pub tls: crate::tls::TlsOptions,
    /// `http2 = true`: the load speaks HTTP/2 (ALPN `h2` over https, prior knowledge over
    /// http), multiplexed over few connections.
    pub http2: bool,
}

/// Reads and validates an experiment file from disk.
pub fn load(path: &Path) -> Result<Experiment, Diagnostics> {
    load_with(path, &Disk)
}

/// Reads and validates an experiment file through `files`.
pub fn load_with(path: &Path, files: &dyn Files) -> Result<Experiment, Diagnostics> {
    let text = files.read(path).map_err(|e| {
        Diagnostics::single(Diagnostic::whole_file(
            path,
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    parse(&text, path, files)
}

/// Parses experiment text that came from `path` (profiles are resolved against its
/// directory and read through `files`). Every error is reported at once.
pub fn parse(text: &str, path: &Path, files: &dyn Files) -> Result<Experiment, Diagnostics> {
    let expanded = crate::config::vars::expand(text, path)?;
    let text: &str = &expanded;
    let mut c = Collector::new(path, text);
    let mut extra = Vec::new();
    let experiment = Document::parse(&mut c).and_then(|mut doc| {
        let tables = tables::read(&mut doc, &mut c);
        let raw = doc.read::<check::RawExperiment>(&mut c);
        let mut checker = check::Checker {
            c: &mut c,
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            files,
            extra: &mut extra,
        };
        checker.experiment(raw?, tables, path, text)
    });
    for d in extra {
        c.push(d);
    }
    match (c.finish(()), experiment) {
        (Err(d), _) => Err(d),
        (Ok(()), Some(e)) => Ok(e),
        (Ok(()), None) => Err(Diagnostics::single(Diagnostic::whole_file(
            path,
            "the experiment could not be built",
        ))),
    }
}

/// The start of a profile phase: `stages[i]` (the first stream that has it) or
/// `<stream>.stages[i]`, from the run's start.
pub fn phase_start(profile: &Profile, phase: &PhaseRef) -> Option<Duration> {
    let (stream, rest) = match phase.phase.split_once('.') {
        Some((s, rest)) => (Some(s), rest),
        None => (None, phase.phase.as_str()),
    };
    let index: usize = rest
        .strip_prefix("stages[")?
        .strip_suffix(']')?
        .trim()
        .parse()
        .ok()?;
    let candidates: Vec<_> = match stream {
        Some(name) => profile.streams.iter().filter(|s| s.name == name).collect(),
        None => profile.streams.iter().collect(),
    };
    candidates.into_iter().find_map(|s| {
        (index < s.stages.len()).then(|| s.stages[..index].iter().map(|st| st.duration).sum())
    })
}

#[cfg(test)]
mod tests;
