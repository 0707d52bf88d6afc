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

mod types;
mod validate;

pub use types::*;
pub use validate::*;

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
    /// Slots still hidden as of the last [`Queue::advance`], so stats need no scan.
    hidden: Hidden,
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
            hidden: Hidden::default(),
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
        self.hidden.add(visible_at, receipt.is_some(), 1);
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
        self.hidden.add(slot.visible_at, slot.receipt.is_some(), -1);
        Some(slot)
    }

    /// Moves a slot to a new visibility instant and receipt (`None` keeps the current one).
    fn set_visible_at(&mut self, key: Key, visible_at: Millis, receipt: Option<u64>) {
        if let Some(slot) = self.slots.get_mut(&key) {
            self.schedule.remove(&(slot.visible_at, key));
            self.hidden.add(slot.visible_at, slot.receipt.is_some(), -1);
            slot.visible_at = visible_at;
            slot.receipt = receipt.or(slot.receipt);
            self.schedule.insert((visible_at, key));
            self.hidden.add(visible_at, slot.receipt.is_some(), 1);
        }
    }

    /// Moves the hidden-slot horizon to `now`: slots that became visible since the last
    /// call leave the hidden counts. Each slot crosses the horizon once per visibility
    /// change, so this is amortised O(log n) per message, however deep the queue.
    fn advance(&mut self, now: Millis) {
        if now <= self.hidden.horizon {
            return;
        }
        let newly_visible = self.schedule.range(
            (self.hidden.horizon.saturating_add(1), (0, 0))..(now.saturating_add(1), (0, 0)),
        );
        for &(_, key) in newly_visible {
            if self.slots[&key].receipt.is_some() {
                self.hidden.in_flight -= 1;
            } else {
                self.hidden.delayed -= 1;
            }
        }
        self.hidden.horizon = now;
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

    /// Counts as of `now`, which must not be earlier than any `now` seen before.
    fn stats(&mut self, now: Millis) -> QueueStats {
        self.advance(now);
        let hidden = self.hidden.in_flight + self.hidden.delayed;
        QueueStats {
            visible: self.slots.len() - hidden,
            in_flight: self.hidden.in_flight,
            delayed: self.hidden.delayed,
            oldest_age: self
                .slots
                .first_key_value()
                .map(|(key, _)| Duration::from_millis(now.saturating_sub(key.0))),
            counters: self.counters,
        }
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
                self.set_visible_at(key, now + u64::from(timeout) * 1_000, None);
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
        self.set_visible_at(key, now + u64::from(visibility) * 1_000, Some(nonce));
        let slot = self.slots.get_mut(&key).expect("delivered slot exists");
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

/// Slots whose `visible_at` lies after `horizon`, by whether they have been received.
/// Every slot visible at `horizon` or earlier counts as visible.
#[derive(Debug, Clone, Copy, Default)]
struct Hidden {
    horizon: Millis,
    in_flight: usize,
    delayed: usize,
}

impl Hidden {
    /// Counts (`delta` = 1) or uncounts (-1) a slot that is hidden at the horizon.
    fn add(&mut self, visible_at: Millis, received: bool, delta: isize) {
        if visible_at <= self.horizon {
            return;
        }
        let count = if received {
            &mut self.in_flight
        } else {
            &mut self.delayed
        };
        *count = count
            .checked_add_signed(delta)
            .expect("hidden count in range");
    }
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
        queue.hidden = Hidden {
            horizon: queue.hidden.horizon,
            ..Hidden::default()
        };
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
