//! What keeps a microservice's trouble its own: bounded request slots, a circuit breaker
//! around calls to another service, and the service's added latency (the
//! `service-latency` fault), read from the sandbox's control endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

/// `slots` requests served at once; up to `waiting` more wait for one; beyond, refused.
/// Nothing waits without bound.
#[derive(Debug)]
pub struct Slots {
    slots: Semaphore,
    waiting: AtomicU32,
    max_waiting: u32,
}

impl Slots {
    /// `slots` at once (at least 1), `waiting` more may wait.
    pub fn new(slots: u32, waiting: u32) -> Slots {
        Slots {
            slots: Semaphore::new(slots.max(1) as usize),
            waiting: AtomicU32::new(0),
            max_waiting: waiting,
        }
    }

    /// A slot, after waiting for one if need be; `None` when too many already wait.
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = self.slots.acquire().await.ok();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit
    }
}

/// A circuit breaker: one failed or timed-out call opens it, and while it is open callers
/// take their fallback at once instead of waiting on a service known to be in trouble. A
/// background probe (not a caller's request) retries the service every
/// [`Breaker::PROBE_EVERY`] and closes the breaker at its first success. So a slow
/// dependency costs at most the calls already in flight when it turned slow, each bounded
/// by the caller's timeout.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    open: Arc<AtomicBool>,
}

impl Breaker {
    /// Time between two probes of an open breaker.
    pub const PROBE_EVERY: Duration = Duration::from_millis(250);

    /// Whether calls should go to the fallback.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker after a failure; the first to open it starts the probe, which
    /// calls `probe` until it succeeds (or `stop`), then closes it.
    pub fn trip<F, Fut>(&self, stop: &CancellationToken, probe: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("circuit open: calls take the fallback until a probe succeeds");
        let open = Arc::clone(&self.open);
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Self::PROBE_EVERY) => {}
                }
                if probe().await {
                    open.store(false, Ordering::Release);
                    tracing::info!("circuit closed: the probe succeeded");
                    return;
                }
            }
        });
    }
}

/// The service's added latency (milliseconds), as the control endpoint last said.
#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<AtomicU64>);

impl Latency {
    /// Time between two reads of the control endpoint.
    pub const POLL_EVERY: Duration = Duration::from_millis(200);

    /// The delay to add to a request now.
    pub fn added(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }

    /// The shared counter (a worker adds it to each job).
    pub fn shared(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.0)
    }

    /// Reads `GET <control>/services/<service>/latency` (`{"delay_ms": N}`) every
    /// [`Latency::POLL_EVERY`] until `stop`. An unreadable answer keeps the last value.
    pub fn follow(&self, control_url: &str, service: &str, stop: CancellationToken) {
        let url = format!(
            "{}/services/{service}/latency",
            control_url.trim_end_matches('/')
        );
        let value = Arc::clone(&self.0);
        let http = crate::tls::client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("a plain HTTP client builds");
        tokio::spawn(async move {
            loop {
                let read = async {
                    let v: serde_json::Value =
                        http.get(&url).send().await.ok()?.json().await.ok()?;
                    v.get("delay_ms")?.as_u64()
                };
                if let Some(ms) = read.await {
                    value.store(ms, Ordering::Relaxed);
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Self::POLL_EVERY) => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_queue_a_bounded_number_and_refuse_the_rest() {
        let slots = Arc::new(Slots::new(1, 1));
        let first = slots.acquire().await.unwrap();
        let s = Arc::clone(&slots);
        let waiter = tokio::spawn(async move { s.acquire().await.is_some() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            slots.acquire().await.is_none(),
            "the second waiter is refused"
        );
        drop(first);
        assert!(waiter.await.unwrap(), "the waiter got the freed slot");
    }

    #[tokio::test]
    async fn a_tripped_breaker_stays_open_until_its_probe_succeeds() {
        let breaker = Breaker::default();
        let stop = CancellationToken::new();
        let healthy = Arc::new(AtomicBool::new(false));
        let h = Arc::clone(&healthy);
        breaker.trip(&stop, move || {
            let h = Arc::clone(&h);
            async move { h.load(Ordering::Acquire) }
        });
        assert!(breaker.is_open());
        tokio::time::sleep(Breaker::PROBE_EVERY * 3).await;
        assert!(breaker.is_open(), "still failing: still open");
        healthy.store(true, Ordering::Release);
        tokio::time::sleep(Breaker::PROBE_EVERY * 3).await;
        assert!(!breaker.is_open(), "closed after a successful probe");
        stop.cancel();
    }
}
