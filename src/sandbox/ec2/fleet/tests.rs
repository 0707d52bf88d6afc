use std::net::Ipv4Addr;

use super::*;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A fleet with `web` x3 (tier=web, group=asg-web), `worker` x2 (tier=worker), one untagged;
/// all running.
fn sample() -> (Fleet, Vec<InstanceId>) {
    let mut f = Fleet::new(7);
    let mut ids = Vec::new();
    for n in 0..6 {
        let spec = match n {
            0..=2 => LaunchSpec::default()
                .tag("tier", "web")
                .tag("aws:autoscaling:groupName", "asg-web")
                .tag("Name", format!("web-{n}")),
            3 | 4 => LaunchSpec::default().tag("tier", "worker"),
            _ => LaunchSpec::default(),
        };
        let id = f.register(spec, t0());
        f.mark_running(&id, t0()).unwrap();
        ids.push(id);
    }
    (f, ids)
}

fn ids_of(page: &Page<Instance>) -> Vec<InstanceId> {
    page.items.iter().map(|i| i.id.clone()).collect()
}

fn filtered(f: &mut Fleet, filters: Vec<Filter>) -> Vec<InstanceId> {
    let q = DescribeQuery {
        filters,
        ..Default::default()
    };
    ids_of(&f.describe(&q, t0()).unwrap())
}

#[test]
fn ids_are_i_dash_17_hex_and_parse_back() {
    let (_, ids) = sample();
    for id in &ids {
        assert_eq!(id.as_str().len(), 19, "{id}");
        assert_eq!(id.as_str().parse::<InstanceId>().unwrap(), *id);
    }
    assert!("i-12345678".parse::<InstanceId>().is_ok());
    for bad in [
        "i-",
        "x-0123456789abcdef0",
        "i-0123456789ABCDEF0",
        "i-123",
        "i-zzzzzzzz",
    ] {
        assert_eq!(
            bad.parse::<InstanceId>(),
            Err(FleetError::MalformedId(bad.into()))
        );
    }
}

#[test]
fn state_codes_and_names_match_ec2() {
    let table = [
        ("pending", 0),
        ("running", 16),
        ("shutting-down", 32),
        ("terminated", 48),
        ("stopping", 64),
        ("stopped", 80),
    ];
    for (name, code) in table {
        let s = InstanceState::from_name(name).unwrap();
        assert_eq!((s.name(), s.code()), (name, code));
    }
    assert_eq!(InstanceState::from_name("exploded"), None);
}

#[test]
fn registered_instances_are_pending_local_and_tagged() {
    let mut f = Fleet::new(1);
    let id = f.register(LaunchSpec::default().tag("tier", "web"), t0());
    let i = f.get(&id).unwrap();
    assert_eq!(i.state, InstanceState::Pending);
    assert_eq!(i.private_ip, Ipv4Addr::LOCALHOST);
    assert_eq!(i.launch_time, t0());
    assert_eq!(i.tags["tier"], "web");
    assert!(i.reservation_id.starts_with("r-"));
}

#[test]
fn tag_filter_values_are_ored_and_filters_anded() {
    let (mut f, ids) = sample();
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag:tier", ["web"])]),
        ids[..3]
    );
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag:tier", ["web", "worker"])]),
        ids[..5]
    );
    let both = vec![
        Filter::new("tag:tier", ["web", "worker"]),
        Filter::new("tag:Name", ["web-1"]),
    ];
    assert_eq!(filtered(&mut f, both), vec![ids[1].clone()]);
    assert!(filtered(&mut f, vec![Filter::new("tag:tier", ["db"])]).is_empty());
}

#[test]
fn tag_key_value_and_reserved_group_tag_filters() {
    let (mut f, ids) = sample();
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag-key", ["Name"])]),
        ids[..3]
    );
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag-value", ["worker"])]),
        ids[3..5]
    );
    let asg = Filter::new("tag:aws:autoscaling:groupName", ["asg-web"]);
    assert_eq!(filtered(&mut f, vec![asg]), ids[..3]);
}

#[test]
fn wildcards_star_and_question_mark() {
    let (mut f, ids) = sample();
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag:Name", ["web-*"])]),
        ids[..3]
    );
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag:Name", ["web-?"])]),
        ids[..3]
    );
    assert_eq!(
        filtered(&mut f, vec![Filter::new("tag:tier", ["w*r"])]),
        ids[3..5]
    );
    assert!(filtered(&mut f, vec![Filter::new("tag:tier", ["w?b?"])]).is_empty());
}

#[test]
fn state_id_type_and_ip_filters() {
    let (mut f, ids) = sample();
    f.begin_stop(&ids[..1], t0()).unwrap();
    let state = |n: &str| vec![Filter::new("instance-state-name", [n])];
    assert_eq!(filtered(&mut f, state("stopping")), ids[..1]);
    assert_eq!(filtered(&mut f, state("running")), ids[1..]);
    let code = vec![Filter::new("instance-state-code", ["64"])];
    assert_eq!(filtered(&mut f, code), ids[..1]);
    let by_id = vec![Filter::new(
        "instance-id",
        [ids[2].as_str(), ids[4].as_str()],
    )];
    assert_eq!(
        filtered(&mut f, by_id),
        vec![ids[2].clone(), ids[4].clone()]
    );
    let ty = vec![Filter::new("instance-type", [DEFAULT_INSTANCE_TYPE])];
    assert_eq!(filtered(&mut f, ty).len(), 6);
    let ip = vec![Filter::new("private-ip-address", ["127.0.0.1"])];
    assert_eq!(filtered(&mut f, ip).len(), 6);
}

#[test]
fn unknown_filter_is_invalid_parameter() {
    let (mut f, _) = sample();
    let q = DescribeQuery {
        filters: vec![Filter::new("flavour", ["vanilla"])],
        ..Default::default()
    };
    let err = f.describe(&q, t0()).unwrap_err();
    assert_eq!(err, FleetError::InvalidFilter("flavour".into()));
    assert_eq!(err.ec2_code(), "InvalidParameterValue");
}

#[test]
fn instance_ids_parameter_selects_and_requires_existence() {
    let (mut f, ids) = sample();
    let q = DescribeQuery {
        ids: vec![ids[4].clone(), ids[0].clone()],
        ..Default::default()
    };
    assert_eq!(
        ids_of(&f.describe(&q, t0()).unwrap()),
        vec![ids[0].clone(), ids[4].clone()]
    );
    let ghost: InstanceId = "i-00000000000000000".parse().unwrap();
    let q = DescribeQuery {
        ids: vec![ids[0].clone(), ghost.clone()],
        ..Default::default()
    };
    let err = f.describe(&q, t0()).unwrap_err();
    assert_eq!(err, FleetError::NotFound(vec![ghost]));
    assert_eq!(err.ec2_code(), "InvalidInstanceID.NotFound");
}

#[test]
fn pagination_walks_all_pages_in_order_and_validates() {
    let mut f = Fleet::new(3);
    let all: Vec<InstanceId> = (0..12)
        .map(|_| f.register(LaunchSpec::default(), t0()))
        .collect();
    let mut seen = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let q = DescribeQuery {
            max_results: Some(5),
            next_token: token.clone(),
            ..Default::default()
        };
        let page = f.describe(&q, t0()).unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(ids_of(&page));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, all);
    for bad in [4, 1001] {
        let q = DescribeQuery {
            max_results: Some(bad),
            ..Default::default()
        };
        assert_eq!(
            f.describe(&q, t0()).unwrap_err().ec2_code(),
            "InvalidParameterValue"
        );
    }
    let q = DescribeQuery {
        ids: vec![all[0].clone()],
        max_results: Some(5),
        ..Default::default()
    };
    assert_eq!(
        f.describe(&q, t0()).unwrap_err().ec2_code(),
        "InvalidParameterCombination"
    );
    let q = DescribeQuery {
        next_token: Some("garbage".into()),
        ..Default::default()
    };
    assert_eq!(
        f.describe(&q, t0()).unwrap_err().ec2_code(),
        "InvalidParameterValue"
    );
}

#[test]
fn exact_page_boundary_has_no_token() {
    let mut f = Fleet::new(3);
    for _ in 0..5 {
        f.register(LaunchSpec::default(), t0());
    }
    let q = DescribeQuery {
        max_results: Some(5),
        ..Default::default()
    };
    let page = f.describe(&q, t0()).unwrap();
    assert_eq!((page.items.len(), page.next_token), (5, None));
}

#[test]
fn terminate_reports_previous_and_current_then_completes() {
    let (mut f, ids) = sample();
    let changes = f.begin_terminate(&ids[..2], t0()).unwrap();
    assert_eq!(changes.len(), 2);
    for c in &changes {
        assert_eq!(
            (c.previous, c.current),
            (InstanceState::Running, InstanceState::ShuttingDown)
        );
    }
    let done = f
        .complete(
            &ids[0],
            InstanceState::ShuttingDown,
            InstanceState::Terminated,
            t0(),
        )
        .unwrap();
    assert_eq!(done.current, InstanceState::Terminated);
    let i = f.get(&ids[0]).unwrap();
    assert_eq!(
        i.state_reason.as_ref().unwrap().code,
        "Client.UserInitiatedShutdown"
    );
    assert!(i.transition_reason.starts_with("User initiated ("));
    // Terminating again is idempotent, as in EC2.
    let again = f.begin_terminate(&ids[..1], t0()).unwrap();
    assert_eq!(again[0].previous, InstanceState::Terminated);
    assert!(!again[0].changed());
}

#[test]
fn terminate_of_an_unknown_id_changes_nothing() {
    let (mut f, ids) = sample();
    let ghost: InstanceId = "i-0000000000000dead".parse().unwrap();
    let err = f
        .begin_terminate(&[ids[0].clone(), ghost.clone()], t0())
        .unwrap_err();
    assert_eq!(err, FleetError::NotFound(vec![ghost]));
    assert_eq!(f.get(&ids[0]).unwrap().state, InstanceState::Running);
}

#[test]
fn stop_then_start_round_trip() {
    let (mut f, ids) = sample();
    let stop = f.begin_stop(&ids[..1], t0()).unwrap();
    assert_eq!(
        (stop[0].previous, stop[0].current),
        (InstanceState::Running, InstanceState::Stopping)
    );
    f.complete(
        &ids[0],
        InstanceState::Stopping,
        InstanceState::Stopped,
        t0(),
    );
    assert_eq!(f.get(&ids[0]).unwrap().state, InstanceState::Stopped);
    let again = f.begin_stop(&ids[..1], t0()).unwrap();
    assert!(!again[0].changed());
    let start = f.begin_start(&ids[..1], t0()).unwrap();
    assert_eq!(
        (start[0].previous, start[0].current),
        (InstanceState::Stopped, InstanceState::Pending)
    );
    f.complete(
        &ids[0],
        InstanceState::Pending,
        InstanceState::Running,
        t0(),
    );
    let i = f.get(&ids[0]).unwrap();
    assert_eq!(i.state, InstanceState::Running);
    assert_eq!(i.state_reason, None);
    assert_eq!(i.transition_reason, "");
}

#[test]
fn incorrect_states_fail_the_whole_request() {
    let (mut f, ids) = sample();
    let fresh = f.register(LaunchSpec::default(), t0());
    let err = f
        .begin_stop(&[ids[0].clone(), fresh.clone()], t0())
        .unwrap_err();
    assert_eq!(err.ec2_code(), "IncorrectInstanceState");
    assert_eq!(
        f.get(&ids[0]).unwrap().state,
        InstanceState::Running,
        "nothing moved"
    );
    f.begin_terminate(&ids[1..2], t0()).unwrap();
    assert!(f.begin_start(&ids[1..2], t0()).is_err());
    f.begin_stop(&ids[2..3], t0()).unwrap();
    assert!(f.begin_start(&ids[2..3], t0()).is_err(), "still stopping");
    let start_running = f.begin_start(&ids[3..4], t0()).unwrap();
    assert!(!start_running[0].changed());
}

#[test]
fn complete_and_abort_ignore_instances_that_moved_on() {
    let (mut f, ids) = sample();
    f.begin_stop(&ids[..1], t0()).unwrap();
    f.mark_exited(&ids[0], "exit status 1", t0()).unwrap();
    assert_eq!(
        f.complete(
            &ids[0],
            InstanceState::Stopping,
            InstanceState::Stopped,
            t0()
        ),
        None
    );
    assert_eq!(f.get(&ids[0]).unwrap().state, InstanceState::Terminated);
    f.begin_stop(&ids[1..2], t0()).unwrap();
    let back = f
        .abort(
            &ids[1],
            InstanceState::Stopping,
            InstanceState::Running,
            "no pid",
            t0(),
        )
        .unwrap();
    assert_eq!(back.current, InstanceState::Running);
}

#[test]
fn mark_exited_records_the_reason() {
    let (mut f, ids) = sample();
    let c = f.mark_exited(&ids[0], "exit status 3", t0()).unwrap();
    assert_eq!(
        (c.previous, c.current),
        (InstanceState::Running, InstanceState::Terminated)
    );
    let i = f.get(&ids[0]).unwrap();
    let reason = i.state_reason.as_ref().unwrap();
    assert_eq!(reason.code, "Client.InstanceInitiatedShutdown");
    assert!(reason.message.contains("exit status 3"));
    assert!(!f.mark_exited(&ids[0], "again", t0()).unwrap().changed());
    assert_eq!(
        f.mark_running(&ids[0], t0()).unwrap_err().ec2_code(),
        "IncorrectInstanceState"
    );
}

#[test]
fn terminated_instances_are_forgotten_after_retention() {
    let mut f = Fleet::new(9).with_terminated_retention(Duration::from_secs(60));
    let a = f.register(LaunchSpec::default(), t0());
    let b = f.register(LaunchSpec::default(), t0());
    f.mark_exited(&a, "gone", t0() + secs(10)).unwrap();
    let q = DescribeQuery::default();
    assert_eq!(f.describe(&q, t0() + secs(69)).unwrap().items.len(), 2);
    let page = f.describe(&q, t0() + secs(70)).unwrap();
    assert_eq!(ids_of(&page), vec![b.clone()]);
    let q = DescribeQuery {
        ids: vec![a.clone()],
        ..Default::default()
    };
    assert_eq!(
        f.describe(&q, t0() + secs(70)),
        Err(FleetError::NotFound(vec![a]))
    );
}

#[test]
fn tags_create_overwrite_delete() {
    let (mut f, ids) = sample();
    let one = &ids[5..6];
    let tags = vec![
        ("env".to_string(), "test".to_string()),
        ("x".into(), "1".into()),
    ];
    f.create_tags(one, &tags, t0()).unwrap();
    f.create_tags(one, &[("x".into(), "2".into())], t0())
        .unwrap();
    assert_eq!(f.get(&ids[5]).unwrap().tags["x"], "2");
    let wrong_value = TagSelector {
        key: "x".into(),
        value: Some("1".into()),
    };
    f.delete_tags(one, &[wrong_value], t0()).unwrap();
    assert!(f.get(&ids[5]).unwrap().tags.contains_key("x"));
    let any_value = TagSelector {
        key: "x".into(),
        value: None,
    };
    f.delete_tags(one, &[any_value], t0()).unwrap();
    assert!(!f.get(&ids[5]).unwrap().tags.contains_key("x"));
    f.delete_tags(&ids[..1], &[], t0()).unwrap();
    let left: Vec<_> = f.get(&ids[0]).unwrap().tags.keys().cloned().collect();
    assert_eq!(left, vec!["aws:autoscaling:groupName"], "aws: tags survive");
}

#[test]
fn tag_validation() {
    let (mut f, ids) = sample();
    let reserved = [("aws:foo".to_string(), "x".to_string())];
    assert_eq!(
        f.create_tags(&ids[..1], &reserved, t0())
            .unwrap_err()
            .ec2_code(),
        "InvalidParameterValue"
    );
    let long = [("k".repeat(129), String::new())];
    assert!(f.create_tags(&ids[..1], &long, t0()).is_err());
    let many: Vec<(String, String)> = (0..50).map(|n| (format!("k{n}"), String::new())).collect();
    let err = f.create_tags(&ids[5..6], &many, t0());
    assert_eq!(err, Ok(()));
    let err = f.create_tags(&ids[5..6], &[("one-more".into(), String::new())], t0());
    assert_eq!(err, Err(FleetError::TagLimitExceeded(ids[5].clone())));
    let ghost: InstanceId = "i-0000000000000beef".parse().unwrap();
    assert!(matches!(
        f.create_tags(&[ghost], &[("a".into(), "b".into())], t0()),
        Err(FleetError::NotFound(_))
    ));
}

#[test]
fn describe_tags_filters_and_pages() {
    let (mut f, ids) = sample();
    let key = [Filter::new("key", ["tier"])];
    let page = f.describe_tags(&key, None, None, t0()).unwrap();
    assert_eq!(page.items.len(), 5);
    let both = [
        Filter::new("key", ["tier"]),
        Filter::new("value", ["worker"]),
    ];
    let page = f.describe_tags(&both, None, None, t0()).unwrap();
    let got: Vec<_> = page.items.iter().map(|t| t.resource_id.clone()).collect();
    assert_eq!(got, ids[3..5]);
    let rid = [
        Filter::new("resource-id", [ids[0].as_str()]),
        Filter::new("resource-type", ["instance"]),
    ];
    let keys: Vec<_> = f
        .describe_tags(&rid, None, None, t0())
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, vec!["Name", "aws:autoscaling:groupName", "tier"]);
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let page = f
            .describe_tags(&[], Some(5), token.as_deref(), t0())
            .unwrap();
        all.extend(page.items);
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all.len(), 3 * 3 + 2);
    assert_eq!(
        f.describe_tags(&[Filter::new("nope", ["x"])], None, None, t0())
            .unwrap_err()
            .ec2_code(),
        "InvalidParameterValue"
    );
}

#[test]
fn change_log_records_transitions_and_reports_misses() {
    let mut f = Fleet::new(5).with_change_log_capacity(3);
    assert_eq!(f.version(), 0);
    let id = f.register(LaunchSpec::default(), t0());
    f.mark_running(&id, t0()).unwrap();
    let c = f.changes_since(0);
    assert_eq!(c.missed, 0);
    assert_eq!(c.cursor, 2);
    let path: Vec<_> = c.transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        vec![
            (None, InstanceState::Pending),
            (Some(InstanceState::Pending), InstanceState::Running)
        ]
    );
    f.begin_stop(std::slice::from_ref(&id), t0()).unwrap();
    f.complete(&id, InstanceState::Stopping, InstanceState::Stopped, t0());
    f.begin_start(std::slice::from_ref(&id), t0()).unwrap();
    let c = f.changes_since(2);
    assert_eq!(c.missed, 0);
    assert_eq!(c.transitions.len(), 3);
    let c = f.changes_since(0);
    assert_eq!((c.missed, c.transitions.len(), c.cursor), (2, 3, 5));
    assert!(f.changes_since(5).transitions.is_empty());
}

#[test]
fn glob_edge_cases() {
    let m = |p: &str, t: &str| Pattern::new(p).matches(t);
    assert!(m("", ""));
    assert!(m("*", ""));
    assert!(!m("?", ""));
    assert!(m("a*b*c", "aXXbYYc"));
    assert!(!m("a*b*c", "aXXbYY"));
    assert!(m("**", "anything"));
    assert!(m("é?", "éé"));
}

fn state_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4).prop_map(Op::Terminate),
        (0usize..4).prop_map(Op::Stop),
        (0usize..4).prop_map(Op::Start),
        (0usize..4).prop_map(Op::Exit),
        (0usize..4).prop_map(Op::Ready),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Terminate(usize),
    Stop(usize),
    Start(usize),
    Exit(usize),
    Ready(usize),
}

type Begin = fn(&mut Fleet, &[InstanceId], DateTime<Utc>) -> Result<Vec<StateChange>, FleetError>;

/// Applies one op like the IO layer does: begin, then complete every changed instance.
fn apply(f: &mut Fleet, ids: &[InstanceId], op: &Op) {
    use InstanceState::*;
    let (n, begin, done): (usize, Begin, InstanceState) = match *op {
        Op::Terminate(n) => (n, Fleet::begin_terminate, Terminated),
        Op::Stop(n) => (n, Fleet::begin_stop, Stopped),
        Op::Start(n) => (n, Fleet::begin_start, Running),
        Op::Exit(n) => {
            f.mark_exited(&ids[n], "exit", t0()).unwrap();
            return;
        }
        Op::Ready(n) => {
            // Refused unless pending; the refusal itself is covered elsewhere.
            let _ = f.mark_running(&ids[n], t0());
            return;
        }
    };
    if let Ok(changes) = begin(f, &ids[n..n + 1], t0()) {
        for c in changes.iter().filter(|c| c.changed()) {
            f.complete(&c.id, c.current, done, t0());
        }
    }
}

proptest! {
    /// Whatever the sequence of operations, terminated is absorbing, every logged transition
    /// is one EC2 allows, and the log is gap-free.
    #[test]
    fn transitions_follow_the_ec2_state_machine(ops in proptest::collection::vec(state_strategy(), 0..40)) {
        use InstanceState::*;
        let mut f = Fleet::new(11);
        let ids: Vec<InstanceId> = (0..4).map(|_| f.register(LaunchSpec::default(), t0())).collect();
        for op in &ops {
            apply(&mut f, &ids, op);
        }
        let allowed = [
            (Pending, Running), (Pending, ShuttingDown), (Pending, Terminated),
            (Running, ShuttingDown), (Running, Stopping), (Running, Terminated),
            (Stopping, Stopped), (Stopping, Terminated), (Stopping, ShuttingDown),
            (Stopped, Pending), (Stopped, ShuttingDown), (Stopped, Terminated),
            (ShuttingDown, Terminated),
        ];
        let log = f.changes_since(0);
        prop_assert_eq!(log.missed, 0);
        for (n, t) in log.transitions.iter().enumerate() {
            prop_assert_eq!(t.seq, n as u64 + 1);
            if let Some(from) = t.from {
                prop_assert!(allowed.contains(&(from, t.to)), "{:?} -> {:?}", from, t.to);
            }
        }
        // After complete() every instance is in a stable state.
        for id in &ids {
            let s = f.get(id).unwrap().state;
            prop_assert!(matches!(s, Pending | Running | Stopped | Terminated), "{:?}", s);
        }
    }

    /// Paging with any legal page size returns exactly the unpaged result, in order.
    #[test]
    fn pages_concatenate_to_the_full_result(n in 0usize..30, size in 5usize..12, tiers in proptest::collection::vec(0u8..3, 30)) {
        let mut f = Fleet::new(2);
        for t in tiers.iter().take(n) {
            f.register(LaunchSpec::default().tag("tier", format!("t{t}")), t0());
        }
        let filters = vec![Filter::new("tag:tier", ["t0", "t2"])];
        let full = f.describe(&DescribeQuery { filters: filters.clone(), ..Default::default() }, t0()).unwrap();
        let mut paged = Vec::new();
        let mut token = None;
        for _ in 0..=n {
            let q = DescribeQuery { filters: filters.clone(), max_results: Some(size), next_token: token.clone(), ..Default::default() };
            let page = f.describe(&q, t0()).unwrap();
            prop_assert!(page.items.len() <= size);
            paged.extend(page.items);
            token = page.next_token;
            if token.is_none() { break; }
        }
        prop_assert!(token.is_none());
        prop_assert_eq!(paged, full.items);
    }
}
