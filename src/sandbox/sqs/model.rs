//! The pure queue model: SQS standard-queue semantics with time passed in.
//!
//! Nothing here knows about tokio, sockets or the wall clock. Every operation takes `now`
//! in milliseconds since the Unix epoch ([`Millis`]); the registry clamps it so time never
//! runs backwards. Due work (delays ending, visibility timeouts expiring, retention expiry)
//! is evaluated lazily on each call, and [`Registry::next_due`] tells an IO layer when the
//! next message will become visible so it can wake long pollers on time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::digest::{md5_hex, message_attributes_md5};

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
    /// enforced per caller (see [`super::policy`]).
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

fn check_range(name: &'static str, value: u32, low: u32, high: u32) -> Result<(), QueueError> {
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
    fn size(&self, name: &str) -> usize {
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

/// Position of a message in a queue: ordered by send time (retention order), then sequence.
type Key = (Millis, u64);

/// A stored message with its delivery state.
#[derive(Debug, Clone)]
struct Slot {
    message: Message,
    /// Invisible before this instant (delay or visibility timeout).
    visible_at: Millis,
    /// Nonce of the current receipt handle; `None` before the first receive.
    receipt: Option<u64>,
}

/// One standard queue.
#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    settings: QueueSettings,
    created_at: Millis,
    last_modified_at: Millis,
    /// Random tag embedded in receipt handles so a handle from another queue is refused.
    tag: u64,
    next_seq: u64,
    next_receipt: u64,
    slots: BTreeMap<Key, Slot>,
    by_id: HashMap<String, Key>,
    /// Every slot once, ordered by when it becomes visible.
    schedule: BTreeSet<(Millis, Key)>,
    counters: Counters,
    tags: BTreeMap<String, String>,
}

impl Queue {
    fn new(name: &str, settings: QueueSettings, now: Millis, tag: u64) -> Self {
        Self {
            name: name.to_owned(),
            settings,
            created_at: now,
            last_modified_at: now,
            tag,
            next_seq: 0,
            next_receipt: 0,
            slots: BTreeMap::new(),
            by_id: HashMap::new(),
            schedule: BTreeSet::new(),
            counters: Counters::default(),
            tags: BTreeMap::new(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its current settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// When it was created.
    pub fn created_at(&self) -> Millis {
        self.created_at
    }

    /// When its settings last changed.
    pub fn last_modified_at(&self) -> Millis {
        self.last_modified_at
    }

    /// Its tags (TagQueue, ListQueueTags).
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// Number of messages stored, in any state.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the queue holds no message at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Ids of all stored messages, oldest first.
    pub fn message_ids(&self) -> impl Iterator<Item = &str> {
        self.slots.values().map(|slot| slot.message.id.as_str())
    }

    /// All stored messages (visible, in flight or delayed), oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.slots.values().map(|slot| &slot.message)
    }

    fn insert(&mut self, message: Message, visible_at: Millis, receipt: Option<u64>) {
        let key = (message.sent_at, self.next_seq);
        self.next_seq += 1;
        self.by_id.insert(message.id.clone(), key);
        self.schedule.insert((visible_at, key));
        let slot = Slot {
            message,
            visible_at,
            receipt,
        };
        self.slots.insert(key, slot);
    }

    fn remove(&mut self, key: Key) -> Option<Slot> {
        let slot = self.slots.remove(&key)?;
        self.by_id.remove(&slot.message.id);
        self.schedule.remove(&(slot.visible_at, key));
        Some(slot)
    }

    fn set_visible_at(&mut self, key: Key, visible_at: Millis) {
        if let Some(slot) = self.slots.get_mut(&key) {
            self.schedule.remove(&(slot.visible_at, key));
            slot.visible_at = visible_at;
            self.schedule.insert((visible_at, key));
        }
    }

    /// Drops messages whose retention period has ended.
    fn expire(&mut self, now: Millis) {
        let retention = u64::from(self.settings.message_retention_period) * 1_000;
        while let Some((&key, _)) = self.slots.first_key_value() {
            if key.0.saturating_add(retention) > now {
                break;
            }
            self.remove(key);
            self.counters.expired += 1;
        }
    }

    fn stats(&self, now: Millis) -> QueueStats {
        let mut stats = QueueStats {
            visible: 0,
            in_flight: 0,
            delayed: 0,
            oldest_age: self
                .slots
                .first_key_value()
                .map(|(key, _)| Duration::from_millis(now.saturating_sub(key.0))),
            counters: self.counters,
        };
        for slot in self.slots.values() {
            if slot.visible_at <= now {
                stats.visible += 1;
            } else if slot.receipt.is_some() {
                stats.in_flight += 1;
            } else {
                stats.delayed += 1;
            }
        }
        stats
    }

    fn next_due(&self, now: Millis) -> Option<Millis> {
        self.schedule
            .range((now.saturating_add(1), (0, 0))..)
            .next()
            .map(|&(at, _)| at)
    }

    fn receipt_handle(&self, id: &str, nonce: u64) -> String {
        format!("{:016x}.{id}.{nonce:x}", self.tag)
    }

    /// Splits a receipt handle into message id and nonce, checking it is one of ours.
    fn parse_handle<'h>(&self, handle: &'h str) -> Result<(&'h str, u64), QueueError> {
        let invalid = || QueueError::InvalidReceiptHandle(handle.to_owned());
        let mut parts = handle.split('.');
        let (Some(tag), Some(id), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let tag = u64::from_str_radix(tag, 16).map_err(|_| invalid())?;
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| invalid())?;
        if tag != self.tag || id.is_empty() {
            return Err(invalid());
        }
        Ok((id, nonce))
    }

    /// Finds the slot a handle names, if the message is still here.
    fn lookup(&self, handle: &str) -> Result<Option<(Key, bool)>, QueueError> {
        let (id, nonce) = self.parse_handle(handle)?;
        Ok(self.by_id.get(id).map(|&key| {
            let current = self.slots[&key].receipt == Some(nonce);
            (key, current)
        }))
    }

    fn delete(&mut self, handle: &str) -> Result<DeleteOutcome, QueueError> {
        match self.lookup(handle)? {
            None => Ok(DeleteOutcome::AlreadyGone),
            Some((key, true)) => {
                self.remove(key);
                self.counters.deleted += 1;
                Ok(DeleteOutcome::Deleted)
            }
            Some((_, false)) => {
                self.counters.stale_deletes += 1;
                Ok(DeleteOutcome::Stale)
            }
        }
    }

    fn change_visibility(
        &mut self,
        handle: &str,
        timeout: u32,
        now: Millis,
    ) -> Result<(), QueueError> {
        check_visibility(timeout)?;
        match self.lookup(handle)? {
            Some((key, true)) if self.slots[&key].visible_at > now => {
                self.set_visible_at(key, now + u64::from(timeout) * 1_000);
                Ok(())
            }
            Some((_, true)) => Err(QueueError::MessageNotInFlight),
            _ => Err(QueueError::MessageUnavailable(handle.to_owned())),
        }
    }

    /// Marks one slot delivered and returns what the receiver gets.
    fn deliver(&mut self, key: Key, visibility: u32, now: Millis) -> Delivery {
        let nonce = self.next_receipt;
        self.next_receipt += 1;
        self.set_visible_at(key, now + u64::from(visibility) * 1_000);
        let slot = self.slots.get_mut(&key).expect("delivered slot exists");
        slot.receipt = Some(nonce);
        slot.message.receive_count += 1;
        slot.message.first_received_at.get_or_insert(now);
        let message = slot.message.clone();
        self.counters.received += 1;
        Delivery {
            receipt_handle: self.receipt_handle(&message.id, nonce),
            message,
        }
    }

    /// Visible slots in delivery order, split into those to deliver (at most `max`) and
    /// those that have exhausted `max_receive_count` and must move to the dead-letter queue.
    fn pick(&self, max: usize, max_receives: Option<u32>, now: Millis) -> (Vec<Key>, Vec<Key>) {
        let mut deliver = Vec::new();
        let mut dead = Vec::new();
        for &(_, key) in self.schedule.range(..(now.saturating_add(1), (0, 0))) {
            if deliver.len() >= max {
                break;
            }
            let exhausted =
                max_receives.is_some_and(|limit| self.slots[&key].message.receive_count >= limit);
            if exhausted {
                dead.push(key);
            } else {
                deliver.push(key);
            }
        }
        (deliver, dead)
    }
}

fn check_visibility(timeout: u32) -> Result<(), QueueError> {
    if timeout > MAX_VISIBILITY_TIMEOUT {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and {MAX_VISIBILITY_TIMEOUT}."
        )));
    }
    Ok(())
}

/// Checks a queue name: 1..=80 of `[A-Za-z0-9_-]` (FIFO `.fifo` names are not supported).
pub fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name.is_empty() && name.len() <= 80 && valid_chars {
        return Ok(());
    }
    Err(QueueError::InvalidParameterValue(format!(
        "Value {name} for parameter QueueName is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (FIFO queues are not supported by this endpoint)."
    )))
}

/// `current` with `added` merged in, if every tag is valid and the count stays within
/// [`MAX_TAGS`].
pub fn with_tags(
    current: &BTreeMap<String, String>,
    added: &BTreeMap<String, String>,
    queue: &str,
) -> Result<BTreeMap<String, String>, QueueError> {
    let (key_max, value_max) = TAG_LIMITS;
    for (key, value) in added {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > key_max {
            return Err(QueueError::InvalidParameterValue(format!(
                "Tag keys must be between 1 and {key_max} characters long: {key:?}."
            )));
        }
        if value.chars().count() > value_max {
            return Err(QueueError::InvalidParameterValue(format!(
                "Tag values may be at most {value_max} characters long (key {key:?})."
            )));
        }
    }
    let mut merged = current.clone();
    merged.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged.len() > MAX_TAGS {
        return Err(QueueError::InvalidParameterValue(format!(
            "Too many tags added for queue {queue}: a queue carries at most {MAX_TAGS}."
        )));
    }
    Ok(merged)
}

/// Checks a message against SQS limits and the queue's size limit.
pub fn validate_message(message: &NewMessage, settings: &QueueSettings) -> Result<(), QueueError> {
    if let Some(delay) = message.delay_seconds
        && delay > MAX_DELAY_SECONDS
    {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= {MAX_DELAY_SECONDS}."
        )));
    }
    if message.body.is_empty() {
        return Err(QueueError::MissingParameter("MessageBody"));
    }
    if let Some(bad) = message.body.chars().find(|&c| !allowed_body_char(c)) {
        return Err(QueueError::InvalidMessageContents(format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            u32::from(bad)
        )));
    }
    validate_attributes(&message.attributes)?;
    let size = message.body.len()
        + message
            .attributes
            .iter()
            .map(|(name, attribute)| attribute.size(name))
            .sum::<usize>();
    if size > settings.maximum_message_size as usize {
        return Err(QueueError::InvalidParameterValue(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            settings.maximum_message_size
        )));
    }
    Ok(())
}

fn allowed_body_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn validate_attributes(attributes: &BTreeMap<String, MessageAttribute>) -> Result<(), QueueError> {
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(QueueError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    for (name, attribute) in attributes {
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(QueueError::InvalidParameterValue(format!(
                "The message attribute name '{name}' is invalid. Attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
            )));
        }
        let family = attribute.data_type.split('.').next().unwrap_or_default();
        let matches_value = matches!(
            (family, &attribute.value),
            ("String" | "Number", AttributeValue::String(_))
                | ("Binary", AttributeValue::Binary(_))
        );
        if !matches_value {
            return Err(QueueError::InvalidParameterValue(format!(
                "The message attribute '{name}' has an invalid message attribute type '{}' for its value.",
                attribute.data_type
            )));
        }
    }
    Ok(())
}

/// Deterministic id source (SplitMix64), so the model stays pure and reproducible.
#[derive(Debug, Clone)]
struct IdSource(u64);

impl IdSource {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A version-4-shaped uuid string.
    fn uuid(&mut self) -> String {
        let bits = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(bits.to_be_bytes())
            .into_uuid()
            .to_string()
    }
}

/// All queues of one endpoint. Dead-letter moves cross queues, so they live here.
#[derive(Debug, Clone)]
pub struct Registry {
    queues: BTreeMap<String, Queue>,
    ids: IdSource,
    /// Latest `now` seen: time passed in never runs backwards.
    clock: Millis,
}

impl Registry {
    /// An empty registry whose message ids and handle tags derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            queues: BTreeMap::new(),
            ids: IdSource(seed),
            clock: 0,
        }
    }

    fn observe(&mut self, now: Millis) -> Millis {
        self.clock = self.clock.max(now);
        self.clock
    }

    /// Read access to a queue.
    pub fn queue(&self, name: &str) -> Result<&Queue, QueueError> {
        self.queues
            .get(name)
            .ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))
    }

    fn queue_mut(&mut self, name: &str) -> Result<&mut Queue, QueueError> {
        self.queues
            .get_mut(name)
            .ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))
    }

    /// Queue names in lexical order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    fn check_settings(&self, name: &str, settings: &QueueSettings) -> Result<(), QueueError> {
        settings.validate()?;
        if let Some(policy) = &settings.redrive_policy {
            if policy.dead_letter_queue == name {
                return Err(QueueError::InvalidParameterValue(
                    "Value for parameter RedrivePolicy is invalid. Reason: A queue cannot be its own dead-letter queue.".to_owned(),
                ));
            }
            if !self.queues.contains_key(&policy.dead_letter_queue) {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist: {}.",
                    policy.dead_letter_queue
                )));
            }
        }
        Ok(())
    }

    /// Creates a queue; returns `false` when an identical one already exists.
    pub fn create_queue(
        &mut self,
        name: &str,
        settings: QueueSettings,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let now = self.observe(now);
        validate_queue_name(name)?;
        self.check_settings(name, &settings)?;
        if let Some(existing) = self.queues.get(name) {
            return if existing.settings == settings {
                Ok(false)
            } else {
                Err(QueueError::QueueNameExists(name.to_owned()))
            };
        }
        let tag = self.ids.next_u64();
        self.queues
            .insert(name.to_owned(), Queue::new(name, settings, now, tag));
        Ok(true)
    }

    /// Deletes a queue and its messages.
    pub fn delete_queue(&mut self, name: &str) -> Result<(), QueueError> {
        self.queues
            .remove(name)
            .map(drop)
            .ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))
    }

    /// Replaces a queue's settings (SetQueueAttributes).
    pub fn set_settings(
        &mut self,
        name: &str,
        settings: QueueSettings,
        now: Millis,
    ) -> Result<(), QueueError> {
        let now = self.observe(now);
        self.queue(name)?;
        self.check_settings(name, &settings)?;
        let queue = self.queue_mut(name)?;
        queue.settings = settings;
        queue.last_modified_at = now;
        queue.expire(now);
        Ok(())
    }

    /// Adds tags to a queue, replacing the values of keys it already has (TagQueue).
    /// Nothing changes unless every tag is valid and the queue stays within [`MAX_TAGS`].
    pub fn tag_queue(
        &mut self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let queue = self.queue_mut(name)?;
        queue.tags = with_tags(&queue.tags, tags, name)?;
        Ok(())
    }

    /// Removes tags by key (UntagQueue); keys the queue does not carry are ignored.
    pub fn untag_queue(&mut self, name: &str, keys: &[String]) -> Result<(), QueueError> {
        let queue = self.queue_mut(name)?;
        for key in keys {
            queue.tags.remove(key);
        }
        Ok(())
    }

    /// Sends one message (SendMessage, or one entry of SendMessageBatch).
    pub fn send(
        &mut self,
        name: &str,
        message: NewMessage,
        now: Millis,
    ) -> Result<SendReceipt, QueueError> {
        let now = self.observe(now);
        let queue = self.queues.get(name);
        let settings = queue
            .ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))?
            .settings
            .clone();
        validate_message(&message, &settings)?;
        let id = self.ids.uuid();
        let queue = self.queue_mut(name)?;
        queue.expire(now);
        let receipt = SendReceipt {
            message_id: id.clone(),
            md5_of_body: md5_hex(message.body.as_bytes()),
            md5_of_attributes: message_attributes_md5(&message.attributes),
            stored: true,
        };
        if let Some(capacity) = settings.max_messages
            && queue.len() >= capacity
        {
            return match settings.overflow {
                OverflowPolicy::Reject => {
                    queue.counters.rejected += 1;
                    Err(QueueError::QueueFull {
                        name: name.to_owned(),
                        capacity,
                    })
                }
                OverflowPolicy::Drop => {
                    queue.counters.dropped += 1;
                    Ok(SendReceipt {
                        stored: false,
                        ..receipt
                    })
                }
            };
        }
        let delay = message.delay_seconds.unwrap_or(settings.delay_seconds);
        let stored = Message {
            id,
            body: message.body,
            attributes: message.attributes,
            trace_header: message.trace_header,
            md5_of_body: receipt.md5_of_body.clone(),
            md5_of_attributes: receipt.md5_of_attributes.clone(),
            sent_at: now,
            receive_count: 0,
            first_received_at: None,
        };
        queue.insert(stored, now + u64::from(delay) * 1_000, None);
        queue.counters.sent += 1;
        Ok(receipt)
    }

    /// Receives up to `max` visible messages, hiding each for `visibility` seconds (the
    /// queue's default when `None`). Messages that have used up the redrive policy's
    /// `max_receive_count` move to the dead-letter queue instead of being delivered.
    pub fn receive(
        &mut self,
        name: &str,
        max: usize,
        visibility: Option<u32>,
        now: Millis,
    ) -> Result<Vec<Delivery>, QueueError> {
        let now = self.observe(now);
        let queue = self.queue(name)?;
        if let Some(timeout) = visibility {
            check_visibility(timeout)?;
        }
        let visibility = visibility.unwrap_or(queue.settings.visibility_timeout);
        let dead_letter = queue
            .settings
            .redrive_policy
            .clone()
            .filter(|policy| self.queues.contains_key(&policy.dead_letter_queue));
        let queue = self.queue_mut(name)?;
        queue.expire(now);
        let max_receives = dead_letter.as_ref().map(|policy| policy.max_receive_count);
        let (deliver, dead) = queue.pick(max.min(MAX_RECEIVE_BATCH), max_receives, now);
        let deliveries = deliver
            .into_iter()
            .map(|key| queue.deliver(key, visibility, now))
            .collect();
        let moved: Vec<Message> = dead
            .into_iter()
            .filter_map(|key| queue.remove(key))
            .map(|slot| slot.message)
            .collect();
        queue.counters.moved_to_dead_letter += moved.len() as u64;
        if let Some(policy) = dead_letter {
            let target = self.queue_mut(&policy.dead_letter_queue)?;
            target.counters.received_from_redrive += moved.len() as u64;
            for message in moved {
                target.insert(message, now, None);
            }
            target.expire(now);
        }
        Ok(deliveries)
    }

    /// Deletes the message a receipt handle names (DeleteMessage).
    pub fn delete_message(
        &mut self,
        name: &str,
        receipt_handle: &str,
        now: Millis,
    ) -> Result<DeleteOutcome, QueueError> {
        let now = self.observe(now);
        let queue = self.queue_mut(name)?;
        queue.expire(now);
        queue.delete(receipt_handle)
    }

    /// Sets a new visibility timeout, counted from `now`, for an in-flight message.
    pub fn change_visibility(
        &mut self,
        name: &str,
        receipt_handle: &str,
        timeout: u32,
        now: Millis,
    ) -> Result<(), QueueError> {
        let now = self.observe(now);
        let queue = self.queue_mut(name)?;
        queue.expire(now);
        queue.change_visibility(receipt_handle, timeout, now)
    }

    /// Removes every message (PurgeQueue); returns how many.
    pub fn purge(&mut self, name: &str, now: Millis) -> Result<usize, QueueError> {
        self.observe(now);
        let queue = self.queue_mut(name)?;
        let count = queue.slots.len();
        queue.slots.clear();
        queue.by_id.clear();
        queue.schedule.clear();
        queue.counters.purged += count as u64;
        Ok(count)
    }

    /// Counts and counters as of `now`.
    pub fn stats(&mut self, name: &str, now: Millis) -> Result<QueueStats, QueueError> {
        let now = self.observe(now);
        let queue = self.queue_mut(name)?;
        queue.expire(now);
        Ok(queue.stats(now))
    }

    /// The next instant after `now` at which a message of this queue becomes visible.
    pub fn next_due(&self, name: &str, now: Millis) -> Option<Millis> {
        self.queues.get(name)?.next_due(now.max(self.clock))
    }
}

#[cfg(test)]
mod tests;
