//! The semantic pass over an experiment: its name, seed, profiles, target, fault plan,
//! cool-down, and the checks across tables (what promises name, completion sources).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::cooldown;
use super::sweep;
use super::tables::{Tables, check_references};
use super::{Experiment, Files, SandboxTarget, SystemTarget, TargetSpec, normalize, phase_start};
use crate::analyze::spec::ReadPromise;
use crate::aws::{AwsTarget, QueueRef};
use crate::chaos::guard::Guardrails;
use crate::chaos::plan::{FaultPlan, PlanFile};
use crate::chaos::proxy::ProxySpec;
use crate::config::diag::{Collector, Diagnostic, name_hint};
use crate::config::profile::{self, Profile};
use crate::ledger::source::CompletionSourceSpec;
use crate::sandbox::config::SandboxConfig;
use crate::tls::TlsOptions;
use crate::units;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// An experiment file, without its tables of faults, probes, promises and activities
/// (`tables.rs` reads those).
pub(super) struct RawExperiment {
    name: Option<Spanned<String>>,
    description: Option<String>,
    seed: Option<Spanned<i64>>,
    profile: Option<Spanned<String>>,
    profiles: Option<Spanned<Vec<Spanned<String>>>>,
    target: Option<Spanned<RawTarget>>,
    #[serde(default)]
    proxy: Vec<ProxySpec>,
    #[serde(default)]
    guardrails: Guardrails,
    cooldown: Option<Spanned<cooldown::RawCooldown>>,
    sweep: Option<Spanned<sweep::RawSweep>>,
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
    tls: Option<Spanned<TlsOptions>>,
    http2: Option<Spanned<bool>>,
}

/// The semantic pass.
pub(super) struct Checker<'c, 'a> {
    pub c: &'c mut Collector<'a>,
    /// The experiment's directory: profile paths are relative to it.
    pub base: PathBuf,
    pub files: &'c dyn Files,
    /// Diagnostics of other files (profiles).
    pub extra: &'c mut Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    pub fn experiment(
        &mut self,
        raw: RawExperiment,
        tables: Tables,
        path: &Path,
        text: &str,
    ) -> Option<Experiment> {
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
        let target = self.target(raw.target.as_ref(), &tables);
        let plan = profile.as_ref().zip(tables.faults).and_then(|(p, faults)| {
            let file = PlanFile {
                aws: None,
                proxy: raw.proxy.clone(),
                fault: faults,
                guardrails: raw.guardrails.clone(),
                seed,
            };
            FaultPlan::build_reporting(
                file,
                |phase| phase_start(p, phase),
                &tables.fault_names,
                self.c,
            )
        });
        let probes = tables.probes;
        let promises = tables.promises;
        let cooldown = cooldown::build(raw.cooldown.as_ref(), self.c);
        if let Some(profile) = &profile {
            check_references(
                self.c,
                &promises,
                &tables.fault_names,
                &tables.probe_names,
                &probes,
                profile,
            );
        }
        if let Some(TargetSpec::System(t)) = &target
            && t.completions.is_empty()
        {
            for p in promises.iter().filter(|p| p.completions) {
                self.c.error_with_hint(
                    p.span.clone(),
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
            for (i, cond) in cd.until.iter().enumerate() {
                if !tables.probe_names.contains(&cond.probe) {
                    let names: Vec<&str> = tables.probe_names.iter().map(String::as_str).collect();
                    let table = raw.cooldown.as_ref();
                    self.c.error_with_hint(
                        table
                            .and_then(|t| t.get_ref().until_span(i))
                            .or_else(|| table.map(|t| t.span()))
                            .unwrap_or(0..0),
                        format!(
                            "[cooldown] `until` names probe `{}`, which is not a `[[probe]]`",
                            cond.probe
                        ),
                        name_hint(&cond.probe, &names),
                    );
                }
            }
        }
        if let Some(cd) = &cooldown {
            self.cooldown_covers_promises(cd, raw.cooldown.as_ref(), &promises);
        }
        let sweep = match &raw.sweep {
            None => Some(None),
            Some(s) => sweep::build(s, target.as_ref(), &promises, self.c).map(Some),
        };
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
            promises: promises.into_iter().filter_map(|p| p.promise).collect(),
            cooldown: cooldown?,
            sweep: sweep?,
        })
    }

    /// A promise judged after the load (scale-in) needs a cool-down at least as long as its
    /// `within`: a shorter one ends every slow run "too early to tell", so a fleet that never
    /// scales in could not fail.
    fn cooldown_covers_promises(
        &mut self,
        cd: &cooldown::Cooldown,
        raw: Option<&Spanned<cooldown::RawCooldown>>,
        promises: &[ReadPromise],
    ) {
        for p in promises {
            let Some(need) = p.promise.as_ref().and_then(|p| p.kind.watch_after_load()) else {
                continue;
            };
            let idle = matches!(
                p.promise.as_ref().map(|p| &p.kind),
                Some(crate::analyze::PromiseKind::Idle(_))
            );
            if idle {
                self.cooldown_watches_idle(cd, raw, p, need);
                continue;
            }
            if cd.max >= need {
                continue;
            }
            let written = raw.and_then(|t| t.get_ref().max_span());
            let message = format!(
                "promise `{}` gives the fleet {} after the backlog drains, but the cool-down \
                 ends {} after the load{}: a fleet slower than that, or one that never scales \
                 in, would be \"too early to tell\", never a fail",
                p.name,
                units::format_duration(need),
                units::format_duration(cd.max),
                if written.is_some() {
                    ""
                } else {
                    " (the default `max`)"
                },
            );
            let hint = format!(
                "set `[cooldown] max` to at least {} plus the time the backlog takes to \
                 drain; `until` (e.g. `[\"workers <= 0\"]`) still ends a healthy run early",
                units::format_duration(need)
            );
            let span = written.unwrap_or_else(|| p.span.clone());
            self.c.error_with_hint(span, message, hint);
        }
    }

    /// An `idle` promise is judged over its whole `within` after the load: a cool-down that
    /// may end sooner (its `max`, or its `until` conditions before `min`) would make it not
    /// evaluable, however idle the system.
    fn cooldown_watches_idle(
        &mut self,
        cd: &cooldown::Cooldown,
        raw: Option<&Spanned<cooldown::RawCooldown>>,
        p: &ReadPromise,
        need: std::time::Duration,
    ) {
        let ends = if cd.max < need {
            cd.max
        } else if !cd.until.is_empty() && cd.min < need {
            cd.min
        } else {
            return;
        };
        let message = format!(
            "promise `{}` watches the system for {} after the load ends, but the cool-down may \
             end {} after the load{}: the promise would be not evaluable however idle the \
             system is",
            p.name,
            units::format_duration(need),
            units::format_duration(ends),
            if raw.is_some() {
                ""
            } else {
                " (the default cool-down)"
            },
        );
        let hint = format!(
            "set `[cooldown] min` and `max` to at least {}",
            units::format_duration(need)
        );
        let span = raw
            .and_then(|t| t.get_ref().max_span())
            .unwrap_or_else(|| p.span.clone());
        self.c.error_with_hint(span, message, hint);
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

    fn target(&mut self, raw: Option<&Spanned<RawTarget>>, tables: &Tables) -> Option<TargetSpec> {
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
                (t.tls.is_some(), "tls"),
                (t.http2.is_some(), "http2"),
                (tables.has_activities, "activities"),
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
        let tls = self.tls(t.tls.as_ref());
        Some(TargetSpec::System(Box::new(SystemTarget {
            http: t.http.as_ref().map(|h| h.get_ref().clone()),
            aws: t.aws.clone(),
            queue: t
                .queue
                .as_ref()
                .map(|q| QueueRef::Plain(q.get_ref().clone())),
            dlq: t.dlq.as_ref().map(|q| QueueRef::Plain(q.get_ref().clone())),
            completions: t.completions.clone(),
            activities: tables.activities.clone()?,
            tls: tls?,
            http2: t.http2.as_ref().is_some_and(|h| *h.get_ref()),
        })))
    }

    /// `[target.tls]`: its files resolved against the experiment's directory, each of which
    /// must be readable.
    fn tls(&mut self, raw: Option<&Spanned<TlsOptions>>) -> Option<TlsOptions> {
        let Some(raw) = raw else {
            return Some(TlsOptions::default());
        };
        let mut tls = raw.get_ref().clone();
        let mut ok = true;
        for (key, path) in [
            ("ca_file", &mut tls.ca_file),
            ("client_cert", &mut tls.client_cert),
            ("client_key", &mut tls.client_key),
        ] {
            let Some(p) = path else { continue };
            *p = normalize(&self.base.join(&*p));
            if let Err(e) = self.files.read(p) {
                self.c.error_with_hint(
                    raw.span(),
                    format!("[target.tls] `{key}`: cannot read {}: {e}", p.display()),
                    "paths in [target.tls] are relative to the experiment file",
                );
                ok = false;
            }
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            self.c.error_with_hint(
                raw.span(),
                "[target.tls] has only one of `client_cert` and `client_key`",
                "mutual TLS needs both: the certificate chain and its private key (PEM files)",
            );
            ok = false;
        }
        ok.then_some(tls)
    }
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
