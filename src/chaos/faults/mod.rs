//! One module per fault type. Each holds the type's `[[fault]]` parameters (whose doc
//! comments are the user docs) and its [`Fault`](super::fault::Fault) implementation.

pub mod asg;
pub mod command;
pub mod delay;
pub mod fis;
pub mod instances;
pub mod kill;
pub mod service;
pub mod stall;
pub mod stop;
pub mod terminate;
pub mod toxic;

use super::fault::{FaultError, Resource};
use super::guard::Cap;

/// Turns the spec's `count`/`percent` into a [`Cap`].
pub(crate) fn cap(count: Option<usize>, percent: Option<f64>) -> Option<Cap> {
    Cap::from_spec(count, percent).ok().flatten()
}

/// Validates `count`/`percent` (used by `resolve`, before anything is touched).
pub(crate) fn check_cap(count: Option<usize>, percent: Option<f64>) -> Result<(), FaultError> {
    Cap::from_spec(count, percent)
        .map(|_| ())
        .map_err(FaultError::Invalid)
}

/// The instance ids of chosen resources.
pub(crate) fn ids(chosen: &[Resource]) -> Vec<String> {
    chosen.iter().map(|r| r.id.clone()).collect()
}
