//! The fleet manager: one group per tier (`web`, `workers`), each keeping its
//! running count at desired, like an EC2 Auto Scaling group.
//!
//! Every process is an EC2 instance in the sandbox's registry, tagged `Name`,
//! `tier` and `aws:autoscaling:groupName`, with its pid attached to the
//! [`ProcessDriver`] so that EC2 Terminate/Stop/Start act on it. The manager
//! (a task ticking every 200 ms, and at once when a process exits):
//!
//! - **replaces** members that were terminated (EC2 `TerminateInstances`),
//!   exited on their own, or stayed `stopped` for `replace_stopped_after`
//!   (those are terminated first); a launch that fails before the instance
//!   ever runs delays the next one (1 s, 2 s, 4 s ... up to 30 s);
//! - **scales** the worker group: every second it reads the jobs queue's backlog
//!   (visible + in flight) and asks the [`Controller`]; a decision changes desired;
//! - **scales in newest first**: pending instances before running ones, then the
//!   most recently launched. A chosen worker is *drained*: SIGTERM makes it stop
//!   receiving and finish the jobs it holds, then it exits; if it is still there
//!   after `drain_timeout` it is terminated (SIGKILL);
//! - keeps the **balancer** in step with the web group: a web instance is registered
//!   when it prints `READY` (the balancer's health checks then admit it), and
//!   deregistered (drained) when the group terminates it. An instance that dies
//!   *unexpectedly* is left to the health checks: the manager deregisters it only
//!   once the balancer has marked it unhealthy. Without health checks (the broken
//!   `no-health-checks` variant) it therefore stays in rotation, and requests sent
//!   to it keep failing.
//!
//! Every decision is recorded in the [`ActivityLog`]. The bookkeeping is
//! [`GroupState`] ([`super::state`]), pure (time passed in); [`Manager`] does the IO.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::policy::{Controller, Observation};
use super::state::{Action, GroupState, GroupStatus};
use super::{ActivityKind, ActivityLog, NewActivity};
use crate::sandbox::config::Arch;
use crate::sandbox::ec2::{FleetHandle, InstanceId, InstanceState, LaunchSpec, ProcessDriver};
use crate::sandbox::instance::{ChildConfig, RoleConfig};
use crate::sandbox::lb::{Balancer, TargetState};
use crate::sandbox::process::{Launcher, LiveChildren, Running, child_command, describe_exit};
use crate::sandbox::sqs::SqsService;

/// The tag naming an instance's Auto Scaling group, as AWS sets it.
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// Which group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// The web instances behind the balancer.
    Web,
    /// The workers reading the jobs queue.
    Workers,
    /// Microservices: `upload`, taking uploads.
    Upload,
    /// Microservices: `process`, the workers of the jobs queue.
    Process,
    /// Microservices: `store`, the object store.
    Store,
    /// Microservices: `manage`, listing and deleting objects.
    Manage,
}

impl Tier {
    /// The services of arch `microservices`, in documentation order.
    pub const SERVICES: [Tier; 4] = [Tier::Upload, Tier::Process, Tier::Store, Tier::Manage];

    /// The group's name (and `tier` tag; a service's `service` tag too).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Web => "web",
            Tier::Workers => "workers",
            Tier::Upload => "upload",
            Tier::Process => "process",
            Tier::Store => "store",
            Tier::Manage => "manage",
        }
    }

    /// The service a group is (its `service` tag), for the groups of `microservices`.
    pub fn service(self) -> Option<&'static str> {
        Tier::SERVICES.contains(&self).then(|| self.name())
    }

    /// The group named `name`.
    pub fn from_name(name: &str) -> Option<Tier> {
        [Tier::Web, Tier::Workers]
            .into_iter()
            .chain(Tier::SERVICES)
            .find(|t| t.name() == name)
    }
}

/// What a group launches.
pub struct GroupSetup {
    /// The group's bookkeeping.
    pub state: GroupState,
    /// The child configuration (its `instance_id` is set per launch).
    pub child: ChildConfig,
    /// The instances' `role` tag: [`Role::Processor`] if they do the work on the
    /// uploads, [`Role::Frontend`] if they only accept it and hand it on.
    pub role: Role,
}

/// What an instance does with the work, as its `role` tag says, so that one experiment
/// can stall "whatever processes the uploads" on every architecture
/// (`instances = { tags = { role = "processor" } }`): the workers of `queued`, the web
/// instances of `monolith` and `tiered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts requests and hands the work on (a queue, a bus).
    Frontend,
    /// Does the work: processes, stores.
    Processor,
    /// Serves other services (microservices' `store`).
    Backend,
}

impl Role {
    /// The web tier's role: it does the work inline in `monolith` and `tiered`, and hands
    /// it to the queue or the bus in `queued` and `event-driven`.
    pub fn of_web(arch: Arch) -> Role {
        match arch {
            Arch::Monolith | Arch::Tiered => Role::Processor,
            Arch::Queued | Arch::EventDriven | Arch::Microservices => Role::Frontend,
        }
    }

    /// A microservice's role: `process` processes, `store` serves the others, `upload`
    /// and `manage` face the clients.
    pub fn of_service(tier: Tier) -> Role {
        match tier {
            Tier::Process | Tier::Workers => Role::Processor,
            Tier::Store => Role::Backend,
            Tier::Web | Tier::Upload | Tier::Manage => Role::Frontend,
        }
    }

    /// The `role` tag's value.
    pub fn name(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Processor => "processor",
            Role::Backend => "backend",
        }
    }
}

/// One scaling policy: its signal, and the groups whose desired capacity it sets.
pub struct Scaling {
    /// The policy and its cooldowns.
    pub controller: Controller,
    /// What it tracks.
    pub signal: ScalingSignal,
    /// The groups that take its decisions (one, unless they share a fleet decision); the
    /// first one's desired capacity is what the policy observes.
    pub groups: Vec<Tier>,
}

/// What a scaling policy tracks, read every second.
pub enum ScalingSignal {
    /// A queue's backlog (visible + in flight).
    QueueBacklog {
        /// The sandbox's SQS.
        sqs: SqsService,
        /// The queue's name.
        queue: String,
    },
    /// Requests in flight to a balancer target group (as ALB's request count per target).
    InFlight {
        /// The target group.
        group: String,
    },
}

/// Everything the manager works with.
pub struct ManagerParts {
    /// The EC2 registry.
    pub fleet: FleetHandle,
    /// The pid map behind EC2 actions.
    pub driver: Arc<ProcessDriver>,
    /// Children not yet reaped.
    pub live: LiveChildren,
    /// The balancer in front of the web group.
    pub balancer: Arc<Balancer>,
    /// Where scaling and instance activities go.
    pub log: ActivityLog,
    /// The child executable.
    pub exe: PathBuf,
    /// Where child logs go.
    pub dir: PathBuf,
    /// How long a child may take to print READY (a worker: after its boot time).
    pub ready_timeout: Duration,
    /// How long a drained instance may take to exit.
    pub drain_timeout: Duration,
}

struct Inner {
    parts: ManagerParts,
    launcher: Mutex<Option<Launcher>>,
    groups: Mutex<HashMap<Tier, GroupSetup>>,
    /// Web instances registered with the balancer and not deregistered by us yet.
    in_balancer: Mutex<BTreeSet<InstanceId>>,
    wake: Notify,
    started: Instant,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// The fleet manager (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

/// Tick of the reconcile loop.
const TICK: Duration = Duration::from_millis(200);
/// Period of the scaling evaluation.
const SCALING_PERIOD: Duration = Duration::from_secs(1);

impl Manager {
    /// Starts the manager's loop for `groups` (each of `scaling` sets its groups' desired
    /// capacity).
    pub fn start(
        parts: ManagerParts,
        launcher: Launcher,
        groups: Vec<(Tier, GroupSetup)>,
        scaling: Vec<Scaling>,
        cancel: CancellationToken,
    ) -> Manager {
        let manager = Manager {
            inner: Arc::new(Inner {
                parts,
                launcher: Mutex::new(Some(launcher)),
                groups: Mutex::new(groups.into_iter().collect()),
                in_balancer: Mutex::new(BTreeSet::new()),
                wake: Notify::new(),
                started: Instant::now(),
                cancel,
                tasks: TaskTracker::new(),
            }),
        };
        let m = manager.clone();
        manager
            .inner
            .tasks
            .spawn(async move { m.run(scaling).await });
        manager
    }

    fn now(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    async fn run(&self, mut scaling: Vec<Scaling>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scaling = Instant::now();
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.inner.wake.notified() => {}
            }
            if last_scaling.elapsed() >= SCALING_PERIOD {
                last_scaling = Instant::now();
                for s in scaling.iter_mut() {
                    self.evaluate_scaling(s);
                }
            }
            self.reconcile();
            self.clean_balancer();
        }
    }

    fn evaluate_scaling(&self, scaling: &mut Scaling) {
        let backlog = match &scaling.signal {
            ScalingSignal::QueueBacklog { sqs, queue } => {
                let Some(stats) = sqs.stats(queue) else {
                    return;
                };
                (stats.visible + stats.in_flight) as u64
            }
            ScalingSignal::InFlight { group } => self.inner.parts.balancer.in_flight(group),
        };
        let mut groups = self.inner.groups.lock();
        let Some(first) = scaling.groups.first().and_then(|t| groups.get(t)) else {
            return;
        };
        let observation = Observation {
            now: self.now(),
            backlog,
            desired: first.state.desired(),
        };
        let Some(decision) = scaling.controller.evaluate(&observation) else {
            return;
        };
        let shared = scaling.groups.len() > 1;
        let owner = scaling.groups[0].name();
        for tier in &scaling.groups {
            let Some(group) = groups.get_mut(tier) else {
                continue;
            };
            let from = group.state.desired();
            let to = group.state.set_desired(decision.to);
            if from == to && *tier != scaling.groups[0] {
                continue;
            }
            let cause = if shared && *tier != scaling.groups[0] {
                format!("shared decision of {owner}: {}", decision.cause)
            } else {
                decision.cause.clone()
            };
            let from = if *tier == scaling.groups[0] {
                decision.from
            } else {
                from
            };
            self.inner.parts.log.record(NewActivity {
                group: tier.name().into(),
                kind: ActivityKind::Scaling,
                change: Some((from, to)),
                instance: None,
                cause,
            });
        }
    }

    /// Sets a group's desired capacity by hand (like `SetDesiredCapacity`); returns the
    /// value set (clamped to the group's bounds), or `None` if there is no such group.
    pub fn set_desired(&self, tier: Tier, desired: u32) -> Option<u32> {
        let mut groups = self.inner.groups.lock();
        let group = groups.get_mut(&tier)?;
        let from = group.state.desired();
        let to = group.state.set_desired(desired);
        if from != to {
            self.inner.parts.log.record(NewActivity {
                group: tier.name().into(),
                kind: ActivityKind::Scaling,
                change: Some((from, to)),
                instance: None,
                cause: format!("desired capacity set to {desired} by the operator"),
            });
        }
        drop(groups);
        self.inner.wake.notify_one();
        Some(to)
    }

    /// Snapshots of every group.
    pub fn groups(&self) -> Vec<GroupStatus> {
        let groups = self.inner.groups.lock();
        let mut all: Vec<GroupStatus> = groups.values().map(|g| g.state.status()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Snapshot of one group.
    pub fn group(&self, tier: Tier) -> Option<GroupStatus> {
        self.inner
            .groups
            .lock()
            .get(&tier)
            .map(|g| g.state.status())
    }

    fn reconcile(&self) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let now = self.now();
        let fleet = &self.inner.parts.fleet;
        let state_of = |id: &InstanceId| {
            fleet
                .get(id)
                .map(|i| (i.state, i.state_reason.map(|r| r.message)))
        };
        let mut work = Vec::new();
        {
            let mut groups = self.inner.groups.lock();
            for (tier, group) in groups.iter_mut() {
                for action in group.state.reconcile(now, state_of) {
                    work.push((*tier, action));
                }
            }
        }
        for (tier, action) in work {
            self.act(tier, action);
        }
    }

    fn record(&self, tier: Tier, kind: ActivityKind, id: &InstanceId, cause: String) {
        self.inner.parts.log.record(NewActivity {
            group: tier.name().into(),
            kind,
            change: None,
            instance: Some(id.to_string()),
            cause,
        });
    }

    fn act(&self, tier: Tier, action: Action) {
        match action {
            Action::Launch { cause } => self.launch(tier, cause),
            Action::Lost { id, cause } => self.record(tier, ActivityKind::Terminate, &id, cause),
            Action::Terminate { id, cause, drain } => {
                self.record(tier, ActivityKind::Terminate, &id, cause);
                if self.inner.in_balancer.lock().remove(&id) {
                    let _ = self.inner.parts.balancer.deregister(id.as_str());
                }
                if drain {
                    self.drain(id);
                } else if let Err(e) = self.inner.parts.fleet.terminate(std::slice::from_ref(&id)) {
                    tracing::warn!(instance = %id, "terminating failed: {e}");
                }
            }
        }
    }

    /// SIGTERM, then terminate after `drain_timeout` if it is still there.
    fn drain(&self, id: InstanceId) {
        let parts = &self.inner.parts;
        if let Some(pid) = parts.driver.pid(&id).and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let fleet = parts.fleet.clone();
        let timeout = parts.drain_timeout;
        self.inner.tasks.spawn(async move {
            tokio::time::sleep(timeout).await;
            let alive = fleet
                .get(&id)
                .is_some_and(|i| i.state != InstanceState::Terminated);
            if alive {
                let _ = fleet.terminate(std::slice::from_ref(&id));
            }
        });
    }

    fn launch(&self, tier: Tier, cause: String) {
        let parts = &self.inner.parts;
        let Some(role) = self.inner.groups.lock().get(&tier).map(|g| g.role) else {
            return;
        };
        let mut spec = LaunchSpec::default()
            .tag("Name", format!("sandbox-{}", tier.name()))
            .tag("tier", tier.name())
            .tag("role", role.name())
            .tag(GROUP_TAG, tier.name())
            .tag("chaos", "allowed");
        if let Some(service) = tier.service() {
            spec = spec.tag("service", service);
        }
        let id = parts.fleet.register(spec);
        let child = {
            let mut groups = self.inner.groups.lock();
            let Some(group) = groups.get_mut(&tier) else {
                return;
            };
            group.state.add_member(id.clone());
            let mut child = group.child.clone();
            child.instance_id = id.to_string();
            child
        };
        self.record(tier, ActivityKind::Launch, &id, cause);
        let m = self.clone();
        self.inner
            .tasks
            .spawn(async move { m.run_instance(tier, id, child).await });
    }

    /// Starts the process of `id`, reports it running, and reaps it when it ends.
    async fn run_instance(&self, tier: Tier, id: InstanceId, child: ChildConfig) {
        let parts = &self.inner.parts;
        let started = self.start_process(&id, &child).await;
        let (running, ready) = match started {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(instance = %id, "launch failed: {e}");
                let _ = parts.fleet.mark_exited(&id, &format!("launch failed: {e}"));
                self.inner.wake.notify_one();
                return;
            }
        };
        let pid = running.pid();
        // A worker announces READY only after its boot time (`workers.warmup`): the
        // timeout is for starting up, on top of it (else a warm-up over the timeout
        // killed every worker before it ever ran).
        let boot = match &child.role {
            RoleConfig::Worker { boot_ms, .. } => Duration::from_millis(*boot_ms),
            _ => Duration::ZERO,
        };
        tokio::select! {
            port = ready.port(parts.ready_timeout + boot) => match port {
                Ok(port) => self.became_ready(tier, &id, port),
                Err(e) => {
                    tracing::warn!(instance = %id, "not ready: {e}; terminating it");
                    let _ = parts.fleet.terminate(std::slice::from_ref(&id));
                }
            },
            _ = running.exited() => {}
        }
        running.exited().await;
        // Forget the pid everywhere before reaping, so it is never signalled once recycled.
        parts.driver.detach(&id);
        parts.live.remove(pid);
        let status = running.reap();
        let how = describe_exit(&status);
        let draining = self
            .inner
            .groups
            .lock()
            .get(&tier)
            .is_some_and(|g| g.state.is_leaving(&id));
        let message = if draining {
            format!("drained and stopped ({how})")
        } else {
            format!("process ended ({how})")
        };
        let _ = parts.fleet.mark_exited(&id, &message);
        tracing::info!(instance = %id, "{message}");
        self.inner.wake.notify_one();
    }

    async fn start_process(
        &self,
        id: &InstanceId,
        child: &ChildConfig,
    ) -> Result<(Running, crate::sandbox::process::ReadyLine), String> {
        let parts = &self.inner.parts;
        if self.inner.cancel.is_cancelled() {
            return Err("the sandbox is shutting down".into());
        }
        let log = parts.dir.join(format!("{id}.log"));
        let command = child_command(&parts.exe, child, &log).map_err(|e| e.to_string())?;
        let spawned = {
            let launcher = self.inner.launcher.lock();
            let Some(launcher) = launcher.as_ref() else {
                return Err("the sandbox is shutting down".into());
            };
            launcher.submit(command)
        };
        let process = spawned
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let pid = process.id();
        parts.live.insert(pid);
        let pair = Running::new(process).map_err(|e| {
            parts.live.remove(pid);
            e.to_string()
        })?;
        parts.driver.attach(id, pid).map_err(|e| e.to_string())?;
        Ok(pair)
    }

    fn became_ready(&self, tier: Tier, id: &InstanceId, port: u16) {
        let parts = &self.inner.parts;
        if parts.fleet.mark_running(id).is_err() {
            return; // terminated meanwhile
        }
        // An instance that listens (port 0: a worker, which does not) is a target of its
        // group's target group.
        if port != 0 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match parts.balancer.register_in(tier.name(), id.as_str(), addr) {
                Ok(()) => {
                    self.inner.in_balancer.lock().insert(id.clone());
                }
                Err(e) => tracing::warn!(instance = %id, "balancer registration failed: {e}"),
            }
        }
        self.inner.wake.notify_one();
    }

    /// Deregisters dead instances once the balancer's health checks marked them unhealthy.
    fn clean_balancer(&self) {
        let balancer = &self.inner.parts.balancer;
        let targets: HashMap<String, TargetState> = balancer
            .targets()
            .into_iter()
            .map(|t| (t.id, t.state))
            .collect();
        let groups = self.inner.groups.lock();
        let mut in_balancer = self.inner.in_balancer.lock();
        in_balancer.retain(|id| {
            let member = groups.values().any(|g| g.state.contains(id));
            match targets.get(id.as_str()) {
                None => false,
                Some(TargetState::Unhealthy) if !member => {
                    tracing::info!(instance = %id, "deregistering the dead instance from the balancer");
                    let _ = balancer.deregister(id.as_str());
                    false
                }
                Some(_) => true,
            }
        });
    }

    /// Stops launching, asks every child to stop (SIGTERM), kills those still there after
    /// `grace` (SIGKILL), waits for all to be reaped, and ends the launcher thread.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.cancel.cancel();
        let live = &self.inner.parts.live;
        live.signal_all(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while !live.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        live.signal_all(Signal::SIGKILL);
        self.inner.tasks.close();
        // Bounded: every task waits on a child that is now dead, or on a drain timer.
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), async {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !live.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.inner.launcher.lock().take();
    }

    /// Best-effort synchronous stop (for `Drop`): SIGKILL every child, end the launcher.
    pub fn kill_all(&self) {
        self.inner.cancel.cancel();
        self.inner.parts.live.signal_all(Signal::SIGKILL);
        self.inner.launcher.lock().take();
    }

    /// Pids of the children not yet reaped.
    pub fn pids(&self) -> Vec<u32> {
        self.inner.parts.live.pids()
    }
}
