//! Shared test helpers.
pub mod target;
