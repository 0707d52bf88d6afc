//! Message accounting for the no-loss, drain and latency promises (DESIGN section 7).
//!
//! | file | job | pure? |
//! |---|---|---|
//! | [`bits`] | concurrent, growable bitset: ~1 bit per sequence number | yes |
//! | [`ids`] | `<run_tag>-<stream>-<seq>` ids and [`AcceptedIds`], fed by the driver | yes |
//! | [`census`] | what is still in the queue at the end: reads around the final completion poll, listed ids | yes |
//! | [`summary`] | [`LedgerSummary`] (`ledger.json`) from accepted ids and completions; e2e latency | yes |
//! | [`writer`] | `accepted.jsonl`, `completions.jsonl`, `ledger.json`: writers and readers | no |
//! | [`source`] | completion sources (sandbox feed, SQS done queue, HTTP JSON lines), DLQ drain | no |
//!
//! During a run the driver calls [`AcceptedIds::accept`] for every message the target
//! accepted ([`writer::run_accepted_spill`] appends them to `accepted.jsonl` each second) and
//! [`source::run_completions`] appends what the system finished to `completions.jsonl`.
//! At the end [`source::drain_dlq`] adds the dead-lettered ones and [`summary::summarize`]
//! writes the balance. The files alone are enough to compute it again offline
//! ([`writer::load_accepted`] + [`crate::results::jsonl::JsonLines`], both streamed). File formats: `docs/probes.md`.

pub mod bits;
pub mod census;
pub mod ids;
pub mod source;
pub mod summary;
pub mod writer;

use std::path::PathBuf;

pub use ids::{AcceptedIds, IdFormat};
pub use summary::{CompletionRecord, LedgerSummary, Outcome};

use crate::aws::AwsError;
use crate::results::FileError;
use crate::results::jsonl::JsonlError;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file held something unexpected.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: not tied to a line).
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// An HTTP source failed.
    #[error("{url}: {message}")]
    Http {
        /// The URL polled.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// An SQS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// An SQS source without an SQS client.
    #[error("an SQS completion source needs an AWS target (region, endpoint) in the experiment")]
    NoSqsClient,
}

impl From<FileError> for LedgerError {
    fn from(e: FileError) -> LedgerError {
        match e {
            FileError::Io { path, source } => LedgerError::Io { path, source },
            FileError::Parse {
                path,
                line,
                message,
            } => LedgerError::Parse {
                path,
                line,
                message,
            },
        }
    }
}

impl From<JsonlError> for LedgerError {
    fn from(e: JsonlError) -> LedgerError {
        FileError::from(e).into()
    }
}
