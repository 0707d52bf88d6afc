//! Probes against real local things: the embedded SQS and EC2 endpoints, an in-test axum
//! server shaped like the sandbox control endpoint, local commands; and the sampler's
//! `probes.csv`. Nothing here talks to anything but 127.0.0.1.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use axum::Json;
use axum::extract::Query;
use axum::routing::get;
use serde_json::json;
use shakedown::aws::{AwsClients, AwsTarget, InstanceSelector, QueueRef, aws_clients};
use shakedown::probe::spec::{
    ActivitiesMetric, ActivitiesProbe, BalancerProbe, CommandLine, CommandProbe, Ec2Probe,
    HttpProbe, ProbeKind, SqsMetric, SqsProbe,
};
use shakedown::probe::{ProbeContext, ProbeError, ProbeSpec, Prober, Sampler};
use shakedown::results::probes::{ProbeCsv, read_rows_of};
use shakedown::sandbox::ec2::{Ec2Service, LaunchSpec, NoopDriver};
use shakedown::sandbox::sqs::{QueueSettings, SqsConfig, SqsService};
use tokio_util::sync::CancellationToken;

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

async fn clients(url: &str) -> AwsClients {
    aws_clients(&AwsTarget::local(url)).await.unwrap()
}

fn prober(kind: ProbeKind, ctx: &ProbeContext) -> Prober {
    Prober::new(&kind, ctx).unwrap()
}

async fn value(p: &mut Prober) -> f64 {
    p.sample_within(Duration::from_secs(5)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_probe_follows_sends_receives_and_the_dlq() {
    let sqs = SqsService::new(SqsConfig::default());
    let jobs = sqs.create_queue("jobs", QueueSettings::default()).unwrap();
    sqs.create_queue("jobs-dlq", QueueSettings::default())
        .unwrap();
    let (l, url) = listener().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(sqs.clone().serve(l, async move { s.cancelled().await }));
    let aws = clients(&url).await;
    let ctx = ProbeContext {
        aws: Some(aws.clone()),
        control_url: None,
        http: shakedown::tls::client_builder().build().unwrap(),
    };
    let probe = |metric, dlq: Option<&str>| {
        prober(
            ProbeKind::Sqs(SqsProbe {
                queue: QueueRef::Plain("jobs".into()),
                metric,
                dlq: dlq.map(|d| QueueRef::Plain(d.into())),
            }),
            &ctx,
        )
    };
    let mut visible = probe(SqsMetric::Visible, None);
    let mut in_flight = probe(SqsMetric::InFlight, None);
    let mut delayed = probe(SqsMetric::Delayed, None);
    let mut oldest = probe(SqsMetric::OldestAge, None);
    let mut dlq = probe(SqsMetric::DlqVisible, Some("jobs-dlq"));

    // An empty queue has age 0; the probe times the backlog from this sample on.
    assert_eq!(value(&mut oldest).await, 0.0);
    for i in 0..3 {
        aws.sqs
            .send_message()
            .queue_url(&jobs)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    aws.sqs
        .send_message()
        .queue_url(&jobs)
        .message_body("later")
        .delay_seconds(60)
        .send()
        .await
        .unwrap();
    let dlq_url = aws
        .sqs
        .get_queue_url()
        .queue_name("jobs-dlq")
        .send()
        .await
        .unwrap();
    aws.sqs
        .send_message()
        .queue_url(dlq_url.queue_url().unwrap())
        .message_body("dead")
        .send()
        .await
        .unwrap();
    assert_eq!(value(&mut visible).await, 3.0);
    assert_eq!(value(&mut delayed).await, 1.0);
    assert_eq!(value(&mut in_flight).await, 0.0);
    assert_eq!(value(&mut dlq).await, 1.0);

    let got = aws
        .sqs
        .receive_message()
        .queue_url(&jobs)
        .max_number_of_messages(2)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 2);
    assert_eq!(value(&mut visible).await, 1.0);
    assert_eq!(value(&mut in_flight).await, 2.0);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let age = value(&mut oldest).await;
    assert!((1.0..=3.0).contains(&age), "oldest_age {age}");

    // The probe agrees with the attribute the SDK reads directly.
    let direct = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&jobs)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "2"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_probe_counts_instances_by_tags_group_and_state() {
    let ec2 = Ec2Service::new(std::sync::Arc::new(NoopDriver));
    let fleet = ec2.fleet();
    let web: Vec<_> = (0..3)
        .map(|_| fleet.register(LaunchSpec::default().tag("tier", "web")))
        .collect();
    let worker = fleet.register(
        LaunchSpec::default()
            .tag("tier", "worker")
            .tag("aws:autoscaling:groupName", "workers"),
    );
    fleet.mark_running(&web[0]).unwrap();
    fleet.mark_running(&web[1]).unwrap();
    fleet.mark_running(&worker).unwrap();
    let (l, url) = listener().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { ec2.serve(l, async move { s.cancelled().await }).await });
    let ctx = ProbeContext {
        aws: Some(clients(&url).await),
        control_url: None,
        http: shakedown::tls::client_builder().build().unwrap(),
    };
    let probe = |tags: &[(&str, &str)], asg: Option<&str>, state: &str| {
        prober(
            ProbeKind::Ec2(Ec2Probe {
                instances: InstanceSelector {
                    tags: tags
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    asg: asg.map(Into::into),
                },
                state: state.into(),
            }),
            &ctx,
        )
    };
    let mut web_running = probe(&[("tier", "web")], None, "running");
    let mut web_pending = probe(&[("tier", "web")], None, "pending");
    let mut web_stopped = probe(&[("tier", "web")], None, "stopped");
    let mut group = probe(&[], Some("workers"), "running");
    assert_eq!(value(&mut web_running).await, 2.0);
    assert_eq!(value(&mut web_pending).await, 1.0);
    assert_eq!(value(&mut group).await, 1.0);
    assert_eq!(value(&mut web_stopped).await, 0.0);

    fleet.stop(&[web[0].clone()]).unwrap();
    assert_eq!(value(&mut web_running).await, 1.0);
    assert_eq!(value(&mut web_stopped).await, 1.0);
    fleet.terminate(&[worker]).unwrap();
    assert_eq!(value(&mut group).await, 0.0);
    stop.cancel();
}

#[derive(serde::Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

/// A server shaped like the sandbox control endpoint plus a JSON document.
async fn control_server() -> (String, CancellationToken) {
    let activities = json!([
        { "seq": 1, "time": "2025-01-01T00:00:00Z", "group": "workers", "kind": "scaling", "from": 0, "to": 2, "cause": "backlog" },
        { "seq": 2, "time": "2025-01-01T00:00:01Z", "group": "workers", "kind": "launch", "instance": "i-1", "cause": "scale out" },
        { "seq": 3, "time": "2025-01-01T00:00:01Z", "group": "workers", "kind": "launch", "instance": "i-2", "cause": "scale out" },
        { "seq": 4, "time": "2025-01-01T00:00:02Z", "group": "web", "kind": "launch", "instance": "i-3", "cause": "replace" },
    ]);
    let app = axum::Router::new()
        .route("/stats", get(|| async { Json(json!({ "queue": { "depth": [4, "2.5"], "up": true, "name": "x" } })) }))
        .route(
            "/targets",
            get(|| async {
                Json(json!({ "targets": [
                    { "id": "i-1", "addr": "127.0.0.1:1", "state": "healthy" },
                    { "id": "i-2", "addr": "127.0.0.1:2", "state": "unhealthy" },
                    { "id": "i-3", "addr": "127.0.0.1:3", "state": "healthy" },
                ] }))
            }),
        )
        .route(
            "/groups",
            get(|| async {
                Json(json!([
                    { "name": "web", "min": 1, "max": 4, "desired": 2, "instances": ["i-3"], "leaving": [] },
                    { "name": "workers", "min": 0, "max": 8, "desired": 3, "instances": ["i-1", "i-2"], "leaving": [] },
                ]))
            }),
        )
        .route(
            "/activities",
            get(move |Query(q): Query<After>| {
                let all = activities.clone();
                async move {
                    let since: Vec<_> = all
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|a| a["seq"].as_u64().unwrap() > q.after)
                        .cloned()
                        .collect();
                    Json(serde_json::Value::Array(since))
                }
            }),
        );
    let (l, url) = listener().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(l, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });
    (url, stop)
}

#[tokio::test]
async fn http_probes_read_json_pointers_targets_groups_and_activities() {
    let (url, stop) = control_server().await;
    let ctx = ProbeContext {
        aws: None,
        control_url: Some(url.clone()),
        http: shakedown::tls::client_builder().build().unwrap(),
    };
    let json_probe = |pointer: &str| {
        prober(
            ProbeKind::Http(HttpProbe {
                url: format!("{url}/stats"),
                pointer: pointer.into(),
            }),
            &ctx,
        )
    };
    assert_eq!(value(&mut json_probe("/queue/depth/0")).await, 4.0);
    assert_eq!(value(&mut json_probe("/queue/depth/1")).await, 2.5);
    assert_eq!(value(&mut json_probe("/queue/up")).await, 1.0);
    let err = json_probe("/queue/name").sample().await.unwrap_err();
    assert!(matches!(err, ProbeError::NotANumber(_)), "{err}");
    let err = json_probe("/queue/missing").sample().await.unwrap_err();
    assert!(err.to_string().contains("/queue/missing"), "{err}");

    let mut healthy = prober(
        ProbeKind::Balancer(BalancerProbe {
            url: None,
            state: "healthy".into(),
        }),
        &ctx,
    );
    assert_eq!(value(&mut healthy).await, 2.0);
    let activities = |group: &str, metric| {
        prober(
            ProbeKind::SandboxActivities(ActivitiesProbe {
                url: None,
                group: group.into(),
                metric,
            }),
            &ctx,
        )
    };
    assert_eq!(
        value(&mut activities("workers", ActivitiesMetric::Desired)).await,
        3.0
    );
    assert_eq!(
        value(&mut activities("workers", ActivitiesMetric::Instances)).await,
        2.0
    );
    let mut launches = activities("workers", ActivitiesMetric::Launches);
    assert_eq!(value(&mut launches).await, 2.0);
    // Counted once: the next poll asks for entries after the last seq seen.
    assert_eq!(value(&mut launches).await, 2.0);
    assert_eq!(
        value(&mut activities("workers", ActivitiesMetric::Scalings)).await,
        1.0
    );
    assert_eq!(
        value(&mut activities("web", ActivitiesMetric::Terminations)).await,
        0.0
    );

    // No control URL at all is a build error, not a silent gap.
    let err = Prober::new(
        &ProbeKind::Balancer(BalancerProbe {
            url: None,
            state: "healthy".into(),
        }),
        &ProbeContext::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::Config(_)), "{err}");
    stop.cancel();
}

fn command(line: &str) -> ProbeKind {
    ProbeKind::Command(CommandProbe {
        command: CommandLine::Shell(line.into()),
    })
}

#[tokio::test]
async fn command_probe_reads_output_and_a_hung_command_is_killed_at_the_timeout() {
    let ctx = ProbeContext::default();
    assert_eq!(value(&mut prober(command("echo 42"), &ctx)).await, 42.0);
    let argv = ProbeKind::Command(CommandProbe {
        command: CommandLine::Argv(vec!["printf".into(), "3.5 items".into()]),
    });
    assert_eq!(value(&mut prober(argv, &ctx)).await, 3.5);
    let err = prober(command("exit 3"), &ctx).sample().await.unwrap_err();
    assert!(matches!(err, ProbeError::Command(_)), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let hung = format!("echo $$ > {}; exec sleep 10", pid_file.display());
    let began = Instant::now();
    let err = prober(command(&hung), &ctx)
        .sample_within(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Timeout(_)), "{err}");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The child was killed: within a second it is gone (or a zombie awaiting reaping).
    let mut gone = false;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        if stat.is_empty() || state == Some("Z") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "sleep {pid} still alive after the timeout");
}

fn spec(name: &str, every: u64, timeout_ms: u64, kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        name: name.into(),
        every: Duration::from_secs(every),
        timeout: Duration::from_millis(timeout_ms),
        kind,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_writes_contiguous_rows_with_empty_cells_for_gaps() {
    let (url, stop_server) = control_server().await;
    let specs = vec![
        spec("seven", 1, 2000, command("echo 7")),
        spec("hung", 1, 300, command("sleep 10")),
        spec("every2", 2, 2000, command("echo 5")),
        spec(
            "missing",
            1,
            2000,
            ProbeKind::Http(HttpProbe {
                url: format!("{url}/stats"),
                pointer: "/nope".into(),
            }),
        ),
    ];
    assert!(shakedown::probe::spec::problems(&specs).is_empty());
    let sampler = Sampler::from_specs(&specs, &ProbeContext::default()).unwrap();
    let mut snapshots = sampler.subscribe();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.csv");
    let csv = ProbeCsv::new(std::fs::File::create(&path).unwrap(), &sampler.names()).unwrap();
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let run = tokio::spawn(sampler.run(start, csv, cancel.clone()));

    // Rows reach the disk as the run goes: second 0 is complete once the hung probe's
    // 300 ms timeout has passed.
    tokio::time::timeout(Duration::from_secs(5), snapshots.changed())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep_until((start + Duration::from_millis(1_500)).into()).await;
    let early = std::fs::read_to_string(&path).unwrap();
    assert!(early.lines().count() >= 2, "nothing flushed yet:\n{early}");
    assert_eq!(snapshots.borrow().values().get("seven"), Some(&7.0));
    assert!(!snapshots.borrow().latest.contains_key("hung"));

    tokio::time::sleep_until((start + Duration::from_millis(3_600)).into()).await;
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let (names, rows) = read_rows_of(text.as_bytes(), &path).unwrap();
    let rows: Vec<(u64, Vec<Option<f64>>)> =
        rows.into_iter().map(|r| (r.second, r.values)).collect();
    assert_eq!(names, ["seven", "hung", "every2", "missing"]);
    assert!(rows.len() >= 4, "{text}");
    assert_eq!(report.rows, rows.len() as u64);
    for (i, (second, cells)) in rows.iter().enumerate() {
        assert_eq!(*second, i as u64, "rows are contiguous:\n{text}");
        assert_eq!(cells[1], None, "a hung probe is a gap:\n{text}");
        assert_eq!(cells[3], None, "a missing pointer is a gap:\n{text}");
        if i < 4 {
            assert_eq!(cells[0], Some(7.0), "second {i}:\n{text}");
            let due = i % 2 == 0;
            assert_eq!(cells[2], due.then_some(5.0), "second {i}:\n{text}");
        }
    }
    // A gap is an empty cell, not a zero.
    assert!(
        text.lines().nth(1).unwrap().starts_with("0,7,,5,"),
        "{text}"
    );
    let hung = &report.probes[1];
    assert!(hung.timed_out >= 3 && hung.ok == 0, "{hung:?}");
    assert!(report.probes[3].failed >= 3, "{:?}", report.probes[3]);
    stop_server.cancel();
}
