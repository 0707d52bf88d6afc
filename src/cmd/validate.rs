//! `shakedown validate FILE...`: parse every file (profile or experiment), print every error.

use std::path::{Path, PathBuf};

use crate::cmd::Outcome;
use crate::config::profile;
use crate::units::format_duration;

/// `shakedown validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn validate(args: &ValidateArgs) -> Outcome {
    let mut outcome = Outcome::Ok;
    for file in &args.files {
        let result = if is_experiment(file) {
            crate::experiment::load(file).map(|e| {
                format!(
                    "experiment \"{}\": {} stream(s), {} of load, {} fault occurrence(s), {} probe(s), {} promise(s)",
                    e.name,
                    e.profile.streams.len(),
                    format_duration(e.profile.duration()),
                    e.plan.occurrences.len(),
                    e.probes.len(),
                    e.promises.len()
                )
            })
        } else {
            profile::load(file).map(|p| {
                format!(
                    "profile \"{}\", {} stream{}, {}",
                    p.name,
                    p.streams.len(),
                    if p.streams.len() == 1 { "" } else { "s" },
                    format_duration(p.duration())
                )
            })
        };
        match result {
            Ok(line) => println!("ok: {} ({line})", file.display()),
            Err(diags) => {
                eprint!("{diags}");
                outcome = Outcome::Error;
            }
        }
    }
    outcome
}

/// An experiment has a `[target]` (or names profiles); a profile has neither.
fn is_experiment(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match text.parse::<toml::Table>() {
        Ok(t) => ["target", "profile", "profiles", "fault", "promise"]
            .iter()
            .any(|k| t.contains_key(*k)),
        Err(_) => path.components().any(|c| c.as_os_str() == "chaos"),
    }
}
