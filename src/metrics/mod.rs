//! Measurements: per-second windows of counters and HDR histograms, the sharded
//! recorder the driver writes into, and the rows and summaries made from them.
//!
//! Pure: no tokio, no files. Latencies are microseconds, histograms HDR with
//! 3 significant digits; "corrected" latency is measured from the intended send
//! time (open model), "uncorrected" from the actual send (service time).

mod fold;
mod recorder;
mod seconds;
mod summary;
mod window;

pub use recorder::{Recorder, SecondStats};
pub use seconds::{
    Encoded, SecondHistograms, decode as decode_histogram, encode as encode_histogram,
    merge as merge_histograms,
};
pub use summary::{ConnectionSummary, Percentiles, StreamSummary, render_table};
pub use window::{Counters, ErrorClass, Window, new_histogram};
