//! EC2 instance state: StopInstances undone by StartInstances, or TerminateInstances.

use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use serde::{Deserialize, Serialize};

use super::{Undoable, undo_tag_key};
use crate::aws::{AwsError, AwsTarget, instance_states};
use crate::chaos::fault::{BoxFuture, Env, FaultError};

/// How long an undo waits for instances to be `stopped` (to start them) and then `running`.
const STATE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(250);

/// The EC2 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Ec2Action {
    /// StopInstances; undone by StartInstances.
    Stop,
    /// TerminateInstances; irreversible.
    Terminate,
}

impl Ec2Action {
    /// The IAM actions a fault doing this calls: choosing (DescribeInstances), acting,
    /// waiting for the state, and for a stop, the start that undoes it and its recovery tag.
    pub fn aws_actions(self) -> &'static [&'static str] {
        match self {
            Ec2Action::Stop => &[
                "ec2:DescribeInstances",
                "ec2:StopInstances",
                "ec2:StartInstances",
                "ec2:CreateTags",
                "ec2:DeleteTags",
            ],
            Ec2Action::Terminate => &["ec2:DescribeInstances", "ec2:TerminateInstances"],
        }
    }
}

/// An EC2 action on chosen instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ec2StateChange {
    /// Where the instances live (no secrets).
    pub target: AwsTarget,
    /// Instance ids.
    pub instances: Vec<String>,
    /// The action.
    pub action: Ec2Action,
}

impl Ec2StateChange {
    async fn states(
        &self,
        env: &Env,
    ) -> Result<std::collections::BTreeMap<String, String>, FaultError> {
        let c = env.clients(&self.target).await?;
        Ok(instance_states(&c.ec2, &self.instances).await?)
    }

    /// Polls until every instance is in one of `wanted` (or gone from the answer when
    /// `terminated` is acceptable); returns the last states seen.
    async fn wait_for(
        &self,
        env: &Env,
        wanted: &[&str],
    ) -> Result<(bool, std::collections::BTreeMap<String, String>), FaultError> {
        let rounds = (STATE_TIMEOUT.as_millis() / POLL.as_millis()) as usize;
        let mut last = Default::default();
        for _ in 0..rounds {
            last = self.states(env).await?;
            if last.values().all(|s| wanted.contains(&s.as_str())) {
                return Ok((true, last));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok((false, last))
    }
}

impl Undoable for Ec2StateChange {
    fn reversible(&self) -> bool {
        self.action == Ec2Action::Stop
    }

    fn summary(&self) -> String {
        let ids = self.instances.join(", ");
        match self.action {
            Ec2Action::Stop => format!("StopInstances {ids}; undo: StartInstances {ids}"),
            Ec2Action::Terminate => format!("TerminateInstances {ids}; irreversible"),
        }
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let c = env.clients(&self.target).await?;
            let ids = Some(self.instances.clone());
            match self.action {
                Ec2Action::Stop => {
                    c.ec2
                        .stop_instances()
                        .set_instance_ids(ids)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::call("ec2:StopInstances", e).on(self.instances.join(", "))
                        })?;
                }
                Ec2Action::Terminate => {
                    c.ec2
                        .terminate_instances()
                        .set_instance_ids(ids)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::call("ec2:TerminateInstances", e)
                                .on(self.instances.join(", "))
                        })?;
                }
            }
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            if self.action != Ec2Action::Stop {
                return Ok(vec![]);
            }
            let mut notes = Vec::new();
            // An instance still `stopping` cannot be started: wait until it settles.
            let (_, states) = self
                .wait_for(
                    env,
                    &[
                        "stopped",
                        "running",
                        "pending",
                        "terminated",
                        "shutting-down",
                    ],
                )
                .await?;
            let to_start: Vec<String> = states
                .iter()
                .filter(|(_, s)| s.as_str() == "stopped")
                .map(|(id, _)| id.clone())
                .collect();
            for (id, s) in &states {
                if matches!(s.as_str(), "terminated" | "shutting-down") {
                    notes.push(format!("instance {id} is {s}: cannot be started"));
                }
            }
            for id in &self.instances {
                if !states.contains_key(id) {
                    notes.push(format!("instance {id} no longer exists"));
                }
            }
            if !to_start.is_empty() {
                let c = env.clients(&self.target).await?;
                c.ec2
                    .start_instances()
                    .set_instance_ids(Some(to_start))
                    .send()
                    .await
                    .map_err(|e| AwsError::call("ec2:StartInstances", e))?;
            }
            Ok(notes)
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if self.action != Ec2Action::Stop {
                return Ok(());
            }
            let (ok, states) = self
                .wait_for(env, &["running", "terminated", "shutting-down"])
                .await?;
            if ok {
                Ok(())
            } else {
                let bad: Vec<String> = states
                    .iter()
                    .filter(|(_, s)| s.as_str() != "running")
                    .map(|(id, s)| format!("{id} is {s}"))
                    .collect();
                Err(FaultError::NotVerified(format!(
                    "instances not running after {STATE_TIMEOUT:?}: {}",
                    bad.join(", ")
                )))
            }
        })
    }

    fn tag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if self.action != Ec2Action::Stop {
                return Ok(());
            }
            let c = env.clients(&self.target).await?;
            c.ec2
                .create_tags()
                .set_resources(Some(self.instances.clone()))
                .tags(
                    Tag::builder()
                        .key(undo_tag_key(run_id))
                        .value("StartInstances (was running)")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::call("ec2:CreateTags", e))?;
            Ok(())
        })
    }

    fn untag<'a>(&'a self, env: &'a Env, run_id: &'a str) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if self.action != Ec2Action::Stop {
                return Ok(());
            }
            let c = env.clients(&self.target).await?;
            c.ec2
                .delete_tags()
                .set_resources(Some(self.instances.clone()))
                .tags(Tag::builder().key(undo_tag_key(run_id)).build())
                .send()
                .await
                .map_err(|e| AwsError::call("ec2:DeleteTags", e))?;
            Ok(())
        })
    }
}
