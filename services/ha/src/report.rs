//! What a consistency check answers and how one is asked for, as stored in the
//! `imgcrawl-ha` KV bucket and served by the HA API (`GET /api/sync-status`, `POST
//! /api/sync`). Plain data: the check itself is in `consistency`, the rounds that start
//! one in `rounds`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A request for a consistency check (`POST /api/sync`), stored in KV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Request id (the report names it).
    pub id: Uuid,
    /// When it was asked for.
    pub at: DateTime<Utc>,
}

/// One difference found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// Table.
    pub table: String,
    /// Check: rows, latest record, id range, digest, ...
    pub check: String,
    /// This node's value.
    pub left: String,
    /// The other side's value.
    pub right: String,
}

/// One node in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// The checkpoint it was digested at.
    pub checkpoint: Option<u64>,
    /// The node (or `reference`) it was compared with.
    pub compared_with: Option<String>,
    /// The result of the comparison (none: not compared).
    pub identical: Option<bool>,
    /// Rows in all projected tables.
    pub rows: Option<i64>,
    /// What differs.
    pub differences: Vec<Diff>,
    /// Why it was not compared, or what went wrong.
    pub note: Option<String>,
}

/// A consistency check's report (`GET /api/sync-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Report id.
    pub id: Uuid,
    /// The `POST /api/sync` request it answers, if any.
    pub request_id: Option<Uuid>,
    /// `periodic`, `failover` or `manual`.
    pub trigger: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// `identical` (every node compared, no difference), `different`, or
    /// `incomplete` (some node could not be compared).
    pub status: String,
    /// `status == "identical"`.
    pub identical: bool,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// The watcher that ran it.
    pub by: String,
}
