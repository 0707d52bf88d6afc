//! The sandbox as a system: real child processes (this crate's binary), real sockets,
//! driven with the same aws-sdk-sqs / aws-sdk-ec2 code that would drive AWS.
//!
//! Timings are shortened (health checks every 200 ms, cooldowns of 2-3 s, jobs of a few
//! ms) so the whole file runs in well under a minute and a half. Every loop is bounded
//! in count and time; nothing but 127.0.0.1 is contacted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::cli::{self, SandboxProcess};
use crate::support::wait::{eventually, eventually_blocking, wait_exit};
use aws_sdk_ec2::types::Filter;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use shakedown::sandbox::asg::ActivityKind;
use shakedown::sandbox::asg::Tier;
use shakedown::sandbox::asg::policy::Policy;
use shakedown::sandbox::config::{Arch, ProcessingTime, SandboxConfig, Variant};
use shakedown::sandbox::{Sandbox, StartOptions};

/// A configuration with demo timings shrunk for tests.
fn fast(arch: Arch) -> SandboxConfig {
    let mut c = SandboxConfig {
        arch,
        processing: "5ms".parse().unwrap(),
        jitter: 0.0,
        replace_stopped_after: Duration::from_secs(3),
        drain_timeout: Duration::from_secs(2),
        ..SandboxConfig::default()
    };
    let hc = &mut c.web.health_check;
    hc.interval = Duration::from_millis(200);
    hc.timeout = Duration::from_millis(200);
    let w = &mut c.workers;
    w.max = 4;
    w.scale_out_cooldown = Duration::from_secs(2);
    w.scale_in_cooldown = Duration::from_secs(3);
    w.warmup = Duration::from_millis(100);
    w.wait_time = Duration::from_secs(1);
    c.queue.visibility_timeout = Duration::from_secs(2);
    c
}

async fn start(config: SandboxConfig) -> (Sandbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = StartOptions {
        exe: env!("CARGO_BIN_EXE_shakedown").into(),
        dir: Some(dir.path().to_owned()),
        ready_timeout: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(1),
    };
    let sandbox = Sandbox::start(config, options)
        .await
        .expect("sandbox starts");
    (sandbox, dir)
}

fn http() -> reqwest::Client {
    shakedown::tls::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn ec2(sandbox: &Sandbox) -> aws_sdk_ec2::Client {
    crate::support::aws::ec2(&sandbox.endpoints().ec2_endpoint)
}

fn sqs(sandbox: &Sandbox) -> aws_sdk_sqs::Client {
    crate::support::aws::sqs(&sandbox.endpoints().sqs_endpoint)
}

async fn running(client: &aws_sdk_ec2::Client, tier: &str) -> Vec<String> {
    let out = client
        .describe_instances()
        .filters(Filter::builder().name("tag:tier").values(tier).build())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

async fn terminate(client: &aws_sdk_ec2::Client, id: &str) {
    client
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("TerminateInstances");
}

fn completed_ids(sandbox: &Sandbox) -> BTreeSet<String> {
    sandbox
        .feed()
        .completions_since(0)
        .into_iter()
        .map(|c| c.completion.job_id)
        .collect()
}

async fn send_jobs(sandbox: &Sandbox, n: usize, prefix: &str) {
    let client = sqs(sandbox);
    for batch in 0..n.div_ceil(10) {
        let entries = (batch * 10..(batch * 10 + 10).min(n)).map(|i| {
            let body = serde_json::json!({
                "id": format!("{prefix}-{i}"), "size": 1024, "received_ms": 0, "kind": "upload"
            });
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body.to_string())
                .build()
                .unwrap()
        });
        let out = client
            .send_message_batch()
            .queue_url(&sandbox.endpoints().queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("SendMessageBatch");
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_uploads_get_202_and_every_job_id_appears_in_the_completion_feed() {
    let (sandbox, _dir) = start(fast(Arch::Queued)).await;
    let client = http();
    let web = &sandbox.endpoints().web_url;
    let mut sent = BTreeSet::new();
    for i in 0..40 {
        let id = format!("up-{i}");
        let body = vec![b'x'; 1000 * i];
        let r = client
            .put(format!("{web}/upload/{id}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "upload {id}");
        assert!(r.headers().contains_key("x-shakedown-upstream"));
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(answer["id"], id.as_str());
        sent.insert(id);
    }
    // An event with its id in a header takes the same path.
    let r = client
        .post(format!("{web}/events"))
        .header("x-shakedown-id", "ev-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sent.insert("ev-1".into());
    let done = eventually("every job completed", Duration::from_secs(20), async || {
        let done = completed_ids(&sandbox);
        sent.is_subset(&done).then_some(done)
    })
    .await;
    assert_eq!(done, sent);
    // Every completion names the worker instance that did the job.
    let records = sandbox.feed().completions_since(0);
    assert!(
        records
            .iter()
            .all(|r| r.completion.worker.starts_with("i-"))
    );
    // And the feed pages over HTTP with increasing seq.
    let page = client
        .get(format!(
            "{}/completions?after=0&limit=5",
            sandbox.endpoints().feed_url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let seqs: Vec<u64> = page
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_driven_forwards_events_and_uploads_to_the_bus_whose_functions_complete_them() {
    let (sandbox, _dir) = start(fast(Arch::EventDriven)).await;
    assert!(sandbox.group(Tier::Workers).is_none(), "no worker fleet");
    let bus_url = sandbox
        .endpoints()
        .bus_url
        .clone()
        .expect("an embedded bus");
    assert!(bus_url.ends_with("/events"), "{bus_url}");
    let client = http();
    let web = &sandbox.endpoints().web_url;
    let event = serde_json::json!({"source": "clicks", "detail-type": "click", "detail": {"x": 1}});
    let r = client
        .post(format!("{web}/events"))
        .header("x-shakedown-id", "ev-1")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .put(format!("{web}/upload/up-1"))
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(format!("{web}/events"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "the bus refuses a malformed event");
    let want: BTreeSet<String> = ["ev-1", "up-1"].map(String::from).into();
    let done = eventually("both handled", Duration::from_secs(10), async || {
        let done = completed_ids(&sandbox);
        want.is_subset(&done).then_some(done)
    })
    .await;
    assert_eq!(done, want);
    let worker = &sandbox.feed().completions_since(0)[0].completion.worker;
    assert_eq!(worker, "function:handler");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolith_processes_uploads_inline_and_reports_them() {
    let mut config = fast(Arch::Monolith);
    config.processing = "300ms".parse().unwrap();
    config.web.processor_concurrency = 1;
    let (sandbox, _dir) = start(config).await;
    let client = http();
    let url = format!("{}/upload/m-1", sandbox.endpoints().web_url);
    let started = Instant::now();
    let r = client.put(&url).body("x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered after processing"
    );
    let record = &sandbox.feed().completions_since(0)[0].completion;
    assert_eq!(
        (record.job_id.as_str(), record.message_id.as_str()),
        ("m-1", "")
    );
    sandbox.shutdown().await;
}

/// Sends a PUT every 20 ms for `total`; returns (time since start, ok?) per request.
async fn steady_requests(web: String, total: Duration) -> Vec<(Duration, bool)> {
    let client = http();
    let start = Instant::now();
    let mut results = Vec::new();
    for i in 0..10_000 {
        if start.elapsed() >= total {
            break;
        }
        let ok = client
            .put(format!("{web}/upload/steady-{i}"))
            .body("x")
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        results.push((start.elapsed(), ok));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_web_instance_fails_over_within_the_health_check_bounds_and_is_replaced() {
    let (sandbox, _dir) = start(fast(Arch::Tiered)).await;
    let ec2 = ec2(&sandbox);
    let web = running(&ec2, "web").await;
    assert_eq!(web.len(), 2, "{web:?}");
    let load = tokio::spawn(steady_requests(
        sandbox.endpoints().web_url.clone(),
        Duration::from_secs(5),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = Duration::from_secs(1);
    terminate(&ec2, &web[0]).await;
    let results = load.await.unwrap();
    // Dead target out of rotation within unhealthy_threshold x interval + timeout (0.6 s);
    // allow as much again for scheduling.
    let bound = fault_at + Duration::from_millis(1200);
    let late_failures: Vec<_> = results.iter().filter(|(t, ok)| *t > bound && !ok).collect();
    assert!(
        late_failures.is_empty(),
        "failures after {bound:?}: {late_failures:?}"
    );
    assert!(results.iter().filter(|(t, _)| *t > bound).count() > 50);
    // The replacement joins: two running web instances again, both healthy in the balancer.
    let replaced = eventually(
        "a replacement is healthy",
        Duration::from_secs(10),
        async || {
            let now = running(&ec2, "web").await;
            let healthy = sandbox
                .balancer()
                .targets()
                .iter()
                .filter(|t| t.state.as_str() == "healthy")
                .count();
            (now.len() == 2 && !now.contains(&web[0]) && healthy == 2).then_some(now)
        },
    )
    .await;
    assert!(replaced.contains(&web[1]));
    let activities = sandbox.activities().since(0);
    let launch = activities
        .iter()
        .find(|a| a.kind == ActivityKind::Launch && a.cause.contains(&web[0]))
        .expect("a launch activity naming the replaced instance");
    assert!(launch.cause.contains("replacing"), "{launch:?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_health_checks_requests_keep_failing_after_an_instance_dies() {
    let mut config = fast(Arch::Tiered);
    config.variant = Some(Variant::NoHealthChecks);
    config.finish().unwrap();
    let (sandbox, _dir) = start(config).await;
    let ec2 = ec2(&sandbox);
    let web = running(&ec2, "web").await;
    terminate(&ec2, &web[0]).await;
    // Long after health checks would have reacted, and after the replacement is running,
    // the dead target still gets its share of requests.
    eventually("replacement running", Duration::from_secs(10), async || {
        (running(&ec2, "web").await.len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let results =
        steady_requests(sandbox.endpoints().web_url.clone(), Duration::from_secs(1)).await;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    assert!(
        failed * 5 >= results.len(),
        "{failed} of {} failed; expected about a third",
        results.len()
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_scales_workers_out_within_bounds_and_an_idle_queue_back_to_zero() {
    let mut config = fast(Arch::Queued);
    config.processing = "30ms".parse().unwrap();
    let (sandbox, _dir) = start(config).await;
    assert_eq!(sandbox.group(Tier::Workers).unwrap().desired, 0);
    send_jobs(&sandbox, 300, "burst").await;
    let ec2 = ec2(&sandbox);
    eventually("4 workers running", Duration::from_secs(10), async || {
        (running(&ec2, "workers").await.len() == 4).then_some(())
    })
    .await;
    eventually("all 300 jobs done", Duration::from_secs(20), async || {
        (completed_ids(&sandbox).len() == 300).then_some(())
    })
    .await;
    eventually(
        "back to zero workers",
        Duration::from_secs(15),
        async || {
            let group = sandbox.group(Tier::Workers).unwrap();
            let left = running(&ec2, "workers").await;
            (group.desired == 0 && group.instances.is_empty() && left.is_empty()).then_some(())
        },
    )
    .await;
    let scaling: Vec<(u32, u32)> = sandbox
        .activities()
        .since(0)
        .iter()
        .filter(|a| a.kind == ActivityKind::Scaling)
        .map(|a| (a.from.unwrap(), a.to.unwrap()))
        .collect();
    assert_eq!(scaling.first(), Some(&(0, 4)), "{scaling:?}");
    assert_eq!(scaling.last().map(|s| s.1), Some(0), "{scaling:?}");
    assert!(scaling.iter().all(|&(_, to)| to <= 4), "{scaling:?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_fleet_does_not_scale_but_a_terminated_worker_is_replaced() {
    let mut config = fast(Arch::Queued);
    config.variant = Some(Variant::FixedFleet);
    config.workers.desired = 2;
    config.finish().unwrap();
    assert_eq!(config.workers.policy, Policy::Fixed);
    let (sandbox, _dir) = start(config).await;
    send_jobs(&sandbox, 200, "fixed").await;
    let ec2 = ec2(&sandbox);
    let workers = running(&ec2, "workers").await;
    assert_eq!(workers.len(), 2);
    terminate(&ec2, &workers[0]).await;
    eventually(
        "a replacement worker running",
        Duration::from_secs(10),
        async || {
            let now = running(&ec2, "workers").await;
            (now.len() == 2 && !now.contains(&workers[0])).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let activities = sandbox.activities().since(0);
    assert!(
        activities.iter().all(|a| a.kind != ActivityKind::Scaling),
        "{activities:#?}"
    );
    assert_eq!(sandbox.group(Tier::Workers).unwrap().desired, 2);
    sandbox.shutdown().await;
}

/// Sends one slow job, kills the worker holding it mid-job, and returns what the
/// completion feed says about it after the redelivery window.
async fn kill_worker_mid_job(variant: Option<Variant>) -> (Sandbox, tempfile::TempDir, usize) {
    let mut config = fast(Arch::Queued);
    config.variant = variant;
    config.processing = "2s".parse::<ProcessingTime>().unwrap();
    config.workers.min = 1;
    config.workers.desired = 1;
    config.workers.policy = Policy::Fixed;
    config.finish().unwrap();
    let (sandbox, dir) = start(config).await;
    send_jobs(&sandbox, 1, "slow").await;
    eventually("the job was received", Duration::from_secs(5), async || {
        let stats = sandbox.queue_stats().unwrap();
        (stats.counters.received >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ec2 = ec2(&sandbox);
    let workers = running(&ec2, "workers").await;
    assert_eq!(workers.len(), 1);
    terminate(&ec2, &workers[0]).await;
    // Visibility timeout 2 s + replacement boot + 2 s of processing, with margin.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline && sandbox.feed().stats().total == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = sandbox.feed().stats().total as usize;
    (sandbox, dir, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_it_with_ack_before_process_but_not_when_queued() {
    let ((lossy, _d1, lost_done), (safe, _d2, safe_done)) = tokio::join!(
        kill_worker_mid_job(Some(Variant::AckBeforeProcess)),
        kill_worker_mid_job(None)
    );
    assert_eq!(safe_done, 1, "queued redelivers the job to the replacement");
    let record = &safe.feed().completions_since(0)[0];
    assert_eq!(record.completion.receive_count, 2, "{record:?}");
    assert_eq!(lost_done, 0, "ack-before-process lost the job");
    let stats = lossy.queue_stats().unwrap();
    assert_eq!(
        stats.visible + stats.in_flight,
        0,
        "and it is not in the queue either"
    );
    tokio::join!(lossy.shutdown(), safe.shutdown());
}

#[test]
fn print_config_prints_toml_that_reads_back() {
    let out = cli::run(["sandbox", "--print-config", "--arch", "lossy-queue"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let config = SandboxConfig::from_toml(&text, "stdout").unwrap();
    assert_eq!(
        config,
        SandboxConfig::for_arch("lossy-queue".parse().unwrap())
    );
    let bad = cli::run(["sandbox", "--arch", "queud"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected one of"));
}

#[test]
fn the_full_example_in_the_docs_is_the_default_configuration() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sandbox.md")).unwrap();
    let start = doc
        .find("<!-- full-example -->")
        .expect("marker in docs/sandbox.md");
    let block = &doc[start..];
    let body_start = block.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let body_end = block[body_start..].find("```").unwrap();
    let example = &block[body_start..body_start + body_end];
    let config = SandboxConfig::from_toml(example, "docs/sandbox.md").unwrap();
    assert_eq!(config, SandboxConfig::default());
}

/// Pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let rest = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Alive = exists and is not a zombie (a zombie has ended; only its parent entry is left).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let rest = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        rest.split_whitespace().next() != Some("Z")
    })
}

/// Starts `shakedown sandbox` as a process, sends it `signal` once it runs 3 instances,
/// and checks that none of them survives.
fn no_orphans_after(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox = SandboxProcess::start(
        dir.path(),
        "[web.health_check]\ninterval = \"200ms\"\n[workers]\ndesired = 1\nwarmup = \"100ms\"\n",
    );
    assert!(
        sandbox
            .endpoint("control_url")
            .starts_with("http://127.0.0.1:")
    );
    let supervisor = &mut sandbox.child;
    let pid = supervisor.id();
    let children = eventually_blocking(
        "2 web instances and 1 worker",
        Duration::from_secs(10),
        || {
            let children = children_of(pid);
            (children.len() == 3).then_some(children)
        },
    );
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid as i32, signal) };
    let status = wait_exit(supervisor, Duration::from_secs(10));
    if signal == libc::SIGTERM {
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }
    eventually_blocking("no orphans left", Duration::from_secs(5), || {
        !children.iter().any(|&p| alive(p))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_sandbox_without_shutdown_kills_its_instances() {
    let (sandbox, _dir) = start(fast(Arch::Tiered)).await;
    let pids = sandbox.pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|&p| alive(p)));
    drop(sandbox);
    eventually(
        "no instance left running",
        Duration::from_secs(5),
        async || !pids.iter().any(|&p| alive(p)),
    )
    .await;
}

#[test]
fn no_orphan_instances_after_sigterm_of_the_supervisor() {
    no_orphans_after(libc::SIGTERM);
}

#[test]
fn no_orphan_instances_after_sigkill_of_the_supervisor() {
    no_orphans_after(libc::SIGKILL);
}
