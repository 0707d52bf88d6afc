//! A real `moto_server` (PyPI `moto[server]`) on 127.0.0.1, for the parity suites.
//!
//! The suites that need it are marked
//! `#[cfg_attr(no_moto, ignore = "moto_server is not on PATH (pip install 'moto[server]')")]`:
//! `build.rs` sets the `no_moto` cfg when the binary is not on `PATH` at build time, so a
//! local run without moto lists them as *ignored*, with the reason, in the test summary.
//! Under CI (`SHAKEDOWN_REQUIRE_MOTO=1`, set by `.ci/run`) the cfg is never set: the suites
//! run, and [`Moto::start`] fails them when moto is missing. `build.rs` runs again when
//! `PATH` changes, when moto is removed, or (while it is missing) when a file appears in a
//! `PATH` directory, so the cfg follows an install or an uninstall.
//!
//! The server runs in its own process group and the guard kills the whole group on drop
//! (also when a test panics). This file stands alone (no other kit module), so a test
//! binary may also include it with `#[path = "support/moto.rs"] mod moto;`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// Name of the executable looked up on `PATH`.
pub const MOTO_BINARY: &str = "moto_server";

/// Environment variable: when set (CI), a missing moto fails the suites instead of
/// letting the build mark them ignored.
pub const REQUIRE_ENV: &str = "SHAKEDOWN_REQUIRE_MOTO";

/// How long moto may take to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server; killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

/// Whether `name` is an executable file in one of the `PATH` directories.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(name).is_file())
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Moto {
    /// Starts moto on a free port and waits until it answers. Panics when the binary is
    /// missing: a suite that needs moto only runs when the build found it, or under CI.
    pub async fn start() -> Moto {
        Moto::start_with_env(&[]).await
    }

    /// [`Moto::start`] with extra environment for the server (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, which makes it enforce IAM after that many calls).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Moto {
        assert!(
            on_path(MOTO_BINARY),
            "`{MOTO_BINARY}` is not on PATH (pip install 'moto[server]'): with {REQUIRE_ENV} \
             set (CI) the suites that need it fail without it; otherwise the build marks them \
             ignored"
        );
        let port = free_port().expect("a free local port");
        let child = Command::new(MOTO_BINARY)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready().await;
        moto
    }

    /// Polls `POST /moto-api/reset` until it succeeds (bounded by [`STARTUP_TIMEOUT`]).
    async fn wait_ready(&self) {
        let client = shakedown::tls::client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let started = Instant::now();
        loop {
            if self.reset_with(&client).await {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "moto_server did not answer on {} within {STARTUP_TIMEOUT:?}",
                self.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn reset_with(&self, client: &reqwest::Client) -> bool {
        let url = format!("{}/moto-api/reset", self.endpoint);
        client
            .post(url)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        // The shim execs python, but kill the whole group in case it forked.
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resources tests create in moto before pointing shakedown at it.
#[allow(dead_code)]
pub mod fixtures {
    use shakedown::aws::{AwsClients, AwsTarget};

    /// A target of the server at `endpoint` in `region`, with placeholder keys.
    pub fn target(endpoint: &str, region: &str) -> AwsTarget {
        AwsTarget {
            region: Some(region.into()),
            ..AwsTarget::local(endpoint)
        }
    }

    /// Creates the queues.
    pub async fn queues(c: &AwsClients, names: &[&str]) {
        for q in names {
            c.sqs.create_queue().queue_name(*q).send().await.unwrap();
        }
    }

    /// A VPC; its id.
    pub async fn vpc(c: &AwsClients) -> String {
        c.ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap()
    }

    /// An HTTP target group on port 80 in `vpc`; its ARN.
    pub async fn target_group(c: &AwsClients, vpc: &str, name: &str) -> String {
        c.elbv2
            .as_ref()
            .expect("moto serves ELBv2 at endpoint_url")
            .create_target_group()
            .name(name)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .send()
            .await
            .unwrap()
            .target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_owned()
    }

    /// An Auto Scaling group of t3.micro instances in availability zone `zone`.
    pub async fn auto_scaling_group(
        c: &AwsClients,
        name: &str,
        (min, desired, max): (i32, i32, i32),
        zone: &str,
    ) {
        let asg = c
            .autoscaling
            .as_ref()
            .expect("moto serves Auto Scaling at endpoint_url");
        let config = format!("{name}-lc");
        asg.create_launch_configuration()
            .launch_configuration_name(&config)
            .image_id("ami-12c6146b")
            .instance_type("t3.micro")
            .send()
            .await
            .unwrap();
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_configuration_name(&config)
            .min_size(min)
            .desired_capacity(desired)
            .max_size(max)
            .availability_zones(zone)
            .send()
            .await
            .unwrap();
    }
}
