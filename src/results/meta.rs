//! `run.json`: what ran, against what, when, and how it ended.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::StreamSummary;

/// The version of the results format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died: the files hold what was written).
    Running,
    /// The schedule ran to its end.
    Completed,
    /// Stopped early by Ctrl-C or SIGTERM.
    Interrupted,
    /// Ended by an error; see `error`.
    Failed,
}

/// The contents of `run.json`.
///
/// Its JSON schema is `docs/schema/run.schema.json`, generated from this type
/// (`SHAKEDOWN_BLESS=1 cargo test --test schemas` rewrites it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunMeta {
    pub format_version: u32,
    pub run_id: String,
    /// `load` (`shakedown load`) or `run` (`shakedown run` / `demo`: an experiment, whose file is
    /// copied next to it as `experiment.toml`).
    pub kind: String,
    pub tool: Tool,
    /// The command line as given.
    pub command: Vec<String>,
    pub host: String,
    pub target: String,
    pub profile: ProfileInfo,
    pub mode: ModeInfo,
    pub seed: u64,
    /// `index/count` of the schedule this run sent.
    pub segment: String,
    /// Prefix of every request id (`<run_tag>-<stream>-<seq>`).
    pub run_tag: String,
    pub settings: SettingsInfo,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whole-run figures per stream, filled in at the end.
    #[serde(default)]
    pub summary: Vec<StreamSummary>,
    /// Peak resident memory of the shakedown process itself (KiB), at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    pub fn current() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileInfo {
    pub name: String,
    /// The file, when the profile came from one.
    pub path: Option<String>,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StreamInfo {
    pub name: String,
    pub kind: String,
    pub transport: String,
    pub arrival: String,
    /// The rate curve: `[seconds, from per s, to per s]` per stage.
    pub stages: Vec<[f64; 3]>,
    /// Arrivals the schedule holds for this stream (whole schedule, all segments).
    pub scheduled: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModeInfo {
    /// `open` or `closed`.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Planned length of the sending phase, in seconds.
    pub duration_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SettingsInfo {
    pub max_in_flight: usize,
    pub max_lateness_ms: u64,
    pub late_after_ms: u64,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

/// The JSON schema of `run.json`, pretty-printed.
pub fn run_schema() -> String {
    let schema = schemars::schema_for!(RunMeta);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// This process's peak resident set size in KiB (`VmHWM`), where /proc has it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
