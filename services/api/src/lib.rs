//! imgcrawl's HTTP API and web gallery.
//!
//! * Reads come from the primary index node (PostgreSQL): the one database, or with HA
//!   nodes the node the HA pointer names, followed live ([`nodes`]); writes are events
//!   (`crawl.requested`, `crawl.stopped`, `image.deleted`) published on the stream,
//!   never rows written into the projection.
//! * Endpoints (see [`router::ROUTES`] and `/api/openapi.json`): crawl start, status
//!   and stop ([`routes::crawl`]); images by filter with keyset pagination, one image,
//!   its bytes with ranges and ETags, thumbnails, deletion ([`routes::images`],
//!   [`routes::content`], [`thumbs`]); HA state ([`routes::ha`]); probes
//!   ([`routes::health`]); the gallery at `/` ([`gallery`]).
//! * Security: a bearer token on mutating endpoints, compared in constant time
//!   ([`auth`]); a token bucket per client ([`limit`]); a body size limit; validation
//!   with JSON errors that never carry SQL or internals ([`error`], [`validate`]).
//!
//! [`run`] serves until `shutdown` fires, then drains in-flight requests.

pub mod auth;
pub mod config;
pub mod cursor;
pub mod db;
pub mod error;
pub mod extract;
pub mod filters;
pub mod gallery;
pub mod lag;
pub mod limit;
pub mod media;
pub mod model;
pub mod nodes;
pub mod openapi;
pub mod range;
pub mod router;
pub mod routes;
pub mod state;
pub mod thumbs;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use imgcrawl_bus::Bus;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, RateLimit, Thumbnails, TOKEN_ENV};
pub use error::{ApiError, HttpError};
pub use openapi::ApiDoc;
pub use router::ROUTES;
pub use state::AppState;

/// The shared state for `config`: token, database nodes (pools connect lazily; with
/// HA nodes, the HA pointer is read and then followed), bucket, thumbnailer.
pub async fn state(bus: Bus, config: Config) -> Result<AppState, ApiError> {
    let token = auth::Token::new(&config.resolve_token()?);
    let nodes = Arc::new(nodes::Nodes::new(&config)?);
    let store = imgcrawl_bucket::open_store(&config.store)?;
    let thumbs = thumbs::Thumbnailer::new(config.thumbnails.clone())?;
    nodes.start_following(&bus).await?;
    Ok(AppState {
        nodes,
        bus,
        store,
        token,
        limiter: Arc::new(limit::RateLimiter::new(config.rate_limit.clone())),
        thumbs: Arc::new(thumbs),
        recent: Arc::default(),
        lag_cache: Arc::default(),
        config: Arc::new(config),
    })
}

/// A bound server, not yet serving (so a caller can learn the port it got).
pub struct Server {
    listener: TcpListener,
    app: axum::Router,
}

impl Server {
    /// Builds the state and binds `config.listen`.
    pub async fn bind(bus: Bus, config: Config) -> Result<Server, ApiError> {
        let addr = config.listen;
        let app = router::app(state(bus, config).await?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ApiError::Listen {
                addr: addr.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Server { listener, app })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, ApiError> {
        self.listener.local_addr().map_err(|e| ApiError::Listen {
            addr: "(bound socket)".into(),
            detail: e.to_string(),
        })
    }

    /// Serves until `shutdown` fires; in-flight requests finish first.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ApiError> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "api listening");
        let service = self.app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|e| ApiError::Serve(e.to_string()))
    }
}

/// Serves the API and the gallery on `config.listen` until `shutdown` fires.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), ApiError> {
    Server::bind(bus, config).await?.serve(shutdown).await
}
