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
//! * Security (shared with the HA API in `imgcrawl_web`, see docs/security.md): an
//!   admin token on every mutating endpoint and optionally a read token on the others,
//!   compared in constant time; a rate limit per client, told apart through trusted
//!   proxies only; HTTPS with rustls; a body size limit; validation with JSON errors
//!   that never carry SQL or internals ([`error`], [`validate`]).
//!
//! [`run`] serves until `shutdown` fires, then drains in-flight requests.

pub mod config;
pub mod cursor;
pub mod db;
pub mod error;
pub mod extract;
pub mod filters;
pub mod gallery;
pub mod lag;
pub mod media;
pub mod model;
pub mod nodes;
pub mod object;
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

pub use config::{Config, Thumbnails, TOKEN_ENV};
pub use error::{ApiError, HttpError};
pub use imgcrawl_web::{RateLimit, Scope, TlsConfig, TokenSource};
pub use openapi::ApiDoc;
pub use router::ROUTES;
pub use state::AppState;

/// The shared state for `config`: tokens, database nodes (pools connect lazily; with
/// HA nodes, the HA pointer is read and then followed), bucket, thumbnailer.
pub async fn state(bus: Bus, config: Config) -> Result<AppState, ApiError> {
    let tokens = config.tokens()?;
    let proxies = imgcrawl_web::TrustedProxies::parse(&config.trusted_proxies)?;
    let nodes = Arc::new(nodes::Nodes::new(&config)?);
    let store = imgcrawl_bucket::open_store(&config.store)?;
    let thumbs = thumbs::Thumbnailer::new(config.thumbnails.clone())?;
    nodes.start_following(&bus).await?;
    Ok(AppState {
        nodes,
        bus,
        store,
        tokens: Arc::new(tokens),
        limiter: Arc::new(imgcrawl_web::Limiter::new(&config.rate_limit, proxies)),
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
    tls: Option<imgcrawl_web::RustlsConfig>,
}

impl Server {
    /// Builds the state and binds `config.listen`.
    pub async fn bind(bus: Bus, config: Config) -> Result<Server, ApiError> {
        let addr = config.listen;
        let tls = config.tls.as_ref().map(TlsConfig::load).transpose()?;
        let app = router::app(state(bus, config).await?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ApiError::Listen {
                addr: addr.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Server { listener, app, tls })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, ApiError> {
        self.listener.local_addr().map_err(|e| ApiError::Listen {
            addr: "(bound socket)".into(),
            detail: e.to_string(),
        })
    }

    /// Whether it serves HTTPS.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` fires; in-flight requests finish first.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ApiError> {
        let addr = self.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, "api listening");
        imgcrawl_web::serve(self.listener, self.app, self.tls, shutdown)
            .await
            .map_err(|e| ApiError::Serve(e.to_string()))
    }
}

/// Serves the API and the gallery on `config.listen` until `shutdown` fires.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), ApiError> {
    Server::bind(bus, config).await?.serve(shutdown).await
}
