//! Serving a router on a bound listener, over HTTP or HTTPS, until a shutdown signal;
//! in-flight requests finish first. Handlers see the peer address (`ConnectInfo`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::WebError;

/// How long HTTPS connections get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (HTTPS with `tls`) until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    shutdown: CancellationToken,
) -> Result<(), WebError> {
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, service)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|e| WebError::Serve(e.to_string()));
    };
    let listener = listener
        .into_std()
        .map_err(|e| WebError::Serve(e.to_string()))?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let stop = tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(DRAIN));
    });
    let served = axum_server::from_tcp_rustls(listener, tls)
        .handle(handle)
        .serve(service)
        .await;
    stop.abort();
    served.map_err(|e| WebError::Serve(e.to_string()))
}
