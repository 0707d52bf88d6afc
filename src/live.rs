//! The live view: an indicatif progress line on a terminal, plain periodic
//! lines otherwise (CI logs), fed once a second. Both go to the human stream
//! ([`crate::term`]): stdout, or stderr under `--output json`.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the view shows, for the last complete second and the run so far.
#[derive(Debug, Clone, Default)]
pub struct LiveSnapshot {
    pub elapsed: Duration,
    /// Arrivals due in the last second (all streams).
    pub intended: u64,
    /// Requests started in the last second.
    pub sent: u64,
    pub ok_total: u64,
    pub errors_total: u64,
    pub dropped_total: u64,
    /// p99 latency of the last second, ms (from the intended time).
    pub p99_ms: Option<f64>,
    pub in_flight: i64,
}

/// One line of the plain view: `[  70s/100s] ...` during the load, `[ 105s after load] ...`
/// once the load is over (cool-down, draining).
fn plain_line(snap: &LiveSnapshot, total: Duration) -> String {
    let secs = snap.elapsed.as_secs();
    if secs > total.as_secs() {
        format!("[{secs:>4}s after load] {}", snap.line())
    } else {
        format!("[{secs:>4}s/{}s] {}", total.as_secs(), snap.line())
    }
}

impl LiveSnapshot {
    fn line(&self) -> String {
        let p99 = self.p99_ms.map_or("-".to_string(), |v| format!("{v:.1}ms"));
        format!(
            "rate {}/s (intended {}/s)  ok {}  errors {}  dropped {}  p99 {}  in-flight {}",
            self.sent,
            self.intended,
            self.ok_total,
            self.errors_total,
            self.dropped_total,
            p99,
            self.in_flight
        )
    }
}

pub enum LiveView {
    Bar(ProgressBar),
    Plain {
        every: u64,
        next: u64,
        total: Duration,
    },
    Off,
}

impl LiveView {
    /// A bar when the human stream is a terminal, plain lines every `plain_every`
    /// seconds otherwise; nothing when `quiet`.
    pub fn new(total: Duration, quiet: bool, plain_every: u64) -> LiveView {
        if quiet {
            return LiveView::Off;
        }
        if crate::term::human_is_terminal() {
            let target = if crate::term::json_mode() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            };
            let bar = ProgressBar::with_draw_target(Some(total.as_secs().max(1)), target);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise}/{duration_precise} [{bar:30}] {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            LiveView::Bar(bar)
        } else {
            LiveView::Plain {
                every: plain_every.max(1),
                next: plain_every.max(1),
                total,
            }
        }
    }

    pub fn update(&mut self, snap: &LiveSnapshot) {
        match self {
            LiveView::Bar(bar) => {
                bar.set_position(snap.elapsed.as_secs());
                let over = bar.length().is_some_and(|len| snap.elapsed.as_secs() > len);
                if over {
                    bar.set_message(format!("after the load: {}", snap.line()));
                } else {
                    bar.set_message(snap.line());
                }
            }
            LiveView::Plain { every, next, total } => {
                if snap.elapsed.as_secs() >= *next {
                    *next += *every;
                    let mut out = crate::term::human();
                    let _ = writeln!(out, "{}", plain_line(snap, *total));
                }
            }
            LiveView::Off => {}
        }
    }

    pub fn finish(&mut self) {
        if let LiveView::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_when_the_load_is_over() {
        let total = Duration::from_secs(100);
        let during = LiveSnapshot {
            elapsed: Duration::from_secs(70),
            ..Default::default()
        };
        assert!(plain_line(&during, total).starts_with("[  70s/100s] rate 0/s"));
        let after = LiveSnapshot {
            elapsed: Duration::from_secs(105),
            ..Default::default()
        };
        assert!(plain_line(&after, total).starts_with("[ 105s after load] rate 0/s"));
    }
}
