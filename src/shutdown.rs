//! Turning Ctrl-C and SIGTERM into a cancellation the task tree observes: the one signal
//! handler of every command (and of the sandbox's instance processes).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// What to say on stderr when a signal arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// "interrupted (Ctrl-C): stopping..." (commands a person runs).
    Terminal,
    /// A log line only (the sandbox's instance processes).
    Log,
}

/// Cancels `token` on the first Ctrl-C (SIGINT) or SIGTERM. The handlers are installed
/// before this returns, so a signal that arrives right after is not lost. Returns the
/// listener task; it ends by itself when `token` is cancelled otherwise.
pub fn cancel_on_signals(token: CancellationToken) -> tokio::task::JoinHandle<()> {
    listen(token, Announce::Terminal)
}

/// [`cancel_on_signals`], saying so as `announce` asks.
pub fn listen(token: CancellationToken, announce: Announce) -> tokio::task::JoinHandle<()> {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    tokio::spawn(async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for signals: {e}");
                token.cancelled().await;
                return;
            }
        };
        let what = tokio::select! {
            _ = int.recv() => "interrupted (Ctrl-C)",
            _ = term.recv() => "SIGTERM",
            _ = token.cancelled() => return,
        };
        match announce {
            Announce::Terminal => eprintln!("\n{what}: stopping..."),
            Announce::Log => tracing::info!("{what}: finishing in-flight work"),
        }
        token.cancel();
    })
}
