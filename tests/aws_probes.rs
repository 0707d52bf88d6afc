//! The AWS side of the promises' probes, against moto_server: ELBv2 target health per
//! state, Auto Scaling group capacities, CloudWatch metrics (live and settled after a run,
//! through the CLI); and a sandbox-shaped target without those services, which must refuse
//! the probe rather than call AWS.

#[path = "support/moto.rs"]
mod moto;

use moto::fixtures;

use aws_sdk_ec2::types::InstanceType;
use shakedown::aws::CloudWatch;
use shakedown::aws::cloudwatch::epoch_now;
use shakedown::aws::{AwsClients, AwsTarget, aws_clients};
use shakedown::probe::spec::{
    AsgMetric, AsgProbe, CloudWatchProbe, Missing, ProbeKind, TargetHealthProbe, TargetState,
};
use shakedown::probe::{ProbeContext, ProbeError, Prober};

async fn sample(kind: ProbeKind, ctx: &ProbeContext) -> Result<f64, ProbeError> {
    Prober::new(&kind, ctx)?.sample().await
}

fn context(clients: &AwsClients) -> ProbeContext {
    ProbeContext {
        aws: Some(clients.clone()),
        control_url: None,
        http: shakedown::tls::client_builder().build().unwrap(),
    }
}

/// A VPC with one subnet; its ids.
async fn network(c: &AwsClients) -> (String, String) {
    let vpc = fixtures::vpc(c).await;
    let subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.1.0/24")
        .availability_zone("eu-west-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    (vpc, subnet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn target_health_counts_a_target_group_by_state() {
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    let elb = c.elbv2.clone().unwrap();
    let (vpc, subnet) = network(&c).await;
    let group_arn = fixtures::target_group(&c, &vpc, "web").await;
    let ids: Vec<String> = c
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .subnet_id(&subnet)
        .min_count(3)
        .max_count(3)
        .send()
        .await
        .unwrap()
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    let mut register = elb.register_targets().target_group_arn(&group_arn);
    for id in &ids {
        register = register.targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(id)
                .build(),
        );
    }
    register.send().await.unwrap();

    let ctx = context(&c);
    let probe = |group: &str, state| {
        ProbeKind::TargetHealth(TargetHealthProbe {
            target_group: group.to_owned(),
            state,
        })
    };
    // By name and by ARN.
    assert_eq!(
        sample(probe("web", TargetState::Healthy), &ctx)
            .await
            .unwrap(),
        3.0
    );
    assert_eq!(
        sample(probe(&group_arn, TargetState::Healthy), &ctx)
            .await
            .unwrap(),
        3.0
    );

    // A stopped instance is no longer healthy: the balancer has moved its traffic.
    c.ec2
        .stop_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        sample(probe("web", TargetState::Healthy), &ctx)
            .await
            .unwrap(),
        2.0
    );
    assert_eq!(
        sample(probe("web", TargetState::Unused), &ctx)
            .await
            .unwrap(),
        1.0
    );

    // A group that does not exist is an error naming it, not a zero.
    let e = sample(probe("nope", TargetState::Healthy), &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("elasticloadbalancing:DescribeTargetGroups on target group `nope`: "),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn asg_reads_desired_in_service_and_bounds() {
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    fixtures::auto_scaling_group(&c, "workers", (1, 2, 5), "eu-west-1a").await;
    let asg = c.autoscaling.clone().unwrap();
    let ctx = context(&c);
    let probe = |metric| {
        ProbeKind::Asg(AsgProbe {
            group: "workers".into(),
            metric,
        })
    };
    assert_eq!(sample(probe(AsgMetric::Desired), &ctx).await.unwrap(), 2.0);
    assert_eq!(
        sample(probe(AsgMetric::InService), &ctx).await.unwrap(),
        2.0
    );
    assert_eq!(sample(probe(AsgMetric::Min), &ctx).await.unwrap(), 1.0);
    assert_eq!(sample(probe(AsgMetric::Max), &ctx).await.unwrap(), 5.0);
    asg.set_desired_capacity()
        .auto_scaling_group_name("workers")
        .desired_capacity(4)
        .send()
        .await
        .unwrap();
    assert_eq!(sample(probe(AsgMetric::Desired), &ctx).await.unwrap(), 4.0);
    assert_eq!(
        sample(probe(AsgMetric::InService), &ctx).await.unwrap(),
        4.0
    );
    assert_eq!(sample(probe(AsgMetric::Pending), &ctx).await.unwrap(), 0.0);

    let missing = ProbeKind::Asg(AsgProbe {
        group: "nope".into(),
        metric: AsgMetric::Desired,
    });
    let e = sample(missing, &ctx).await.unwrap_err().to_string();
    assert!(e.contains("no Auto Scaling group named `nope`"), "{e}");
}

/// The sandbox's shape (EC2 and SQS on loopback ports, nothing else): an ELBv2 or Auto
/// Scaling probe is refused with the fix, never sent to AWS's public endpoint.
#[tokio::test]
async fn a_local_target_without_the_service_refuses_the_probe() {
    let target = AwsTarget {
        ec2_endpoint_url: Some("http://127.0.0.1:1".into()),
        sqs_endpoint_url: Some("http://127.0.0.1:2".into()),
        ..AwsTarget::local("http://127.0.0.1:3")
    };
    let target = AwsTarget {
        endpoint_url: None,
        ..target
    };
    let c = aws_clients(&target).await.unwrap();
    let ctx = context(&c);
    for kind in [
        ProbeKind::Asg(AsgProbe {
            group: "workers".into(),
            metric: AsgMetric::Desired,
        }),
        ProbeKind::TargetHealth(TargetHealthProbe {
            target_group: "web".into(),
            state: TargetState::Healthy,
        }),
        ProbeKind::CloudWatch(age_probe("jobs", Missing::Gap)),
    ] {
        let e = Prober::new(&kind, &ctx).unwrap_err().to_string();
        assert!(e.contains("set `endpoint_url` in [target.aws]"), "{e}");
    }
}

/// `[[target.activities]] asg = "..."` calls DescribeScalingActivities without error against
/// moto (which keeps no activities: the mapping of real ones is unit-tested in
/// `probe::activity`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn an_asg_activity_source_reads_the_groups_activities() {
    use shakedown::probe::activity::{ActivitySourceSpec, run_sources};
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    let spec = ActivitySourceSpec {
        asg: Some("workers".into()),
        ..toml::from_str("").unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_sources(
        vec![spec],
        dir.path().join("activities.jsonl"),
        0,
        shakedown::tls::client_builder().build().unwrap(),
        c.autoscaling.clone(),
        cancel.clone(),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    cancel.cancel();
    let stats = task.await.unwrap().unwrap();
    assert_eq!(stats.errors, 0, "{:?}", stats.last_error);
    // Without the service, the source says why instead of calling AWS.
    let spec = ActivitySourceSpec {
        asg: Some("workers".into()),
        ..toml::from_str("").unwrap()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let stats = run_sources(
        vec![spec],
        dir.path().join("activities2.jsonl"),
        0,
        shakedown::tls::client_builder().build().unwrap(),
        None,
        cancel,
    )
    .await
    .unwrap();
    assert_eq!(stats.errors, 1);
    assert!(
        stats
            .last_error
            .unwrap()
            .contains("no Auto Scaling endpoint"),
        "the reason is named"
    );
}

fn age_probe(queue: &str, missing: Missing) -> CloudWatchProbe {
    CloudWatchProbe {
        namespace: "AWS/SQS".into(),
        metric: "ApproximateAgeOfOldestMessage".into(),
        dimensions: [("QueueName".to_string(), queue.to_string())].into(),
        stat: "Maximum".into(),
        period: std::time::Duration::from_secs(60),
        missing,
        settle: std::time::Duration::ZERO,
        scale: 1.0,
        cumulative: false,
    }
}

/// Puts `(epoch second, value)` datapoints of a metric (PutMetricData over the same JSON
/// protocol and signing as the probe's reads).
async fn put_metric(
    cw: &CloudWatch,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    points: &[(i64, f64)],
) {
    let dimensions: Vec<serde_json::Value> = dimensions
        .iter()
        .map(|(n, v)| serde_json::json!({"Name": n, "Value": v}))
        .collect();
    for chunk in points.chunks(500) {
        let data: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(t, v)| {
                serde_json::json!({
                    "MetricName": metric, "Dimensions": dimensions, "Timestamp": t, "Value": v,
                    "StorageResolution": 1
                })
            })
            .collect();
        cw.call(
            "PutMetricData",
            "cloudwatch:PutMetricData",
            &serde_json::json!({"Namespace": namespace, "MetricData": data}),
        )
        .await
        .unwrap();
    }
}

/// Live, the probe reads the newest complete minute (never the current, partial one); a
/// metric with no datapoint is a gap, or zero with `missing = "zero"`; after a run, the
/// run's minutes are fetched whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn cloudwatch_reads_the_newest_complete_period_and_settles_a_span() {
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    let cw = c
        .cloudwatch
        .clone()
        .expect("a local target with endpoint_url");
    let now = epoch_now();
    let minute = now - now.rem_euclid(60);
    // Minutes m-5 .. m-1: two datapoints each (their maximum is 10 * k); the current
    // minute: 99, which a live sample must not read (the minute is not over).
    let mut points = Vec::new();
    for k in 1..=5 {
        let at = minute - 60 * (6 - k);
        points.push((at + 5, 10.0 * k as f64 - 3.0));
        points.push((at + 20, 10.0 * k as f64));
    }
    points.push((minute, 99.0));
    put_metric(
        &cw,
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        &[("QueueName", "jobs")],
        &points,
    )
    .await;
    let ctx = context(&c);
    let live = sample(ProbeKind::CloudWatch(age_probe("jobs", Missing::Gap)), &ctx).await;
    assert_eq!(live.unwrap(), 50.0);
    // Another queue has no datapoint: a gap that says why, or zero when asked.
    let e = sample(
        ProbeKind::CloudWatch(age_probe("other", Missing::Gap)),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ProbeError::NoData(_)), "{e}");
    assert!(
        e.to_string().contains("ApproximateAgeOfOldestMessage"),
        "{e}"
    );
    let zero = sample(
        ProbeKind::CloudWatch(age_probe("other", Missing::Zero)),
        &ctx,
    )
    .await;
    assert_eq!(zero.unwrap(), 0.0);

    // A run from m-5 + 30 s for 4 minutes: its periods are m-5 .. m-2 (the settle budget is
    // zero: one fetch, which cannot have caught up yet).
    let start_ms = ((minute - 300 + 30) * 1000) as u64;
    let settled = shakedown::probe::cloudwatch::settle_one(
        &cw,
        &age_probe("jobs", Missing::Gap),
        start_ms,
        240,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let values: Vec<(i64, f64)> = settled
        .points
        .iter()
        .map(|p| (p.start - (minute - 300), p.value))
        .collect();
    assert_eq!(
        values,
        [(0, 10.0), (60, 20.0), (120, 30.0), (180, 40.0), (240, 50.0)]
    );
    assert!(!settled.complete);

    // An unknown statistic is refused by the service, named as the call.
    let mut bad = age_probe("jobs", Missing::Gap);
    bad.stat = "Bogus".into();
    let e = sample(ProbeKind::CloudWatch(bad), &ctx).await.unwrap_err();
    assert!(
        e.to_string().starts_with("cloudwatch:GetMetricData: "),
        "{e}"
    );
}

/// A run through the CLI against an HTTP target on this machine with its CloudWatch at moto:
/// the probe's column of probes.csv holds the settled per-second series, not the late live
/// samples, and cloudwatch.csv lists the datapoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn a_run_rewrites_the_cloudwatch_column_from_the_settled_series() {
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    let cw = c.cloudwatch.clone().unwrap();
    // A high-resolution metric: one datapoint per second, its value the epoch second mod
    // 1000, from 10 s ago to 60 s ahead (more than the run lasts).
    let now = epoch_now();
    let points: Vec<(i64, f64)> = (now - 10..now + 60)
        .map(|t| (t, t.rem_euclid(1000) as f64))
        .collect();
    put_metric(&cw, "Shop", "Throttles", &[("Function", "resize")], &points).await;

    let web = serve_ok().await;
    let dir = tempfile::tempdir().unwrap();
    write_profile(dir.path());
    let exp = dir.path().join("cw.toml");
    std::fs::write(
        &exp,
        format!(
            r#"name = "cw"
profile = "p.toml"
[target]
http = "{web}"
[target.aws]
region = "eu-west-1"
endpoint_url = "{moto}"
[[probe]]
name = "throttles"
kind = "cloudwatch"
namespace = "Shop"
metric = "Throttles"
dimensions = {{ Function = "resize" }}
stat = "Maximum"
period = "1s"
every = "1s"
settle = "30s"
[[promise]]
type = "threshold"
checks = ["error_rate < 1%"]
[cooldown]
max = "1s"
"#,
            moto = moto.endpoint
        ),
    )
    .unwrap();
    let (out, text) = run_experiment(exp, dir.path().join("results")).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("cloudwatch `throttles`: settled after"),
        "{text}"
    );

    let run = dir.path().join("results/r");
    let start_ms = started_ms(&run);
    let probes = std::fs::read_to_string(run.join("probes.csv")).unwrap();
    let rows: Vec<(u64, String)> = probes
        .lines()
        .skip(1)
        .map(|l| {
            let (s, v) = l.split_once(',').unwrap();
            (s.parse().unwrap(), v.to_owned())
        })
        .collect();
    assert!(rows.len() >= 3, "{probes}");
    for (second, cell) in &rows {
        let epoch = (start_ms / 1000) as i64 + *second as i64;
        assert_eq!(
            cell,
            &epoch.rem_euclid(1000).to_string(),
            "second {second}: the value CloudWatch has for that very second\n{probes}"
        );
    }
    let datapoints = std::fs::read_to_string(run.join("cloudwatch.csv")).unwrap();
    assert!(
        datapoints.starts_with("probe,period_start,second,period_s,value\nthrottles,"),
        "{datapoints}"
    );
    assert_eq!(datapoints.lines().count(), rows.len() + 1, "{datapoints}");
}

/// Lambda's billed duration on AWS is a per-minute `Sum`; a `cumulative` probe makes it the
/// counter `idle` wants. Through the CLI with CloudWatch at moto and 5 s periods: one
/// function stops billing before the load ends and is idle, one keeps billing and fails; the
/// columns hold the running totals at period boundaries only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn a_cumulative_cloudwatch_sum_feeds_the_idle_promise() {
    let moto = moto::Moto::start().await;
    let c = aws_clients(&fixtures::target(&moto.endpoint, "eu-west-1"))
        .await
        .unwrap();
    let cw = c.cloudwatch.clone().unwrap();
    // 1000 ms of duration every second from a 5 s boundary in the past; `resize` stops 2 s
    // from now (before the run's 3 s of load end), `thumb` bills to the end.
    let now = epoch_now();
    let from = now - now.rem_euclid(5) - 10;
    let stops = now + 2;
    let series = |stop: i64| -> Vec<(i64, f64)> {
        (from..now + 60)
            .map(|t| (t, if t < stop { 1000.0 } else { 0.0 }))
            .collect()
    };
    for (function, stop) in [("resize", stops), ("thumb", i64::MAX)] {
        put_metric(
            &cw,
            "AWS/Lambda",
            "Duration",
            &[("FunctionName", function)],
            &series(stop),
        )
        .await;
    }

    let web = serve_ok().await;
    let dir = tempfile::tempdir().unwrap();
    write_profile(dir.path());
    let probe = |name: &str, function: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"cloudwatch\"\nnamespace = \"AWS/Lambda\"\nmetric = \"Duration\"\ndimensions = {{ FunctionName = \"{function}\" }}\nstat = \"Sum\"\nperiod = \"5s\"\nmissing = \"zero\"\nscale = 0.001\ncumulative = true\nsettle = \"40s\"\n"
        )
    };
    let exp = dir.path().join("idle.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"idle\"\nprofile = \"p.toml\"\n[target]\nhttp = \"{web}\"\n[target.aws]\nregion = \"eu-west-1\"\nendpoint_url = \"{moto}\"\n{}{}\
             [cooldown]\nmin = \"16s\"\nmax = \"16s\"\n\
             [[promise]]\nname = \"resize-idle\"\ntype = \"idle\"\nwithin = \"5s\"\ngb_seconds = \"resize_gb\"\n\
             [[promise]]\nname = \"thumb-idle\"\ntype = \"idle\"\nwithin = \"5s\"\ngb_seconds = \"thumb_gb\"\n",
            probe("resize_gb", "resize"),
            probe("thumb_gb", "thumb"),
            moto = moto.endpoint
        ),
    )
    .unwrap();
    let (out, text) = run_experiment(exp, dir.path().join("results")).await;
    assert!(
        text.contains("cloudwatch `resize_gb`: settled after")
            && text.contains("the column is their running total"),
        "{text}"
    );
    let run = dir.path().join("results/r");
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("verdict.json")).unwrap()).unwrap();
    let status = |name: &str| {
        verdict["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["promise"] == name)
            .unwrap_or_else(|| panic!("{name} in {verdict:#}"))["status"]
            .clone()
    };
    assert_eq!(status("resize-idle"), "pass", "{verdict:#}\n{text}");
    assert_eq!(status("thumb-idle"), "fail", "{verdict:#}\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");

    // The running totals: 0 at the first second, then at each 5 s boundary the seconds
    // billed before it (1 GB-s each); nothing between.
    let start_ms = started_ms(&run);
    let first = (start_ms / 1000) as i64;
    let counting_from = first - first.rem_euclid(5);
    let probes = std::fs::read_to_string(run.join("probes.csv")).unwrap();
    let mut lines = probes.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (resize, thumb) = (col("resize_gb"), col("thumb_gb"));
    let mut boundaries = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let second: i64 = cells[0].parse().unwrap();
        let at = first + second;
        if second == 0 {
            assert_eq!((cells[resize], cells[thumb]), ("0", "0"), "{probes}");
        } else if at.rem_euclid(5) == 0 {
            boundaries += 1;
            let billed = |stop: i64| (at.min(stop) - counting_from).max(0).to_string();
            assert_eq!(cells[thumb], billed(i64::MAX), "second {second}\n{probes}");
            assert_eq!(cells[resize], billed(stops), "second {second}\n{probes}");
        } else {
            assert_eq!((cells[resize], cells[thumb]), ("", ""), "{probes}");
        }
    }
    assert!(boundaries >= 3, "{probes}");
}

/// A local HTTP target answering "ok" to everything; its base URL.
async fn serve_ok() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(|| async { "ok" })).await
    });
    web
}

/// `p.toml` in `dir`: 3 s of 20 uploads/s.
fn write_profile(dir: &std::path::Path) {
    std::fs::write(
        dir.join("p.toml"),
        "name = \"p\"\nseed = 1\n[[stream]]\nname = \"get\"\nkind = \"upload\"\nrequest = { method = \"PUT\", path = \"/u/{id}\" }\nsize = { dist = \"fixed\", size = \"1KiB\" }\nstages = [ { for = \"3s\", rate = \"20/s\" } ]\n",
    )
    .unwrap();
}

/// `shakedown run -q --run-id r --results RESULTS EXP`: its output and its text.
async fn run_experiment(
    exp: std::path::PathBuf,
    results: std::path::PathBuf,
) -> (std::process::Output, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_shakedown"))
            .args(["run", "-q", "--run-id", "r", "--results"])
            .arg(&results)
            .arg(&exp)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The run's start (`run.json`'s `started_at`) in ms since the epoch.
fn started_ms(run: &std::path::Path) -> u64 {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let started = meta["started_at"].as_str().expect("run.json started_at");
    chrono::DateTime::parse_from_rfc3339(started)
        .unwrap()
        .timestamp_millis() as u64
}
