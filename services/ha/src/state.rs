//! What a watcher knows, shared by its tasks (node checkers, lease, decisions,
//! consistency checks, HTTP API), and the status document built from it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use imgcrawl_bus::ha::{HaStore, Pointer, POSTGRES};
use imgcrawl_bus::Bus;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::health::{NodeState, StreamEnd};
use crate::objects::ObjectState;
use crate::report::Report;
use crate::Config;

/// KV key of the watchers' lease.
pub(crate) fn lease_key() -> String {
    format!("{POSTGRES}-lease")
}
/// KV key of the pending consistency-check request.
pub(crate) fn sync_request_key() -> String {
    format!("{POSTGRES}-sync-request")
}
/// KV key of the last consistency report.
pub(crate) fn sync_report_key() -> String {
    format!("{POSTGRES}-sync-report")
}

/// Everything a watcher's tasks share.
pub(crate) struct Shared {
    pub config: Config,
    pub me: String,
    pub bus: Bus,
    pub store: HaStore,
    pub inner: Mutex<Inner>,
    /// Wakes the decision loop (a node's health changed, a request arrived).
    pub wake: Notify,
    /// The watcher's shutdown signal (retries give up when it fires).
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        config: Config,
        me: String,
        bus: Bus,
        store: HaStore,
        shutdown: CancellationToken,
    ) -> Arc<Shared> {
        let nodes = config
            .nodes
            .iter()
            .map(|n| NodeState::new(&n.name, n.priority))
            .collect();
        let objects = config.object_stores.iter().map(ObjectState::new).collect();
        Arc::new(Shared {
            config,
            me,
            bus,
            store,
            inner: Mutex::new(Inner {
                nodes,
                objects,
                pointer: None,
                leader: false,
                holder: None,
                stream: None,
                consistency_running: false,
                last_report: None,
                started: Instant::now(),
            }),
            wake: Notify::new(),
            shutdown,
        })
    }

    /// The shared state, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The mutable part.
pub(crate) struct Inner {
    pub nodes: Vec<NodeState>,
    pub objects: Vec<ObjectState>,
    /// The pointer and its revision, as last read or written.
    pub pointer: Option<(Pointer, u64)>,
    /// Whether this watcher holds the lease.
    pub leader: bool,
    /// The lease holder as last seen.
    pub holder: Option<String>,
    pub stream: Option<StreamEnd>,
    pub consistency_running: bool,
    pub last_report: Option<Report>,
    pub started: Instant,
}

impl Inner {
    /// The current pointer, if any.
    pub fn pointer(&self) -> Option<&Pointer> {
        self.pointer.as_ref().map(|(p, _)| p)
    }
}

/// A node in the status: its state and its role.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// `primary` or `standby`.
    pub role: &'static str,
    /// Health, checkpoint, epoch, lag.
    #[serde(flatten)]
    pub state: NodeState,
}

/// The watcher itself.
#[derive(Debug, Clone, Serialize)]
pub struct WatcherView {
    /// This watcher's id.
    pub id: String,
    /// Whether it holds the lease (acts).
    pub leader: bool,
    /// Who holds the lease, as last seen.
    pub lease_holder: Option<String>,
}

/// The seed defaults in force.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// Check interval, ms.
    pub check_interval_ms: u64,
    /// Failed checks before down.
    pub failures_before_down: u32,
    /// Check timeout, ms.
    pub check_timeout_ms: u64,
    /// Lag threshold, s.
    pub lag_threshold_secs: u64,
    /// Periodic consistency interval, s.
    pub consistency_interval_secs: u64,
    /// Automatic failover.
    pub auto_failover: bool,
}

/// The consistency part of the status.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyView {
    /// A check is running.
    pub running: bool,
    /// The last report this watcher knows.
    pub last: Option<Report>,
}

/// `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The projection target (`postgres`).
    pub target: &'static str,
    /// The primary's name.
    pub primary: Option<String>,
    /// The current epoch.
    pub epoch: Option<u64>,
    /// The pointer (primary, epoch, reason, time, previous primary): the last failover.
    pub last_failover: Option<Pointer>,
    /// This watcher and the lease.
    pub watcher: WatcherView,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// The stream's end, for lag.
    pub stream: Option<StreamEnd>,
    /// Consistency checks.
    pub consistency: ConsistencyView,
    /// Object stores (reported only).
    pub object_stores: Vec<ObjectState>,
    /// The settings in force.
    pub settings: SettingsView,
    /// When this status was made.
    pub at: DateTime<Utc>,
}

/// Builds the status document.
pub(crate) fn status(shared: &Shared) -> Status {
    let c = &shared.config;
    let i = shared.lock();
    let pointer = i.pointer().cloned();
    let primary = pointer.as_ref().map(|p| p.primary.clone());
    let nodes = i
        .nodes
        .iter()
        .map(|n| NodeView {
            role: if primary.as_deref() == Some(n.name.as_str()) {
                "primary"
            } else {
                "standby"
            },
            state: n.clone(),
        })
        .collect();
    Status {
        target: POSTGRES,
        epoch: pointer.as_ref().map(|p| p.epoch),
        primary,
        last_failover: pointer,
        watcher: WatcherView {
            id: shared.me.clone(),
            leader: i.leader,
            lease_holder: i.holder.clone(),
        },
        nodes,
        stream: i.stream,
        consistency: ConsistencyView {
            running: i.consistency_running,
            last: i.last_report.clone(),
        },
        object_stores: i.objects.clone(),
        settings: SettingsView {
            check_interval_ms: c.check_interval_ms,
            failures_before_down: c.failures_before_down(),
            check_timeout_ms: c.check_timeout_ms,
            lag_threshold_secs: c.lag_threshold_secs,
            consistency_interval_secs: c.consistency_interval_secs,
            auto_failover: c.auto_failover,
        },
        at: Utc::now(),
    }
}
