//! Arch `microservices` as a system: four service groups of real child processes behind
//! the balancer's path rules, found by their `service` tag through EC2 DescribeInstances,
//! and the `service-latency` fault's change applied, verified and undone against the
//! sandbox's control endpoint. Short timings; every loop is bounded.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use shakedown::chaos::change::Undoable;
use shakedown::chaos::change::service::ServiceLatencyChange;
use shakedown::chaos::fault::Env;
use shakedown::sandbox::asg::Tier;
use shakedown::sandbox::config::{Arch, SandboxConfig};
use shakedown::sandbox::{Sandbox, StartOptions};

use crate::support::wait::eventually;

fn config() -> SandboxConfig {
    let mut c = SandboxConfig {
        arch: Arch::Microservices,
        processing: "5ms".parse().unwrap(),
        jitter: 0.0,
        drain_timeout: Duration::from_secs(2),
        ..SandboxConfig::default()
    };
    let hc = &mut c.web.health_check;
    hc.interval = Duration::from_millis(200);
    hc.timeout = Duration::from_millis(200);
    let w = &mut c.workers;
    w.desired = 1;
    w.min = 1;
    w.warmup = Duration::from_millis(100);
    w.wait_time = Duration::from_secs(1);
    for service in [
        &mut c.services.upload.desired,
        &mut c.services.manage.desired,
    ] {
        *service = 1;
    }
    c
}

fn http() -> reqwest::Client {
    shakedown::tls::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn tagged(ec2: &aws_sdk_ec2::Client, service: &str) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name("tag:service")
                .values(service)
                .build(),
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_route_by_path_carry_their_tag_and_take_an_added_latency() {
    let dir = tempfile::tempdir().unwrap();
    let options = StartOptions {
        exe: env!("CARGO_BIN_EXE_shakedown").into(),
        dir: Some(dir.path().to_owned()),
        ready_timeout: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(1),
    };
    let sandbox = Sandbox::start(config(), options).await.expect("starts");
    let e = sandbox.endpoints().clone();
    let client = http();

    // Four groups, each with its desired count running and found by its tag.
    let ec2 = crate::support::aws::ec2(&e.ec2_endpoint);
    for tier in Tier::SERVICES {
        let group = sandbox.group(tier).expect("the service's group");
        let ids = tagged(&ec2, tier.name()).await;
        assert_eq!(
            ids.len(),
            group.desired as usize,
            "{}: {ids:?}",
            tier.name()
        );
        assert!(ids.iter().all(|id| group.instances.contains(id)));
    }
    let targets = sandbox.balancer().targets();
    for name in ["upload", "store", "manage", "process"] {
        assert!(
            targets.iter().any(|t| t.group == name),
            "no {name} target: {targets:?}"
        );
    }

    // Path rules: uploads reach upload, listings reach manage, which reads through store.
    let upload_ids = sandbox.group(Tier::Upload).unwrap().instances;
    let r = client
        .put(format!("{}/upload/photo-1", e.web_url))
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let upstream = r.headers()["x-shakedown-upstream"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        upload_ids.contains(&upstream),
        "{upstream} is not an upload instance"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["stored"], true, "{body}");
    let manage_ids = sandbox.group(Tier::Manage).unwrap().instances;
    let listing: serde_json::Value =
        eventually("the upload listed", Duration::from_secs(10), async || {
            let r = client
                .get(format!("{}/objects", e.web_url))
                .send()
                .await
                .ok()?;
            let upstream = r.headers()["x-shakedown-upstream"]
                .to_str()
                .ok()?
                .to_owned();
            assert!(
                manage_ids.contains(&upstream),
                "{upstream} is not a manage instance"
            );
            let v: serde_json::Value = r.json().await.ok()?;
            (v["total"] == 1).then_some(v)
        })
        .await;
    assert_eq!(listing["objects"][0]["id"], "photo-1");
    assert_eq!(listing["objects"][0]["size"], 4096);
    assert_eq!(listing["degraded"], false);
    let r = client
        .get(format!("{}/nowhere", e.web_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no listener rule");
    // The job went through the queue to process, which reported it.
    eventually(
        "the upload processed",
        Duration::from_secs(10),
        async || {
            sandbox
                .feed()
                .completions_since(0)
                .iter()
                .any(|c| c.completion.job_id == "photo-1")
        },
    )
    .await;

    // The latency fault's change, on store: manage's listings turn degraded (its cache)
    // and stay fast; uploads spool. The undo restores and verifies.
    let change = ServiceLatencyChange {
        control_url: e.control_url.clone(),
        service: "store".into(),
        previous_ms: 0,
        delay_ms: 1500,
    };
    let env = Env::new(None);
    change.apply(&env).await.unwrap();
    assert!(
        change.verify(&env).await.is_err(),
        "verify fails while applied"
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the instances read it
    let mut degraded = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let v: serde_json::Value = client
            .get(format!("{}/objects", e.web_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_millis(1000), "{v}");
        degraded += usize::from(v["degraded"] == true);
    }
    assert!(
        degraded >= 4,
        "listings served from the cache: {degraded} of 5"
    );
    let started = Instant::now();
    let r = client
        .put(format!("{}/upload/photo-2", e.web_url))
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["stored"],
        false
    );
    let notes = change.undo(&env).await.unwrap();
    assert!(notes.is_empty());
    change.verify(&env).await.unwrap();
    // process writes the spooled object once store is fast again.
    eventually(
        "the spooled object stored",
        Duration::from_secs(15),
        async || {
            let v: serde_json::Value = client
                .get(format!("{}/objects", e.web_url))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["degraded"] == false && v["total"] == 2).then_some(())
        },
    )
    .await;

    // An unknown service is refused by name.
    let bad = ServiceLatencyChange {
        service: "nope".into(),
        ..change
    };
    let err = bad.apply(&env).await.unwrap_err().to_string();
    assert!(err.contains("no service `nope`"), "{err}");
    sandbox.shutdown().await;
}
