//! Which groups an architecture runs, what their instances are, how each scales, and the
//! balancer's listener rules in front of them: the list the [`Manager`](super::asg::Manager)
//! keeps.
//!
//! | arch | groups (scaling signal) | listener rules |
//! |---|---|---|
//! | `queued` | `web` (fixed), `workers` (jobs backlog) | none: every path to `web` |
//! | `tiered`, `monolith`, `event-driven` | `web` (fixed) | none |
//! | `microservices` | `upload`, `store`, `manage` (requests in flight per instance), `process` (jobs backlog; in flight with `process = "sync"`) | `/upload/` -> upload, `/objects` -> manage, `/store/` -> store, `/process/` -> process |
//!
//! With `services.scaling = "shared"` one policy, process's, sets every service group.

use std::path::Path;

use super::asg::policy::Controller;
use super::asg::{GroupSetup, GroupState, Role, Scaling, ScalingSignal, Tier};
use super::config::{Arch, ProcessCall, SandboxConfig, ScalingMode};
use super::instance::{ChildConfig, RoleConfig};
use super::lb::Route;
use super::sqs::SqsService;

/// The balancer's listener rules for `config`'s architecture.
pub fn routes(config: &SandboxConfig) -> Vec<Route> {
    match config.arch {
        Arch::Microservices => vec![
            Route::new("/upload/", Tier::Upload.name()),
            Route::new("/objects", Tier::Manage.name()),
            Route::new("/store/", Tier::Store.name()),
            Route::new("/process/", Tier::Process.name()),
        ],
        _ => Vec::new(),
    }
}

/// Where the services reach each other and the sandbox.
pub struct Wiring<'a> {
    /// The base child configuration (queue, feed, processing); its role is replaced.
    pub base: ChildConfig,
    /// The balancer's URL.
    pub lb_url: &'a str,
    /// The control endpoint's URL.
    pub control_url: &'a str,
    /// The run directory (the store's objects go in `objects/`).
    pub dir: &'a Path,
    /// The sandbox's SQS.
    pub sqs: &'a SqsService,
}

/// The groups and scaling policies of `config`'s architecture.
pub fn plan(config: &SandboxConfig, w: Wiring<'_>) -> (Vec<(Tier, GroupSetup)>, Vec<Scaling>) {
    let worker_role = || {
        let wc = &config.workers;
        RoleConfig::Worker {
            concurrency: wc.concurrency,
            wait_time_seconds: wc.wait_time.as_secs() as u32,
            ack: wc.ack,
            boot_ms: wc.warmup.as_millis() as u64,
        }
    };
    let state = |tier: Tier, min, max, desired| {
        GroupState::new(tier.name(), min, max, desired, config.replace_stopped_after)
    };
    let backlog = || ScalingSignal::QueueBacklog {
        sqs: w.sqs.clone(),
        queue: config.queue.name.clone(),
    };
    let wc = &config.workers;
    if config.arch != Arch::Microservices {
        let n = config.web.instances;
        let mut groups = vec![(
            Tier::Web,
            GroupSetup {
                state: state(Tier::Web, n, n, n),
                child: w.base.clone(),
                role: Role::of_web(config.arch),
            },
        )];
        let mut scaling = Vec::new();
        if config.arch.has_workers() {
            groups.push((
                Tier::Workers,
                GroupSetup {
                    state: state(Tier::Workers, wc.min, wc.max, wc.desired),
                    child: ChildConfig {
                        role: worker_role(),
                        ..w.base
                    },
                    role: Role::Processor,
                },
            ));
            scaling.push(Scaling {
                controller: Controller::new(wc.group_spec()),
                signal: backlog(),
                groups: vec![Tier::Workers],
            });
        }
        return (groups, scaling);
    }

    let s = &config.services;
    let service = |tier: Tier, worker: Option<RoleConfig>| ChildConfig {
        role: RoleConfig::Service {
            service: tier.name().to_owned(),
            lb_url: w.lb_url.to_owned(),
            control_url: w.control_url.to_owned(),
            objects_dir: w.dir.join("objects"),
            services: s.clone(),
            worker: worker.map(Box::new),
        },
        ..w.base.clone()
    };
    let mut groups = vec![(
        Tier::Process,
        GroupSetup {
            state: state(Tier::Process, wc.min, wc.max, wc.desired),
            child: service(Tier::Process, Some(worker_role())),
            role: Role::of_service(Tier::Process),
        },
    )];
    let process_signal = match s.upload.process {
        ProcessCall::Queue => backlog(),
        ProcessCall::Sync => ScalingSignal::InFlight {
            group: Tier::Process.name().to_owned(),
        },
    };
    let mut scaling = vec![Scaling {
        controller: Controller::new(wc.group_spec()),
        signal: process_signal,
        groups: vec![Tier::Process],
    }];
    for (name, size) in s.groups() {
        let tier = Tier::from_name(name).expect("the services are tiers");
        groups.push((
            tier,
            GroupSetup {
                state: state(tier, size.min, size.max, size.desired),
                child: service(tier, None),
                role: Role::of_service(tier),
            },
        ));
        match s.scaling {
            ScalingMode::PerService => scaling.push(Scaling {
                controller: Controller::new(size.spec(wc)),
                signal: ScalingSignal::InFlight {
                    group: name.to_owned(),
                },
                groups: vec![tier],
            }),
            ScalingMode::Shared => scaling[0].groups.push(tier),
        }
    }
    (groups, scaling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::config::Variant;

    fn wiring(sqs: &SqsService) -> Wiring<'_> {
        Wiring {
            base: ChildConfig {
                instance_id: String::new(),
                sqs_endpoint: String::new(),
                region: String::new(),
                queue_url: String::new(),
                feed_url: String::new(),
                processing: Default::default(),
                jitter: 0.0,
                role: RoleConfig::Worker {
                    concurrency: 1,
                    wait_time_seconds: 1,
                    ack: Default::default(),
                    boot_ms: 0,
                },
            },
            lb_url: "http://lb",
            control_url: "http://control",
            dir: Path::new("/tmp/x"),
            sqs,
        }
    }

    #[test]
    fn microservices_run_four_groups_each_scaling_on_its_own() {
        let sqs = SqsService::new(Default::default());
        let config = SandboxConfig::for_arch("microservices".parse().unwrap());
        let (groups, scaling) = plan(&config, wiring(&sqs));
        let names: Vec<_> = groups.iter().map(|(t, _)| t.name()).collect();
        assert_eq!(names, ["process", "upload", "store", "manage"]);
        assert_eq!(scaling.len(), 4);
        assert!(scaling.iter().all(|s| s.groups.len() == 1));
        assert!(matches!(
            scaling[0].signal,
            ScalingSignal::QueueBacklog { .. }
        ));
        assert_eq!(routes(&config).len(), 4);
    }

    #[test]
    fn a_shared_fleet_takes_one_decision_for_every_group() {
        let sqs = SqsService::new(Default::default());
        let mut config = SandboxConfig::for_arch("microservices".parse().unwrap());
        Variant::SharedFleet.apply(&mut config);
        let (_, scaling) = plan(&config, wiring(&sqs));
        assert_eq!(scaling.len(), 1);
        assert_eq!(
            scaling[0].groups,
            [Tier::Process, Tier::Upload, Tier::Store, Tier::Manage]
        );
    }

    #[test]
    fn other_archs_have_no_listener_rules() {
        assert!(routes(&SandboxConfig::default()).is_empty());
    }
}
