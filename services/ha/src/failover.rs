//! Changing the primary: fence, write the pointer with compare-and-set, stamp, and
//! publish the history event. Only the lease holder calls [`switch`], and
//! [`handle_request`] for manual requests (the protocol, shared with the CLI and the
//! API, is `imgcrawl_bus::ha_requests`).
//!
//! Order, and why:
//! 1. the new epoch is above the pointer's and above every epoch seen on a node;
//! 2. if the old primary answers (a switchover, a lagging primary), the new epoch is
//!    stamped on it first: its writer, still holding the old epoch, can no longer
//!    commit there, before anyone is told about the new primary;
//! 3. the pointer is written with compare-and-set on its revision (a watcher that lost
//!    the lease in between, or raced another, changes nothing);
//! 4. the new epoch is stamped on the new primary (its writer records it anyway with
//!    its next batch);
//! 5. `imgcrawl.ha.failover` is published (message id `ha.failover:postgres:<epoch>`,
//!    so a new lease holder can publish the current pointer's event again safely).

use std::time::Duration;

use chrono::Utc;
use imgcrawl_bus::ha::{Pointer, POSTGRES};
use imgcrawl_bus::ha_requests::{
    FailoverRequest, FailoverResult, FAILOVER_REQUEST_KEY, FAILOVER_RESULT_KEY,
};
use imgcrawl_bus::retry::{retry, Policy};
use imgcrawl_events::{Event, HaFailover};
use tracing::{info, warn};
use uuid::Uuid;

use crate::election::{check_manual, next_epoch, Manual};
use crate::health::{probe, Health};
use crate::state::Shared;

fn url_of(shared: &Shared, node: &str) -> Option<String> {
    let n = shared.config.nodes.iter().find(|n| n.name == node)?;
    Some(n.url.clone())
}

/// Stamps `epoch` on `node` (bounded by the check timeout); records what the node
/// says afterwards.
async fn stamp(shared: &Shared, node: &str, epoch: u64) {
    let Some(url) = url_of(shared, node) else {
        return;
    };
    let (name, timeout) = (
        &shared.config.checkpoint_name,
        shared.config.check_timeout(),
    );
    match probe(&url, name, Some(epoch), timeout).await {
        Ok(p) => {
            let mut i = shared.lock();
            if let Some(n) = i.nodes.iter_mut().find(|n| n.name == node) {
                n.epoch = Some(p.epoch);
            }
        }
        Err(e) => warn!(node, epoch, error = %e, "cannot stamp the epoch yet; the checks retry"),
    }
}

/// Makes `to` the primary with a new epoch. Returns the new pointer, or why not.
pub(crate) async fn switch(
    shared: &Shared,
    to: &str,
    reason: &str,
    manual: bool,
) -> Result<Pointer, String> {
    let (current, revision, epoch, old_up) = {
        let i = shared.lock();
        let current = i.pointer().cloned();
        let old_up = current.as_ref().is_some_and(|p| {
            p.primary != to
                && i.nodes
                    .iter()
                    .any(|n| n.name == p.primary && n.health == Health::Up)
        });
        let revision = i.pointer.as_ref().map(|(_, r)| *r);
        (current, revision, next_epoch(i.pointer(), &i.nodes), old_up)
    };
    let previous = current.as_ref().map(|p| p.primary.clone());
    if let (true, Some(old)) = (old_up, previous.as_deref()) {
        stamp(shared, old, epoch).await;
    }
    let pointer = Pointer {
        primary: to.to_string(),
        epoch,
        reason: reason.to_string(),
        at: Utc::now(),
        previous: previous.clone().filter(|p| p != to),
    };
    let written = shared
        .store
        .put_if(POSTGRES, &pointer, revision)
        .await
        .map_err(|e| format!("write the pointer: {e}"))?;
    let Some(rev) = written else {
        return Err("the pointer changed meanwhile (another watcher acted)".into());
    };
    shared.lock().pointer = Some((pointer.clone(), rev));
    info!(from = ?previous, to, epoch, reason, "primary changed");
    imgcrawl_telemetry::metrics().ha_failovers.inc();
    stamp(shared, to, epoch).await;
    publish(shared, &pointer, manual).await;
    Ok(pointer)
}

/// Retries of the `ha.failover` publish: 200 ms doubling, five tries in all.
const PUBLISH_RETRIES: Policy =
    Policy::exponential(Duration::from_millis(200), Duration::from_millis(1600)).tries(5);

/// Publishes the `ha.failover` event of `pointer` (a few attempts).
pub(crate) async fn publish(shared: &Shared, pointer: &Pointer, manual: bool) {
    let event = Event::HaFailover(HaFailover {
        target: POSTGRES.into(),
        from: pointer.previous.clone(),
        to: pointer.primary.clone(),
        epoch: pointer.epoch,
        reason: pointer.reason.clone(),
        manual,
        occurred_at: pointer.at,
    });
    let publish = || async { shared.bus.publisher().publish(&event).await };
    let what = "publishing ha.failover";
    // Gives up after the tries or at shutdown: the pointer in KV is the truth, and the
    // next lease holder publishes the current pointer's event again.
    let _ = retry(PUBLISH_RETRIES, what, &shared.shutdown, publish).await;
}

/// Carries out a pending manual request, once (the lease holder calls this every
/// round; `handled` remembers the last request answered). True if the primary changed.
pub(crate) async fn handle_request(shared: &Shared, handled: &mut Option<Uuid>) -> bool {
    let store = &shared.store;
    let req = match store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await {
        Ok(Some((r, _))) => r,
        _ => return false,
    };
    if *handled == Some(req.id) {
        return false;
    }
    if handled.is_none() {
        // New lease holder: learn what was answered already.
        if let Ok(Some((r, _))) = store.get::<FailoverResult>(FAILOVER_RESULT_KEY).await {
            *handled = Some(r.id);
            if r.id == req.id {
                return false;
            }
        }
    }
    *handled = Some(req.id);
    let stale = Utc::now() - req.at
        > chrono::Duration::from_std(shared.config.request_timeout() * 3).unwrap_or_default();
    let outcome = if stale {
        Err("request expired before a watcher held the lease".to_string())
    } else {
        run_request(shared, &req).await
    };
    let switched = outcome.as_ref().is_ok_and(|p| p.at >= req.at);
    let result = FailoverResult {
        id: req.id,
        ok: outcome.is_ok(),
        error: outcome.as_ref().err().cloned(),
        pointer: outcome.ok().or_else(|| shared.lock().pointer().cloned()),
        by: shared.me.clone(),
    };
    if let Err(e) = store.put(FAILOVER_RESULT_KEY, &result).await {
        warn!(error = %e, "cannot record the failover result");
    }
    switched
}

async fn run_request(shared: &Shared, req: &FailoverRequest) -> Result<Pointer, String> {
    let check = {
        let i = shared.lock();
        check_manual(&req.target, i.pointer(), &i.nodes, req.force)
            .map(|m| (m, i.pointer().cloned()))
    };
    match check? {
        (Manual::AlreadyPrimary, Some(p)) => Ok(p),
        (_, current) => {
            let from = current.map_or_else(|| "none".to_string(), |p| p.primary);
            let why = req.reason.as_deref().unwrap_or("requested by an operator");
            let reason = format!("manual: {from} -> {}: {why}", req.target);
            switch(shared, &req.target, &reason, true).await
        }
    }
}
