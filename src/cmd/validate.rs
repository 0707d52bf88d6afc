//! `shakedown validate FILE...`: parse every file, print every error.

use crate::cli::ValidateArgs;
use crate::cmd::Outcome;
use crate::config::profile;

pub fn validate(args: &ValidateArgs) -> Outcome {
    let mut outcome = Outcome::Ok;
    for file in &args.files {
        match profile::load(file) {
            Ok(p) => {
                println!(
                    "ok: {} (profile \"{}\", {} stream{}, {})",
                    file.display(),
                    p.name,
                    p.streams.len(),
                    if p.streams.len() == 1 { "" } else { "s" },
                    crate::units::format_duration(p.duration())
                );
            }
            Err(diags) => {
                eprint!("{diags}");
                outcome = Outcome::Error;
            }
        }
    }
    outcome
}
