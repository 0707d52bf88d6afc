//! One registered target: identity, health state, counters, and the in-flight guard that
//! keeps it counted busy until a proxied response body has been fully streamed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::health::{HealthMachine, Probe, TargetState, Transition};

/// A point-in-time view of one target, as returned by [`super::Balancer::targets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// The id given at registration (also sent as `x-shakedown-upstream`).
    pub id: String,
    /// The target group it was registered in (see [`super::routes`]).
    pub group: String,
    /// Where the target listens.
    pub addr: SocketAddr,
    /// Current state.
    pub state: TargetState,
    /// Requests currently being proxied to it (until their response body ends).
    pub in_flight: u64,
    /// Requests dispatched to it so far (retries count on the target they went to).
    pub requests: u64,
    /// Dispatched requests that failed upstream (502 or 504).
    pub failures: u64,
    /// When the state last changed.
    pub since: SystemTime,
    /// Why the state last changed.
    pub reason: String,
}

impl TargetStatus {
    /// `since` as milliseconds since the Unix epoch (0 if the clock is before 1970).
    pub fn since_ms(&self) -> u64 {
        crate::clock::unix_ms(self.since)
    }

    /// The JSON object used by [`super::Balancer::targets_json`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "group": self.group,
            "addr": self.addr.to_string(),
            "state": self.state,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "failures": self.failures,
            "since_ms": self.since_ms(),
            "reason": self.reason,
        })
    }
}

struct Health {
    machine: HealthMachine,
    since: SystemTime,
    reason: String,
}

/// A registered target, shared by the router, its health-check task and its drain task.
pub(super) struct Target {
    pub(super) id: String,
    pub(super) group: String,
    pub(super) addr: SocketAddr,
    /// `addr` as a URI authority and `id` as a header value, made once: the proxy puts them
    /// on every request and response.
    pub(super) authority: http::uri::Authority,
    pub(super) id_header: http::HeaderValue,
    health: Mutex<Health>,
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    idle: Notify,
    /// Cancelled on deregistration or balancer shutdown: stops the health-check task.
    pub(super) checks: CancellationToken,
}

impl Target {
    pub(super) fn new(
        id: &str,
        group: &str,
        addr: SocketAddr,
        machine: HealthMachine,
        reason: &str,
        checks: CancellationToken,
    ) -> Self {
        Target {
            id: id.to_string(),
            group: group.to_string(),
            addr,
            authority: addr
                .to_string()
                .parse()
                .expect("a socket address is a valid authority"),
            id_header: http::HeaderValue::from_str(id)
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid")),
            health: Mutex::new(Health {
                machine,
                since: SystemTime::now(),
                reason: reason.to_string(),
            }),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            idle: Notify::new(),
            checks,
        }
    }

    pub(super) fn state(&self) -> TargetState {
        self.health.lock().machine.state()
    }

    /// Feeds a health-check outcome; records and returns the transition it caused.
    pub(super) fn observe(&self, probe: &Probe) -> Option<Transition> {
        self.apply(|m| m.observe(probe))
    }

    /// Moves to `draining`; returns the transition unless already draining.
    pub(super) fn drain(&self) -> Option<Transition> {
        self.apply(HealthMachine::drain)
    }

    fn apply(
        &self,
        f: impl FnOnce(&mut HealthMachine) -> Option<Transition>,
    ) -> Option<Transition> {
        let mut health = self.health.lock();
        let transition = f(&mut health.machine)?;
        health.since = SystemTime::now();
        health.reason.clone_from(&transition.reason);
        Some(transition)
    }

    pub(super) fn status(&self) -> TargetStatus {
        let health = self.health.lock();
        TargetStatus {
            id: self.id.clone(),
            group: self.group.clone(),
            addr: self.addr,
            state: health.machine.state(),
            in_flight: self.in_flight.load(Ordering::Acquire),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            since: health.since,
            reason: health.reason.clone(),
        }
    }

    /// Requests being proxied to it now.
    pub(super) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request dispatched to this target; it stays in flight while the guard lives.
    pub(super) fn dispatch(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    pub(super) fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves once no request is in flight.
    pub(super) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Keeps a target's `in_flight` count raised until dropped.
pub(super) struct InFlight(Arc<Target>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// An upstream response body that holds its target's [`InFlight`] guard until it ends
/// (or the client goes away and the body is dropped). Frames pass through unbuffered.
pub(super) struct TrackedBody {
    inner: Incoming,
    _guard: InFlight,
}

impl TrackedBody {
    pub(super) fn new(inner: Incoming, guard: InFlight) -> Self {
        TrackedBody {
            inner,
            _guard: guard,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
