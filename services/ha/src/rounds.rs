//! The lease holder's rounds (the decision loop): every check interval, or at once when a node changes health or
//! a request arrives, read the pointer and the stream's end; then, only while holding
//! the lease: answer a manual failover request, elect if the primary must change, and
//! start a consistency check when one is due (periodic, after a failover, requested).

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::consistency;
use crate::election::{decide, Decision};
use crate::failover;
use crate::health::Health;
use crate::refresh::refresh;
use crate::report::{Report, SyncRequest};
use crate::state::{sync_report_key, sync_request_key, Shared};

/// What the lease holder remembers between rounds.
#[derive(Default)]
struct Round {
    was_leader: bool,
    handled_failover: Option<Uuid>,
    handled_sync: Option<Uuid>,
    after_failover: bool,
    next_periodic: Option<Instant>,
}

/// Runs until shutdown.
pub(crate) async fn decision_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let c = &shared.config;
    let mut r = Round {
        next_periodic: c.consistency_interval().map(|d| Instant::now() + d),
        ..Round::default()
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(c.check_interval()) => {}
        }
        refresh(&shared).await;
        imgcrawl_telemetry::metrics().ha_rounds.inc();
        if !shared.lock().leader {
            r.was_leader = false;
            r.handled_failover = None;
            r.handled_sync = None;
            follow_report(&shared).await;
            continue;
        }
        if !r.was_leader {
            r.was_leader = true;
            took_lease(&shared, &mut r).await;
        }
        if failover::handle_request(&shared, &mut r.handled_failover).await {
            r.after_failover = true;
        }
        let decision = {
            let i = shared.lock();
            let settle = c.check_timeout() + c.check_interval() * (c.failures_before_down() + 1);
            let settled =
                i.nodes.iter().all(|n| n.health != Health::Unknown) || i.started.elapsed() > settle;
            decide(i.pointer(), &i.nodes, settled, c.auto_failover)
        };
        if let Decision::Elect { to, reason } = decision {
            match failover::switch(&shared, &to, &reason, false).await {
                Ok(_) => r.after_failover = true,
                Err(e) => warn!(to, error = %e, "election failed; trying again next round"),
            }
        }
        consistency_due(&shared, &mut r, &shutdown).await;
    }
}

/// A new lease holder publishes the current pointer's event again (the previous holder
/// may have died between writing the pointer and publishing; the message id makes it
/// a no-op otherwise) and learns which sync request was answered last.
async fn took_lease(shared: &Shared, r: &mut Round) {
    let current = shared.lock().pointer().cloned();
    if let Some(p) = current {
        failover::publish(shared, &p, p.reason.starts_with("manual")).await;
    }
    if let Ok(Some((report, _))) = shared.store.get::<Report>(&sync_report_key()).await {
        r.handled_sync = report.request_id;
    }
}

/// Not holding the lease: show the holder's last report.
async fn follow_report(shared: &Shared) {
    if let Ok(Some((report, _))) = shared.store.get::<Report>(&sync_report_key()).await {
        shared.lock().last_report = Some(report);
    }
}

/// Starts a consistency check if one is due and none is running.
async fn consistency_due(shared: &Arc<Shared>, r: &mut Round, shutdown: &CancellationToken) {
    if shared.lock().consistency_running {
        return;
    }
    let requested = match shared.store.get::<SyncRequest>(&sync_request_key()).await {
        Ok(Some((req, _))) if r.handled_sync != Some(req.id) => Some(req.id),
        _ => None,
    };
    let periodic = r.next_periodic.is_some_and(|t| Instant::now() >= t);
    let trigger = if requested.is_some() {
        "manual"
    } else if r.after_failover {
        "failover"
    } else if periodic {
        "periodic"
    } else {
        return;
    };
    if let Some(id) = requested {
        r.handled_sync = Some(id);
    }
    if trigger == "failover" {
        r.after_failover = false;
    }
    if let Some(d) = shared.config.consistency_interval() {
        r.next_periodic = Some(Instant::now() + d);
    }
    shared.lock().consistency_running = true;
    let (shared, shutdown) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move {
        let limit = shared.config.consistency_timeout();
        let check = consistency::check(&shared, trigger, requested, &shutdown);
        let report = match tokio::time::timeout(limit, check).await {
            Ok(r) => r,
            Err(_) => consistency::abandoned(&shared, trigger, requested, limit),
        };
        info!(status = %report.status, trigger, "consistency check");
        if let Err(e) = shared.store.put(&sync_report_key(), &report).await {
            warn!(error = %e, "cannot record the consistency report");
        }
        let mut i = shared.lock();
        i.consistency_running = false;
        i.last_report = Some(report);
    });
}
