//! The Auto Scaling role: groups with min/max/desired, a scaling policy
//! ([`policy`], pure) and the activity log of every decision.

pub mod policy;
