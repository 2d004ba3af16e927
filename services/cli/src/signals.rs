//! Stopping long-running commands cleanly on SIGINT (Ctrl-C) or SIGTERM.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `token` on the first SIGINT or SIGTERM. If the SIGTERM handler cannot be
/// installed, SIGINT still works (and the reason is logged).
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        info!("shutting down: finishing in-flight work");
        token.cancel();
    });
}
