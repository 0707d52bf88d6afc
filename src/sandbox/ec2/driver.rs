//! The control hook: what a Terminate/Stop/Start does to something real.

use std::collections::HashMap;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;

use super::fleet::InstanceId;

/// Acts on the thing behind an instance. Methods are called without the registry lock held
/// and should return quickly (sending a signal, not waiting for its effect).
pub trait InstanceDriver: Send + Sync + 'static {
    /// Ends the instance for good (e.g. SIGKILL its process).
    fn terminate(&self, id: &InstanceId) -> Result<(), DriverError>;
    /// Freezes the instance (e.g. SIGSTOP).
    fn stop(&self, id: &InstanceId) -> Result<(), DriverError>;
    /// Resumes a frozen instance (e.g. SIGCONT).
    fn start(&self, id: &InstanceId) -> Result<(), DriverError>;
}

/// Why a driver could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// No process is attached to this instance.
    #[error("no process attached to instance {0}")]
    NotAttached(InstanceId),
    /// The pid is not one this driver may signal (0, 1, negative or our own).
    #[error("refusing to attach pid {0}: not a child process id")]
    InvalidPid(i64),
    /// The process no longer exists.
    #[error("process {pid} of instance {id} no longer exists")]
    ProcessGone {
        /// The instance.
        id: InstanceId,
        /// Its former pid.
        pid: i32,
    },
    /// The signal could not be sent.
    #[error("sending {signal} to pid {pid} failed: {errno}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The signal name.
        signal: &'static str,
        /// The OS error.
        errno: Errno,
    },
}

/// A driver that does nothing and always succeeds: for registries whose instances have no
/// process behind them (tests, dry setups).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopDriver;

impl InstanceDriver for NoopDriver {
    fn terminate(&self, _id: &InstanceId) -> Result<(), DriverError> {
        Ok(())
    }
    fn stop(&self, _id: &InstanceId) -> Result<(), DriverError> {
        Ok(())
    }
    fn start(&self, _id: &InstanceId) -> Result<(), DriverError> {
        Ok(())
    }
}

/// Maps instances to local process ids and signals them: SIGKILL to terminate, SIGSTOP to
/// stop, SIGCONT to start.
///
/// The launcher attaches each pid right after registering the instance and detaches it
/// before reaping the process (reporting the exit with `FleetHandle::mark_exited` does not
/// detach), so that a recycled pid is never signalled. A successful terminate detaches the
/// pid itself. Only the process is signalled, not its process group.
#[derive(Debug, Default)]
pub struct ProcessDriver {
    pids: Mutex<HashMap<InstanceId, Pid>>,
}

impl ProcessDriver {
    /// A driver with no process attached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches the process `pid` to `id` (replacing any earlier one).
    pub fn attach(&self, id: &InstanceId, pid: u32) -> Result<(), DriverError> {
        let own = std::process::id();
        let raw = i32::try_from(pid).map_err(|_| DriverError::InvalidPid(pid.into()))?;
        if raw <= 1 || pid == own {
            return Err(DriverError::InvalidPid(pid.into()));
        }
        self.pids.lock().insert(id.clone(), Pid::from_raw(raw));
        Ok(())
    }

    /// Detaches the process of `id`, returning its pid if one was attached.
    pub fn detach(&self, id: &InstanceId) -> Option<u32> {
        self.pids
            .lock()
            .remove(id)
            .and_then(|p| u32::try_from(p.as_raw()).ok())
    }

    /// The pid attached to `id`, if any.
    pub fn pid(&self, id: &InstanceId) -> Option<u32> {
        self.pids
            .lock()
            .get(id)
            .and_then(|p| u32::try_from(p.as_raw()).ok())
    }

    fn signal(&self, id: &InstanceId, signal: Signal) -> Result<Pid, DriverError> {
        let pid = *self
            .pids
            .lock()
            .get(id)
            .ok_or_else(|| DriverError::NotAttached(id.clone()))?;
        match kill(pid, signal) {
            Ok(()) => Ok(pid),
            Err(Errno::ESRCH) => Err(DriverError::ProcessGone {
                id: id.clone(),
                pid: pid.as_raw(),
            }),
            Err(errno) => Err(DriverError::Signal {
                pid: pid.as_raw(),
                signal: signal.as_str(),
                errno,
            }),
        }
    }
}

impl InstanceDriver for ProcessDriver {
    /// SIGKILL; a process that is already gone counts as terminated.
    fn terminate(&self, id: &InstanceId) -> Result<(), DriverError> {
        match self.signal(id, Signal::SIGKILL) {
            Ok(_) | Err(DriverError::ProcessGone { .. }) => {
                self.detach(id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn stop(&self, id: &InstanceId) -> Result<(), DriverError> {
        self.signal(id, Signal::SIGSTOP).map(drop)
    }

    fn start(&self, id: &InstanceId) -> Result<(), DriverError> {
        self.signal(id, Signal::SIGCONT).map(drop)
    }
}
