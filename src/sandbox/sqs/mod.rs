//! SQS-compatible endpoint.
pub mod digest;
pub mod model;
