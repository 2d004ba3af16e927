//! The watcher's metrics and readiness: every check interval its status (the same
//! document as `GET /api/status`) is copied into the gauges (node health, the
//! primary, node lag, the epoch, lease holding); failovers and rounds are counted where
//! they happen. The watcher is ready (`watcher` on `/readyz`) once it runs; a database
//! node being down is what it watches, not a reason to be unready.

use std::sync::Arc;

use imgcrawl_telemetry::labels::Node;
use imgcrawl_telemetry::{metrics, ready};
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::state::{status, Shared, Status};

/// The readiness state of a running watcher.
pub(crate) const READY_STATE: &str = "watcher";

/// Copies `s` into the gauges.
pub(crate) fn export(s: &Status) {
    let m = metrics();
    for n in &s.nodes {
        let label = Node {
            node: n.state.name.clone(),
        };
        m.ha_node_up
            .get_or_create(&label)
            .set(i64::from(n.state.health == Health::Up));
        m.ha_node_check_failures
            .get_or_create(&label)
            .set(i64::from(n.state.consecutive_failures));
        m.ha_node_primary
            .get_or_create(&label)
            .set(i64::from(n.role == "primary"));
        if let Some(lag) = n.state.lag_secs {
            m.ha_node_lag_seconds.get_or_create(&label).set(lag);
        }
    }
    if let Some(epoch) = s.epoch {
        m.ha_epoch.set(i64::try_from(epoch).unwrap_or(i64::MAX));
    }
    m.ha_leader.set(i64::from(s.watcher.leader));
}

/// Exports the status every check interval until `shutdown`; ready meanwhile.
pub(crate) async fn export_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    ready::global().set(READY_STATE, Ok(()));
    loop {
        export(&status(&shared));
        if !crate::watcher::pause(shared.config.check_interval(), &shutdown).await {
            break;
        }
    }
    ready::global().set(READY_STATE, Err("stopped".into()));
}
