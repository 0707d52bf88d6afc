//! The sandbox EC2 endpoint through the real `aws-sdk-ec2` client.
//!
//! One semantic suite (filters, pagination, transitions, tags, errors, DryRun) runs against
//! two backends: ours (instances are real `sleep` children, so stop/start/terminate are
//! checked on the processes too) and a local `moto_server`, the reference emulator, when it
//! is on PATH. Where moto departs from AWS the [`Fidelity`] flags say so and the moto run
//! skips that point; each difference is documented on its flag.
//!
//! Nothing here talks to anything but 127.0.0.1.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::wait::eventually;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceStateName, ResourceType, Tag, TagSpecification};
use futures::FutureExt;
use parking_lot::Mutex;
use shakedown::sandbox::ec2::{
    Ec2Service, FleetHandle, InstanceId, InstanceState, LaunchSpec, ProcessDriver,
};

// ---------------------------------------------------------------------------------------------
// Client and helpers
// ---------------------------------------------------------------------------------------------

/// A client without retries: every error the endpoint returns reaches the test.
fn client(endpoint: &str) -> Client {
    let config = crate::support::aws::ec2_config(endpoint).retry_config(RetryConfig::disabled());
    Client::from_conf(config.build())
}

fn filter(name: &str, values: &[&str]) -> Filter {
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(*v);
    }
    f.build()
}

/// A unique value for the `suite-run` tag that isolates one case's instances.
fn run_id(case: &str) -> String {
    let n: u32 = rand::random();
    format!("{case}-{n:08x}")
}

/// Ids (sorted) of the instances matching `filters` plus this run's isolation tag.
async fn ids_matching(c: &Client, run: &str, filters: &[Filter]) -> BTreeSet<String> {
    let mut req = c
        .describe_instances()
        .filters(filter("tag:suite-run", &[run]));
    for f in filters {
        req = req.filters(f.clone());
    }
    let out = req.send().await.expect("describe_instances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

async fn state_of(c: &Client, id: &str) -> InstanceStateName {
    let out = c
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe one");
    let instance = &out.reservations()[0].instances()[0];
    instance
        .state()
        .and_then(|s| s.name())
        .cloned()
        .expect("state")
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// The EC2 error code of a failed call.
fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<no code>").to_string()
}

/// The state letter of a process from /proc/<pid>/stat (`S`, `R`, `T`, `Z`, ...), if it exists.
/// Whether a process state is alive and not stopped: running, sleeping, or briefly in
/// uninterruptible IO (a child still paging its program in on a busy machine is `D`).
fn alive_and_running(state: Option<char>) -> bool {
    matches!(state, Some(c) if !matches!(c, 'T' | 't' | 'Z' | 'X'))
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// Where a backend knowingly differs from AWS; `true` means it behaves like AWS.
#[derive(Clone, Copy, Debug)]
struct Fidelity {
    /// CreateTags on an unknown instance id fails with `InvalidInstanceID.NotFound`.
    /// moto accepts it and succeeds.
    validates_tag_resources: bool,
    /// Stop/Start of an instance in a state that forbids it fails with
    /// `IncorrectInstanceState`. moto accepts it and changes the state anyway.
    incorrect_state_errors: bool,
    /// `MaxResults` outside 5..=1000 is rejected. moto accepts any value.
    validates_max_results: bool,
    /// CreateTags refuses `aws:`-prefixed keys. moto accepts them.
    reserves_aws_tag_prefix: bool,
}

/// Whether to check a point that `supported` says this backend follows; says so when skipping.
fn checks(b: &impl Backend, supported: bool, point: &str) -> bool {
    if !supported {
        println!(
            "  skipped on {}: {point} (known difference from AWS)",
            b.name()
        );
    }
    supported
}

const AWS_LIKE: Fidelity = Fidelity {
    validates_tag_resources: true,
    incorrect_state_errors: true,
    validates_max_results: true,
    reserves_aws_tag_prefix: true,
};

const MOTO: Fidelity = Fidelity {
    validates_tag_resources: false,
    incorrect_state_errors: false,
    validates_max_results: false,
    reserves_aws_tag_prefix: false,
};

/// One endpoint the suite runs against.
trait Backend {
    /// A client for it.
    fn client(&self) -> &Client;
    /// How closely it follows AWS.
    fn fidelity(&self) -> Fidelity;
    /// Its name in messages.
    fn name(&self) -> &'static str;
    /// Creates `n` running instances, each in its own reservation, tagged with `tags` and
    /// `suite-run=run`, and returns their ids.
    fn launch(
        &self,
        n: usize,
        run: &str,
        tags: &[(&str, &str)],
    ) -> impl Future<Output = Vec<String>>;
    /// The OS state letter of the process behind the instance, when there is one.
    fn process_state(&self, id: &str) -> Option<Option<char>>;
}

/// Our service with a `sleep 60` child per instance; children are killed and reaped on drop.
struct Ours {
    client: Client,
    fleet: FleetHandle,
    driver: Arc<ProcessDriver>,
    children: Mutex<Vec<(String, Child)>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    addr: SocketAddr,
}

impl Ours {
    async fn start() -> Self {
        let driver = Arc::new(ProcessDriver::new());
        let service = Ec2Service::new(driver.clone());
        let fleet = service.fleet();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            service.serve(listener, shutdown).await.expect("serve");
        });
        Ours {
            client: client(&format!("http://{addr}")),
            fleet,
            driver,
            children: Mutex::new(Vec::new()),
            stop_server: Some(tx),
            addr,
        }
    }

    fn pid(&self, id: &str) -> u32 {
        let children = self.children.lock();
        let (_, child) = children.iter().find(|(i, _)| i == id).expect("our child");
        child.id()
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        for (_, child) in self.children.lock().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
    }
}

impl Backend for Ours {
    fn client(&self) -> &Client {
        &self.client
    }

    fn fidelity(&self) -> Fidelity {
        AWS_LIKE
    }

    fn name(&self) -> &'static str {
        "ours"
    }

    async fn launch(&self, n: usize, run: &str, tags: &[(&str, &str)]) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let mut spec = LaunchSpec::default().tag("suite-run", run);
            for (k, v) in tags {
                spec = spec.tag(*k, *v);
            }
            let child = Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep");
            let id = self.fleet.register(spec);
            // Keep the child in the guard before anything can fail.
            self.children.lock().push((id.to_string(), child));
            self.driver.attach(&id, self.pid(id.as_str())).unwrap();
            self.fleet.mark_running(&id).unwrap();
            ids.push(id.to_string());
        }
        ids
    }

    fn process_state(&self, id: &str) -> Option<Option<char>> {
        Some(proc_state(self.pid(id)))
    }
}

/// A `moto_server` (killed on drop) and a client for it.
struct Moto {
    client: Client,
    _server: crate::support::moto::Moto,
}

impl Moto {
    async fn start() -> Self {
        let server = crate::support::moto::Moto::start().await;
        Moto {
            client: client(&server.endpoint),
            _server: server,
        }
    }
}

impl Backend for Moto {
    fn client(&self) -> &Client {
        &self.client
    }

    fn fidelity(&self) -> Fidelity {
        MOTO
    }

    fn name(&self) -> &'static str {
        "moto"
    }

    async fn launch(&self, n: usize, run: &str, tags: &[(&str, &str)]) -> Vec<String> {
        let mut spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("suite-run").value(run).build());
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let spec = spec.build();
        let mut ids = Vec::new();
        for _ in 0..n {
            let out = self
                .client
                .run_instances()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .tag_specifications(spec.clone())
                .send()
                .await
                .expect("moto run_instances");
            ids.extend(
                out.instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
        }
        ids
    }

    fn process_state(&self, _id: &str) -> Option<Option<char>> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

async fn filters_by_tag_and_tag_key<B: Backend>(b: &B) {
    let run = run_id("tags");
    let c = b.client();
    let asg = ("aws:autoscaling:groupName", "asg-web");
    let web = b
        .launch(3, &run, &[("tier", "web"), ("Name", "web"), asg])
        .await;
    let workers = b.launch(2, &run, &[("tier", "worker")]).await;
    let all: BTreeSet<String> = web.iter().chain(&workers).cloned().collect();

    assert_eq!(ids_matching(c, &run, &[]).await, all);
    assert_eq!(
        ids_matching(c, &run, &[filter("tag:tier", &["web"])]).await,
        set(&web)
    );
    let either = filter("tag:tier", &["web", "worker"]);
    assert_eq!(ids_matching(c, &run, &[either]).await, all);
    assert!(
        ids_matching(c, &run, &[filter("tag:tier", &["db"])])
            .await
            .is_empty()
    );
    assert_eq!(
        ids_matching(c, &run, &[filter("tag-key", &["Name"])]).await,
        set(&web)
    );
    let group = filter("tag:aws:autoscaling:groupName", &["asg-web"]);
    assert_eq!(ids_matching(c, &run, &[group]).await, set(&web));
    let and = [
        filter("tag:tier", &["web", "worker"]),
        filter("tag-key", &["Name"]),
    ];
    assert_eq!(ids_matching(c, &run, &and).await, set(&web));
    // EC2 filter values take `*` and `?` wildcards.
    let wild = filter("tag:tier", &["w?b"]);
    assert_eq!(ids_matching(c, &run, &[wild]).await, set(&web));
    let wild = filter("tag:tier", &["wor*"]);
    assert_eq!(ids_matching(c, &run, &[wild]).await, set(&workers));
}

async fn filters_by_instance_id<B: Backend>(b: &B) {
    let run = run_id("ids");
    let c = b.client();
    let ids = b.launch(3, &run, &[]).await;
    let one = filter("instance-id", &[&ids[1]]);
    assert_eq!(ids_matching(c, &run, &[one]).await, set(&ids[1..2]));
    let out = c
        .describe_instances()
        .instance_ids(&ids[0])
        .instance_ids(&ids[2])
        .send()
        .await
        .unwrap();
    let got: BTreeSet<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    assert_eq!(got, set(&[ids[0].clone(), ids[2].clone()]));
    let i = &out.reservations()[0].instances()[0];
    assert!(i.private_ip_address().is_some());
    assert!(i.launch_time().is_some());
    assert!(i.instance_type().is_some());
}

async fn filters_by_state<B: Backend>(b: &B) {
    let run = run_id("state");
    let c = b.client();
    let ids = b.launch(3, &run, &[]).await;
    c.stop_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    c.terminate_instances()
        .instance_ids(&ids[1])
        .send()
        .await
        .unwrap();
    let by = |s: &[&str]| vec![filter("instance-state-name", s)];
    assert_eq!(
        ids_matching(c, &run, &by(&["stopped"])).await,
        set(&ids[..1])
    );
    assert_eq!(
        ids_matching(c, &run, &by(&["terminated"])).await,
        set(&ids[1..2])
    );
    assert_eq!(
        ids_matching(c, &run, &by(&["running"])).await,
        set(&ids[2..])
    );
    let two = by(&["running", "stopped"]);
    assert_eq!(
        ids_matching(c, &run, &two).await,
        set(&[ids[0].clone(), ids[2].clone()])
    );
}

async fn pagination<B: Backend>(b: &B) {
    let run = run_id("pages");
    let c = b.client();
    let ids = b.launch(7, &run, &[]).await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    for _ in 0..10 {
        let out = c
            .describe_instances()
            .filters(filter("tag:suite-run", &[&run]))
            .max_results(5)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        let page: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        assert!(page.len() <= 5, "page of {}", page.len());
        seen.extend(page);
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), ids.len(), "no duplicates across pages");
    assert_eq!(set(&seen), set(&ids));

    // The SDK's own paginator follows our tokens too.
    let via_paginator: Vec<_> = c
        .describe_instances()
        .filters(filter("tag:suite-run", &[&run]))
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(via_paginator.len(), 7, "one reservation per instance");

    if checks(
        b,
        b.fidelity().validates_max_results,
        "MaxResults range validation",
    ) {
        let err = c
            .describe_instances()
            .max_results(3)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterValue");
    }
    let err = c
        .describe_instances()
        .instance_ids(&ids[0])
        .max_results(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterCombination");
}

async fn wait_process<B: Backend>(b: &B, id: &str, what: &str, ok: impl Fn(Option<char>) -> bool) {
    if b.process_state(id).is_some() {
        eventually(what, Duration::from_secs(3), async || {
            ok(b.process_state(id).flatten())
        })
        .await;
    }
}

async fn stop_start_terminate<B: Backend>(b: &B) {
    use InstanceStateName as S;
    let run = run_id("lifecycle");
    let c = b.client();
    let ids = b.launch(2, &run, &[]).await;
    let (id, bystander) = (&ids[0], &ids[1]);

    let out = c.stop_instances().instance_ids(id).send().await.unwrap();
    let change = &out.stopping_instances()[0];
    assert_eq!(change.instance_id(), Some(id.as_str()));
    assert_eq!(
        change.previous_state().and_then(|s| s.name()),
        Some(&S::Running)
    );
    assert_eq!(change.previous_state().and_then(|s| s.code()), Some(16));
    let current = S::Stopping;
    assert_eq!(
        change.current_state().and_then(|s| s.name()),
        Some(&current)
    );
    assert_eq!(state_of(c, id).await, S::Stopped);
    wait_process(b, id, "SIGSTOP to take effect", |s| s == Some('T')).await;

    let out = c.start_instances().instance_ids(id).send().await.unwrap();
    let change = &out.starting_instances()[0];
    assert_eq!(
        change.previous_state().and_then(|s| s.name()),
        Some(&S::Stopped)
    );
    let current = S::Pending;
    assert_eq!(
        change.current_state().and_then(|s| s.name()),
        Some(&current)
    );
    assert_eq!(state_of(c, id).await, S::Running);
    wait_process(b, id, "SIGCONT to take effect", alive_and_running).await;

    let out = c
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let change = &out.terminating_instances()[0];
    assert_eq!(
        change.previous_state().and_then(|s| s.name()),
        Some(&S::Running)
    );
    let current = S::ShuttingDown;
    assert_eq!(
        change.current_state().and_then(|s| s.name()),
        Some(&current)
    );
    assert_eq!(change.current_state().and_then(|s| s.code()), Some(32));
    assert_eq!(state_of(c, id).await, S::Terminated);
    // Killed: a zombie until the test's guard reaps it (or gone).
    wait_process(b, id, "SIGKILL to take effect", |s| {
        matches!(s, None | Some('Z'))
    })
    .await;

    // Terminate is idempotent; the bystander was never touched.
    let again = c
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let change = &again.terminating_instances()[0];
    assert_eq!(
        change.previous_state().and_then(|s| s.name()),
        Some(&S::Terminated)
    );
    assert_eq!(state_of(c, bystander).await, S::Running);
    if let Some(s) = b.process_state(bystander) {
        assert!(alive_and_running(s), "bystander is {s:?}");
    }
}

async fn incorrect_state<B: Backend>(b: &B) {
    if !checks(
        b,
        b.fidelity().incorrect_state_errors,
        "IncorrectInstanceState errors",
    ) {
        return;
    }
    let run = run_id("incorrect");
    let c = b.client();
    let ids = b.launch(2, &run, &[]).await;
    c.terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let err = c
        .start_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "IncorrectInstanceState");
    // The whole request fails: the running instance listed with it is not stopped.
    let err = c
        .stop_instances()
        .instance_ids(&ids[1])
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "IncorrectInstanceState");
    assert_eq!(state_of(c, &ids[1]).await, InstanceStateName::Running);
}

async fn unknown_ids<B: Backend>(b: &B) {
    let run = run_id("unknown");
    let c = b.client();
    let ids = b.launch(1, &run, &[]).await;
    let ghost = "i-0123456789abcdef0";
    let err = c
        .describe_instances()
        .instance_ids(ghost)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidInstanceID.NotFound");
    assert!(err.message().unwrap_or_default().contains(ghost));
    let err = c
        .terminate_instances()
        .instance_ids(&ids[0])
        .instance_ids(ghost)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidInstanceID.NotFound");
    assert_eq!(state_of(c, &ids[0]).await, InstanceStateName::Running);
    let err = c
        .stop_instances()
        .instance_ids(ghost)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidInstanceID.NotFound");
}

async fn dry_run<B: Backend>(b: &B) {
    let run = run_id("dryrun");
    let c = b.client();
    let ids = b.launch(1, &run, &[]).await;
    let err = c
        .terminate_instances()
        .instance_ids(&ids[0])
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DryRunOperation");
    let err = c
        .stop_instances()
        .instance_ids(&ids[0])
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DryRunOperation");
    let err = c
        .describe_instances()
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DryRunOperation");
    assert_eq!(state_of(c, &ids[0]).await, InstanceStateName::Running);
    if let Some(s) = b.process_state(&ids[0]) {
        assert!(alive_and_running(s), "dry run touched the process: {s:?}");
    }
}

async fn tags_round_trip<B: Backend>(b: &B) {
    let run = run_id("tagging");
    let c = b.client();
    let ids = b.launch(2, &run, &[("tier", "web")]).await;
    c.create_tags()
        .resources(&ids[0])
        .tags(Tag::builder().key("chaos").value("victim").build())
        .tags(Tag::builder().key("tier").value("db").build())
        .send()
        .await
        .unwrap();
    let chaos = filter("tag:chaos", &["victim"]);
    assert_eq!(
        ids_matching(c, &run, std::slice::from_ref(&chaos)).await,
        set(&ids[..1])
    );
    let db = filter("tag:tier", &["db"]);
    assert_eq!(
        ids_matching(c, &run, &[db]).await,
        set(&ids[..1]),
        "overwritten"
    );

    let out = c
        .describe_tags()
        .filters(filter("resource-id", &[&ids[0]]))
        .filters(filter("key", &["chaos", "tier"]))
        .send()
        .await
        .unwrap();
    let mut pairs: Vec<(String, String)> = out
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("chaos".into(), "victim".into()),
            ("tier".into(), "db".into())
        ]
    );
    assert!(
        out.tags()
            .iter()
            .all(|t| t.resource_type() == Some(&ResourceType::Instance))
    );

    // A value that does not match leaves the tag; no value deletes it.
    c.delete_tags()
        .resources(&ids[0])
        .tags(Tag::builder().key("chaos").value("other").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids_matching(c, &run, std::slice::from_ref(&chaos)).await,
        set(&ids[..1])
    );
    c.delete_tags()
        .resources(&ids[0])
        .tags(Tag::builder().key("chaos").build())
        .send()
        .await
        .unwrap();
    assert!(ids_matching(c, &run, &[chaos]).await.is_empty());

    if checks(
        b,
        b.fidelity().validates_tag_resources,
        "CreateTags on an unknown id",
    ) {
        let err = c
            .create_tags()
            .resources("i-0123456789abcdef0")
            .tags(Tag::builder().key("a").value("b").build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidInstanceID.NotFound");
    }
    if checks(
        b,
        b.fidelity().reserves_aws_tag_prefix,
        "reserved aws: tag prefix",
    ) {
        let err = c
            .create_tags()
            .resources(&ids[1])
            .tags(Tag::builder().key("aws:mine").value("b").build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterValue");
    }
}

async fn instance_status<B: Backend>(b: &B) {
    let run = run_id("status");
    let c = b.client();
    let ids = b.launch(2, &run, &[]).await;
    c.stop_instances()
        .instance_ids(&ids[1])
        .send()
        .await
        .unwrap();
    let out = c
        .describe_instance_status()
        .instance_ids(&ids[0])
        .instance_ids(&ids[1])
        .send()
        .await
        .unwrap();
    let listed: Vec<_> = out
        .instance_statuses()
        .iter()
        .filter_map(|s| s.instance_id())
        .collect();
    assert_eq!(
        listed,
        vec![ids[0].as_str()],
        "only running ones by default"
    );
    let s = &out.instance_statuses()[0];
    assert_eq!(
        s.instance_state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    let all = c
        .describe_instance_status()
        .instance_ids(&ids[0])
        .instance_ids(&ids[1])
        .include_all_instances(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.instance_statuses().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Running the suite: one test per case against ours, one test running all cases on moto
// ---------------------------------------------------------------------------------------------

macro_rules! ours {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn ours() {
                let b = super::Ours::start().await;
                super::$case(&b).await;
            }
        }
    )*};
}

ours!(
    filters_by_tag_and_tag_key,
    filters_by_instance_id,
    filters_by_state,
    pagination,
    stop_start_terminate,
    incorrect_state,
    unknown_ids,
    dry_run,
    tags_round_trip,
    instance_status,
);

/// Runs every case on one moto server (started once for this binary, killed on drop) and
/// reports all failing cases together.
#[tokio::test]
#[cfg_attr(
    no_moto,
    ignore = "moto_server is not on PATH (pip install 'moto[server]')"
)]
async fn moto_parity() {
    let moto = Moto::start().await;
    let mut failed = Vec::new();
    macro_rules! run {
        ($($case:ident),* $(,)?) => {$(
            let outcome = AssertUnwindSafe($case(&moto)).catch_unwind().await;
            println!("moto {}: {}", stringify!($case), if outcome.is_ok() { "ok" } else { "FAILED" });
            if outcome.is_err() {
                failed.push(stringify!($case));
            }
        )*};
    }
    run!(
        filters_by_tag_and_tag_key,
        filters_by_instance_id,
        filters_by_state,
        pagination,
        stop_start_terminate,
        incorrect_state,
        unknown_ids,
        dry_run,
        tags_round_trip,
        instance_status,
    );
    drop(moto);
    assert!(failed.is_empty(), "moto parity failed for {failed:?}");
}

// ---------------------------------------------------------------------------------------------
// Ours only: what moto has no equivalent for
// ---------------------------------------------------------------------------------------------

async fn raw_post(addr: SocketAddr, body: &str) -> (u16, String) {
    let resp = shakedown::tls::client_builder()
        .build()
        .unwrap()
        .post(format!("http://{addr}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn unknown_and_missing_action_are_ec2_errors() {
    let b = Ours::start().await;
    let (status, body) = raw_post(b.addr, "Action=LaunchRocket&Version=2016-11-15").await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    assert!(body.contains("<RequestID>"), "{body}");
    let (status, body) = raw_post(b.addr, "Version=2016-11-15").await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingAction</Code>"), "{body}");
    let (status, body) = raw_post(b.addr, "Action=TerminateInstances&Version=2016-11-15").await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingParameter</Code>"), "{body}");
    let (status, body) = raw_post(b.addr, "Action=DescribeInstances&InstanceId.1=bogus").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("<Code>InvalidInstanceID.Malformed</Code>"),
        "{body}"
    );
}

#[tokio::test]
async fn success_documents_carry_the_ec2_namespace() {
    let b = Ours::start().await;
    let (status, body) = raw_post(b.addr, "Action=DescribeInstances&Version=2016-11-15").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(
            r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">"#
        ),
        "{body}"
    );
}

#[tokio::test]
async fn process_exit_and_readiness_are_visible_through_the_sdk() {
    let b = Ours::start().await;
    let run = run_id("exit");
    let ids = b.launch(1, &run, &[]).await;
    let id: InstanceId = ids[0].parse().unwrap();
    b.fleet.mark_exited(&id, "exit status 137").unwrap();
    let out = b
        .client
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(
        i.state().and_then(|s| s.name()),
        Some(&InstanceStateName::Terminated)
    );
    let reason = i.state_reason().unwrap();
    assert_eq!(reason.code(), Some("Client.InstanceInitiatedShutdown"));
    assert!(reason.message().unwrap().contains("exit status 137"));

    let fresh = b
        .fleet
        .register(LaunchSpec::default().tag("suite-run", &run));
    assert_eq!(
        state_of(&b.client, fresh.as_str()).await,
        InstanceStateName::Pending
    );
    b.fleet.mark_running(&fresh).unwrap();
    assert_eq!(
        state_of(&b.client, fresh.as_str()).await,
        InstanceStateName::Running
    );
}

#[tokio::test]
async fn change_feed_sees_sdk_initiated_transitions() {
    let b = Ours::start().await;
    let run = run_id("feed");
    let ids = b.launch(1, &run, &[]).await;
    let mut feed = b.fleet.subscribe();
    b.client
        .terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let mut path = Vec::new();
    for _ in 0..2 {
        let changes = tokio::time::timeout(Duration::from_secs(3), feed.next())
            .await
            .expect("feed");
        path.extend(changes.transitions.iter().map(|t| (t.id.to_string(), t.to)));
        if path.len() >= 2 {
            break;
        }
    }
    assert_eq!(
        path,
        vec![
            (ids[0].clone(), InstanceState::ShuttingDown),
            (ids[0].clone(), InstanceState::Terminated)
        ]
    );
}

#[tokio::test]
async fn driver_failure_is_an_internal_error_and_rolls_back() {
    let b = Ours::start().await;
    // Registered but with no process attached: the driver cannot act.
    let id = b.fleet.register(LaunchSpec::default());
    b.fleet.mark_running(&id).unwrap();
    let err = b
        .client
        .stop_instances()
        .instance_ids(id.as_str())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InternalError");
    assert_eq!(
        state_of(&b.client, id.as_str()).await,
        InstanceStateName::Running
    );
    let instance = b.fleet.get(&id).unwrap();
    assert!(
        instance
            .state_reason
            .unwrap()
            .message
            .contains("no process attached")
    );
}

/// A pid above the kernel's PID_MAX_LIMIT (2^22): no process can ever have it, so signalling
/// it fails with ESRCH without any risk of hitting a recycled pid.
const NEVER_A_PID: u32 = i32::MAX as u32;

#[tokio::test]
async fn vanished_process_terminates_but_cannot_be_stopped() {
    let b = Ours::start().await;
    let id = b.fleet.register(LaunchSpec::default());
    b.fleet.mark_running(&id).unwrap();
    b.driver.attach(&id, NEVER_A_PID).unwrap();
    let err = b
        .client
        .stop_instances()
        .instance_ids(id.as_str())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InternalError");
    assert_eq!(
        state_of(&b.client, id.as_str()).await,
        InstanceStateName::Running
    );
    // Killing a process that is already gone is a successful terminate.
    let out = b
        .client
        .terminate_instances()
        .instance_ids(id.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(out.terminating_instances().len(), 1);
    assert_eq!(
        state_of(&b.client, id.as_str()).await,
        InstanceStateName::Terminated
    );
    assert_eq!(b.driver.pid(&id), None, "detached after terminate");
}
