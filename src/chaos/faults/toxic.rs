//! `latency`, `blackhole`, `reset-peer`, `bandwidth`: a toxic on one of the run's built-in
//! TCP proxies (`[[proxy]]`), removed when the duration ends.

use std::time::Duration;

use serde::Deserialize;

use crate::chaos::change::Change;
use crate::chaos::change::toxic::ToxicChange;
use crate::chaos::fault::{BoxFuture, Env, Fault, FaultError, Impact, Resource};
use crate::chaos::proxy::{Direction, Toxic};

/// ```toml
/// [[fault]]
/// type = "latency"
/// at = "1m"
/// duration = "30s"
/// proxy = "db"
/// latency = "200ms"
/// jitter = "50ms"
/// direction = "downstream"   # or "upstream", "both"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// The `[[proxy]]` name.
    pub proxy: String,
    /// Mean added delay per chunk.
    #[serde(with = "crate::units::serde_duration")]
    pub latency: Duration,
    /// Uniform deviation (±).
    #[serde(default, with = "crate::units::serde_duration")]
    pub jitter: Duration,
    /// Which way (default downstream: the answers).
    #[serde(default)]
    pub direction: Direction,
}

/// `type = "blackhole"`, `proxy = "db"`: accepts and discards everything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blackhole {
    /// The `[[proxy]]` name.
    pub proxy: String,
}

/// `type = "reset-peer"`, `proxy = "db"`: connections are closed with a TCP RST.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// The `[[proxy]]` name.
    pub proxy: String,
}

/// `type = "bandwidth"`, `proxy = "db"`, `bytes_per_second = 10000`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// The `[[proxy]]` name.
    pub proxy: String,
    /// The rate per connection and direction.
    pub bytes_per_second: u64,
    /// Which way (default downstream).
    #[serde(default)]
    pub direction: Direction,
}

fn resolve(env: &Env, proxy: &str) -> Result<Vec<Resource>, FaultError> {
    let p = env
        .proxies
        .get(proxy)
        .ok_or_else(|| FaultError::NoProxy(proxy.to_owned()))?;
    Ok(vec![Resource {
        id: proxy.to_owned(),
        label: format!("{} -> {}", p.local_addr(), p.upstream()),
        aws_tags: None,
    }])
}

fn change(proxy: &str, occurrence: &str, toxic: Toxic) -> Change {
    Change::Toxic(ToxicChange {
        proxy: proxy.to_owned(),
        toxic_id: occurrence.to_owned(),
        toxic,
        owner_pid: std::process::id(),
    })
}

macro_rules! toxic_fault {
    ($ty:ty, $name:literal, |$s:ident| $toxic:expr) => {
        impl Fault for $ty {
            fn type_name(&self) -> &'static str {
                $name
            }
            fn impact(&self) -> Impact {
                Impact::Reversible
            }
            fn resolve<'a>(
                &'a self,
                env: &'a Env,
            ) -> BoxFuture<'a, Result<Vec<Resource>, FaultError>> {
                Box::pin(async move { resolve(env, &self.proxy) })
            }
            fn prepare<'a>(
                &'a self,
                _env: &'a Env,
                _chosen: &'a [Resource],
                occurrence: &'a str,
            ) -> BoxFuture<'a, Result<Change, FaultError>> {
                let $s = self;
                let toxic = $toxic;
                Box::pin(async move { Ok(change(&self.proxy, occurrence, toxic)) })
            }
        }
    };
}

toxic_fault!(Latency, "latency", |s| Toxic::Latency {
    latency: s.latency,
    jitter: s.jitter,
    direction: s.direction,
});
toxic_fault!(Blackhole, "blackhole", |_s| Toxic::Blackhole);
toxic_fault!(ResetPeer, "reset-peer", |_s| Toxic::ResetPeer);
toxic_fault!(Bandwidth, "bandwidth", |s| Toxic::Bandwidth {
    bytes_per_second: s.bytes_per_second,
    direction: s.direction,
});
