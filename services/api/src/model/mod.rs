//! The JSON bodies of the API, with their OpenAPI schemas (`utoipa::ToSchema`).

pub mod crawl;
pub mod ha;
pub mod images;

use serde::Serialize;
use utoipa::ToSchema;

/// Raw bytes in a response (an image); documented as `string`, format `binary`.
#[derive(Debug, Clone, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// `GET /healthz`: the process is alive.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`: whether NATS and the primary database answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// NATS.
    pub nats: Check,
    /// The primary PostgreSQL node.
    pub postgres: Check,
    /// The PostgreSQL node checked: the primary reads go to now.
    pub primary: String,
}

/// One dependency check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// It answered in time.
    pub ok: bool,
    /// Round trip in milliseconds, when it answered.
    pub latency_ms: Option<f64>,
    /// Why not, when it did not.
    pub error: Option<String>,
}
