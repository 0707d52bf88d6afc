//! Instances as child processes of the same binary.
//!
//! The supervisor's side ([`super::instance`] is the child's). It starts each web instance and worker as
//! `<exe> __sandbox-child <role> --config '<json>'` ([`ChildConfig`]). A child prints one
//! line `READY <port>` on stdout once it serves (workers print `READY 0`), logs to
//! stderr (redirected to `<run dir>/<instance id>.log`) and exits cleanly on SIGTERM.
//!
//! No orphans: every child is forked from one long-lived launcher thread ([`Launcher`])
//! with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so it is killed when that thread ends, which
//! happens when the supervisor drops its launcher, exits, or is killed (even by SIGKILL).
//! (PDEATHSIG fires when the *thread* that forked the child exits, hence the dedicated
//! thread rather than a tokio blocking-pool thread, which may exit when idle.)
//!
//! Exits are watched with a pidfd, which becomes readable when the process ends but
//! before it is reaped: the watcher first forgets the pid everywhere it could be
//! signalled (the EC2 driver, [`LiveChildren`]), then reaps, so a recycled pid is
//! never signalled.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use super::instance::ChildConfig;

/// The hidden subcommand that runs a child.
pub const CHILD_SUBCOMMAND: &str = "__sandbox-child";

/// What can go wrong starting or running a child.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The launcher thread is gone (the sandbox is shutting down).
    #[error("the launcher thread has stopped")]
    LauncherGone,
    /// The process could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The log file or a pipe could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The child did not print `READY <port>` in time.
    #[error("no READY line within {0:?}")]
    NotReady(Duration),
    /// The child closed stdout or printed something else first.
    #[error("expected `READY <port>` on stdout, got {0:?}")]
    BadReadyLine(String),
}

type SpawnRequest = (Command, oneshot::Sender<io::Result<Child>>);

/// Forks children from one dedicated thread that lives as long as this value, so each
/// child's `PR_SET_PDEATHSIG` fires exactly when the supervisor is gone.
pub struct Launcher {
    tx: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Launcher {
    /// Starts the launcher thread.
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = thread::Builder::new()
            .name("sandbox-launcher".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Launcher {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts `command` from the launcher thread, with the parent-death signal set.
    pub async fn spawn(&self, command: Command) -> Result<Child, ProcessError> {
        self.submit(command)?.await
    }

    /// Hands `command` to the launcher thread now; the returned future yields the child.
    /// (Lets a caller holding a lock on the launcher release it before awaiting.)
    pub fn submit(
        &self,
        mut command: Command,
    ) -> Result<impl Future<Output = Result<Child, ProcessError>> + use<>, ProcessError> {
        let exe = PathBuf::from(command.get_program());
        let parent = std::process::id();
        // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The supervisor may have died between fork and prctl.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or(ProcessError::LauncherGone)?
            .send((command, reply))
            .map_err(|_| ProcessError::LauncherGone)?;
        Ok(async move {
            rx.await
                .map_err(|_| ProcessError::LauncherGone)?
                .map_err(|source| ProcessError::Spawn { exe, source })
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The pids of children not yet reaped, for signalling them all at shutdown.
///
/// A pid is removed (under the lock) before its process is reaped, so no signal sent
/// through this set can reach a recycled pid.
#[derive(Debug, Default, Clone)]
pub struct LiveChildren {
    pids: Arc<Mutex<HashSet<u32>>>,
}

impl LiveChildren {
    /// Records a started child.
    pub fn insert(&self, pid: u32) {
        self.pids.lock().insert(pid);
    }

    /// Forgets a child (call before reaping it).
    pub fn remove(&self, pid: u32) {
        self.pids.lock().remove(&pid);
    }

    /// Children not yet reaped.
    pub fn pids(&self) -> Vec<u32> {
        self.pids.lock().iter().copied().collect()
    }

    /// Sends `signal` to every live child.
    pub fn signal_all(&self, signal: Signal) {
        let pids = self.pids.lock();
        for &pid in pids.iter() {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), signal);
            }
        }
    }

    /// Whether no child is left.
    pub fn is_empty(&self) -> bool {
        self.pids.lock().is_empty()
    }
}

/// A started child: its pid and its exit notification.
pub struct Running {
    child: Child,
    exit: AsyncFd<OwnedFd>,
}

/// A child's stdout, where it announces `READY <port>`.
pub struct ReadyLine {
    stdout: tokio::net::unix::pipe::Receiver,
}

impl ReadyLine {
    /// Waits for the `READY <port>` line, then keeps draining stdout in the background.
    pub async fn port(self, timeout: Duration) -> Result<u16, ProcessError> {
        let mut lines = BufReader::new(self.stdout).lines();
        let line = tokio::time::timeout(timeout, lines.next_line())
            .await
            .map_err(|_| ProcessError::NotReady(timeout))?
            .map_err(|source| ProcessError::Io {
                what: "reading the child's stdout".into(),
                source,
            })?
            .unwrap_or_default();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .ok_or_else(|| ProcessError::BadReadyLine(line.clone()))?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(port)
    }
}

/// The scheduling niceness of every instance: the sandbox shares the machine with the
/// harness measuring it, and when the two compete for CPU (a debug build, a scale-out
/// starting several instances at once on 2 cores) the harness must keep its clock, or the
/// run's timings become the harness's own delay (`harness.csv`). Niced instances still get
/// every cycle the harness leaves idle; they only lose when both want the same core.
pub const INSTANCE_NICE: libc::c_int = 10;

/// Builds the command line of a child.
pub fn child_command(
    exe: &Path,
    config: &ChildConfig,
    log: &Path,
) -> Result<Command, ProcessError> {
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| ProcessError::Io {
            what: format!("cannot open log file {}", log.display()),
            source,
        })?;
    let json = serde_json::to_string(config).expect("plain data serializes");
    let mut command = Command::new(exe);
    command
        .arg(CHILD_SUBCOMMAND)
        .arg(config.role.name())
        .arg("--config")
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // SAFETY: setpriority is a plain syscall, async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setpriority(libc::PRIO_PROCESS, 0, INSTANCE_NICE) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

impl Running {
    /// Wraps a freshly spawned child (stdout piped) for watching; returns its stdout too.
    pub fn new(mut child: Child) -> Result<(Self, ReadyLine), ProcessError> {
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| ProcessError::Io { what, source }
        };
        let fail = |child: &mut Child, e: ProcessError| {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        };
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return fail(&mut child, io_err("pidfd_open")(e));
        }
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the pidfd, so it stays open (and the same) while registered.
        let exit = match unsafe {
            AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        } {
            Ok(exit) => exit,
            Err(e) => {
                let e = io::Error::other(e.to_string());
                return fail(&mut child, io_err("watching the child's pidfd")(e));
            }
        };
        let Some(out) = child.stdout.take() else {
            let e = io::Error::other("stdout is not piped");
            return fail(&mut child, io_err("reading the child's stdout")(e));
        };
        let stdout = match tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(out)) {
            Ok(r) => r,
            Err(e) => return fail(&mut child, io_err("reading the child's stdout")(e)),
        };
        Ok((Running { child, exit }, ReadyLine { stdout }))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process has ended, without reaping it.
    pub async fn exited(&self) {
        // A pidfd polls readable once the process has terminated; it stays readable.
        let _ = self.exit.readable().await;
    }

    /// Reaps the (ended) process. Call after [`Running::exited`] and after forgetting
    /// the pid wherever it could be signalled.
    pub fn reap(mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }
}

/// Describes an exit status for state reasons and logs.
pub fn describe_exit(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => {
                let name = Signal::try_from(sig).map_or("unknown", |s| s.as_str());
                format!("killed by signal {sig} ({name})")
            }
            _ => "ended".to_owned(),
        },
        Err(e) => format!("exit status unknown: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_is_watched_until_it_ends_and_then_reaped() {
        let launcher = Launcher::new().unwrap();
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo 'READY 4242'; exit 3"])
            .stdout(Stdio::piped());
        let child = launcher.spawn(command).await.unwrap();
        let (running, ready) = Running::new(child).unwrap();
        assert_eq!(ready.port(Duration::from_secs(5)).await.unwrap(), 4242);
        tokio::time::timeout(Duration::from_secs(5), running.exited())
            .await
            .expect("exit noticed");
        let status = running.reap();
        assert_eq!(describe_exit(&status), "exit status 3");
    }

    #[tokio::test]
    async fn a_child_that_prints_something_else_is_not_ready() {
        let launcher = Launcher::new().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo hello"]).stdout(Stdio::piped());
        let (running, ready) = Running::new(launcher.spawn(command).await.unwrap()).unwrap();
        let e = ready.port(Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(e, ProcessError::BadReadyLine(ref l) if l == "hello"),
            "{e}"
        );
        running.exited().await;
        running.reap().unwrap();
    }

    #[tokio::test]
    async fn children_die_with_their_launcher_thread() {
        let launcher = Launcher::new().unwrap();
        let mut command = Command::new("sleep");
        command.arg("30").stdout(Stdio::piped());
        let (running, _ready) = Running::new(launcher.spawn(command).await.unwrap()).unwrap();
        drop(launcher);
        tokio::time::timeout(Duration::from_secs(5), running.exited())
            .await
            .expect("PDEATHSIG killed the child when the launcher thread ended");
        let status = running.reap();
        assert!(describe_exit(&status).contains("SIGKILL"), "{status:?}");
    }
}
