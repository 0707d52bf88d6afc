//! The local backend: choose processes and signal them, reading `/proc` (Linux).
//!
//! Processes are selected by a pid file or by a command-line match **inside a process group
//! the user names** (never outside it), and remembered with their start time so that a pid
//! recycled after the process exited is never signalled.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::fault::Resource;

/// Why selecting or signalling processes failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocalError {
    /// The pid file could not be read or holds no pid.
    #[error("pid file {}: {message}", path.display())]
    PidFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A selector that could match processes outside the user's scope.
    #[error("process selector: {0}")]
    Selector(String),
    /// Unknown signal name.
    #[error("unknown signal `{0}` (use a name like SIGKILL, SIGTERM, SIGSTOP)")]
    BadSignal(String),
    /// `kill` failed.
    #[error("sending {signal} to pid {pid}: {errno}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The signal.
        signal: String,
        /// The OS error.
        errno: Errno,
    },
    /// The pid now belongs to another process (or none) than the one selected.
    #[error("pid {pid} is no longer the process that was selected (start time changed)")]
    Recycled {
        /// The pid.
        pid: i32,
    },
    /// `/proc` could not be listed.
    #[error("reading /proc: {0}")]
    Proc(String),
}

/// Which local processes a fault acts on. Give `pid_file`, or `command` with `process_group`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSelector {
    /// A file holding one pid per line (e.g. a service's pid file).
    pub pid_file: Option<PathBuf>,
    /// A substring of the command line (`/proc/<pid>/cmdline`, arguments joined by spaces).
    pub command: Option<String>,
    /// The process group (pgid) to search with `command`; required with it, so a match can
    /// never reach processes outside the group you name.
    pub process_group: Option<i32>,
}

/// A process as selected: pid, start time (clock ticks since boot) and command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcRef {
    /// The pid.
    pub pid: i32,
    /// `/proc/<pid>/stat` field 22: tells a recycled pid apart.
    pub start_time: u64,
    /// The command line, for humans.
    pub command: String,
}

/// Fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// State letter (`R`, `S`, `T`, `t`, `Z`, ...).
    pub state: char,
    /// Process group.
    pub pgid: i32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`, or `None` if the process does not exist.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is fields[n - 3].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    stat(pid).is_some_and(|s| s.state != 'Z')
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

impl ProcessSelector {
    /// The live processes the selector matches (never this process).
    pub fn resolve(&self) -> Result<Vec<ProcRef>, LocalError> {
        let me = std::process::id() as i32;
        let pids = match (&self.pid_file, &self.command, self.process_group) {
            (Some(path), None, None) => read_pid_file(path)?,
            (None, Some(pattern), Some(pgid)) => {
                if pgid <= 1 {
                    return Err(LocalError::Selector(format!(
                        "process_group must be a real group id (> 1), got {pgid}"
                    )));
                }
                if pattern.is_empty() {
                    return Err(LocalError::Selector("`command` must not be empty".into()));
                }
                let mut pids = Vec::new();
                let entries = fs::read_dir("/proc").map_err(|e| LocalError::Proc(e.to_string()))?;
                for entry in entries.flatten() {
                    let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                        continue;
                    };
                    if stat(pid).is_some_and(|s| s.pgid == pgid)
                        && cmdline(pid).contains(pattern.as_str())
                    {
                        pids.push(pid);
                    }
                }
                pids
            }
            (None, Some(_), None) => {
                return Err(LocalError::Selector(
                    "`command` needs `process_group`: matching is never done outside a group you name".into(),
                ));
            }
            _ => {
                return Err(LocalError::Selector(
                    "give `pid_file`, or `command` with `process_group`".into(),
                ));
            }
        };
        let mut out: Vec<ProcRef> = pids
            .into_iter()
            .filter(|&p| p != me)
            .filter_map(|pid| {
                let s = stat(pid).filter(|s| s.state != 'Z')?;
                Some(ProcRef {
                    pid,
                    start_time: s.start_time,
                    command: cmdline(pid),
                })
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out.dedup_by_key(|p| p.pid);
        Ok(out)
    }
}

fn read_pid_file(path: &Path) -> Result<Vec<i32>, LocalError> {
    let err = |message: String| LocalError::PidFile {
        path: path.to_owned(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| err(format!("`{t}` is not a pid"))))
        .collect::<Result<_, _>>()?;
    if pids.iter().any(|&p| p <= 1) {
        return Err(err("pids must be > 1".into()));
    }
    if pids.is_empty() {
        return Err(err("no pid in the file".into()));
    }
    Ok(pids)
}

impl From<&ProcRef> for Resource {
    fn from(p: &ProcRef) -> Resource {
        Resource {
            id: p.pid.to_string(),
            label: p.command.clone(),
            aws_tags: None,
        }
    }
}

/// Parses a signal name (`SIGKILL`, `KILL`, `sigterm`).
pub fn parse_signal(name: &str) -> Result<Signal, LocalError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| LocalError::BadSignal(name.to_owned()))
}

/// What happened when signalling one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent.
    Sent,
    /// The process no longer exists (or the pid was recycled): nothing sent.
    Gone,
}

/// Sends `signal` to `proc` if it is still the same process.
pub fn signal(proc: &ProcRef, signal: Signal) -> Result<Delivery, LocalError> {
    match stat(proc.pid) {
        Some(s) if s.start_time == proc.start_time && s.state != 'Z' => {}
        _ => return Ok(Delivery::Gone),
    }
    match kill(Pid::from_raw(proc.pid), signal) {
        Ok(()) => Ok(Delivery::Sent),
        Err(Errno::ESRCH) => Ok(Delivery::Gone),
        Err(errno) => Err(LocalError::Signal {
            pid: proc.pid,
            signal: signal.as_str().to_owned(),
            errno,
        }),
    }
}

/// Whether the process (if it is still the same one) is stopped (state `T` or `t`).
pub fn is_stopped(proc: &ProcRef) -> Option<bool> {
    let s = stat(proc.pid).filter(|s| s.start_time == proc.start_time && s.state != 'Z')?;
    Some(matches!(s.state, 'T' | 't'))
}

/// Polls until `done` holds or `timeout` passes (10 ms steps); returns the last answer.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let steps = (timeout.as_millis() / 10).max(1);
    for _ in 0..steps {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_our_own_process() {
        let s = stat(std::process::id() as i32).unwrap();
        assert!(matches!(s.state, 'R' | 'S'));
        assert!(s.start_time > 0);
    }

    #[test]
    fn command_match_requires_a_group() {
        let sel = ProcessSelector {
            command: Some("sleep".into()),
            ..Default::default()
        };
        assert!(matches!(sel.resolve(), Err(LocalError::Selector(_))));
        let sel = ProcessSelector {
            command: Some("sleep".into()),
            process_group: Some(1),
            ..Default::default()
        };
        assert!(matches!(sel.resolve(), Err(LocalError::Selector(_))));
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("kill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGSTOP").unwrap(), Signal::SIGSTOP);
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
