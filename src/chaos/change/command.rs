//! Shell commands: an `apply` command undone by an `undo` command, checked by an optional
//! `verify` command (exit 0 = restored). Each runs as `sh -c '<command>'` in its own process
//! group, with a timeout after which the whole group is killed (SIGKILL). Output goes to the
//! fault's log file in the run directory, never to the terminal.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::Undoable;
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// How many lines of stderr a failure quotes.
const STDERR_LINES: usize = 5;

/// Commands that make and undo a change, as journaled (the exact undo command is in the
/// journal, so `shakedown recover` runs it after `kill -9`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommandChange {
    /// Makes the change (`sh -c`).
    pub apply: String,
    /// Undoes it (`sh -c`); may run again after a crash, so it should be idempotent.
    pub undo: String,
    /// Exits 0 once the undo took effect (`sh -c`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    /// Longest each command may run, in milliseconds; then its process group is killed.
    pub timeout_ms: u64,
    /// Working directory of the commands (default: the harness's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Where the commands' output is appended (in the run directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which} command `{command}` {how}{}{}", stderr_tail(.stderr), log_note(.log))]
pub struct CommandError {
    /// `apply`, `undo` or `verify`.
    pub which: &'static str,
    /// The command line.
    pub command: String,
    /// What happened (`exited with code 3`, `timed out after 30s (killed)`, ...).
    pub how: String,
    /// The last lines of its stderr.
    pub stderr: Vec<String>,
    /// Its log file.
    pub log: Option<PathBuf>,
}

fn stderr_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("; last lines of stderr:");
    for l in lines {
        let _ = write!(out, "\n    {l}");
    }
    out
}

fn log_note(log: &Option<PathBuf>) -> String {
    log.as_ref()
        .map(|l| format!("\n    (output in {})", l.display()))
        .unwrap_or_default()
}

impl CommandChange {
    /// Runs one of the commands; `Ok` when it exits 0 within the timeout.
    pub async fn run(&self, which: &'static str, command: &str) -> Result<(), CommandError> {
        let timeout = Duration::from_millis(self.timeout_ms);
        let fail = |how: String, stderr: Vec<String>| CommandError {
            which,
            command: command.to_owned(),
            how,
            stderr,
            log: self.log.clone(),
        };
        let log = self.open_log(which, command);
        let stdout = match &log {
            Some(f) => f.try_clone().map_or_else(|_| Stdio::null(), Stdio::from),
            None => Stdio::null(),
        };
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("could not start (sh -c): {e}"), vec![]))?;
        let pgid = child.id().map(|p| p as i32);
        // stderr is copied to the log as it comes, keeping the last lines for the error.
        let stderr = child.stderr.take().expect("piped");
        let mut log_err = log.as_ref().and_then(|f| f.try_clone().ok());
        let reader = tokio::spawn(async move {
            let mut tail: Vec<String> = Vec::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = &mut log_err {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{line}");
                }
                tail.push(line);
                if tail.len() > STDERR_LINES {
                    tail.remove(0);
                }
            }
            tail
        });
        let status = tokio::time::timeout(timeout, child.wait()).await;
        let status = match status {
            Ok(s) => s.map_err(|e| fail(format!("could not be waited for: {e}"), vec![])),
            Err(_) => {
                if let Some(pgid) = pgid {
                    kill_group(pgid);
                }
                let _ = child.kill().await;
                Err(fail(
                    format!(
                        "timed out after {} (its process group was killed)",
                        humantime::format_duration(timeout)
                    ),
                    vec![],
                ))
            }
        };
        // A background process may keep stderr open: wait for it only briefly.
        let tail = tokio::time::timeout(Duration::from_millis(500), reader)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let status = match status {
            Ok(s) => s,
            Err(mut e) => {
                e.stderr = tail;
                self.note(&log, &e.how);
                return Err(e);
            }
        };
        self.note(&log, &format!("exit status: {status}"));
        if status.success() {
            return Ok(());
        }
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => format!("failed ({status})"),
        };
        Err(fail(how, tail))
    }

    fn open_log(&self, which: &str, command: &str) -> Option<std::fs::File> {
        let path = self.log.as_ref()?;
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        use std::io::Write as _;
        let _ = writeln!(
            f,
            "--- {} {which}: sh -c {command:?}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        Some(f)
    }

    fn note(&self, log: &Option<std::fs::File>, line: &str) {
        if let Some(mut f) = log.as_ref().and_then(|f| f.try_clone().ok()) {
            use std::io::Write as _;
            let _ = writeln!(f, "--- {line}");
        }
    }
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The log file of a command fault's occurrence in `run_dir`.
pub fn log_path(run_dir: &Path, occurrence: &str) -> PathBuf {
    let name: String = occurrence
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::results::RunDir::at(run_dir).command_log(&name)
}

impl Undoable for CommandChange {
    fn summary(&self) -> String {
        let mut s = format!("sh -c {:?}; undo: sh -c {:?}", self.apply, self.undo);
        if let Some(v) = &self.verify {
            let _ = write!(s, "; verify: sh -c {v:?}");
        }
        let _ = write!(
            s,
            " (timeout {} each)",
            humantime::format_duration(Duration::from_millis(self.timeout_ms))
        );
        s
    }

    fn apply<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { Ok(self.run("apply", &self.apply).await?) })
    }

    fn undo<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            self.run("undo", &self.undo).await?;
            Ok(vec![])
        })
    }

    fn verify<'a>(&'a self, _env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            match &self.verify {
                Some(v) => self
                    .run("verify", v)
                    .await
                    .map_err(|e| FaultError::NotVerified(e.to_string())),
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(dir: &Path, apply: &str, undo: &str, verify: Option<&str>, ms: u64) -> CommandChange {
        CommandChange {
            apply: apply.into(),
            undo: undo.into(),
            verify: verify.map(Into::into),
            timeout_ms: ms,
            dir: Some(dir.to_owned()),
            log: Some(log_path(dir, "run-0")),
        }
    }

    #[tokio::test]
    async fn apply_and_undo_run_in_the_directory_and_log_their_output() {
        let tmp = tempfile::tempdir().unwrap();
        let c = change(
            tmp.path(),
            "echo applying; touch flag",
            "echo undoing >&2; rm -f flag",
            Some("test ! -e flag"),
            5_000,
        );
        let env = Env::new(None);
        c.apply(&env).await.unwrap();
        assert!(tmp.path().join("flag").exists());
        assert!(c.verify(&env).await.is_err(), "verify fails while applied");
        c.undo(&env).await.unwrap();
        c.verify(&env).await.unwrap();
        assert!(!tmp.path().join("flag").exists());
        let log = std::fs::read_to_string(c.log.as_ref().unwrap()).unwrap();
        assert!(log.contains("applying") && log.contains("undoing"), "{log}");
    }

    #[tokio::test]
    async fn a_failing_command_names_itself_its_code_and_its_stderr() {
        let tmp = tempfile::tempdir().unwrap();
        let c = change(
            tmp.path(),
            "echo one >&2; echo two >&2; exit 3",
            "true",
            None,
            5_000,
        );
        let err = c.apply(&Env::new(None)).await.unwrap_err().to_string();
        assert!(err.contains("apply command `echo one"), "{err}");
        assert!(err.contains("exited with code 3"), "{err}");
        assert!(err.contains("    one\n    two"), "{err}");
        assert!(err.contains("output in"), "{err}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_its_group() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        // The background `sleep` is in the command's group: killed with it.
        let c = change(
            tmp.path(),
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
            "true",
            None,
            300,
        );
        let started = std::time::Instant::now();
        let err = c.apply(&Env::new(None)).await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(err.contains("timed out after 300ms"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = crate::chaos::local::wait_until(Duration::from_secs(3), || {
            !crate::chaos::local::pid_alive(pid as u32)
        })
        .await;
        assert!(gone, "the background sleep {pid} survived the timeout");
    }
}
