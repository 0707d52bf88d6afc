//! Turning Ctrl-C and SIGTERM into a cancellation the task tree observes.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first Ctrl-C or SIGTERM. Returns the listener task.
pub fn cancel_on_signals(token: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => eprintln!("\ninterrupted (Ctrl-C): stopping..."),
            _ = term.recv() => eprintln!("\nSIGTERM: stopping..."),
            _ = token.cancelled() => return,
        }
        token.cancel();
    })
}
