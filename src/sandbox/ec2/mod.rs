//! The sandbox's EC2-compatible control plane.
//!
//! A registry of instances (local processes) with EC2's state machine and tags
//! ([`fleet`], pure), a hook that makes state changes act on real processes ([`driver`]),
//! and an HTTP endpoint speaking the EC2 query protocol so that the unmodified
//! `aws-sdk-ec2` client can describe, tag, stop, start and terminate them (`server`).
//!
//! Supported actions: `DescribeInstances` (filters `tag:KEY`, `tag-key`, `tag-value`,
//! `instance-state-name`, `instance-state-code`, `instance-id`, `instance-type`,
//! `private-ip-address`, `reservation-id`, `availability-zone`; `*`/`?` wildcards;
//! `InstanceId.N`; `MaxResults` 5..=1000 with `NextToken`), `DescribeInstanceStatus`,
//! `TerminateInstances`, `StopInstances`, `StartInstances`, `CreateTags`, `DeleteTags`,
//! `DescribeTags` (filters `resource-id`, `resource-type`, `key`, `value`). `DryRun=true` on
//! a valid request answers `DryRunOperation` (HTTP 412) and changes nothing. Errors use EC2's
//! codes (`InvalidInstanceID.NotFound`, `IncorrectInstanceState`, `InvalidAction`, ...).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use shakedown::sandbox::ec2::{Ec2Service, LaunchSpec, ProcessDriver};
//!
//! let driver = Arc::new(ProcessDriver::new());
//! let service = Ec2Service::new(driver.clone());
//! let fleet = service.fleet();
//! let child = std::process::Command::new("sleep").arg("60").spawn()?;
//! let id = fleet.register(LaunchSpec::default().tag("tier", "web"));
//! driver.attach(&id, child.id()).expect("a child pid");
//! fleet.mark_running(&id).expect("just registered");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! service.serve(listener, std::future::pending()).await
//! # }
//! ```

pub mod driver;
pub mod fleet;
mod query;
mod server;
mod xml;

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use driver::{DriverError, InstanceDriver, NoopDriver, ProcessDriver};
pub use fleet::{
    Changes, DescribeQuery, Filter, Fleet, FleetError, Instance, InstanceId, InstanceState,
    LaunchSpec, Page, StateChange, StateReason, TagDescription, TagSelector, Transition,
};

/// Why a control action (terminate, stop, start) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The request was refused by the registry; nothing changed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The driver failed for this instance, which was put back in its previous state.
    /// Other instances of the same request may have been acted on.
    #[error("instance {id}: {source}")]
    Driver {
        /// The instance.
        id: InstanceId,
        /// What the driver said.
        #[source]
        source: DriverError,
    },
}

struct Shared {
    fleet: Mutex<Fleet>,
    driver: Arc<dyn InstanceDriver>,
    version: watch::Sender<u64>,
}

/// The EC2-compatible service: a registry, its driver, and the HTTP endpoint.
pub struct Ec2Service {
    handle: FleetHandle,
}

impl Ec2Service {
    /// A service with an empty registry (default retention) acting through `driver`.
    pub fn new(driver: Arc<dyn InstanceDriver>) -> Self {
        Self::with_fleet(Fleet::default(), driver)
    }

    /// A service over a preconfigured registry (e.g. a shorter terminated retention).
    pub fn with_fleet(fleet: Fleet, driver: Arc<dyn InstanceDriver>) -> Self {
        let (version, _) = watch::channel(fleet.version());
        let shared = Arc::new(Shared {
            fleet: Mutex::new(fleet),
            driver,
            version,
        });
        Ec2Service {
            handle: FleetHandle { shared },
        }
    }

    /// A handle for in-process callers (supervisor, auto-scaler, probes).
    pub fn fleet(&self) -> FleetHandle {
        self.handle.clone()
    }

    /// The HTTP routes, for embedding in another server.
    pub fn router(&self) -> axum::Router {
        server::router(self.fleet())
    }

    /// Serves the EC2 query protocol on `listener` (bind port 0 and read its local address to
    /// get a free port) until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// A cheap, cloneable handle on the registry; every method takes the current wall-clock time.
#[derive(Clone)]
pub struct FleetHandle {
    shared: Arc<Shared>,
}

impl FleetHandle {
    fn with_fleet<T>(&self, f: impl FnOnce(&mut Fleet) -> T) -> T {
        let (out, version) = {
            let mut fleet = self.shared.fleet.lock();
            let out = f(&mut fleet);
            (out, fleet.version())
        };
        self.shared.version.send_if_modified(|v| {
            let changed = *v != version;
            *v = version;
            changed
        });
        out
    }

    /// Registers a new instance in `pending` and returns its id.
    pub fn register(&self, spec: LaunchSpec) -> InstanceId {
        self.with_fleet(|f| f.register(spec, Utc::now()))
    }

    /// Reports the instance ready (`pending -> running`).
    pub fn mark_running(&self, id: &InstanceId) -> Result<StateChange, FleetError> {
        self.with_fleet(|f| f.mark_running(id, Utc::now()))
    }

    /// Reports that the instance's process ended on its own (`-> terminated`, with `message`
    /// as the state reason).
    pub fn mark_exited(&self, id: &InstanceId, message: &str) -> Result<StateChange, FleetError> {
        self.with_fleet(|f| f.mark_exited(id, message, Utc::now()))
    }

    /// A copy of the instance, if known.
    pub fn get(&self, id: &InstanceId) -> Option<Instance> {
        self.with_fleet(|f| f.get(id).cloned())
    }

    /// DescribeInstances semantics, in process.
    pub fn describe(&self, query: &DescribeQuery) -> Result<Page<Instance>, FleetError> {
        self.with_fleet(|f| f.describe(query, Utc::now()))
    }

    /// DescribeTags semantics, in process.
    pub fn describe_tags(
        &self,
        filters: &[Filter],
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<TagDescription>, FleetError> {
        self.with_fleet(|f| f.describe_tags(filters, max_results, next_token, Utc::now()))
    }

    /// CreateTags semantics (user tags: no `aws:` keys).
    pub fn create_tags(
        &self,
        ids: &[InstanceId],
        tags: &[(String, String)],
    ) -> Result<(), FleetError> {
        self.with_fleet(|f| f.create_tags(ids, tags, Utc::now()))
    }

    /// DeleteTags semantics.
    pub fn delete_tags(&self, ids: &[InstanceId], tags: &[TagSelector]) -> Result<(), FleetError> {
        self.with_fleet(|f| f.delete_tags(ids, tags, Utc::now()))
    }

    /// TerminateInstances: `-> shutting-down`, SIGKILL through the driver, `-> terminated`.
    /// Returns each instance's state before and right after the request, as EC2 does.
    pub fn terminate(&self, ids: &[InstanceId]) -> Result<Vec<StateChange>, ControlError> {
        self.control(
            ids,
            Fleet::begin_terminate,
            |d, id| d.terminate(id),
            InstanceState::Terminated,
        )
    }

    /// StopInstances: `running -> stopping`, SIGSTOP through the driver, `-> stopped`.
    pub fn stop(&self, ids: &[InstanceId]) -> Result<Vec<StateChange>, ControlError> {
        self.control(
            ids,
            Fleet::begin_stop,
            |d, id| d.stop(id),
            InstanceState::Stopped,
        )
    }

    /// StartInstances: `stopped -> pending`, SIGCONT through the driver, `-> running`.
    pub fn start(&self, ids: &[InstanceId]) -> Result<Vec<StateChange>, ControlError> {
        self.control(
            ids,
            Fleet::begin_start,
            |d, id| d.start(id),
            InstanceState::Running,
        )
    }

    /// Runs one control action: the registry's first half under the lock, the driver
    /// outside it, then completion (or rollback) per instance.
    fn control(
        &self,
        ids: &[InstanceId],
        begin: impl FnOnce(
            &mut Fleet,
            &[InstanceId],
            chrono::DateTime<Utc>,
        ) -> Result<Vec<StateChange>, FleetError>,
        act: impl Fn(&dyn InstanceDriver, &InstanceId) -> Result<(), DriverError>,
        done: InstanceState,
    ) -> Result<Vec<StateChange>, ControlError> {
        let changes = self.with_fleet(|f| begin(f, ids, Utc::now()))?;
        let mut first_error = None;
        for change in changes.iter().filter(|c| c.changed()) {
            let outcome = act(self.shared.driver.as_ref(), &change.id);
            self.with_fleet(|f| match &outcome {
                Ok(()) => f.complete(&change.id, change.current, done, Utc::now()),
                Err(e) => {
                    let msg = e.to_string();
                    f.abort(
                        &change.id,
                        change.current,
                        change.previous,
                        &msg,
                        Utc::now(),
                    )
                }
            });
            if let Err(source) = outcome {
                first_error.get_or_insert(ControlError::Driver {
                    id: change.id.clone(),
                    source,
                });
            }
        }
        first_error.map_or(Ok(changes), Err)
    }

    /// A feed of transitions from now on.
    pub fn subscribe(&self) -> ChangeFeed {
        let rx = self.shared.version.subscribe();
        let cursor = self.shared.fleet.lock().version();
        ChangeFeed {
            handle: self.clone(),
            rx,
            cursor,
        }
    }
}

/// Transitions of the registry as they happen (registrations, state changes).
pub struct ChangeFeed {
    handle: FleetHandle,
    rx: watch::Receiver<u64>,
    cursor: u64,
}

impl ChangeFeed {
    /// Transitions since the last call, without waiting (possibly none).
    pub fn poll(&mut self) -> Changes {
        self.rx.borrow_and_update();
        let changes = self.handle.shared.fleet.lock().changes_since(self.cursor);
        self.cursor = changes.cursor;
        changes
    }

    /// Waits until there is at least one new transition (or some were missed) and returns them.
    pub async fn next(&mut self) -> Changes {
        loop {
            let changes = self.poll();
            if !changes.transitions.is_empty() || changes.missed > 0 {
                return changes;
            }
            // The sender lives in `Shared`, which this feed keeps alive: `changed` cannot fail.
            let _ = self.rx.changed().await;
        }
    }
}
