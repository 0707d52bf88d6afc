//! The Auto Scaling group: groups with min/max/desired kept by a manager, a scaling policy
//! and the activity log of every decision.
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`config`] | `[workers]`: the worker group's size, policy, cooldowns ([`WorkersConfig`]) | yes |
//! | [`policy`] | the scaling policy: backlog -> desired capacity, cooldowns | yes |
//! | [`state`] | one group's bookkeeping: members, replacements, back-off -> [`Action`]s | yes |
//! | [`activity`] | the [`ActivityLog`] (`GET /activities`) | no |
//! | [`manager`] | the [`Manager`]: launches, drains and replaces instances, scales workers | no |

pub mod activity;
pub mod config;
pub mod manager;
pub mod policy;
pub mod state;

pub use activity::{ACTIVITY_LOG_CAPACITY, Activity, ActivityKind, ActivityLog, NewActivity};
pub use config::WorkersConfig;
pub use manager::{
    GROUP_TAG, GroupSetup, Manager, ManagerParts, Role, Scaling, ScalingSignal, Tier,
};
pub use state::{Action, GroupState, GroupStatus, MemberState};
