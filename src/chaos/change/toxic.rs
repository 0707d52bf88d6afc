//! A toxic on one of the run's built-in TCP proxies.
//!
//! The proxy lives in the harness process: if the harness dies the proxy (and its toxic) die
//! with it, so recovering such a change has nothing to do.

use serde::{Deserialize, Serialize};

use super::Undoable;
use crate::chaos::fault::{BoxFuture, Env, FaultError};
use crate::chaos::proxy::Toxic;

/// A toxic added to a proxy; undo removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ToxicChange {
    /// The proxy's name.
    pub proxy: String,
    /// The toxic's id on the proxy (unique per fault occurrence).
    pub toxic_id: String,
    /// The toxic.
    pub toxic: Toxic,
    /// The pid of the harness that owns the proxy.
    pub owner_pid: u32,
}

impl ToxicChange {
    fn owned_here(&self) -> bool {
        self.owner_pid == std::process::id()
    }
}

impl Undoable for ToxicChange {
    fn summary(&self) -> String {
        format!(
            "proxy {}: add toxic {} {}; undo: remove it",
            self.proxy,
            self.toxic_id,
            serde_json::to_string(&self.toxic).unwrap_or_default()
        )
    }

    fn apply<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let proxy = env
                .proxies
                .get(&self.proxy)
                .ok_or_else(|| FaultError::NoProxy(self.proxy.clone()))?;
            proxy.add_toxic(&self.toxic_id, self.toxic.clone());
            Ok(())
        })
    }

    fn undo<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            match env.proxies.get(&self.proxy) {
                Some(proxy) => {
                    proxy.remove_toxic(&self.toxic_id);
                    Ok(vec![])
                }
                None if !self.owned_here() => Ok(vec![format!(
                    "proxy {} belonged to pid {}, which is gone: the toxic went with it",
                    self.proxy, self.owner_pid
                )]),
                None => Err(FaultError::NoProxy(self.proxy.clone())),
            }
        })
    }

    fn verify<'a>(&'a self, env: &'a Env) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            match env.proxies.get(&self.proxy) {
                Some(p) if p.toxics().contains_key(&self.toxic_id) => Err(FaultError::NotVerified(
                    format!("toxic {} still on proxy {}", self.toxic_id, self.proxy),
                )),
                _ => Ok(()),
            }
        })
    }
}
