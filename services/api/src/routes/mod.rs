//! The endpoints, one file per concern. Every handler carries its OpenAPI description
//! (`#[utoipa::path]`); [`crate::openapi`] collects them.

pub mod content;
pub mod crawl;
pub mod failover;
pub mod ha;
pub mod health;
pub mod images;

use crate::error::HttpError;

/// NATS could not take an event: 503, logged.
pub(crate) fn publish_failed(e: imgcrawl_bus::BusError) -> HttpError {
    tracing::warn!(error = %e, "publish failed");
    HttpError::unavailable("nats is unavailable; nothing was changed, try again shortly")
}
