//! The subcommands: each owns its clap `Args`, turns them into the options of the module
//! that does the work ([`crate::session`] for `load`, `run` and `demo`, [`crate::ci`] for
//! `gate`), and returns an
//! [`Outcome`].

pub mod analyze;
pub mod chaos_run;
pub mod demo;
pub mod gate;
pub mod load;
pub mod recover;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod validate;

/// How a command ended; maps to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: done, every check held.
    Ok,
    /// Exit 1: a check (promise, gate) failed.
    Failed,
    /// Exit 2: usage, configuration or runtime error (already reported).
    Error,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Error => 2,
        }
    }
}
