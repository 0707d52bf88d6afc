//! The AWS side of the promises' probes, against moto_server: ELBv2 target health per
//! state, Auto Scaling group capacities; and a sandbox-shaped target without those
//! services, which must refuse the probe rather than call AWS.

#[path = "support/moto.rs"]
mod moto;

use moto::fixtures;

use aws_sdk_ec2::types::InstanceType;
use shakedown::aws::{AwsClients, AwsTarget, aws_clients};
use shakedown::probe::spec::{AsgMetric, AsgProbe, ProbeKind, TargetHealthProbe, TargetState};
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
