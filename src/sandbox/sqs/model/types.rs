//! The model's vocabulary: limits, queue settings, messages, receipts, counters, errors.

use super::*;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Largest `DelaySeconds` SQS accepts (15 minutes).
pub const MAX_DELAY_SECONDS: u32 = 900;
/// Largest visibility timeout SQS accepts (12 hours).
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
/// Shortest and longest `MessageRetentionPeriod` SQS accepts (1 minute .. 14 days).
pub const RETENTION_RANGE: (u32, u32) = (60, 1_209_600);
/// Smallest and largest `MaximumMessageSize` SQS accepts (1 KiB .. 1 MiB).
pub const MESSAGE_SIZE_RANGE: (u32, u32) = (1_024, 1_048_576);
/// Longest long-polling wait SQS accepts.
pub const MAX_WAIT_SECONDS: u32 = 20;
/// Most messages one ReceiveMessage may return.
pub const MAX_RECEIVE_BATCH: usize = 10;
/// Most message attributes one message may carry.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// Most tags one queue may carry.
pub const MAX_TAGS: usize = 50;
/// Longest tag key and tag value SQS accepts, in characters.
pub const TAG_LIMITS: (usize, usize) = (128, 256);

/// What a queue at capacity does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Refuse the send with an error (backpressure the sender can see).
    #[default]
    Reject,
    /// Report success but discard the message: the deliberately broken `lossy-queue`.
    Drop,
}

/// Move messages to a dead-letter queue after too many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// Name of the dead-letter queue (same registry).
    pub dead_letter_queue: String,
    /// A message received this many times moves on its next receive attempt (1..=1000).
    pub max_receive_count: u32,
}

/// Per-queue settings: the SQS attributes we honour plus the sandbox's capacity knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Default delay before a new message becomes visible (`DelaySeconds`, 0..=900).
    pub delay_seconds: u32,
    /// Default visibility timeout after a receive (`VisibilityTimeout`, 0..=43200).
    pub visibility_timeout: u32,
    /// How long a message lives from its send (`MessageRetentionPeriod`, seconds).
    pub message_retention_period: u32,
    /// Largest body plus attributes accepted, in bytes (`MaximumMessageSize`).
    pub maximum_message_size: u32,
    /// Default long-polling wait (`ReceiveMessageWaitTimeSeconds`, 0..=20).
    pub receive_wait_time_seconds: u32,
    /// Dead-letter redrive (`RedrivePolicy`).
    pub redrive_policy: Option<RedrivePolicy>,
    /// The access policy document (`Policy`), stored verbatim; its `Deny` statements are
    /// enforced per caller (see [`crate::sandbox::sqs::policy`]).
    pub policy: Option<String>,
    /// Sandbox only: most messages the queue holds (visible, in flight and delayed).
    pub max_messages: Option<usize>,
    /// Sandbox only: what a send to a full queue does.
    pub overflow: OverflowPolicy,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            delay_seconds: 0,
            visibility_timeout: 30,
            message_retention_period: 345_600,
            maximum_message_size: 262_144,
            receive_wait_time_seconds: 0,
            redrive_policy: None,
            policy: None,
            max_messages: None,
            overflow: OverflowPolicy::Reject,
        }
    }
}

impl QueueSettings {
    /// Checks every field against the ranges SQS enforces.
    pub fn validate(&self) -> Result<(), QueueError> {
        check_range("DelaySeconds", self.delay_seconds, 0, MAX_DELAY_SECONDS)?;
        check_range(
            "VisibilityTimeout",
            self.visibility_timeout,
            0,
            MAX_VISIBILITY_TIMEOUT,
        )?;
        let (low, high) = RETENTION_RANGE;
        check_range(
            "MessageRetentionPeriod",
            self.message_retention_period,
            low,
            high,
        )?;
        let (low, high) = MESSAGE_SIZE_RANGE;
        check_range("MaximumMessageSize", self.maximum_message_size, low, high)?;
        check_range(
            "ReceiveMessageWaitTimeSeconds",
            self.receive_wait_time_seconds,
            0,
            MAX_WAIT_SECONDS,
        )?;
        if let Some(policy) = &self.redrive_policy {
            check_range("RedrivePolicy", policy.max_receive_count, 1, 1_000)?;
        }
        Ok(())
    }
}

pub(super) fn check_range(
    name: &'static str,
    value: u32,
    low: u32,
    high: u32,
) -> Result<(), QueueError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(QueueError::InvalidAttributeValue {
            name,
            reason: format!("{value} is outside {low}..={high}"),
        })
    }
}

/// A message attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `String` and `Number` data types.
    String(String),
    /// `Binary` data type (already base64-decoded).
    Binary(Vec<u8>),
}

/// One user message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number` or `Binary`, optionally with a `.custom` suffix.
    pub data_type: String,
    /// The value, matching the data type's family.
    pub value: AttributeValue,
}

impl MessageAttribute {
    /// Bytes this attribute counts towards the message size limit.
    pub(super) fn size(&self, name: &str) -> usize {
        let value = match &self.value {
            AttributeValue::String(text) => text.len(),
            AttributeValue::Binary(bytes) => bytes.len(),
        };
        name.len() + self.data_type.len() + value
    }
}

/// A message as a sender submits it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    /// The body (1 byte .. `MaximumMessageSize`, XML-safe characters only).
    pub body: String,
    /// User attributes, at most [`MAX_MESSAGE_ATTRIBUTES`].
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// Per-message delay overriding the queue's `DelaySeconds`.
    pub delay_seconds: Option<u32>,
    /// The `AWSTraceHeader` system attribute, if sent.
    pub trace_header: Option<String>,
}

/// A stored message as receivers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Uuid-shaped id, stable across receives and dead-letter moves.
    pub id: String,
    /// The body.
    pub body: String,
    /// User attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// The `AWSTraceHeader` system attribute.
    pub trace_header: Option<String>,
    /// MD5 of the body, hex.
    pub md5_of_body: String,
    /// MD5 of all attributes (AWS algorithm), hex; `None` without attributes.
    pub md5_of_attributes: Option<String>,
    /// When it was first sent (kept across dead-letter moves).
    pub sent_at: Millis,
    /// How many times it has been delivered.
    pub receive_count: u32,
    /// When it was first delivered.
    pub first_received_at: Option<Millis>,
}

/// A message handed to a receiver together with the handle for deleting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message after this receive (receive count already incremented).
    pub message: Message,
    /// Valid until the message is received again.
    pub receipt_handle: String,
}

/// What a successful send reports to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// Id of the new message.
    pub message_id: String,
    /// MD5 of the body, hex.
    pub md5_of_body: String,
    /// MD5 of the attributes, hex.
    pub md5_of_attributes: Option<String>,
    /// `false` when the overflow policy silently dropped the message.
    pub stored: bool,
}

/// Result of a DeleteMessage that was not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The message was removed.
    Deleted,
    /// The message is already gone (deleted, expired, purged or moved); idempotent success.
    AlreadyGone,
    /// The handle is from an earlier receive: as AWS documents, the call succeeds but the
    /// message stays, because someone else now holds it.
    Stale,
}

/// Lifetime event counters of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Messages accepted and stored.
    pub sent: u64,
    /// Sends refused because the queue was full (overflow `Reject`).
    pub rejected: u64,
    /// Sends reported as successful but discarded (overflow `Drop`).
    pub dropped: u64,
    /// Deliveries (one message received twice counts twice).
    pub received: u64,
    /// Messages removed by DeleteMessage.
    pub deleted: u64,
    /// DeleteMessage calls with a superseded receipt handle (message kept).
    pub stale_deletes: u64,
    /// Messages removed because their retention period ended.
    pub expired: u64,
    /// Messages removed by PurgeQueue.
    pub purged: u64,
    /// Messages moved from this queue to its dead-letter queue.
    pub moved_to_dead_letter: u64,
    /// Messages that arrived here from another queue's redrive.
    pub received_from_redrive: u64,
}

/// Point-in-time view of a queue, for GetQueueAttributes and the sandbox supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages available to receive now.
    pub visible: usize,
    /// Messages received and not yet deleted or visible again.
    pub in_flight: usize,
    /// Messages waiting out their delay.
    pub delayed: usize,
    /// Age of the oldest message in the queue, whatever its state.
    pub oldest_age: Option<Duration>,
    /// Lifetime counters.
    pub counters: Counters,
}

/// Everything that can go wrong in the model; the server maps each to an AWS error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// No queue of that name.
    #[error("The specified queue does not exist.")]
    NoSuchQueue(String),
    /// CreateQueue for an existing name with different settings.
    #[error("A queue already exists with the same name and a different value for attributes.")]
    QueueNameExists(String),
    /// The receipt handle is malformed or belongs to another queue.
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    InvalidReceiptHandle(String),
    /// ChangeMessageVisibility on a message that is visible, not in flight.
    #[error("The message referred to isn't in flight.")]
    MessageNotInFlight,
    /// ChangeMessageVisibility with a superseded handle or for a message that is gone.
    #[error(
        "Value {0} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
    )]
    MessageUnavailable(String),
    /// The queue is at `max_messages` and its overflow policy is `Reject`.
    #[error("Queue {name} is full: it holds its maximum of {capacity} messages.")]
    QueueFull {
        /// The queue.
        name: String,
        /// Its `max_messages`.
        capacity: usize,
    },
    /// A queue setting is out of range.
    #[error("Invalid value for the parameter {name}: {reason}.")]
    InvalidAttributeValue {
        /// The attribute name as AWS spells it.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A request parameter is invalid.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// A required parameter is missing or empty.
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(&'static str),
    /// The body contains characters SQS does not allow.
    #[error("{0}")]
    InvalidMessageContents(String),
}
