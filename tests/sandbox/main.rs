//! The embedded reference system, as one test binary (one link of the AWS SDKs instead of
//! five):
//!
//! | module | what |
//! |---|---|
//! | [`system`] | the whole sandbox: real child processes, failover, scaling, variants, no orphans |
//! | [`lb`] | the balancer: rotation, health checks, draining, streaming, retries |
//! | [`bus`] | the event bus: rules, functions, accounting, delivery to SQS queues (moto) |
//! | [`sqs_api`] | the SQS endpoint through `aws-sdk-sqs`, and the same scenarios on `moto_server` |
//! | [`ec2_api`] | the EC2 endpoint through `aws-sdk-ec2`, and the same suite on `moto_server` |
//! | [`worker`] | a worker in-process: how it stops |
//! | [`micro`] | arch microservices: path rules, service tags, the latency fault |

#[path = "../support/mod.rs"]
mod support;

mod bus;
mod ec2_api;
mod lb;
mod micro;
mod sqs_api;
mod system;
mod worker;
