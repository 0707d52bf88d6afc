//! The terminal: where human output goes, colour, progress bars, and the one JSON document
//! of `--output json`.
//!
//! Chosen once per process by [`crate::run`] ([`init`]) from `--output` and `--color`:
//!
//! - **routing**: everything written for people goes through [`outln!`](crate::outln) /
//!   [`out!`](crate::out) (or the [`human`] writer): to stdout in text mode, to stderr in
//!   JSON mode, so that stdout carries exactly one JSON document for scripts;
//! - **colour** ([`paint`]): only when the human stream is a terminal, `NO_COLOR` is unset
//!   or empty and `TERM` is not `dumb`; `CLICOLOR_FORCE` (not `0`) or `--color always`
//!   force it, `--color never` turns it off;
//! - **progress** ([`progress`]): an indicatif bar on stderr for long work that shows
//!   nothing else, hidden when stderr is not a terminal or in JSON mode;
//! - **the JSON document** ([`document`]): filled as a command goes (run directory,
//!   verdicts, per-stream summaries, error) and printed once at the end by [`crate::run`].
//!
//! Without [`init`] (the library driven in-process, as the tests do) it is text mode,
//! colour decided from the environment.

mod document;
mod progress;

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

pub use document::{OutputDocument, document, emit_document, schema as output_schema};
pub use progress::{Progress, counter, progress, spinner};

use crate::analyze::Status;

/// `--output`: what stdout carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and lines for people.
    #[default]
    Text,
    /// One JSON document (the verdicts, the per-stream summaries, the run directory); the
    /// lines for people go to stderr.
    Json,
}

/// `--color`: when the output is coloured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (or forced by `CLICOLOR_FORCE`).
    #[default]
    Auto,
    /// Always (even into a pipe or file).
    Always,
    /// Never.
    Never,
}

/// `--output text|json`, shared by the commands that end with verdicts or summaries.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// `json`: stdout carries one JSON document (verdicts, per-stream summaries, run
    /// directory; docs/output.md) and every line for people goes to stderr.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub output: OutputFormat,
}

/// The process's choices.
#[derive(Debug, Clone, Copy)]
struct Settings {
    format: OutputFormat,
    color: bool,
    /// The stream people read (stdout in text mode, stderr in JSON mode) is a terminal.
    human_terminal: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

impl Settings {
    fn resolve(format: OutputFormat, choice: ColorChoice) -> Settings {
        let human_terminal = match format {
            OutputFormat::Text => std::io::stdout().is_terminal(),
            OutputFormat::Json => std::io::stderr().is_terminal(),
        };
        let env = |k: &str| std::env::var(k).ok();
        Settings {
            format,
            color: color_wanted(choice, human_terminal, env),
            human_terminal,
        }
    }
}

/// Whether to colour: the flag, then `NO_COLOR` (<https://no-color.org>), then
/// `CLICOLOR_FORCE`, then a terminal that is not `TERM=dumb`.
fn color_wanted(choice: ColorChoice, terminal: bool, env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("NO_COLOR") => false,
        ColorChoice::Auto
            if set("CLICOLOR_FORCE") && env("CLICOLOR_FORCE").as_deref() != Some("0") =>
        {
            true
        }
        ColorChoice::Auto => terminal && env("TERM").as_deref() != Some("dumb"),
    }
}

/// Sets the output format and colour for the process (the first call wins).
pub fn init(format: OutputFormat, color: ColorChoice) {
    let _ = SETTINGS.set(Settings::resolve(format, color));
}

fn settings() -> Settings {
    *SETTINGS.get_or_init(|| Settings::resolve(OutputFormat::Text, ColorChoice::Auto))
}

/// `--output json` is in force.
pub fn json_mode() -> bool {
    settings().format == OutputFormat::Json
}

/// The stream people read is a terminal (the live bar, progress bars).
pub fn human_is_terminal() -> bool {
    settings().human_terminal
}

/// The stream people read: stdout, or stderr in JSON mode.
pub fn human() -> Box<dyn Write> {
    if json_mode() {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    }
}

/// Writes formatted text to the human stream ([`out!`](crate::out), [`outln!`](crate::outln)).
pub fn write_human(args: std::fmt::Arguments<'_>) {
    let _ = human().write_fmt(args);
}

/// `print!` for people: stdout, or stderr under `--output json`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::term::write_human(format_args!($($arg)*)) };
}

/// `println!` for people: stdout, or stderr under `--output json`.
#[macro_export]
macro_rules! outln {
    () => { $crate::term::write_human(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::term::write_human(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Colour is on for the human stream.
pub fn color() -> bool {
    settings().color
}

/// `text` in the colour of a verdict status (green pass, red fail, yellow not evaluable)
/// when colour is on; `text` unchanged otherwise.
pub fn paint(status: Status, text: &str) -> String {
    if !color() {
        return text.to_owned();
    }
    let code = match status {
        Status::Pass => "32",
        Status::Fail => "1;31",
        Status::NotEvaluable => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// `text` in bold when colour is on (table headers).
pub fn bold(text: &str) -> String {
    if color() {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        use ColorChoice::*;
        assert!(color_wanted(Auto, true, env(&[])));
        assert!(!color_wanted(Auto, false, env(&[])));
        assert!(!color_wanted(Auto, true, env(&[("NO_COLOR", "1")])));
        // An empty NO_COLOR is unset (no-color.org).
        assert!(color_wanted(Auto, true, env(&[("NO_COLOR", "")])));
        assert!(!color_wanted(Auto, true, env(&[("TERM", "dumb")])));
        assert!(color_wanted(Auto, false, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!color_wanted(Auto, false, env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!color_wanted(
            Auto,
            false,
            env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])
        ));
        assert!(color_wanted(Always, false, env(&[("NO_COLOR", "1")])));
        assert!(!color_wanted(Never, true, env(&[("CLICOLOR_FORCE", "1")])));
    }
}
