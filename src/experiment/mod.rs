//! Experiment files (`chaos/*.toml`): target + profile(s) + faults + probes + promises +
//! guardrails + cool-down, in one file. User documentation: `docs/experiments.md`.
//!
//! Parsed in the two passes of every config file (see [`crate::config`]): the structural
//! pass reports every unknown key with a hint; the semantic pass (`Checker`) loads the
//! profiles, builds the fault plan (phases resolved against the profile), validates probes
//! and promises and checks that they name things that exist (faults, probes, streams).
//! Everything here is pure except reading the profile files, which goes through a
//! [`Files`] reader so that `demo` can run an experiment built into the binary.

mod cooldown;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use self::cooldown::{Condition, Cooldown, CooldownClock, Op};
use crate::analyze::spec::{RawPromise, build as build_promises};
use crate::analyze::{Promise, PromiseKind};
use crate::aws::{AwsTarget, QueueRef};
use crate::chaos::guard::Guardrails;
use crate::chaos::plan::{FaultPlan, PlanFile};
use crate::chaos::proxy::ProxySpec;
use crate::chaos::spec::{FaultSpec, PhaseRef};
use crate::config::diag::{Collector, Diagnostic, Diagnostics, name_hint};
use crate::config::profile::{self, Profile};
use crate::config::{RawTable, parse_table, parse_toml};
use crate::ledger::source::CompletionSourceSpec;
use crate::probe::activity::ActivitySourceSpec;
use crate::probe::spec::{ProbeSpec, problems as probe_problems};
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: Option<Spanned<String>>,
    description: Option<String>,
    seed: Option<Spanned<i64>>,
    profile: Option<Spanned<String>>,
    profiles: Option<Spanned<Vec<Spanned<String>>>>,
    target: Option<Spanned<RawTarget>>,
    #[serde(default)]
    proxy: Vec<ProxySpec>,
    // Read table by table (`Checker::tables`).
    #[serde(default)]
    fault: Vec<Spanned<RawTable>>,
    #[serde(default)]
    probe: Vec<Spanned<RawTable>>,
    #[serde(default)]
    promise: Vec<Spanned<RawTable>>,
    #[serde(default)]
    guardrails: Guardrails,
    cooldown: Option<Spanned<cooldown::RawCooldown>>,
}

/// `[[fault]]`, `[[probe]]`, `[[promise]]` alone: read when the rest of the file does not
/// parse, so that the errors of every table are still reported at once.
#[derive(Debug, Default, Deserialize)]
struct RawTables {
    #[serde(default)]
    fault: Vec<Spanned<RawTable>>,
    #[serde(default)]
    probe: Vec<Spanned<RawTable>>,
    #[serde(default)]
    promise: Vec<Spanned<RawTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    sandbox: Option<Spanned<SandboxConfig>>,
    http: Option<Spanned<String>>,
    aws: Option<AwsTarget>,
    queue: Option<Spanned<String>>,
    dlq: Option<Spanned<String>>,
    #[serde(default)]
    completions: Vec<CompletionSourceSpec>,
    #[serde(default)]
    activities: Vec<ActivitySourceSpec>,
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
    let (raw, structural) = parse_toml::<RawExperiment>(text, path);
    let mut c = Collector::new(path, text);
    for d in structural {
        c.push(d);
    }
    let mut extra = Vec::new();
    let mut checker = Checker {
        c: &mut c,
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        files,
        extra: &mut extra,
    };
    let experiment = match raw {
        Some(raw) => checker.experiment(raw, path, text),
        None => {
            // The rest of the file has an error: still report those of every table.
            if let Ok(tables) = toml::from_str::<RawTables>(text) {
                checker.tables([&tables.fault, &tables.probe, &tables.promise], text, path);
            }
            None
        }
    };
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

struct Checker<'c, 'a> {
    c: &'c mut Collector<'a>,
    base: PathBuf,
    files: &'c dyn Files,
    /// Diagnostics of other files (profiles).
    extra: &'c mut Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    fn experiment(&mut self, raw: RawExperiment, path: &Path, text: &str) -> Option<Experiment> {
        let name = match &raw.name {
            Some(n) if !n.get_ref().trim().is_empty() => Some(n.get_ref().clone()),
            Some(n) => {
                self.c.error(n.span(), "`name` must not be empty");
                None
            }
            None => {
                self.c.error_with_hint(
                    0..0,
                    "the experiment has no `name`",
                    "add `name = \"...\"` at the top",
                );
                None
            }
        };
        let seed = raw
            .seed
            .as_ref()
            .and_then(|s| match u64::try_from(*s.get_ref()) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.c.error(s.span(), "`seed` must be zero or more");
                    None
                }
            });
        let (profile, profile_files) = self.profiles(&raw).unzip();
        let target = self.target(raw.target.as_ref());
        let tables = self.tables([&raw.fault, &raw.probe, &raw.promise], text, path);
        let plan = profile.as_ref().zip(tables.faults).and_then(|(p, faults)| {
            let file = PlanFile {
                aws: None,
                proxy: raw.proxy.clone(),
                fault: faults,
                guardrails: raw.guardrails.clone(),
                seed,
            };
            match FaultPlan::build(file, |phase| phase_start(p, phase)) {
                Ok(plan) => Some(plan),
                Err(errors) => {
                    for e in errors {
                        let span = tables
                            .fault_names
                            .iter()
                            .find(|(n, _)| *n == e.fault)
                            .map_or_else(|| fault_span(text, &e.fault), |(_, s)| s.clone());
                        let hint = if e.message.starts_with("unknown phase") {
                            "phases are `stages[i]` (the first stream's) or `<stream>.stages[i]`, counted from 0"
                        } else {
                            ""
                        };
                        self.c.error_with_hint(span, e.to_string(), hint);
                    }
                    None
                }
            }
        });
        let probes = tables.probes;
        for problem in probe_problems(&probes) {
            self.c.error(
                table_span(text, "[[probe]]"),
                format!("[[probe]]: {problem}"),
            );
        }
        let promises = build_promises(&tables.promises, self.c);
        let cooldown = cooldown::build(raw.cooldown.as_ref(), self.c);
        if let Some(profile) = &profile {
            let faults = tables.fault_names.iter().map(|(n, _)| n.clone()).collect();
            self.references(&promises, faults, &probes, profile, text);
        }
        if let Some(TargetSpec::System(t)) = &target
            && t.completions.is_empty()
        {
            for p in promises.iter().filter(|p| references(&p.kind).completions) {
                self.c.error_with_hint(
                    promise_span(text, &p.name),
                    format!(
                        "promise `{}` needs to know which messages the system finished, \
                         and `[target]` has no completion source",
                        p.name
                    ),
                    "add a `[[target.completions]]` (an SQS done queue, an HTTP endpoint or a \
                     sandbox feed: docs/probes.md), or remove the promise",
                );
            }
        }
        if let Some(cd) = &cooldown {
            for cond in &cd.until {
                if !probes.iter().any(|p| p.name == cond.probe) {
                    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
                    self.c.error_with_hint(
                        raw.cooldown.as_ref().map(|s| s.span()).unwrap_or(0..0),
                        format!(
                            "[cooldown] `until` names probe `{}`, which is not a `[[probe]]`",
                            cond.probe
                        ),
                        name_hint(&cond.probe, &names),
                    );
                }
            }
        }
        Some(Experiment {
            name: name?,
            description: raw.description,
            path: path.to_owned(),
            text: text.to_owned(),
            seed,
            profile: profile?,
            profile_files: profile_files?,
            target: target?,
            plan: plan?,
            probes,
            promises,
            cooldown: cooldown?,
        })
    }

    fn profiles(&mut self, raw: &RawExperiment) -> Option<(Profile, Vec<PathBuf>)> {
        let written: Vec<&Spanned<String>> = match (&raw.profile, &raw.profiles) {
            (Some(p), None) => vec![p],
            (None, Some(list)) if !list.get_ref().is_empty() => list.get_ref().iter().collect(),
            (None, Some(list)) => {
                self.c.error(list.span(), "`profiles` is empty");
                return None;
            }
            (Some(p), Some(_)) => {
                self.c.error_with_hint(
                    p.span(),
                    "both `profile` and `profiles`",
                    "keep one: `profiles = [\"a.toml\", \"b.toml\"]` takes several",
                );
                return None;
            }
            (None, None) => {
                self.c.error_with_hint(
                    0..0,
                    "the experiment has no traffic",
                    "add `profile = \"../profiles/uploads.toml\"` (relative to this file)",
                );
                return None;
            }
        };
        let mut profiles = Vec::new();
        let mut paths = Vec::new();
        let mut failed = false;
        for w in written {
            let path = normalize(&self.base.join(w.get_ref()));
            match self.files.read(&path) {
                Err(e) => {
                    failed = true;
                    self.c.error_with_hint(
                        w.span(),
                        format!("cannot read profile {}: {e}", path.display()),
                        "profile paths are relative to the experiment file",
                    )
                }
                Ok(text) => match profile::parse(&text, &path) {
                    Ok(p) => {
                        profiles.push((p, w.span()));
                        paths.push(path);
                    }
                    Err(d) => {
                        failed = true;
                        self.c.error(
                            w.span(),
                            format!("profile {} has errors (listed with it)", path.display()),
                        );
                        self.extra.extend(d.into_vec());
                    }
                },
            }
        }
        if failed {
            return None;
        }
        merge_profiles(profiles, self.c).map(|p| (p, paths))
    }

    fn target(&mut self, raw: Option<&Spanned<RawTarget>>) -> Option<TargetSpec> {
        let Some(raw) = raw else {
            self.c.error_with_hint(
                0..0,
                "the experiment has no `[target]`",
                "add `[target.sandbox]` to run against the embedded sandbox, or `[target]` with `http = \"...\"` and `[target.aws]` for your system",
            );
            return None;
        };
        let t = raw.get_ref();
        if let Some(sb) = &t.sandbox {
            let mut ok = true;
            for (set, key) in [
                (t.http.is_some(), "http"),
                (t.aws.is_some(), "aws"),
                (t.queue.is_some(), "queue"),
                (t.dlq.is_some(), "dlq"),
                (!t.completions.is_empty(), "completions"),
                (!t.activities.is_empty(), "activities"),
            ] {
                if set {
                    self.c.error_with_hint(
                        raw.span(),
                        format!("`[target]` has both `sandbox` and `{key}`"),
                        "the sandbox sets its own endpoints, queues and completion feed: remove one",
                    );
                    ok = false;
                }
            }
            let mut config = sb.get_ref().clone();
            let config = match config.finish() {
                Ok(()) => Some(config),
                Err(e) => {
                    self.c.error_with_hint(
                        sb.span(),
                        e.to_string(),
                        "the keys of a sandbox configuration file (docs/sandbox.md)",
                    );
                    None
                }
            };
            return match (ok, config) {
                (true, Some(config)) => {
                    Some(TargetSpec::Sandbox(Box::new(SandboxTarget { config })))
                }
                _ => None,
            };
        }
        if let Some(h) = &t.http {
            let url = h.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.c.error_with_hint(
                    h.span(),
                    format!("`http` must be an http:// or https:// URL, found `{url}`"),
                    "for example `http = \"http://127.0.0.1:8080\"`",
                );
            }
        }
        for a in &t.activities {
            if let Err(e) = a.check() {
                self.c.error_with_hint(
                    raw.span(),
                    format!("[[target.activities]]: {e}"),
                    "docs/experiments.md, `[[target.activities]]`",
                );
            }
        }
        Some(TargetSpec::System(Box::new(SystemTarget {
            http: t.http.as_ref().map(|h| h.get_ref().clone()),
            aws: t.aws.clone(),
            queue: t
                .queue
                .as_ref()
                .map(|q| QueueRef::Plain(q.get_ref().clone())),
            dlq: t.dlq.as_ref().map(|q| QueueRef::Plain(q.get_ref().clone())),
            completions: t.completions.clone(),
            activities: t.activities.clone(),
        })))
    }

    /// The `[[fault]]`, `[[probe]]` and `[[promise]]` tables, each read on its own, so that
    /// every error of every table is reported at once, at its key or value. `faults` is
    /// `None` when one of them has errors (already recorded).
    fn tables(
        &mut self,
        [fault, probe, promise]: [&[Spanned<RawTable>]; 3],
        text: &str,
        path: &Path,
    ) -> Tables {
        let mut faults = Some(Vec::new());
        let mut fault_names = Vec::new();
        for (i, t) in fault.iter().enumerate() {
            // Names as the plan gives them (`<type>-<index>` when unnamed).
            let name = t.get_ref().str("name").map_or_else(
                || format!("{}-{i}", t.get_ref().str("type").unwrap_or("?")),
                str::to_owned,
            );
            fault_names.push((name, t.span()));
            match FaultSpec::from_table(text, path, t.span(), t.get_ref(), i) {
                Ok(f) => {
                    if let Some(v) = &mut faults {
                        v.push(f);
                    }
                }
                Err(d) => {
                    faults = None;
                    d.into_iter().for_each(|d| self.c.push(d));
                }
            }
        }
        let all = |_: &str| true;
        let mut probes = Vec::new();
        for (i, t) in probe.iter().enumerate() {
            let label = table_label("probe", t.get_ref(), i);
            let (p, d) =
                parse_table::<ProbeSpec>(text, path, "probe", t.span(), t.get_ref(), &label, &all);
            d.into_iter().for_each(|d| self.c.push(d));
            probes.extend(p);
        }
        let mut promises = Vec::new();
        for (i, t) in promise.iter().enumerate() {
            let label = table_label("promise", t.get_ref(), i);
            let (p, d) = parse_table::<RawPromise>(
                text,
                path,
                "promise",
                t.span(),
                t.get_ref(),
                &label,
                &all,
            );
            d.into_iter().for_each(|d| self.c.push(d));
            promises.extend(p);
        }
        Tables {
            faults,
            fault_names,
            probes,
            promises,
        }
    }

    /// Promises must name faults, probes and streams that exist.
    fn references(
        &mut self,
        promises: &[Promise],
        faults: BTreeSet<String>,
        probes: &[ProbeSpec],
        profile: &Profile,
        text: &str,
    ) {
        let probe_names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        let streams: Vec<&str> = profile.streams.iter().map(|s| s.name.as_str()).collect();
        for p in promises {
            let r = references(&p.kind);
            let span = promise_span(text, &p.name);
            for f in r.faults {
                // `name#k` is occurrence k of `name`.
                let base = match f.rsplit_once('#') {
                    Some((b, k)) if k.parse::<u32>().is_ok() => b,
                    _ => f,
                };
                if !faults.contains(base) {
                    let names: Vec<&str> = faults.iter().map(String::as_str).collect();
                    self.c.error_with_hint(
                        span.clone(),
                        format!(
                            "promise `{}` names fault `{f}`, which is not a `[[fault]]`",
                            p.name
                        ),
                        name_hint(f, &names),
                    );
                }
            }
            for probe in r.probes {
                if !probe_names.contains(&probe) {
                    self.c.error_with_hint(
                        span.clone(),
                        format!(
                            "promise `{}` names probe `{probe}`, which is not a `[[probe]]`",
                            p.name
                        ),
                        name_hint(probe, &probe_names),
                    );
                }
            }
            for s in r.streams {
                if !streams.contains(&s) {
                    self.c.error_with_hint(
                        span.clone(),
                        format!(
                            "promise `{}` names stream `{s}`, which no profile has",
                            p.name
                        ),
                        name_hint(s, &streams),
                    );
                }
            }
        }
    }
}

/// The tables of [`Checker::tables`].
struct Tables {
    faults: Option<Vec<FaultSpec>>,
    /// Every `[[fault]]`'s name (as the plan names it) and the span of its header.
    fault_names: Vec<(String, std::ops::Range<usize>)>,
    probes: Vec<ProbeSpec>,
    promises: Vec<RawPromise>,
}

/// `[[probe]] "backlog"` or `[[probe]] #2`.
fn table_label(array: &str, table: &RawTable, index: usize) -> String {
    match table.str("name") {
        Some(n) => format!("[[{array}]] {n:?}"),
        None => format!("[[{array}]] #{}", index + 1),
    }
}

/// What a promise refers to by name.
#[derive(Default)]
struct Refs<'p> {
    faults: Vec<&'p str>,
    probes: Vec<&'p str>,
    streams: Vec<&'p str>,
    /// It reads the message ledger's completions (no-loss, end-to-end latency).
    completions: bool,
}

fn references(kind: &PromiseKind) -> Refs<'_> {
    let mut r = Refs::default();
    match kind {
        PromiseKind::Failover(p) => {
            r.faults.push(&p.fault);
            r.streams.extend(p.stream.as_deref());
            r.probes.extend(p.instances.as_deref());
        }
        PromiseKind::Buffering(p) => {
            r.faults.push(&p.fault);
            r.streams.extend(p.stream.as_deref());
            r.probes.push(&p.depth);
        }
        PromiseKind::Drain(p) => {
            r.faults.push(&p.fault);
            r.streams.extend(p.stream.as_deref());
            r.probes.push(&p.depth);
        }
        PromiseKind::ScaleOut(p) => {
            r.probes.push(&p.instances);
            r.probes.push(&p.depth);
        }
        PromiseKind::ScaleIn(p) => {
            r.probes.push(&p.instances);
            r.probes.extend(p.depth.as_deref());
            r.faults.extend(p.after.as_deref());
        }
        PromiseKind::Threshold(p) => {
            r.completions = p
                .checks
                .iter()
                .any(|c| matches!(c.metric, crate::analyze::expr::Metric::E2e(_)));
            r.streams.extend(p.stream.as_deref());
            if let crate::analyze::expr::Over::During(f) = &p.over {
                r.faults.push(f);
            }
        }
        PromiseKind::Cost(p) => {
            r.probes.extend(p.instances.as_deref());
            r.probes.extend(p.gb_seconds.as_deref());
        }
        PromiseKind::NoLoss(_) => r.completions = true,
    }
    r
}

/// Merges profiles into one: streams in file order (names must be unique), settings and
/// seed of the first.
fn merge_profiles(
    profiles: Vec<(Profile, std::ops::Range<usize>)>,
    c: &mut Collector<'_>,
) -> Option<Profile> {
    let mut iter = profiles.into_iter();
    let (mut merged, _) = iter.next()?;
    let mut names: BTreeSet<String> = merged.streams.iter().map(|s| s.name.clone()).collect();
    let mut ok = true;
    for (p, span) in iter {
        merged.name = format!("{}+{}", merged.name, p.name);
        for s in p.streams {
            if !names.insert(s.name.clone()) {
                c.error_with_hint(
                    span.clone(),
                    format!("stream `{}` is in two profiles", s.name),
                    "stream names must be unique across the experiment's profiles: rename one",
                );
                ok = false;
            }
            merged.streams.push(s);
        }
    }
    ok.then_some(merged)
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

/// The span of the `[[fault]]` table named `name` (`name#k` or the generated
/// `<type>-<index>` fall back to the first `[[fault]]`).
fn fault_span(text: &str, name: &str) -> std::ops::Range<usize> {
    named_table_span(text, "[[fault]]", name)
}

fn promise_span(text: &str, name: &str) -> std::ops::Range<usize> {
    named_table_span(text, "[[promise]]", name)
}

/// Finds `name = "<name>"` after a `header`, or else the first `header`.
fn named_table_span(text: &str, header: &str, name: &str) -> std::ops::Range<usize> {
    let needle = format!("\"{name}\"");
    let mut pos = 0;
    while let Some(i) = text[pos..].find(header) {
        let start = pos + i;
        let end = text[start + header.len()..]
            .find("\n[")
            .map_or(text.len(), |e| start + header.len() + e);
        if let Some(j) = text[start..end].find(&needle) {
            return start + j..start + j + needle.len();
        }
        pos = start + header.len();
    }
    table_span(text, header)
}

fn table_span(text: &str, header: &str) -> std::ops::Range<usize> {
    text.find(header).map_or(0..0, |i| i..i + header.len())
}

#[cfg(test)]
mod tests;
