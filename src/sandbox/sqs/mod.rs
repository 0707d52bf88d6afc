//! The sandbox's SQS-compatible endpoint.
//!
//! It speaks the AWS JSON 1.0 protocol that current aws-sdk-sqs uses (`POST /` with
//! `X-Amz-Target: AmazonSQS.<Action>`), so workers and probes use the same SDK code against
//! the sandbox as against AWS. Standard queues only: visibility timeouts, delays, retention,
//! redrive to a dead-letter queue, long polling, batches, purge, tags, a stored `Policy`.
//!
//! Deliberate differences from AWS, all simplifications for a local sandbox:
//! - FIFO queues, permissions (`AddPermission`) and message-move tasks answer
//!   `UnsupportedOperation`.
//! - The `Policy` attribute is stored and reported verbatim (it must be a JSON object; `""`
//!   removes it); only its `Deny` statements are enforced, for the caller named by the
//!   access key id of the request's signature (signatures are not verified): see [`policy`].
//! - No 60 s cool-downs (`PurgeQueueInProgress`, `QueueDeletedRecently`); purge is immediate.
//! - The 12-hour cap on a message's total visibility time is not enforced (each timeout is).
//! - A DeleteMessage with a superseded receipt handle succeeds without deleting, as AWS
//!   documents; ChangeMessageVisibility with one fails with `InvalidParameterValue`.
//! - Sandbox-only capacity: a full queue answers SendMessage with `OverLimit` (HTTP 403) or,
//!   with [`OverflowPolicy::Drop`], reports success and discards the message.
//!
//! Layout: [`model`] is the pure queue semantics (time passed in), [`wire`] the protocol
//! shapes and AWS errors, `server` the axum handler and long polling, [`digest`] MD5/base64.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use shakedown::sandbox::sqs::{QueueSettings, SqsConfig, SqsService};
//! let service = SqsService::new(SqsConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let endpoint = format!("http://{}", listener.local_addr()?);
//! let url = service.create_queue("jobs", QueueSettings::default()).expect("valid queue");
//! tokio::spawn(service.clone().serve(listener, std::future::pending()));
//! # let _ = (endpoint, url); Ok(()) }
//! ```

pub mod digest;
pub mod model;
pub mod policy;
mod server;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

pub use model::{
    AttributeValue, Message, OverflowPolicy, QueueError, QueueSettings, QueueStats, RedrivePolicy,
};

use server::Shared;
use wire::ArnContext;

/// How an endpoint is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// Region in ARNs (default `us-east-1`).
    pub region: String,
    /// Account id in ARNs and queue URLs (default `000000000000`).
    pub account_id: String,
    /// Settings of queues created over HTTP before their attributes apply.
    pub defaults: QueueSettings,
    /// Seed for message ids and receipt-handle tags; `None` picks a random one.
    pub seed: Option<u64>,
}

impl Default for SqsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            defaults: QueueSettings::default(),
            seed: None,
        }
    }
}

/// An SQS-compatible endpoint. Cheap to clone; clones share the same queues.
#[derive(Debug, Clone)]
pub struct SqsService {
    shared: Arc<Shared>,
}

impl SqsService {
    /// A service with no queues, not yet listening.
    pub fn new(config: SqsConfig) -> Self {
        let arns = ArnContext {
            region: config.region,
            account_id: config.account_id,
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        Self {
            shared: Arc::new(Shared::new(arns, config.defaults, seed)),
        }
    }

    /// Serves HTTP on `listener` until `shutdown` resolves; pending long polls then return
    /// empty at once and in-flight requests drain before the future completes. The bound
    /// address is recorded for [`queue_url`](Self::queue_url) as soon as this is called.
    pub fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        let bound = listener.local_addr();
        if let Ok(address) = &bound {
            self.shared
                .endpoint
                .write()
                .get_or_insert_with(|| format!("http://{address}"));
        }
        async move {
            bound?;
            self.shared.serve(listener, shutdown).await
        }
    }

    /// Creates a queue in-process with exactly `settings` (including the sandbox-only
    /// capacity and overflow policy) and returns its URL. Creating an existing queue with
    /// identical settings returns its URL; different settings are an error.
    pub fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<String, QueueError> {
        self.shared.create_queue(name, settings)?;
        Ok(self.queue_url(name))
    }

    /// The URL of queue `name` (`http://<bound address>/<account>/<name>`; the host is
    /// `localhost` before [`serve`](Self::serve) starts). Any host form is accepted back.
    pub fn queue_url(&self, name: &str) -> String {
        let base = self.shared.endpoint.read().clone();
        self.shared
            .queue_url(base.as_deref().unwrap_or("http://localhost"), name)
    }

    /// The ARN of queue `name`, as used in redrive policies.
    pub fn queue_arn(&self, name: &str) -> String {
        self.shared.arns.arn(name)
    }

    /// Counts and lifetime counters of queue `name` (including overflow drops), or `None`
    /// if it does not exist.
    pub fn stats(&self, name: &str) -> Option<QueueStats> {
        self.shared.stats(name)
    }

    /// `f` over every message stored in queue `name` (visible, in flight or delayed), or
    /// `None` if it does not exist: what only a queue we run can tell (AWS only counts).
    pub fn map_messages<T>(&self, name: &str, f: impl FnMut(&Message) -> T) -> Option<Vec<T>> {
        self.shared.map_messages(name, f)
    }
}
