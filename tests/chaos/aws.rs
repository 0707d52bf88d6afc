//! AWS-API faults against our sandbox endpoints (EC2 with real `sleep` processes behind the
//! instances, SQS) and against a local `moto_server` (ignored, with the reason, when it is
//! missing; see `tests/support/moto.rs`).
//! Nothing here contacts anything but 127.0.0.1.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use std::os::unix::process::ExitStatusExt;

use crate::support::cli::{self, shakedown};
use crate::support::moto::Moto;
use crate::support::wait::eventually;
use shakedown::aws::{
    AwsClients, AwsTarget, aws_clients, instance_states, queue_attribute, queue_tags,
};
use shakedown::chaos::Outcome;
use shakedown::chaos::change::undo_tag_key;
use shakedown::chaos::fault::Env;
use shakedown::chaos::journal::{self, Event, JOURNAL_FILE};
use shakedown::chaos::local::stat;
use shakedown::chaos::plan::{FaultPlan, dry_run, render_dry_run};
use shakedown::chaos::recover::tags::{find_undo_tags, recover_from_tags};
use shakedown::chaos::recover::{check_clean, recover_run};
use shakedown::chaos::runner::Runner;
use shakedown::sandbox::ec2::{Ec2Service, FleetHandle, InstanceState, LaunchSpec, ProcessDriver};
use shakedown::sandbox::sqs::{QueueSettings, SqsConfig, SqsService};
use tokio_util::sync::CancellationToken;

/// The sandbox's EC2 and SQS endpoints on free loopback ports, with `n` instances backed by
/// real `sleep` processes; everything is stopped and reaped on drop.
struct Sandbox {
    target: AwsTarget,
    fleet: FleetHandle,
    ids: Vec<String>,
    pids: Vec<i32>,
    sqs: SqsService,
    children: Vec<Child>,
    stop: CancellationToken,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn sandbox(n: usize, allowed: bool) -> Sandbox {
    let driver = Arc::new(ProcessDriver::new());
    let ec2 = Ec2Service::new(driver.clone());
    let fleet = ec2.fleet();
    let (mut ids, mut pids, mut children) = (vec![], vec![], vec![]);
    for i in 0..n {
        let child = Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut spec = LaunchSpec::default()
            .tag("tier", "worker")
            .tag("Name", format!("worker-{i}"))
            .tag("aws:autoscaling:groupName", "workers");
        if allowed {
            spec = spec.tag("chaos", "allowed");
        }
        let id = fleet.register(spec);
        driver.attach(&id, child.id()).unwrap();
        fleet.mark_running(&id).unwrap();
        ids.push(id.to_string());
        pids.push(child.id() as i32);
        children.push(child);
    }
    let stop = CancellationToken::new();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ec2_url = format!("http://{}", l.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(async move { ec2.serve(l, async move { s.cancelled().await }).await });
    let sqs = SqsService::new(SqsConfig::default());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs_url = format!("http://{}", l.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(sqs.clone().serve(l, async move { s.cancelled().await }));
    let target = AwsTarget {
        ec2_endpoint_url: Some(ec2_url),
        sqs_endpoint_url: Some(sqs_url),
        ..AwsTarget::local("http://127.0.0.1:1")
    };
    Sandbox {
        target,
        fleet,
        ids,
        pids,
        sqs,
        children,
        stop,
    }
}

fn state(pid: i32) -> char {
    stat(pid).map_or('-', |s| s.state)
}

fn fleet_state(fleet: &FleetHandle, id: &str) -> InstanceState {
    fleet.get(&id.parse().unwrap()).unwrap().state
}

/// The queue's DelaySeconds.
async fn delay_seconds(c: &AwsClients, q: &str) -> Option<String> {
    queue_attribute(&c.sqs, q, "DelaySeconds").await.unwrap()
}

fn target_toml(t: &AwsTarget) -> String {
    let mut s = String::from(
        "[aws]\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n",
    );
    for (k, v) in [
        ("endpoint_url", &t.endpoint_url),
        ("ec2_endpoint_url", &t.ec2_endpoint_url),
        ("sqs_endpoint_url", &t.sqs_endpoint_url),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("{k} = \"{v}\"\n"));
        }
    }
    s
}

fn plan(t: &AwsTarget, rest: &str) -> FaultPlan {
    FaultPlan::from_toml(&format!("{}\n{rest}", target_toml(t))).unwrap()
}

fn events(run_dir: &Path) -> Vec<Event> {
    journal::read(&run_dir.join(JOURNAL_FILE))
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

const RAILS: &str = "[guardrails]\nrequire_tag = \"chaos=allowed\"\nmax_instances = 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stop_instances_freezes_and_resumes_real_processes() {
    let sb = sandbox(2, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        &sb.target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"stop-instances\"\nat = \"0s\"\nduration = \"600ms\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\ncount = 1\nseed = 3\n"
        ),
    );
    let run_dir = tmp.path().join("r");
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(sb.target.clone())), &run_dir).run(CancellationToken::new()),
    );
    eventually("one instance stopped", Duration::from_secs(5), async || {
        sb.ids
            .iter()
            .filter(|id| fleet_state(&sb.fleet, id) == InstanceState::Stopped)
            .count()
            == 1
    })
    .await;
    let stopped = sb
        .ids
        .iter()
        .position(|id| fleet_state(&sb.fleet, id) == InstanceState::Stopped)
        .unwrap();
    assert_eq!(
        state(sb.pids[stopped]),
        'T',
        "the stopped instance's process is frozen"
    );
    assert_ne!(state(sb.pids[1 - stopped]), 'T');
    // The undo is recorded on the instance itself.
    let inst = sb.fleet.get(&sb.ids[stopped].parse().unwrap()).unwrap();
    assert!(
        inst.tags.keys().any(|k| k.starts_with("shakedown:undo:")),
        "{:?}",
        inst.tags
    );
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(report.still_applied.is_empty());
    for (id, pid) in sb.ids.iter().zip(&sb.pids) {
        assert_eq!(fleet_state(&sb.fleet, id), InstanceState::Running);
        assert_ne!(state(*pid), 'T');
        let tags = sb.fleet.get(&id.parse().unwrap()).unwrap().tags;
        assert!(
            !tags.contains_key(&undo_tag_key("r")),
            "recovery tag removed: {tags:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stall_consumers_by_instance_tags() {
    let sb = sandbox(2, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        &sb.target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"500ms\"\ninstances = {{ asg = \"workers\" }}\npercent = 100\n"
        ),
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(sb.target.clone())), &tmp.path().join("r"))
            .run(CancellationToken::new()),
    );
    let pids = sb.pids.clone();
    eventually("all frozen", Duration::from_secs(5), async || {
        pids.iter().all(|&p| state(p) == 'T')
    })
    .await;
    run.await.unwrap().unwrap();
    assert!(sb.pids.iter().all(|&p| state(p) != 'T'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_terminate_instances_kills_the_chosen_one() {
    let mut sb = sandbox(2, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        &sb.target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"terminate-instances\"\nat = \"0s\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\ncount = 1\n"
        ),
    );
    let run_dir = tmp.path().join("r");
    let report = Runner::new(p, Env::new(Some(sb.target.clone())), &run_dir)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    let terminated: Vec<usize> = (0..2)
        .filter(|&i| fleet_state(&sb.fleet, &sb.ids[i]) == InstanceState::Terminated)
        .collect();
    assert_eq!(terminated.len(), 1);
    let status = sb.children[terminated[0]].wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(
        events(&run_dir)
            .iter()
            .any(|e| matches!(e, Event::Irreversible { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_guardrails_refuse_over_cap_and_untagged_and_dry_run_changes_nothing() {
    let sb = sandbox(3, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let stop = |max: usize| {
        plan(
            &sb.target,
            &format!(
                "[guardrails]\nrequire_tag = \"chaos=allowed\"\nmax_instances = {max}\n[[fault]]\ntype = \"stop-instances\"\nat = \"0s\"\nduration = \"1s\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\ncount = 1\n"
            ),
        )
    };
    let env = || Env::new(Some(sb.target.clone()));
    let err = Runner::new(stop(2), env(), &tmp.path().join("a"))
        .run(CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    for id in &sb.ids {
        assert!(err.contains(id.as_str()), "{id} not listed: {err}");
    }
    let err = Runner::new(stop(3), env(), &tmp.path().join("b"))
        .run(CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("without the allow-listed tag `chaos=allowed`"),
        "{err}"
    );
    for (id, pid) in sb.ids.iter().zip(&sb.pids) {
        assert_eq!(fleet_state(&sb.fleet, id), InstanceState::Running);
        assert_ne!(state(*pid), 'T');
    }

    // Dry run on tagged instances: the plan is printed, nothing changes.
    let sb = sandbox(2, true).await;
    let q = sb
        .sqs
        .create_queue("jobs", QueueSettings::default())
        .unwrap();
    let p = plan(
        &sb.target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"stop-instances\"\nat = \"10s\"\nduration = \"30s\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\ncount = 1\nseed = 9\n[[fault]]\ntype = \"delay-queue\"\nat = \"5s\"\nduration = \"20s\"\nqueue = \"{q}\"\ndelay = \"30s\"\n"
        ),
    );
    let steps = dry_run(&p, &Env::new(Some(sb.target.clone())))
        .await
        .unwrap();
    let text = render_dry_run(&steps);
    println!("{text}");
    assert!(
        text.contains("StopInstances") && text.contains("undo: StartInstances"),
        "{text}"
    );
    assert!(text.contains("DelaySeconds=30 (was 0)"), "{text}");
    for (id, pid) in sb.ids.iter().zip(&sb.pids) {
        assert_eq!(fleet_state(&sb.fleet, id), InstanceState::Running);
        assert_ne!(state(*pid), 'T');
    }
    let c = aws_clients(&sb.target).await.unwrap();
    assert_eq!(delay_seconds(&c, &q).await.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_delay_queue_changes_and_restores_the_delay() {
    let sb = sandbox(0, true).await;
    let q = sb
        .sqs
        .create_queue(
            "jobs",
            QueueSettings {
                delay_seconds: 2,
                ..QueueSettings::default()
            },
        )
        .unwrap();
    let c = aws_clients(&sb.target).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        &sb.target,
        "[[fault]]\ntype = \"delay-queue\"\nat = \"0s\"\nduration = \"500ms\"\nqueue = \"jobs\"\ndelay = \"45s\"\n",
    );
    let run_dir = tmp.path().join("r");
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(sb.target.clone())), &run_dir).run(CancellationToken::new()),
    );
    eventually("delay raised", Duration::from_secs(5), async || {
        delay_seconds(&c, &q).await.as_deref() == Some("45")
    })
    .await;
    // The undo is recorded on the queue itself.
    assert_eq!(
        queue_tags(&c.sqs, &q)
            .await
            .unwrap()
            .get(&undo_tag_key("r")),
        Some(&r#"{"DelaySeconds":"2"}"#.to_owned())
    );
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(delay_seconds(&c, &q).await.as_deref(), Some("2"));
    assert!(queue_tags(&c.sqs, &q).await.unwrap().is_empty());
    let warned = events(&run_dir)
        .iter()
        .any(|e| matches!(e, Event::Applied { warnings, .. } if !warnings.is_empty()));
    assert!(!warned, "the recovery tag is written without warnings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stall_consumers_by_queue_policy_restores_the_exact_policy() {
    let sb = sandbox(0, true).await;
    let c = aws_clients(&sb.target).await.unwrap();
    let bare = sb
        .sqs
        .create_queue("jobs", QueueSettings::default())
        .unwrap();
    // Odd spacing on purpose: the restored policy must be this very string.
    let old_policy = r#"{ "Version": "2012-10-17", "Statement": [ {"Sid":"keep","Effect":"Allow","Principal":{"AWS":"*"},"Action":"sqs:SendMessage","Resource":"*"} ] }"#;
    let with_policy = sb
        .sqs
        .create_queue(
            "jobs-with-policy",
            QueueSettings {
                policy: Some(old_policy.to_owned()),
                ..QueueSettings::default()
            },
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let principal = "arn:aws:iam::000000000000:role/worker";
    let p = plan(
        &sb.target,
        &format!(
            "[[fault]]\nname = \"deny\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"800ms\"\nqueue = \"jobs\"\nprincipal = \"{principal}\"\n\
             [[fault]]\nname = \"deny-existing\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"800ms\"\nqueue = \"{with_policy}\"\nprincipal = \"{principal}\"\n"
        ),
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(sb.target.clone())), &tmp.path().join("r"))
            .run(CancellationToken::new()),
    );
    let denies = |policy: Option<String>| {
        policy.is_some_and(|p| {
            let doc: serde_json::Value = serde_json::from_str(&p).unwrap();
            doc["Statement"].as_array().unwrap().iter().any(|st| {
                st["Effect"] == "Deny"
                    && st["Action"] == "sqs:ReceiveMessage"
                    && st["Principal"]["AWS"] == principal
            })
        })
    };
    eventually("both policies deny", Duration::from_secs(5), async || {
        denies(queue_attribute(&c.sqs, &bare, "Policy").await.unwrap())
            && denies(
                queue_attribute(&c.sqs, &with_policy, "Policy")
                    .await
                    .unwrap(),
            )
    })
    .await;
    let kept = queue_attribute(&c.sqs, &with_policy, "Policy")
        .await
        .unwrap()
        .unwrap();
    assert!(
        kept.contains("\"keep\""),
        "the Allow statement stays: {kept}"
    );
    for q in [&bare, &with_policy] {
        let tag = queue_tags(&c.sqs, q).await.unwrap()[&undo_tag_key("r")].clone();
        assert!(
            tag.starts_with(r#"{"remove-policy-statement":"shakedown-"#),
            "{tag}"
        );
    }
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(report.still_applied.is_empty(), "{report:?}");
    assert_eq!(
        queue_attribute(&c.sqs, &bare, "Policy").await.unwrap(),
        None
    );
    assert_eq!(
        queue_attribute(&c.sqs, &with_policy, "Policy")
            .await
            .unwrap()
            .as_deref(),
        Some(old_policy),
        "restored byte for byte"
    );
    for q in [&bare, &with_policy] {
        assert!(queue_tags(&c.sqs, q).await.unwrap().is_empty());
    }
}

/// A `__chaos-run` harness raised DelaySeconds of the sandbox queue `q` from 3 to 120 (for
/// 60 s) and was killed with SIGKILL: the delay stays raised, the journal in `run_dir` says
/// so, and the recovery tag is on the queue.
struct KilledMidDelay {
    _sandbox: Sandbox,
    q: String,
    c: AwsClients,
    plan_file: std::path::PathBuf,
    results: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

async fn kill_9_mid_delay_queue(run_id: &str) -> KilledMidDelay {
    let sb = sandbox(0, true).await;
    let q = sb
        .sqs
        .create_queue(
            "jobs",
            QueueSettings {
                delay_seconds: 3,
                ..QueueSettings::default()
            },
        )
        .unwrap();
    let c = aws_clients(&sb.target).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plan_file = tmp.path().join("plan.toml");
    std::fs::write(
        &plan_file,
        format!("{}[[fault]]\ntype = \"delay-queue\"\nat = \"0s\"\nduration = \"60s\"\nqueue = \"{q}\"\ndelay = \"120s\"\n", target_toml(&sb.target)),
    )
    .unwrap();
    let results = tmp.path().join("results");
    let run_dir = results.join(run_id);
    let mut h = shakedown()
        .arg("__chaos-run")
        .arg(&plan_file)
        .arg("--journal")
        .arg(&run_dir)
        .spawn()
        .unwrap();
    eventually(
        "delay raised by the harness",
        Duration::from_secs(15),
        async || delay_seconds(&c, &q).await.as_deref() == Some("120"),
    )
    .await;
    h.kill().unwrap();
    assert_eq!(h.wait().unwrap().signal(), Some(9));
    assert_eq!(delay_seconds(&c, &q).await.as_deref(), Some("120"));
    assert!(
        queue_tags(&c.sqs, &q)
            .await
            .unwrap()
            .contains_key(&undo_tag_key(run_id))
    );
    KilledMidDelay {
        _sandbox: sb,
        q,
        c,
        plan_file,
        results,
        run_dir,
        _tmp: tmp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delay_queue_then_recover_restores_the_delay_twice_safely() {
    let KilledMidDelay {
        q,
        c,
        results,
        run_dir,
        plan_file: _,
        _sandbox,
        _tmp,
    } = kill_9_mid_delay_queue("run-9").await;
    assert!(check_clean(&results).is_err());

    // The journal holds no secret; recover signs with placeholder credentials (loopback).
    let text = std::fs::read_to_string(run_dir.join(JOURNAL_FILE)).unwrap();
    assert!(!text.contains("secret"), "{text}");
    let first = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert_eq!(first.undone.len(), 1, "{first:?}");
    assert_eq!(delay_seconds(&c, &q).await.as_deref(), Some("3"));
    let second = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert!(second.undone.is_empty() && second.failed.is_empty());
    check_clean(&results).unwrap();
}

// moto_server: the same faults against an independent implementation.

async fn moto_instances(target: &AwsTarget, n: i32) -> Vec<String> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let c = aws_clients(target).await.unwrap();
    let resp = c
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(n)
        .max_count(n)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("tier").value("worker").build())
                .tags(Tag::builder().key("chaos").value("allowed").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    resp.instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect()
}

async fn moto_stop_start_terminate(target: &AwsTarget) {
    let ids = moto_instances(target, 2).await;
    let c = aws_clients(target).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"stop-instances\"\nat = \"0s\"\nduration = \"700ms\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\npercent = 100\n"
        ),
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(target.clone())), &tmp.path().join("r1"))
            .run(CancellationToken::new()),
    );
    eventually(
        "moto instances stopped",
        Duration::from_secs(10),
        async || {
            instance_states(&c.ec2, &ids)
                .await
                .unwrap()
                .values()
                .all(|s| s == "stopped")
        },
    )
    .await;
    let report = run.await.unwrap().unwrap();
    assert!(report.still_applied.is_empty(), "{report:?}");
    assert!(
        instance_states(&c.ec2, &ids)
            .await
            .unwrap()
            .values()
            .all(|s| s == "running")
    );

    let p = plan(
        target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"terminate-instances\"\nat = \"0s\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\ncount = 1\n"
        ),
    );
    Runner::new(p, Env::new(Some(target.clone())), &tmp.path().join("r2"))
        .run(CancellationToken::new())
        .await
        .unwrap();
    let states = instance_states(&c.ec2, &ids).await.unwrap();
    assert_eq!(
        states
            .values()
            .filter(|s| s.as_str() == "terminated")
            .count(),
        1,
        "{states:?}"
    );
}

async fn moto_delay_queue_and_policy(target: &AwsTarget) {
    let c = aws_clients(target).await.unwrap();
    let url = c
        .sqs
        .create_queue()
        .queue_name("jobs")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let with_policy = c
        .sqs
        .create_queue()
        .queue_name("jobs-with-policy")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let old_policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"keep","Effect":"Allow","Principal":{"AWS":"*"},"Action":"sqs:SendMessage","Resource":"*"}]}"#;
    shakedown::aws::set_queue_attribute(&c.sqs, &with_policy, "Policy", old_policy)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        target,
        &format!(
            "[[fault]]\ntype = \"delay-queue\"\nat = \"0s\"\nduration = \"800ms\"\nqueue = \"jobs\"\ndelay = \"30s\"\n\
             [[fault]]\nname = \"deny\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"800ms\"\nqueue = \"jobs\"\nprincipal = \"arn:aws:iam::123456789012:role/worker\"\n\
             [[fault]]\nname = \"deny-existing\"\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"800ms\"\nqueue = \"{with_policy}\"\nprincipal = \"arn:aws:iam::123456789012:role/worker\"\n"
        ),
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(target.clone())), &tmp.path().join("r"))
            .run(CancellationToken::new()),
    );
    eventually(
        "moto delay and policies set",
        Duration::from_secs(10),
        async || {
            let delay = queue_attribute(&c.sqs, &url, "DelaySeconds").await.unwrap();
            let p1 = queue_attribute(&c.sqs, &url, "Policy")
                .await
                .unwrap()
                .unwrap_or_default();
            let p2 = queue_attribute(&c.sqs, &with_policy, "Policy")
                .await
                .unwrap()
                .unwrap_or_default();
            delay.as_deref() == Some("30")
                && p1.contains("sqs:ReceiveMessage")
                && p2.contains("sqs:ReceiveMessage")
                && p2.contains("keep")
        },
    )
    .await;
    let tags = c
        .sqs
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .is_some_and(|t| t.keys().any(|k| k.starts_with("shakedown:undo:"))),
        "{tags:?}"
    );
    let report = run.await.unwrap().unwrap();
    assert!(report.still_applied.is_empty(), "{report:?}");
    assert_eq!(delay_seconds(&c, &url).await.as_deref(), Some("0"));
    assert_eq!(
        queue_attribute(&c.sqs, &url, "Policy")
            .await
            .unwrap()
            .filter(|p| !p.is_empty()),
        None
    );
    let restored: serde_json::Value = serde_json::from_str(
        &queue_attribute(&c.sqs, &with_policy, "Policy")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        restored,
        serde_json::from_str::<serde_json::Value>(old_policy).unwrap()
    );
    let tags = c
        .sqs
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(
        !tags
            .tags()
            .is_some_and(|t| t.keys().any(|k| k.starts_with("shakedown:undo:"))),
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_parity() {
    let moto = Moto::start().await;
    let target = AwsTarget::local(&moto.endpoint);
    moto_stop_start_terminate(&target).await;
    moto_delay_queue_and_policy(&target).await;
}

/// `suspend-processes` against moto: the processes are suspended for the duration, and the
/// undo resumes exactly those it suspended (one already suspended before stays so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_suspend_processes_and_resume_what_was_running() {
    use shakedown::chaos::change::asg::suspended_processes;
    let moto = Moto::start().await;
    let target = AwsTarget::local(&moto.endpoint);
    let c = aws_clients(&target).await.unwrap();
    crate::support::moto::fixtures::auto_scaling_group(&c, "workers", (1, 1, 4), "us-east-1a")
        .await;
    let asg = c.autoscaling.clone().unwrap();
    asg.suspend_processes()
        .auto_scaling_group_name("workers")
        .scaling_processes("AZRebalance")
        .send()
        .await
        .unwrap();
    let names = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(
        &target,
        "[[fault]]\ntype = \"suspend-processes\"\nat = \"0s\"\nduration = \"800ms\"\ngroup = \"workers\"\n\
         processes = [\"Launch\", \"Terminate\", \"AZRebalance\"]\n",
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(target.clone())), &tmp.path().join("r"))
            .run(CancellationToken::new()),
    );
    eventually(
        "moto processes suspended",
        Duration::from_secs(10),
        async || {
            suspended_processes(&asg, "workers").await.unwrap()
                == names(&["AZRebalance", "Launch", "Terminate"])
        },
    )
    .await;
    let report = run.await.unwrap().unwrap();
    assert!(report.still_applied.is_empty(), "{report:?}");
    assert_eq!(
        suspended_processes(&asg, "workers").await.unwrap(),
        names(&["AZRebalance"])
    );
}

/// A FIS experiment template at moto (a 10-minute wait), tagged `chaos=allowed` when
/// `allowed`; its id.
async fn fis_template(c: &AwsClients, allowed: bool) -> String {
    use aws_sdk_fis::types::{
        CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput,
    };
    let fis = c
        .fis
        .clone()
        .expect("a local target with endpoint_url has FIS");
    let mut request = fis
        .create_experiment_template()
        .client_token(format!("t-{allowed}"))
        .description("invocation errors")
        .role_arn("arn:aws:iam::123456789012:role/fis")
        .stop_conditions(
            CreateExperimentTemplateStopConditionInput::builder()
                .source("none")
                .build()
                .unwrap(),
        )
        .actions(
            "wait",
            CreateExperimentTemplateActionInput::builder()
                .action_id("aws:fis:wait")
                .parameters("duration", "PT10M")
                .build()
                .unwrap(),
        );
    if allowed {
        request = request.tags("chaos", "allowed");
    }
    request
        .send()
        .await
        .unwrap()
        .experiment_template
        .unwrap()
        .id
        .unwrap()
}

/// The experiments of `template`: `(id, state, shakedown:token tag)`.
async fn fis_experiments(c: &AwsClients, template: &str) -> Vec<(String, String, String)> {
    c.fis
        .as_ref()
        .unwrap()
        .list_experiments()
        .experiment_template_id(template)
        .send()
        .await
        .unwrap()
        .experiments()
        .iter()
        .map(|e| {
            (
                e.id().unwrap_or_default().to_owned(),
                e.state()
                    .and_then(|s| s.status())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                e.tags()
                    .and_then(|t| t.get("shakedown:token").cloned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// moto, a target and clients for it, and an opted-in FIS template there.
async fn moto_with_fis_template() -> (Moto, AwsTarget, AwsClients, String) {
    let moto = Moto::start().await;
    let target = AwsTarget::local(&moto.endpoint);
    let c = aws_clients(&target).await.unwrap();
    let template = fis_template(&c, true).await;
    (moto, target, c, template)
}

/// `fis` against moto: the template's experiment starts with the fault, tagged with the
/// change's token, and has ended once the run has undone it; a template without the opt-in
/// tag is refused by the guardrail, before anything starts. (moto moves an experiment one
/// state per read, to `completed`, so whether the undo stopped it or found it ended is
/// not observable there; either way it goes through the same find-by-token.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_fis_starts_the_template_and_the_undo_leaves_it_ended() {
    let (_moto, target, c, template) = moto_with_fis_template().await;
    let tmp = tempfile::tempdir().unwrap();
    let fault = format!(
        "[guardrails]\nrequire_tag = \"chaos=allowed\"\n[[fault]]\nname = \"lambda-errors\"\ntype = \"fis\"\nat = \"0s\"\nduration = \"1s\"\ntemplate = \"{template}\"\n"
    );
    let report = Runner::new(
        plan(&target, &fault),
        Env::new(Some(target.clone())),
        &tmp.path().join("r"),
    )
    .run(CancellationToken::new())
    .await
    .unwrap();
    assert!(report.still_applied.is_empty(), "{report:?}");
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    let experiments = fis_experiments(&c, &template).await;
    assert_eq!(experiments.len(), 1, "{experiments:?}");
    let (_, state, token) = &experiments[0];
    assert!(
        ["stopped", "completed"].contains(&state.as_str()),
        "{state}"
    );
    let journal = std::fs::read_to_string(tmp.path().join("r").join(JOURNAL_FILE)).unwrap();
    assert!(
        journal.contains(token.as_str()),
        "the token is journaled: {journal}"
    );

    // Not opted in: refused, nothing started.
    let other = fis_template(&c, false).await;
    let refused = Runner::new(
        plan(&target, &fault.replace(&template, &other)),
        Env::new(Some(target.clone())),
        &tmp.path().join("r2"),
    )
    .run(CancellationToken::new())
    .await;
    let text = format!("{refused:?}");
    assert!(text.contains("chaos=allowed"), "{text}");
    assert!(fis_experiments(&c, &other).await.is_empty());
}

/// A harness killed with SIGKILL while a FIS experiment runs: recover finds the experiment
/// by the token the journal holds, and a second recover has nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_fis_killed_mid_experiment_is_recovered_from_the_journal() {
    let (_moto, target, c, template) = moto_with_fis_template().await;
    let tmp = tempfile::tempdir().unwrap();
    let plan_file = tmp.path().join("plan.toml");
    std::fs::write(
        &plan_file,
        format!(
            "{}[guardrails]\nrequire_tag = \"chaos=allowed\"\n[[fault]]\ntype = \"fis\"\nat = \"0s\"\nduration = \"60s\"\ntemplate = \"{template}\"\n",
            target_toml(&target)
        ),
    )
    .unwrap();
    let run_dir = tmp.path().join("results").join("run-fis");
    let mut h = shakedown()
        .arg("__chaos-run")
        .arg(&plan_file)
        .arg("--journal")
        .arg(&run_dir)
        .spawn()
        .unwrap();
    eventually(
        "an experiment started by the harness",
        Duration::from_secs(15),
        async || !fis_experiments(&c, &template).await.is_empty(),
    )
    .await;
    h.kill().unwrap();
    assert_eq!(h.wait().unwrap().signal(), Some(9));
    assert!(check_clean(&tmp.path().join("results")).is_err());
    let first = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert_eq!(first.undone.len(), 1, "{first:?}");
    assert!(first.failed.is_empty(), "{first:?}");
    let (_, state, _) = &fis_experiments(&c, &template).await[0];
    assert!(
        ["stopped", "completed"].contains(&state.as_str()),
        "{state}"
    );
    let second = recover_run(&run_dir, &Env::new(None)).await.unwrap();
    assert!(
        second.undone.is_empty() && second.failed.is_empty(),
        "{second:?}"
    );
    check_clean(&tmp.path().join("results")).unwrap();
}

// recover --from-tags: the undo tags on the resources are enough.

/// Whether `policy` holds a Deny of sqs:ReceiveMessage.
fn denies_receive(policy: Option<&str>) -> bool {
    policy.is_some_and(|p| p.contains("Deny") && p.contains("sqs:ReceiveMessage"))
}

/// Runs the `shakedown` binary with `args`; returns (exit code, stdout, stderr).
async fn run_cli(args: Vec<String>) -> (i32, String, String) {
    let mut command = shakedown();
    command.args(args);
    let out = cli::output(command).await;
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// Applies a delay and a Deny statement (both on one queue, sharing its undo tag) and
/// stops every instance with the Runner, then "kill -9": the runner is dropped mid-run and
/// its run directory deleted. `recover --from-tags` restores everything from the tags alone
/// and removes them; a second one (through the CLI, `again`) finds nothing to do.
async fn kill_9_then_recover_from_tags(target: &AwsTarget, instances: &[String], again: &[&str]) {
    let c = aws_clients(target).await.unwrap();
    let url = c
        .sqs
        .create_queue()
        .queue_name("tagged-jobs")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::DelaySeconds, "4")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let run_dir = results.join("run-k9");
    let p = plan(
        target,
        &format!(
            "{RAILS}[[fault]]\ntype = \"delay-queue\"\nat = \"0s\"\nduration = \"60s\"\nqueue = \"{url}\"\ndelay = \"60s\"\n\
             [[fault]]\ntype = \"stall-consumers\"\nat = \"0s\"\nduration = \"60s\"\nqueue = \"{url}\"\nprincipal = \"arn:aws:iam::123456789012:role/worker\"\n\
             [[fault]]\ntype = \"stop-instances\"\nat = \"0s\"\nduration = \"60s\"\ninstances = {{ tags = {{ tier = \"worker\" }} }}\npercent = 100\n"
        ),
    );
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(target.clone())), &run_dir).run(CancellationToken::new()),
    );
    let key = undo_tag_key("run-k9");
    eventually("every fault applied", Duration::from_secs(20), async || {
        let delay = queue_attribute(&c.sqs, &url, "DelaySeconds").await.unwrap();
        let policy = queue_attribute(&c.sqs, &url, "Policy").await.unwrap();
        let tag = queue_tags(&c.sqs, &url).await.unwrap().remove(&key);
        let states = instance_states(&c.ec2, instances).await.unwrap();
        delay.as_deref() == Some("60")
            && denies_receive(policy.as_deref())
            && tag.is_some_and(|t| {
                t.contains("DelaySeconds") && t.contains("remove-policy-statement")
            })
            && states.values().all(|s| s == "stopped")
    })
    .await;
    // kill -9: nothing of the harness survives, not even its run directory.
    run.abort();
    let _ = run.await;
    std::fs::remove_dir_all(&run_dir).unwrap();
    assert_eq!(
        delay_seconds(&c, &url).await.as_deref(),
        Some("60"),
        "nothing was undone"
    );

    let first = recover_from_tags(&Env::new(None), target, &results, None)
        .await
        .unwrap();
    println!("{first:#?}");
    assert!(
        first.failed.is_empty() && first.skipped.is_empty(),
        "{first:?}"
    );
    assert_eq!(
        first.undone.len(),
        2,
        "the queue and the instances: {first:?}"
    );
    assert_eq!(delay_seconds(&c, &url).await.as_deref(), Some("4"));
    let policy = queue_attribute(&c.sqs, &url, "Policy").await.unwrap();
    assert!(
        policy.as_deref().is_none_or(str::is_empty),
        "policy removed: {policy:?}"
    );
    let states = instance_states(&c.ec2, instances).await.unwrap();
    assert!(states.values().all(|s| s == "running"), "{states:?}");
    assert_eq!(
        find_undo_tags(&Env::new(None), target, None).await.unwrap(),
        vec![],
        "every undo tag removed"
    );

    let mut args: Vec<String> = ["recover", "--from-tags", "--results"]
        .map(String::from)
        .to_vec();
    args.push(results.display().to_string());
    args.extend(again.iter().map(|a| a.to_string()));
    let (code, stdout, stderr) = run_cli(args).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("nothing to undo"), "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_kill_9_then_recover_from_tags_restores_and_removes_the_tags() {
    let sb = sandbox(2, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let experiment = tmp.path().join("experiment.toml");
    // An experiment file names its target in `[target.aws]`.
    let aws = target_toml(&sb.target).replace("[aws]", "[target.aws]");
    std::fs::write(
        &experiment,
        format!("{aws}\n[[promise]]\ntype = \"whatever\"\n"),
    )
    .unwrap();
    let experiment = experiment.display().to_string();
    kill_9_then_recover_from_tags(&sb.target, &sb.ids, &["--experiment", &experiment]).await;
    for pid in &sb.pids {
        assert_ne!(state(*pid), 'T', "the instances' processes run again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_kill_9_then_recover_from_tags_restores_and_removes_the_tags() {
    let moto = Moto::start().await;
    let target = AwsTarget::local(&moto.endpoint);
    let ids = moto_instances(&target, 2).await;
    kill_9_then_recover_from_tags(
        &target,
        &ids,
        &["--endpoint-url", &moto.endpoint, "--region", "us-east-1"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_from_tags_leaves_a_live_run_alone() {
    let sb = sandbox(0, true).await;
    let q = sb
        .sqs
        .create_queue("jobs", QueueSettings::default())
        .unwrap();
    let c = aws_clients(&sb.target).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let p = plan(
        &sb.target,
        "[[fault]]\ntype = \"delay-queue\"\nat = \"0s\"\nduration = \"60s\"\nqueue = \"jobs\"\ndelay = \"30s\"\n",
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Runner::new(p, Env::new(Some(sb.target.clone())), &results.join("live"))
            .run(cancel.clone()),
    );
    eventually("delay raised", Duration::from_secs(5), async || {
        delay_seconds(&c, &q).await.as_deref() == Some("30")
    })
    .await;
    let r = recover_from_tags(&Env::new(None), &sb.target, &results, None)
        .await
        .unwrap();
    assert!(r.undone.is_empty() && r.failed.is_empty(), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(r.skipped[0].contains("still running"), "{r:?}");
    let other = recover_from_tags(&Env::new(None), &sb.target, &results, Some("other-run"))
        .await
        .unwrap();
    assert!(
        other.skipped.is_empty() && other.undone.is_empty(),
        "{other:?}"
    );
    assert_eq!(
        delay_seconds(&c, &q).await.as_deref(),
        Some("30"),
        "the live run's fault is left alone"
    );
    assert!(
        queue_tags(&c.sqs, &q)
            .await
            .unwrap()
            .contains_key(&undo_tag_key("live"))
    );
    cancel.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted);
    assert!(queue_tags(&c.sqs, &q).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_recover_from_tags_uses_the_surviving_journal() {
    let KilledMidDelay {
        q,
        c,
        plan_file,
        results,
        run_dir,
        _sandbox,
        _tmp,
    } = kill_9_mid_delay_queue("run-j").await;
    let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let plan_arg = plan_file.display().to_string();
    let results_arg = results.display().to_string();
    let cli = args(&[
        "recover",
        "--from-tags",
        "--experiment",
        &plan_arg,
        "--results",
        &results_arg,
    ]);
    let (code, stdout, stderr) = run_cli(cli.clone()).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("recovered from its journal"), "{stdout}");
    assert!(stdout.contains("undone"), "{stdout}");
    assert_eq!(delay_seconds(&c, &q).await.as_deref(), Some("3"));
    assert!(queue_tags(&c.sqs, &q).await.unwrap().is_empty());
    assert!(
        events(&run_dir).iter().any(|e| matches!(
            e,
            Event::Undone {
                by: journal::Undoer::Recover,
                ..
            }
        )),
        "the journal says who undid it"
    );
    check_clean(&results).unwrap();
    assert!(
        !results.join("chaos.lock").exists(),
        "the dead run's lock is gone"
    );
    let (code, stdout, _) = run_cli(cli).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to undo"), "{stdout}");
}
