//! Bounded waiting: one `eventually` for async tests, one for blocking ones, and a bounded
//! wait for a child process.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// What a condition returns: `bool` (holds or not) or `Option<T>` (the value once there).
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `check` every 10 ms until it holds (or yields a value) and returns that value;
/// panics with `what` after `limit`. The clock is the real one (`std`), so the limit holds
/// under tokio's paused time too.
pub async fn eventually<R: Ready>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> R,
) -> R::Value {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await.ready() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for tests without a runtime: polls on this thread.
pub fn eventually_blocking<R: Ready>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> R,
) -> R::Value {
    let start = Instant::now();
    loop {
        if let Some(value) = check().ready() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Waits for `child` to exit, at most `limit`; past that it is killed and the test fails.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(POLL);
    }
}
