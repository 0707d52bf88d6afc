//! The sandbox: a real, local decoupled architecture (see DESIGN section 6).
//!
//! Each submodule is one component with its own endpoint; [`Sandbox`] wires them:
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the TOML configuration, architectures and broken variants, CLI args |
//! | [`sqs`] | SQS-compatible endpoint (jobs queue + dead-letter queue) |
//! | [`ec2`] | EC2-compatible control plane over the instances (processes) |
//! | [`lb`] | HTTP load balancer with active health checks over the web tier |
//! | [`groups`] | which groups an arch runs, how each scales, the balancer's path rules |
//! | [`asg`] | the Auto Scaling groups: `[workers]` config, scaling policy and group state (pure), the activity log, the manager that keeps each group at desired and scales workers |
//! | [`process`] | the supervisor's side of instances: launcher, READY protocol, reaping |
//! | [`instance`] | what runs inside an instance process: child config, web, worker |
//! | [`feed`] | the completion feed workers report to |
//! | [`bus`] | the event bus and functions of arch `event-driven` |
//! | [`control`] | `GET /activities`, `/targets`, `/groups`, `/endpoints` |
//!
//! ```no_run
//! # async fn demo() -> Result<(), shakedown::sandbox::SandboxError> {
//! use shakedown::sandbox::{Sandbox, StartOptions, config::SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default(), StartOptions::default()).await?;
//! println!("upload to {}/upload/42", sandbox.endpoints().web_url);
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod asg;
pub mod bus;
pub mod config;
pub mod control;
pub mod ec2;
pub mod feed;
pub mod groups;
pub mod instance;
pub mod lb;
pub mod process;
pub mod sqs;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use asg::{ActivityLog, GroupStatus, Manager, ManagerParts, Tier};
use config::{Arch, Overflow, SandboxConfig};
use ec2::{Ec2Service, FleetHandle, InstanceState, ProcessDriver};
use feed::Feed;
use instance::{ChildConfig, RoleConfig};
use lb::{Balancer, BalancerConfig, HealthCheck, TargetState};
use process::Launcher;
use sqs::{OverflowPolicy, QueueSettings, QueueStats, RedrivePolicy, SqsConfig, SqsService};

/// The region the sandbox reports (and the SDKs must be configured with).
pub const REGION: &str = "us-east-1";

/// Where everything is, once started. Serialized by `--print-endpoints json` and
/// `GET /endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// The balancer in front of the web tier: send uploads and events here.
    pub web_url: String,
    /// The SQS-compatible endpoint (`--endpoint-url` for the AWS CLI/SDK).
    pub sqs_endpoint: String,
    /// URL of the jobs queue.
    pub queue_url: String,
    /// URL of the dead-letter queue.
    pub dlq_url: String,
    /// The EC2-compatible endpoint.
    pub ec2_endpoint: String,
    /// The completion feed (`GET {feed_url}/completions?after=N`).
    pub feed_url: String,
    /// The control endpoint (`/activities`, `/targets`, `/groups`, `/endpoints`).
    pub control_url: String,
    /// Where the web tier forwards events (`event-driven`: the embedded bus's
    /// `POST /events`, or `bus.url`); `null` otherwise.
    pub bus_url: Option<String>,
    /// The region to configure clients with.
    pub region: String,
    /// The architecture running.
    pub arch: String,
    /// Where instance logs are written.
    pub run_dir: PathBuf,
    /// With `[web] tls = true`: the PEM file of the CA the balancer's certificate is from
    /// (trust it: `--ca-file`, `[target.tls] ca_file`, or `SSL_CERT_FILE`); else `null`.
    pub ca_file: Option<PathBuf>,
}

impl Endpoints {
    /// The event bus's EventBridge API (`PutEvents` at `POST /`), for `[target.aws]
    /// events_endpoint_url` and streams with `transport = "eventbridge"`: the bus of
    /// `bus_url` without its `/events` path.
    pub fn bus_api_url(&self) -> Option<String> {
        self.bus_url
            .as_deref()
            .and_then(|u| u.strip_suffix("/events"))
            .map(str::to_owned)
    }
}

/// How to start the sandbox (as opposed to what it is: [`SandboxConfig`]).
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The executable started (with the hidden child subcommand) for each instance:
    /// this binary by default; tests pass `env!("CARGO_BIN_EXE_shakedown")`.
    pub exe: PathBuf,
    /// Run directory for instance logs; `None` creates a fresh one under the temp dir.
    pub dir: Option<PathBuf>,
    /// Longest wait for an instance's `READY` line (a worker's counts after its boot time,
    /// `workers.warmup`), and for the web tier to be healthy.
    pub ready_timeout: Duration,
    /// At shutdown, how long instances get after SIGTERM before SIGKILL.
    pub shutdown_grace: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("shakedown")),
            dir: None,
            ready_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

impl StartOptions {
    /// Default options with children started from `exe`.
    pub fn with_exe(exe: impl Into<PathBuf>) -> Self {
        StartOptions {
            exe: exe.into(),
            ..StartOptions::default()
        }
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A socket, directory or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A queue could not be created.
    #[error("creating queue {name}: {source}")]
    Queue {
        /// The queue.
        name: String,
        /// Why.
        #[source]
        source: sqs::QueueError,
    },
    /// The instances did not come up in time.
    #[error(
        "the sandbox did not become ready within {timeout:?}: {detail} (instance logs in {dir})"
    )]
    NotReady {
        /// The wait.
        timeout: Duration,
        /// What was missing.
        detail: String,
        /// The run directory.
        dir: String,
    },
    /// The balancer's TLS certificate could not be made.
    #[error("the balancer's certificate: {0}")]
    Certificate(#[from] tls::CertError),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

async fn bind(port: u16, what: &str) -> Result<(TcpListener, SocketAddr), SandboxError> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(io_error(format!("binding the {what} on 127.0.0.1:{port}")))?;
    let addr = listener
        .local_addr()
        .map_err(io_error(format!("reading the {what}'s address")))?;
    Ok((listener, addr))
}

/// A running sandbox. Stop it with [`Sandbox::shutdown`]; dropping it kills every
/// instance too (SIGKILL, best effort), and the instances die with the process anyway.
pub struct Sandbox {
    config: SandboxConfig,
    endpoints: Endpoints,
    cancel: CancellationToken,
    servers: TaskTracker,
    manager: Manager,
    feed: Feed,
    log: ActivityLog,
    fleet: FleetHandle,
    balancer: Arc<Balancer>,
    sqs: SqsService,
    bus: Option<Arc<bus::Bus>>,
    grace: Duration,
    stopped: bool,
}

impl Sandbox {
    /// Starts every component on 127.0.0.1 (free ports unless `web.port` is set), spawns
    /// the initial instances and waits (at most `options.ready_timeout`) until the web
    /// tier is healthy behind the balancer and the initial workers are running.
    pub async fn start(
        config: SandboxConfig,
        options: StartOptions,
    ) -> Result<Sandbox, SandboxError> {
        config.validate()?;
        let dir = match &options.dir {
            Some(d) => d.clone(),
            None => {
                let stamp = crate::clock::now_ms();
                std::env::temp_dir()
                    .join(format!("shakedown-sandbox-{}-{stamp}", std::process::id()))
            }
        };
        std::fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let cancel = CancellationToken::new();
        // Stops whatever was started if setup fails half-way.
        let setup_guard = cancel.clone().drop_guard();
        let servers = TaskTracker::new();
        let stop = || cancel.clone().cancelled_owned();

        // Queues.
        let sqs = SqsService::new(SqsConfig::default());
        let (listener, sqs_addr) = bind(0, "SQS endpoint").await?;
        servers.spawn(sqs.clone().serve(listener, stop()));
        let q = &config.queue;
        let dlq_settings = QueueSettings {
            visibility_timeout: q.visibility_timeout.as_secs() as u32,
            ..QueueSettings::default()
        };
        let queue_error = |name: &str| {
            let name = name.to_owned();
            move |source| SandboxError::Queue { name, source }
        };
        let dlq_url = sqs
            .create_queue(&q.dead_letter_name, dlq_settings)
            .map_err(queue_error(&q.dead_letter_name))?;
        let jobs_settings = QueueSettings {
            visibility_timeout: q.visibility_timeout.as_secs() as u32,
            redrive_policy: Some(RedrivePolicy {
                dead_letter_queue: q.dead_letter_name.clone(),
                max_receive_count: q.max_receive_count,
            }),
            max_messages: q.capacity,
            overflow: match q.overflow {
                Overflow::Reject => OverflowPolicy::Reject,
                Overflow::Drop => OverflowPolicy::Drop,
            },
            ..QueueSettings::default()
        };
        let queue_url = sqs
            .create_queue(&q.name, jobs_settings)
            .map_err(queue_error(&q.name))?;

        // EC2.
        let driver = Arc::new(ProcessDriver::new());
        let ec2 = Ec2Service::new(driver.clone());
        let fleet = ec2.fleet();
        let (listener, ec2_addr) = bind(0, "EC2 endpoint").await?;
        let ec2_stop = stop();
        servers.spawn(async move { ec2.serve(listener, ec2_stop).await });

        // Completion feed.
        let feed = Feed::new(config.feed.capacity);
        let (listener, feed_addr) = bind(0, "completion feed").await?;
        servers.spawn(
            axum::serve(listener, feed.router())
                .with_graceful_shutdown(stop())
                .into_future(),
        );

        // Balancer.
        let hc = &config.web.health_check;
        let balancer = Balancer::new(BalancerConfig {
            health: hc.enabled.then(|| HealthCheck {
                path: hc.path.clone(),
                interval: hc.interval,
                timeout: hc.timeout,
                healthy_threshold: hc.healthy_threshold,
                unhealthy_threshold: hc.unhealthy_threshold,
            }),
            routes: groups::routes(&config),
            ..BalancerConfig::default()
        });
        let (listener, web_addr) = bind(config.web.port, "balancer").await?;
        let ca_file = if config.web.tls {
            let (ca_file, tls) = tls::sandbox_tls(&dir)?;
            servers.spawn(balancer.clone().serve_tls(listener, tls, stop()));
            Some(ca_file)
        } else {
            servers.spawn(balancer.clone().serve(listener, stop()));
            None
        };

        // Event bus (event-driven): an external one, or our own reporting to the feed.
        let mut embedded_bus = None;
        let bus_url = match (&config.bus.url, config.arch) {
            (Some(url), _) => Some(url.clone()),
            (None, Arch::EventDriven) => {
                let sink_feed = feed.clone();
                let sink: bus::CompletionSink = Arc::new(move |c: bus::Completion| {
                    if c.ok {
                        sink_feed.append([&feed::Completion {
                            job_id: c.event_id,
                            message_id: String::new(),
                            receive_count: c.attempt,
                            received_ms: c.started_ms,
                            started_ms: c.started_ms,
                            done_ms: c.done_ms,
                            worker: format!("function:{}", c.function),
                        }]);
                    }
                });
                let bus = bus::Bus::new(config.embedded_bus(), sink).map_err(|e| {
                    SandboxError::Config(config::ConfigError::Invalid(vec![format!(
                        "bus.embedded: {e}"
                    )]))
                })?;
                let (listener, bus_addr) = bind(0, "event bus").await?;
                let bus_stop = stop();
                embedded_bus = Some(bus.clone());
                servers.spawn(async move { bus.serve(listener, bus_stop).await });
                Some(format!("http://{bus_addr}/events"))
            }
            (None, _) => None,
        };

        let (control_listener, control_addr) = bind(0, "control endpoint").await?;
        let endpoints = Endpoints {
            web_url: format!(
                "{}://{web_addr}",
                if ca_file.is_some() { "https" } else { "http" }
            ),
            sqs_endpoint: format!("http://{sqs_addr}"),
            queue_url,
            dlq_url,
            ec2_endpoint: format!("http://{ec2_addr}"),
            feed_url: format!("http://{feed_addr}"),
            control_url: format!("http://{control_addr}"),
            bus_url: bus_url.clone(),
            region: REGION.to_owned(),
            arch: config.arch.name().to_owned(),
            run_dir: dir.clone(),
            ca_file,
        };

        // Groups.
        let launcher = Launcher::new().map_err(io_error("starting the launcher thread"))?;
        let base = ChildConfig {
            instance_id: String::new(),
            sqs_endpoint: endpoints.sqs_endpoint.clone(),
            region: REGION.to_owned(),
            queue_url: endpoints.queue_url.clone(),
            feed_url: endpoints.feed_url.clone(),
            processing: config.processing,
            jitter: config.jitter,
            role: RoleConfig::Web {
                arch: config.arch,
                processor_concurrency: config.web.processor_concurrency,
                bus_url,
            },
        };
        let (group_setups, scaling) = groups::plan(
            &config,
            groups::Wiring {
                base,
                lb_url: &endpoints.web_url,
                control_url: &endpoints.control_url,
                dir: &dir,
                sqs: &sqs,
            },
        );
        let log = ActivityLog::default();
        let manager = Manager::start(
            ManagerParts {
                fleet: fleet.clone(),
                driver,
                live: Default::default(),
                balancer: balancer.clone(),
                log: log.clone(),
                exe: options.exe.clone(),
                dir: dir.clone(),
                ready_timeout: options.ready_timeout,
                drain_timeout: config.drain_timeout,
            },
            launcher,
            group_setups,
            scaling,
            cancel.child_token(),
        );
        let control = control::Control {
            endpoints: endpoints.clone(),
            log: log.clone(),
            balancer: balancer.clone(),
            manager: manager.clone(),
            bus: embedded_bus.clone(),
            latencies: control::Latencies::for_services(if config.arch == Arch::Microservices {
                Tier::SERVICES.iter().map(|t| t.name()).collect()
            } else {
                Vec::new()
            }),
        };
        servers.spawn(
            axum::serve(control_listener, control.router())
                .with_graceful_shutdown(stop())
                .into_future(),
        );

        setup_guard.disarm();
        let sandbox = Sandbox {
            config,
            endpoints,
            cancel,
            servers,
            manager,
            feed,
            log,
            fleet,
            balancer,
            sqs,
            bus: embedded_bus,
            grace: options.shutdown_grace,
            stopped: false,
        };
        if let Err(detail) = sandbox.wait_ready(options.ready_timeout).await {
            sandbox.shutdown().await;
            return Err(SandboxError::NotReady {
                timeout: options.ready_timeout,
                detail,
                dir: dir.display().to_string(),
            });
        }
        Ok(sandbox)
    }

    /// Polls until every group member is running and the web tier is in rotation.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = self.not_ready();
            match missing {
                None => return Ok(()),
                Some(detail) if Instant::now() >= deadline => return Err(detail),
                Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// What is not ready yet, if anything.
    fn not_ready(&self) -> Option<String> {
        for group in self.manager.groups() {
            let running = group
                .instances
                .iter()
                .filter(|id| {
                    id.parse()
                        .ok()
                        .and_then(|id| self.fleet.get(&id))
                        .is_some_and(|i| i.state == InstanceState::Running)
                })
                .count();
            if running < group.desired as usize {
                return Some(format!(
                    "group {}: {running} of {} instance(s) running",
                    group.name, group.desired
                ));
            }
        }
        // Every group but the workers listens behind the balancer.
        let healthy = self
            .balancer
            .targets()
            .iter()
            .filter(|t| t.state == TargetState::Healthy)
            .count();
        let wanted: usize = self
            .manager
            .groups()
            .iter()
            .filter(|g| g.name != Tier::Workers.name())
            .map(|g| g.desired as usize)
            .sum();
        (healthy < wanted).then(|| format!("{healthy} of {wanted} balancer target(s) healthy"))
    }

    /// Where everything is.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The embedded event bus (arch `event-driven` without `bus.url`): its counters are
    /// `bus().stats()`.
    pub fn bus(&self) -> Option<&Arc<bus::Bus>> {
        self.bus.as_ref()
    }

    /// The effective configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The completion feed (in-process reads: `completions_since`, `stats`).
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The groups' activity log.
    pub fn activities(&self) -> &ActivityLog {
        &self.log
    }

    /// The EC2 registry of instances.
    pub fn fleet(&self) -> FleetHandle {
        self.fleet.clone()
    }

    /// The balancer (targets and their health).
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.balancer
    }

    /// The jobs queue's counts.
    pub fn queue_stats(&self) -> Option<QueueStats> {
        self.sqs.stats(&self.config.queue.name)
    }

    /// The job (or event) ids of every message in the jobs queue, in any state: the
    /// `shakedown-id` attribute the driver's SQS transport sets, else the `id` of a
    /// job-shaped JSON body (what a worker reports as `job_id`). Messages with neither are
    /// left out (no completion could name them either).
    pub fn queued_job_ids(&self) -> Option<Vec<String>> {
        let ids = self.sqs.map_messages(&self.config.queue.name, |m| {
            if let Some(a) = m.attributes.get(crate::driver::sqs::ID_ATTRIBUTE)
                && let sqs::AttributeValue::String(v) = &a.value
            {
                return Some(v.clone());
            }
            serde_json::from_str::<serde_json::Value>(&m.body)
                .ok()?
                .get("id")?
                .as_str()
                .map(str::to_owned)
        })?;
        Some(ids.into_iter().flatten().collect())
    }

    /// The dead-letter queue's counts.
    pub fn dead_letter_stats(&self) -> Option<QueueStats> {
        self.sqs.stats(&self.config.queue.dead_letter_name)
    }

    /// Each group's min, max, desired and members.
    pub fn groups(&self) -> Vec<GroupStatus> {
        self.manager.groups()
    }

    /// One group's status.
    pub fn group(&self, tier: Tier) -> Option<GroupStatus> {
        self.manager.group(tier)
    }

    /// Sets a group's desired capacity (clamped to its bounds), like `SetDesiredCapacity`.
    pub fn set_desired(&self, tier: Tier, desired: u32) -> Option<u32> {
        self.manager.set_desired(tier, desired)
    }

    /// Pids of the instance processes not yet reaped.
    pub fn pids(&self) -> Vec<u32> {
        self.manager.pids()
    }

    /// Stops every instance (SIGTERM, SIGKILL after the grace period), then every endpoint.
    pub async fn shutdown(mut self) {
        self.manager.shutdown(self.grace).await;
        self.cancel.cancel();
        self.servers.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.servers.wait()).await;
        self.stopped = true;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.stopped {
            self.manager.kill_all();
            self.cancel.cancel();
        }
    }
}
