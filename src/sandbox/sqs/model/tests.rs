use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

const T0: Millis = 1_700_000_000_000;

fn registry_with(name: &str, settings: QueueSettings) -> Registry {
    let mut registry = Registry::new(7);
    assert!(registry.create_queue(name, settings, T0).unwrap());
    registry
}

fn body(text: &str) -> NewMessage {
    NewMessage {
        body: text.to_owned(),
        ..NewMessage::default()
    }
}

fn counts(registry: &mut Registry, name: &str, now: Millis) -> (usize, usize, usize) {
    let stats = registry.stats(name, now).unwrap();
    (stats.visible, stats.in_flight, stats.delayed)
}

#[test]
fn a_received_message_is_hidden_until_its_visibility_timeout_ends() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry.send("q", body("a"), T0).unwrap();
    let first = registry.receive("q", 10, Some(5), T0).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message.receive_count, 1);
    assert_eq!(first[0].message.first_received_at, Some(T0));
    assert!(
        registry
            .receive("q", 10, None, T0 + 4_999)
            .unwrap()
            .is_empty()
    );
    assert_eq!(counts(&mut registry, "q", T0 + 4_999), (0, 1, 0));
    let second = registry.receive("q", 10, None, T0 + 5_000).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.receive_count, 2);
    assert_eq!(second[0].message.first_received_at, Some(T0));
    assert_ne!(first[0].receipt_handle, second[0].receipt_handle);
}

#[test]
fn a_superseded_receipt_handle_deletes_nothing() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry.send("q", body("a"), T0).unwrap();
    let old = registry.receive("q", 1, Some(1), T0).unwrap().remove(0);
    let new = registry
        .receive("q", 1, Some(1), T0 + 1_000)
        .unwrap()
        .remove(0);
    let outcome = registry
        .delete_message("q", &old.receipt_handle, T0 + 1_001)
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::Stale);
    assert_eq!(registry.queue("q").unwrap().len(), 1);
    assert_eq!(
        registry.change_visibility("q", &old.receipt_handle, 5, T0 + 1_001),
        Err(QueueError::MessageUnavailable(old.receipt_handle.clone()))
    );
    let outcome = registry
        .delete_message("q", &new.receipt_handle, T0 + 1_002)
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::Deleted);
    let again = registry
        .delete_message("q", &new.receipt_handle, T0 + 1_003)
        .unwrap();
    assert_eq!(again, DeleteOutcome::AlreadyGone);
    let stats = registry.stats("q", T0 + 1_003).unwrap();
    assert_eq!(
        (stats.counters.deleted, stats.counters.stale_deletes),
        (1, 1)
    );
}

#[test]
fn malformed_or_foreign_receipt_handles_are_invalid() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry
        .create_queue("other", QueueSettings::default(), T0)
        .unwrap();
    registry.send("other", body("a"), T0).unwrap();
    let foreign = registry.receive("other", 1, None, T0).unwrap().remove(0);
    for handle in ["", "garbage", "a.b.c.d", foreign.receipt_handle.as_str()] {
        assert_eq!(
            registry.delete_message("q", handle, T0),
            Err(QueueError::InvalidReceiptHandle(handle.to_owned()))
        );
    }
}

#[test]
fn change_visibility_extends_shortens_and_refuses_visible_messages() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry.send("q", body("a"), T0).unwrap();
    let delivery = registry.receive("q", 1, Some(10), T0).unwrap().remove(0);
    registry
        .change_visibility("q", &delivery.receipt_handle, 0, T0 + 1)
        .unwrap();
    assert_eq!(counts(&mut registry, "q", T0 + 1), (1, 0, 0));
    assert_eq!(
        registry.change_visibility("q", &delivery.receipt_handle, 5, T0 + 2),
        Err(QueueError::MessageNotInFlight)
    );
    assert!(matches!(
        registry.change_visibility("q", &delivery.receipt_handle, 43_201, T0 + 2),
        Err(QueueError::InvalidParameterValue(_))
    ));
}

#[test]
fn delays_hold_messages_back_per_queue_and_per_message() {
    let settings = QueueSettings {
        delay_seconds: 2,
        ..QueueSettings::default()
    };
    let mut registry = registry_with("q", settings);
    registry.send("q", body("queue-delay"), T0).unwrap();
    let per_message = NewMessage {
        delay_seconds: Some(0),
        ..body("no-delay")
    };
    registry.send("q", per_message, T0).unwrap();
    assert_eq!(counts(&mut registry, "q", T0), (1, 0, 1));
    assert_eq!(registry.next_due("q", T0), Some(T0 + 2_000));
    let now = registry.receive("q", 10, None, T0).unwrap();
    assert_eq!(now[0].message.body, "no-delay");
    let later = registry.receive("q", 10, None, T0 + 2_000).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].message.body, "queue-delay");
}

#[test]
fn messages_expire_after_the_retention_period() {
    let settings = QueueSettings {
        message_retention_period: 60,
        ..QueueSettings::default()
    };
    let mut registry = registry_with("q", settings);
    registry.send("q", body("old"), T0).unwrap();
    registry.send("q", body("new"), T0 + 30_000).unwrap();
    let stats = registry.stats("q", T0 + 60_000).unwrap();
    assert_eq!(stats.visible, 1);
    assert_eq!(stats.counters.expired, 1);
    assert_eq!(stats.oldest_age, Some(Duration::from_secs(30)));
}

#[test]
fn exhausted_messages_move_to_the_dead_letter_queue_on_the_next_receive() {
    let mut registry = registry_with("dlq", QueueSettings::default());
    let settings = QueueSettings {
        redrive_policy: Some(RedrivePolicy {
            dead_letter_queue: "dlq".to_owned(),
            max_receive_count: 2,
        }),
        ..QueueSettings::default()
    };
    registry.create_queue("src", settings, T0).unwrap();
    let sent = registry.send("src", body("poison"), T0).unwrap();
    for attempt in 0..2 {
        let got = registry.receive("src", 1, Some(0), T0 + attempt).unwrap();
        assert_eq!(got.len(), 1, "attempt {attempt}");
    }
    assert!(
        registry
            .receive("src", 1, Some(0), T0 + 2)
            .unwrap()
            .is_empty()
    );
    assert!(registry.queue("src").unwrap().is_empty());
    let moved = registry.receive("dlq", 1, None, T0 + 3).unwrap().remove(0);
    assert_eq!(moved.message.id, sent.message_id);
    assert_eq!(moved.message.sent_at, T0);
    assert_eq!(moved.message.receive_count, 3);
    let stats = registry.stats("src", T0 + 3).unwrap();
    assert_eq!(stats.counters.moved_to_dead_letter, 1);
}

#[test]
fn redrive_needs_an_existing_other_queue() {
    let mut registry = Registry::new(1);
    let to = |target: &str| QueueSettings {
        redrive_policy: Some(RedrivePolicy {
            dead_letter_queue: target.to_owned(),
            max_receive_count: 3,
        }),
        ..QueueSettings::default()
    };
    assert!(matches!(
        registry.create_queue("a", to("missing"), T0),
        Err(QueueError::InvalidParameterValue(_))
    ));
    registry
        .create_queue("a", QueueSettings::default(), T0)
        .unwrap();
    assert!(matches!(
        registry.set_settings("a", to("a"), T0),
        Err(QueueError::InvalidParameterValue(_))
    ));
}

#[test]
fn create_is_idempotent_only_with_identical_settings() {
    let mut registry = registry_with("q", QueueSettings::default());
    assert_eq!(
        registry.create_queue("q", QueueSettings::default(), T0),
        Ok(false)
    );
    let different = QueueSettings {
        visibility_timeout: 1,
        ..QueueSettings::default()
    };
    assert_eq!(
        registry.create_queue("q", different, T0),
        Err(QueueError::QueueNameExists("q".to_owned()))
    );
    assert!(
        registry
            .create_queue("bad name", QueueSettings::default(), T0)
            .is_err()
    );
    assert!(
        registry
            .create_queue("x.fifo", QueueSettings::default(), T0)
            .is_err()
    );
}

#[test]
fn overflow_reject_refuses_and_drop_lies() {
    for (policy, expect_error) in [
        (OverflowPolicy::Reject, true),
        (OverflowPolicy::Drop, false),
    ] {
        let settings = QueueSettings {
            max_messages: Some(2),
            overflow: policy,
            ..QueueSettings::default()
        };
        let mut registry = registry_with("q", settings);
        for i in 0..2 {
            assert!(registry.send("q", body(&i.to_string()), T0).unwrap().stored);
        }
        let third = registry.send("q", body("third"), T0);
        assert_eq!(third.is_err(), expect_error, "{policy:?}");
        if let Ok(receipt) = third {
            assert!(!receipt.stored);
        }
        let stats = registry.stats("q", T0).unwrap();
        assert_eq!(stats.visible, 2);
        assert_eq!(stats.counters.rejected, u64::from(expect_error));
        assert_eq!(stats.counters.dropped, u64::from(!expect_error));
    }
}

#[test]
fn purge_removes_everything_in_any_state() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry.send("q", body("a"), T0).unwrap();
    registry.send("q", body("b"), T0).unwrap();
    let delayed = NewMessage {
        delay_seconds: Some(60),
        ..body("c")
    };
    registry.send("q", delayed, T0).unwrap();
    registry.receive("q", 1, None, T0).unwrap();
    assert_eq!(counts(&mut registry, "q", T0), (1, 1, 1));
    assert_eq!(registry.purge("q", T0), Ok(3));
    assert_eq!(counts(&mut registry, "q", T0), (0, 0, 0));
}

#[test]
fn messages_are_validated() {
    let settings = QueueSettings {
        maximum_message_size: 1_024,
        ..QueueSettings::default()
    };
    let mut registry = registry_with("q", settings);
    assert_eq!(
        registry.send("q", body(""), T0),
        Err(QueueError::MissingParameter("MessageBody"))
    );
    assert!(matches!(
        registry.send("q", body("bad \u{1} char"), T0),
        Err(QueueError::InvalidMessageContents(_))
    ));
    assert!(matches!(
        registry.send("q", body(&"x".repeat(1_025)), T0),
        Err(QueueError::InvalidParameterValue(_))
    ));
    let mismatched = NewMessage {
        attributes: BTreeMap::from([(
            "n".to_owned(),
            MessageAttribute {
                data_type: "Binary".to_owned(),
                value: AttributeValue::String("x".to_owned()),
            },
        )]),
        ..body("ok")
    };
    assert!(registry.send("q", mismatched, T0).is_err());
    let delayed = NewMessage {
        delay_seconds: Some(901),
        ..body("ok")
    };
    assert!(registry.send("q", delayed, T0).is_err());
    assert!(registry.send("q", body("ok \u{10FFFF}"), T0).is_ok());
}

#[test]
fn time_passed_in_never_runs_backwards() {
    let mut registry = registry_with("q", QueueSettings::default());
    registry.send("q", body("a"), T0 + 10_000).unwrap();
    registry.receive("q", 1, Some(1), T0 + 10_000).unwrap();
    // An earlier `now` is treated as the latest seen, so the message stays in flight.
    assert_eq!(counts(&mut registry, "q", T0), (0, 1, 0));
}

/// One step of a random schedule driven against the model.
#[derive(Debug, Clone)]
enum Op {
    Send { delay: Option<u32> },
    Receive { max: usize, visibility: Option<u32> },
    Delete { pick: usize },
    ChangeVisibility { pick: usize, timeout: u32 },
    Advance { millis: u64 },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::option::of(0u32..3).prop_map(|delay| Op::Send { delay }),
        4 => (1usize..=10, proptest::option::of(0u32..4))
            .prop_map(|(max, visibility)| Op::Receive { max, visibility }),
        3 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => (any::<usize>(), 0u32..4).prop_map(|(pick, timeout)| Op::ChangeVisibility { pick, timeout }),
        4 => (0u64..2_500).prop_map(|millis| Op::Advance { millis }),
        1 => Just(Op::Purge),
    ]
}

/// The test's own bookkeeping of what must be in the system.
struct Reference {
    /// Message id -> time sent, for every message that must still exist (source or DLQ).
    alive: HashMap<String, Millis>,
    /// Message id -> end of its latest lease (visibility) while held by a receiver.
    leased_until: HashMap<String, Millis>,
    /// Handles handed out, for Delete/ChangeVisibility picks.
    handles: Vec<String>,
    dropped: u64,
}

#[derive(Debug, Clone)]
struct Scenario {
    capacity: Option<usize>,
    overflow: OverflowPolicy,
    max_receive_count: Option<u32>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::option::of(1usize..6),
        prop_oneof![Just(OverflowPolicy::Reject), Just(OverflowPolicy::Drop)],
        proptest::option::of(1u32..4),
    )
        .prop_map(|(capacity, overflow, max_receive_count)| Scenario {
            capacity,
            overflow,
            max_receive_count,
        })
}

fn setup(scenario: &Scenario) -> Registry {
    let mut registry = Registry::new(99);
    let dlq = QueueSettings {
        message_retention_period: 60,
        ..QueueSettings::default()
    };
    registry.create_queue("dlq", dlq, T0).unwrap();
    let src = QueueSettings {
        visibility_timeout: 1,
        message_retention_period: 60,
        max_messages: scenario.capacity,
        overflow: scenario.overflow,
        redrive_policy: scenario
            .max_receive_count
            .map(|max_receive_count| RedrivePolicy {
                dead_letter_queue: "dlq".to_owned(),
                max_receive_count,
            }),
        ..QueueSettings::default()
    };
    registry.create_queue("src", src, T0).unwrap();
    registry
}

fn apply(
    registry: &mut Registry,
    reference: &mut Reference,
    op: &Op,
    now: &mut Millis,
    scenario: &Scenario,
) {
    match *op {
        Op::Send { delay } => {
            let before = registry.queue("src").unwrap().len();
            let message = NewMessage {
                delay_seconds: delay,
                ..body("m")
            };
            match registry.send("src", message, *now) {
                Ok(receipt) if receipt.stored => {
                    reference.alive.insert(receipt.message_id, *now);
                }
                Ok(_) => {
                    assert_eq!(Some(before), scenario.capacity, "dropped below capacity");
                    reference.dropped += 1;
                }
                Err(QueueError::QueueFull { .. }) => {
                    assert_eq!(Some(before), scenario.capacity, "rejected below capacity");
                }
                Err(other) => panic!("unexpected send error {other}"),
            }
        }
        Op::Receive { max, visibility } => {
            let got = registry.receive("src", max, visibility, *now).unwrap();
            assert!(got.len() <= max);
            let mut seen = HashSet::new();
            for delivery in got {
                let id = delivery.message.id.clone();
                assert!(seen.insert(id.clone()), "delivered twice in one batch");
                if let Some(&until) = reference.leased_until.get(&id) {
                    assert!(
                        *now >= until,
                        "{id} delivered at {now} while leased until {until}"
                    );
                }
                if let Some(limit) = scenario.max_receive_count {
                    assert!(delivery.message.receive_count <= limit);
                }
                let lease = u64::from(visibility.unwrap_or(1)) * 1_000;
                reference.leased_until.insert(id, *now + lease);
                reference.handles.push(delivery.receipt_handle);
            }
        }
        Op::Delete { pick } => {
            if reference.handles.is_empty() {
                return;
            }
            let handle = reference.handles[pick % reference.handles.len()].clone();
            if registry.delete_message("src", &handle, *now).unwrap() == DeleteOutcome::Deleted {
                let id = handle.split('.').nth(1).unwrap();
                assert!(
                    reference.alive.remove(id).is_some(),
                    "deleted an unknown message"
                );
                reference.leased_until.remove(id);
            }
        }
        Op::ChangeVisibility { pick, timeout } => {
            if reference.handles.is_empty() {
                return;
            }
            let handle = reference.handles[pick % reference.handles.len()].clone();
            if registry
                .change_visibility("src", &handle, timeout, *now)
                .is_ok()
            {
                let id = handle.split('.').nth(1).unwrap().to_owned();
                reference
                    .leased_until
                    .insert(id, *now + u64::from(timeout) * 1_000);
            }
        }
        Op::Advance { millis } => {
            *now += millis;
            reference.alive.retain(|_, sent| *sent + 60_000 > *now);
        }
        Op::Purge => {
            let src: HashSet<String> = registry
                .queue("src")
                .unwrap()
                .message_ids()
                .map(str::to_owned)
                .collect();
            registry.purge("src", *now).unwrap();
            reference.alive.retain(|id, _| !src.contains(id));
        }
    }
}

/// (visible, in flight, delayed) by looking at every slot: what the incremental counts
/// must agree with.
fn scanned_counts(queue: &Queue, now: Millis) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for slot in queue.slots.values() {
        if slot.visible_at <= now {
            counts.0 += 1;
        } else if slot.receipt.is_some() {
            counts.1 += 1;
        } else {
            counts.2 += 1;
        }
    }
    counts
}

fn check_invariants(
    registry: &mut Registry,
    reference: &Reference,
    now: Millis,
    scenario: &Scenario,
) {
    let mut present = HashSet::new();
    for name in ["src", "dlq"] {
        let stats = registry.stats(name, now).unwrap();
        let queue = registry.queue(name).unwrap();
        assert_eq!(
            (stats.visible, stats.in_flight, stats.delayed),
            scanned_counts(queue, now),
            "{name} counts at {now}"
        );
        for id in queue.message_ids() {
            assert!(present.insert(id.to_owned()), "{id} stored twice");
        }
    }
    let alive: HashSet<String> = reference.alive.keys().cloned().collect();
    assert_eq!(present, alive, "messages lost or resurrected");
    let src = registry.stats("src", now).unwrap();
    assert_eq!(src.counters.dropped, reference.dropped);
    if let Some(capacity) = scenario.capacity {
        assert!(registry.queue("src").unwrap().len() <= capacity);
    }
    if scenario.max_receive_count.is_none() {
        assert!(registry.queue("dlq").unwrap().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At-least-once: nothing vanishes without delete, expiry or purge (dead-letter moves keep
    /// it), no message is handed to two receivers within one visibility timeout, counts add up,
    /// the overflow policy holds the capacity while counting every drop, and the incremental
    /// visible/in-flight/delayed counts equal a scan of every message.
    #[test]
    fn random_schedules_keep_the_queue_contract(
        scenario in scenario(),
        ops in proptest::collection::vec(op(), 1..80),
        check_every in 1usize..4,
    ) {
        let mut registry = setup(&scenario);
        let mut reference = Reference {
            alive: HashMap::new(),
            leased_until: HashMap::new(),
            handles: Vec::new(),
            dropped: 0,
        };
        let mut now = T0;
        // Checking less often than every step lets the hidden-count horizon lag behind.
        for (step, op) in ops.iter().enumerate() {
            apply(&mut registry, &mut reference, op, &mut now, &scenario);
            if step % check_every == 0 || step + 1 == ops.len() {
                check_invariants(&mut registry, &reference, now, &scenario);
            }
        }
    }
}
