//! The initial `run.json` of a run: tool, command, target, profile, mode, seed, settings.

use std::path::Path;
use std::time::Duration;

use crate::config::profile::{Arrival, Profile, Settings, StreamKind};
use crate::driver::Mode;
use crate::results::meta::{ModeInfo, ProfileInfo, SettingsInfo, StreamInfo, Tool};
use crate::results::{RunMeta, RunStatus};

/// What `run.json` is made from.
pub struct MetaInput<'a> {
    /// `load` or `run`.
    pub kind: &'a str,
    pub profile: &'a Profile,
    pub target: String,
    pub mode: Mode,
    pub settings: &'a Settings,
    pub seed: u64,
    pub segment: crate::schedule::Segment,
    pub run_tag: &'a str,
    pub dir: &'a Path,
    pub command: Vec<String>,
}

/// The initial `run.json` (status `running`, started now).
pub fn run_meta(input: MetaInput<'_>) -> RunMeta {
    let MetaInput {
        kind,
        profile,
        target,
        mode,
        settings,
        seed,
        segment,
        run_tag,
        dir,
        command,
    } = input;
    let streams = profile
        .streams
        .iter()
        .map(|s| StreamInfo {
            name: s.name.clone(),
            kind: match s.kind {
                StreamKind::Upload => "upload".into(),
                StreamKind::Event => "event".into(),
            },
            transport: s.transport.name().into(),
            arrival: match s.arrival {
                Arrival::Uniform => "uniform".into(),
                Arrival::Poisson => "poisson".into(),
            },
            stages: s
                .stages
                .iter()
                .map(|st| [st.duration.as_secs_f64(), st.from, st.to])
                .collect(),
            scheduled: s.expected_requests(),
        })
        .collect();
    let ms = |d: Duration| d.as_millis() as u64;
    RunMeta {
        format_version: crate::results::meta::FORMAT_VERSION,
        run_id: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        kind: kind.into(),
        tool: Tool::current(),
        command,
        host: hostname(),
        target,
        profile: ProfileInfo {
            name: profile.name.clone(),
            path: profile.path.as_ref().map(|p| p.display().to_string()),
            streams,
        },
        mode: match mode {
            Mode::Open => ModeInfo {
                model: "open".into(),
                concurrency: None,
                requests: None,
                duration_s: profile.duration().as_secs_f64(),
            },
            Mode::Closed {
                concurrency,
                duration,
                requests,
            } => ModeInfo {
                model: "closed".into(),
                concurrency: Some(concurrency),
                requests,
                duration_s: duration.as_secs_f64(),
            },
        },
        seed,
        segment: format!("{}/{}", segment.index, segment.count),
        run_tag: run_tag.into(),
        settings: SettingsInfo {
            max_in_flight: settings.max_in_flight,
            max_lateness_ms: ms(settings.max_lateness),
            late_after_ms: ms(settings.late_after),
            connect_timeout_ms: ms(settings.connect_timeout),
            request_timeout_ms: ms(settings.request_timeout),
        },
        started_at: chrono::Utc::now(),
        ended_at: None,
        status: RunStatus::Running,
        error: None,
        summary: Vec::new(),
        peak_rss_kib: None,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
