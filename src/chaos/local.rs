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

/// Which local processes a fault acts on.
///
/// One source: `pid_file` (files, globs), `children_of` (a process's children), or
/// `command` within a numbered `process_group`. Then, optionally, `process_group = true`
/// widens the selection to the whole process group of each process, and `command` keeps
/// only the processes whose command line contains it. A selection never includes
/// shakedown itself, and a group that contains shakedown is refused.
///
/// ```toml
/// processes = { pid_file = "/run/workers/*.pid" }                  # every worker's pid file
/// processes = { pid_file = ["/run/web.pid", "/run/queue.pid"] }   # a list (globs allowed)
/// processes = { pid_file = "/run/gunicorn.pid", process_group = true }  # master + its workers
/// processes = { children_of = "/run/gunicorn.pid" }                # the workers only
/// processes = { children_of = 4242, command = "celery" }           # children matching
/// processes = { command = "worker", process_group = 4242 }         # in a group you name
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSelector {
    /// Pid files (one or more pids each, whitespace-separated): a path, a path whose file
    /// name holds `*` or `?` (every matching file; none matching selects nothing), or a list.
    pub pid_file: Option<PidFiles>,
    /// The direct children (from `/proc`) of a process: its pid, or a pid file.
    pub children_of: Option<PidSource>,
    /// A substring of the command line (`/proc/<pid>/cmdline`, arguments joined by spaces):
    /// keeps the matching processes of the selection.
    pub command: Option<String>,
    /// `true`: every process in the process group of each selected process. A group id
    /// (> 1): the group to search with `command` (so a match never leaves it).
    pub process_group: Option<GroupSel>,
}

/// `pid_file`: one path (or glob), or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a pid file path (a `*` glob in its name is allowed) or a list of them"
)]
pub enum PidFiles {
    /// One path or glob.
    One(PathBuf),
    /// Several.
    Many(Vec<PathBuf>),
}

impl PidFiles {
    fn paths(&self) -> &[PathBuf] {
        match self {
            PidFiles::One(p) => std::slice::from_ref(p),
            PidFiles::Many(v) => v,
        }
    }
}

/// `children_of`: a pid or a pid file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a pid (a number > 1) or the path of a pid file")]
pub enum PidSource {
    /// A pid.
    Pid(i32),
    /// A pid file.
    File(PathBuf),
}

/// `process_group`: `true` (the groups of the selected processes) or a group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "`true` or a process group id (> 1)")]
pub enum GroupSel {
    /// `true`: widen to whole groups (`false` is the same as leaving it out).
    Whole(bool),
    /// The group searched with `command`.
    Id(i32),
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
    /// Parent pid.
    pub ppid: i32,
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
        ppid: fields.get(1)?.parse().ok()?,
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
    /// Checks the selector without reading anything: what `validate` and `run` both call.
    pub fn check(&self) -> Result<(), LocalError> {
        let bad = |m: &str| Err(LocalError::Selector(m.to_owned()));
        let group_id = match self.process_group {
            Some(GroupSel::Id(g)) if g <= 1 => {
                return Err(LocalError::Selector(format!(
                    "process_group must be a real group id (> 1) or `true`, got {g}"
                )));
            }
            Some(GroupSel::Id(g)) => Some(g),
            _ => None,
        };
        let whole = self.process_group == Some(GroupSel::Whole(true));
        let sources = [
            self.pid_file.is_some(),
            self.children_of.is_some(),
            group_id.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if self.command.as_deref().is_some_and(str::is_empty) {
            return bad("`command` must not be empty");
        }
        if whole && self.pid_file.is_none() && self.children_of.is_none() {
            return bad("`process_group = true` widens `pid_file` or `children_of`: give one");
        }
        if sources == 0 && self.command.is_some() {
            return bad(
                "`command` needs `process_group` (a group id), `pid_file` or `children_of`: matching is never done outside a scope you name",
            );
        }
        if sources != 1 {
            return bad(
                "give one of `pid_file`, `children_of`, or `command` with `process_group = <group id>`",
            );
        }
        if group_id.is_some() && self.command.is_none() {
            return bad(
                "`process_group = <id>` selects with `command`; for every process of a pid file's group write `pid_file = \"...\", process_group = true`",
            );
        }
        if let Some(files) = &self.pid_file {
            if files.paths().is_empty() {
                return bad("`pid_file` is an empty list");
            }
            for p in files.paths() {
                check_pattern(p)?;
            }
        }
        match &self.children_of {
            Some(PidSource::Pid(p)) if *p <= 1 => {
                return Err(LocalError::Selector(format!(
                    "children_of must be a pid > 1, got {p}"
                )));
            }
            Some(PidSource::File(p)) if has_glob(p.as_os_str().to_string_lossy().as_ref()) => {
                return bad("`children_of` takes one pid file, not a glob");
            }
            _ => {}
        }
        Ok(())
    }

    /// The live processes the selector matches (never this process).
    pub fn resolve(&self) -> Result<Vec<ProcRef>, LocalError> {
        self.check()?;
        let me = std::process::id() as i32;
        let mut pids: Vec<i32> = match (&self.pid_file, &self.children_of, self.process_group) {
            (Some(files), _, _) => {
                let mut pids = Vec::new();
                for pattern in files.paths() {
                    for path in expand_pattern(pattern)? {
                        pids.extend(read_pid_file(&path)?);
                    }
                }
                pids
            }
            (None, Some(parent), _) => {
                let parents = match parent {
                    PidSource::Pid(p) => vec![*p],
                    PidSource::File(f) => read_pid_file(f)?,
                };
                let mut pids = Vec::new();
                for pid in proc_pids()? {
                    if stat(pid).is_some_and(|s| parents.contains(&s.ppid)) {
                        pids.push(pid);
                    }
                }
                pids
            }
            (None, None, Some(GroupSel::Id(pgid))) => proc_pids()?
                .into_iter()
                .filter(|&p| stat(p).is_some_and(|s| s.pgid == pgid))
                .collect(),
            _ => unreachable!("check() requires a source"),
        };
        if self.process_group == Some(GroupSel::Whole(true)) {
            let my_group = stat(me).map(|s| s.pgid);
            let mut groups: Vec<i32> = pids
                .iter()
                .filter_map(|&p| stat(p).map(|s| s.pgid))
                .collect();
            groups.sort_unstable();
            groups.dedup();
            if let Some(g) = groups.iter().find(|&&g| g <= 1 || Some(g) == my_group) {
                return Err(LocalError::Selector(format!(
                    "process group {g} is shakedown's own (or the system's): refusing to widen to it"
                )));
            }
            pids = proc_pids()?
                .into_iter()
                .filter(|&p| stat(p).is_some_and(|s| groups.contains(&s.pgid)))
                .collect();
        }
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
            .filter(|p| {
                self.command
                    .as_deref()
                    .is_none_or(|c| p.command.contains(c))
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out.dedup_by_key(|p| p.pid);
        Ok(out)
    }
}

fn proc_pids() -> Result<Vec<i32>, LocalError> {
    let entries = fs::read_dir("/proc").map_err(|e| LocalError::Proc(e.to_string()))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A glob may only be in the file name: `/run/workers/*.pid`, not `/run/*/app.pid`.
fn check_pattern(path: &Path) -> Result<(), LocalError> {
    let text = path.to_string_lossy();
    if text.is_empty() {
        return Err(LocalError::Selector("`pid_file` must not be empty".into()));
    }
    if text.contains('[') {
        return Err(LocalError::Selector(format!(
            "pid_file {text}: only `*` and `?` are wildcards (no `[...]`)"
        )));
    }
    let dir = path
        .parent()
        .map(|d| d.to_string_lossy())
        .unwrap_or_default();
    if has_glob(&dir) {
        return Err(LocalError::Selector(format!(
            "pid_file {text}: a wildcard may only be in the file name, not in the directory"
        )));
    }
    Ok(())
}

/// The files a pid file pattern names: itself, or the files of its directory whose names
/// match its `*`/`?` pattern (sorted; none is an empty list, not an error).
fn expand_pattern(path: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !has_glob(&name) {
        return Ok(vec![path.to_owned()]);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let entries = fs::read_dir(&dir).map_err(|e| LocalError::PidFile {
        path: path.to_owned(),
        message: format!("reading {}: {e}", dir.display()),
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    Ok(out)
}

/// `*` (any run of characters) and `?` (one character).
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
            process_group: Some(GroupSel::Id(1)),
            ..Default::default()
        };
        assert!(matches!(sel.resolve(), Err(LocalError::Selector(_))));
    }

    #[test]
    fn selectors_are_checked_without_reading_anything() {
        let parse = |t: &str| toml::from_str::<ProcessSelector>(t).unwrap().check();
        assert!(parse("pid_file = \"/run/workers/*.pid\"").is_ok());
        assert!(parse("pid_file = [\"/a.pid\", \"/b/*.pid\"]").is_ok());
        assert!(parse("pid_file = \"/a.pid\"\nprocess_group = true").is_ok());
        assert!(parse("children_of = 4242\ncommand = \"celery\"").is_ok());
        assert!(parse("children_of = \"/run/app.pid\"").is_ok());
        assert!(parse("pid_file = \"/run/*/app.pid\"").is_err());
        assert!(parse("pid_file = []").is_err());
        assert!(parse("process_group = true").is_err());
        assert!(parse("process_group = 4242").is_err());
        assert!(parse("command = \"x\"").is_err());
        assert!(parse("pid_file = \"/a\"\nchildren_of = 7").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.pid", "w1.pid"));
        assert!(wildcard("w?.pid", "w1.pid"));
        assert!(!wildcard("*.pid", "w1.pid.old"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*b", "ac"));
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("kill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGSTOP").unwrap(), Signal::SIGSTOP);
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
