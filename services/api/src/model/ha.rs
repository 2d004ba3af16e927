//! HA state: the database nodes, the primary, replication lag, failover.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/ha-status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaStatus {
    /// `single` (one node, no watcher) or `watched` (an HA watcher picks the primary).
    pub mode: String,
    /// Name of the primary node: the one the HA pointer names (`watched`; the first
    /// node before any election), or the one database (`single`).
    pub primary: String,
    /// The HA epoch (fencing token) of the primary; 0 without a watcher.
    pub epoch: i64,
    /// The node this server reads from now (the primary, unless the pointer names a
    /// node this server is not configured with).
    pub reads_from: String,
    /// The HA pointer as this server last saw it (none in `single` mode and before
    /// the first election).
    pub pointer: Option<HaPointer>,
    /// Every node.
    pub nodes: Vec<HaNode>,
    /// The event stream the nodes project.
    pub stream: StreamState,
    /// When this was measured.
    pub checked_at: DateTime<Utc>,
}

/// The HA pointer (KV `imgcrawl-ha`, key `postgres`), written by the HA watcher.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaPointer {
    /// The primary node's name.
    pub primary: String,
    /// The fencing epoch: strictly increasing with every change of primary.
    pub epoch: u64,
    /// Why this node became primary.
    pub reason: String,
    /// When the watcher wrote it.
    pub at: DateTime<Utc>,
    /// The primary before.
    pub previous: Option<String>,
}

/// One PostgreSQL node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaNode {
    /// Node name (its checkpoint row's name).
    pub name: String,
    /// `primary` or `standby`.
    pub role: String,
    /// Host, port and database (no credentials).
    pub endpoint: String,
    /// Its connection URL, password replaced by `***`.
    pub url: String,
    /// It answered `SELECT 1` in time (reachable).
    pub healthy: bool,
    /// Round trip of the health query in milliseconds.
    pub latency_ms: Option<f64>,
    /// Last stream sequence it applied.
    pub checkpoint: Option<u64>,
    /// The fencing epoch recorded on it (see docs/ha.md).
    pub epoch: Option<u64>,
    /// Stream sequences it is behind (see `IndexLag`).
    pub lag_events: Option<u64>,
    /// Age in seconds of the oldest event it has not applied.
    pub lag_seconds: Option<f64>,
    /// Why it is unhealthy.
    pub error: Option<String>,
}

/// The event stream's position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamState {
    /// Stream name.
    pub name: String,
    /// Its last sequence.
    pub last_seq: u64,
}

/// `GET /api/ha/sync-status`: how far each node is from the stream and from the others.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncStatus {
    /// Every node has applied everything it applies (lag 0).
    pub in_sync: bool,
    /// Per node.
    pub nodes: Vec<NodeSync>,
    /// The stream.
    pub stream: StreamState,
    /// When this was measured.
    pub checked_at: DateTime<Utc>,
}

/// One node's synchronisation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeSync {
    /// Node name.
    pub name: String,
    /// Last stream sequence it applied.
    pub checkpoint: Option<u64>,
    /// Stream sequences it is behind.
    pub lag_events: Option<u64>,
    /// Age in seconds of the oldest event it has not applied.
    pub lag_seconds: Option<f64>,
    /// Its lag is 0.
    pub in_sync: bool,
}

/// `POST /api/ha/failover`'s body (shared with the HA API's `POST /api/failover`).
pub use imgcrawl_web::ha::FailoverRequest;

/// `200` answer to a failover: the HA watcher holding the lease made the target the
/// primary; the new pointer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailoverDone {
    /// The new primary.
    pub primary: String,
    /// Its fencing epoch (strictly above the previous primary's).
    pub epoch: u64,
    /// Why, as recorded in the pointer and the failover history.
    pub reason: String,
    /// When the watcher wrote the pointer.
    pub at: DateTime<Utc>,
    /// The primary before.
    pub previous: Option<String>,
    /// The watcher that carried the failover out.
    pub watcher: String,
}
