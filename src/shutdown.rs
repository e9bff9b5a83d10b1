//! Turns SIGTERM / SIGINT into the shutdown signal every task watches, and SIGHUP into a reload.

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

/// At every SIGHUP, loads `path` again and sends the new configuration on `tx`; a file that does
/// not load is reported and the running configuration stays.
pub async fn on_hangup(
    path: std::path::PathBuf,
    tx: tokio::sync::mpsc::Sender<crate::config::Config>,
) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reloads need a restart");
        return;
    };
    while hup.recv().await.is_some() {
        match crate::config::Config::load(&path) {
            Ok(config) => {
                config.warnings.iter().for_each(|w| tracing::warn!("{w}"));
                tracing::info!(file = %path.display(), "SIGHUP: applying the reloaded configuration");
                if tx.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: reload refused, keeping the running configuration")
            }
        }
    }
}

/// Resolves once shutdown is asked for on `rx` (or its sender is gone). Returns nothing, so
/// it can sit in a `select!` whose other branches await: the watch guard is not `Send`.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await.is_ok();
}
