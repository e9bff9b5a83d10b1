//! Turns SIGTERM / SIGINT into the shutdown signal every task watches.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Sends `true` on `tx` at the first SIGTERM or SIGINT.
pub async fn on_signal(tx: watch::Sender<bool>) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the gateway with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "shutting down: no new connections, draining in-flight work"
    );
    let _ = tx.send(true);
}
