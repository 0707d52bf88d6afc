//! The instance side: what runs inside a sandbox instance process (`shakedown
//! __sandbox-child <role> --config '<json>'`), apart from the supervisor that starts it
//! ([`super::process`]).
//!
//! | module | job |
//! |---|---|
//! | this file | [`ChildConfig`] (the JSON on the child's command line), [`child_main`] |
//! | [`web`] | a web instance: uploads and events, per architecture |
//! | [`worker`] | a worker: consumes the jobs queue, reports to the completion feed |
//! | [`service`] | a microservice: `upload`, `process`, `store` or `manage` |
//! | [`store`] | the `store` service and the client the others call it with |
//! | [`guard`] | bounded request slots, a circuit breaker, the added latency |

pub mod guard;
pub mod service;
pub mod store;
pub mod web;
pub mod worker;

use std::path::PathBuf;

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::config::{Ack, Arch, ProcessingTime, ServicesConfig};

/// Everything a child needs, passed as JSON on its command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildConfig {
    /// The EC2 instance id this process is.
    pub instance_id: String,
    /// SQS endpoint, e.g. `http://127.0.0.1:4566`.
    pub sqs_endpoint: String,
    /// Region for the SDK.
    pub region: String,
    /// URL of the jobs queue.
    pub queue_url: String,
    /// Base URL of the completion feed.
    pub feed_url: String,
    /// Processing time model.
    pub processing: ProcessingTime,
    /// Processing-time spread (fraction).
    pub jitter: f64,
    /// The role's own settings.
    pub role: RoleConfig,
}

/// A web instance, a worker or a microservice.
// One value per instance process, read once at its start: the size of the largest
// variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum RoleConfig {
    /// A web instance.
    Web {
        /// What an upload does (see [`web`]).
        arch: Arch,
        /// Monolith: uploads processed at once.
        processor_concurrency: u32,
        /// Event-driven: where `POST /events` goes.
        bus_url: Option<String>,
    },
    /// A worker.
    Worker {
        /// Jobs processed at once.
        concurrency: u32,
        /// Long-polling wait, seconds.
        wait_time_seconds: u32,
        /// When jobs are deleted.
        ack: Ack,
        /// Boot time before the first receive, milliseconds.
        boot_ms: u64,
    },
    /// A microservice (see [`service`]).
    Service {
        /// `upload`, `process`, `store` or `manage`.
        service: String,
        /// The balancer: how the services reach each other.
        lb_url: String,
        /// The sandbox control endpoint: where the added latency is read.
        control_url: String,
        /// `store`: the directory of the objects (shared by its instances).
        objects_dir: PathBuf,
        /// Every service's settings.
        services: ServicesConfig,
        /// `process`: its worker's settings (a [`RoleConfig::Worker`]).
        worker: Option<Box<RoleConfig>>,
    },
}

impl RoleConfig {
    /// The role's name on the child's command line.
    pub fn name(&self) -> &'static str {
        match self {
            RoleConfig::Web { .. } => "web",
            RoleConfig::Worker { .. } => "worker",
            RoleConfig::Service { .. } => "service",
        }
    }
}

/// Entry point of `shakedown __sandbox-child <role> --config <json>`: runs a web instance
/// or a worker until SIGTERM. Exit code 0 on a clean stop, 2 on a bad config, 1 on failure.
pub fn child_main(role: &str, config_json: &str) -> u8 {
    let config: ChildConfig = match serde_json::from_str(config_json) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: bad child configuration: {e}");
            return 2;
        }
    };
    if config.role.name() != role {
        eprintln!(
            "error: role `{role}` does not match the configuration's `{}`",
            config.role.name()
        );
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = crate::shutdown::listen(shutdown.clone(), crate::shutdown::Announce::Log);
        let ready = |port: u16| {
            let mut out = io::stdout().lock();
            // The supervisor reads this line; nothing else is written to stdout.
            let _ = writeln!(out, "READY {port}");
            let _ = out.flush();
        };
        let result = match config.role.clone() {
            RoleConfig::Web { .. } => web::run(config, ready, shutdown).await,
            RoleConfig::Worker { .. } => worker::run(config, ready, shutdown).await,
            RoleConfig::Service { .. } => service::run(config, ready, shutdown).await,
        };
        signals.abort();
        result
    });
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
