//! Progress bars for long work that shows nothing else (analyzing a big ledger, rendering
//! a report, merging runs): drawn on stderr, hidden when stderr is not a terminal or under
//! `--output json`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar or spinner; hidden ones cost nothing. Cleared when dropped.
#[derive(Debug)]
pub struct Progress(ProgressBar);

impl Progress {
    /// Moves the bar to `pos`.
    pub fn set(&self, pos: u64) {
        self.0.set_position(pos);
    }

    /// Advances the bar by `n`.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Changes the message.
    pub fn message(&self, msg: impl Into<String>) {
        self.0.set_message(msg.into());
    }

    /// Whether anything is drawn.
    pub fn is_hidden(&self) -> bool {
        self.0.is_hidden()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() && !super::json_mode() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar of `len` steps with `msg` (e.g. `"analyzing"`, len = ledger lines).
pub fn progress(len: u64, msg: impl Into<String>) -> Progress {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(msg.into());
    Progress(bar)
}

/// A spinner with `msg`, for work of unknown length; it ticks on its own.
pub fn spinner(msg: impl Into<String>) -> Progress {
    spinner_with("{spinner} {msg} ({elapsed})", msg)
}

/// A spinner that also shows a count ([`Progress::inc`]), e.g. records read: `msg: N read`.
pub fn counter(msg: impl Into<String>) -> Progress {
    spinner_with("{spinner} {msg}: {human_pos} read ({elapsed})", msg)
}

fn spinner_with(template: &str, msg: impl Into<String>) -> Progress {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_message(msg.into());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    Progress(bar)
}
