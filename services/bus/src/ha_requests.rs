//! Manual failover requests: the protocol between whoever asks (`imgcrawl ha failover`,
//! the API's `POST /api/ha/failover`, a watcher's own `POST /api/failover`) and the HA
//! watcher holding the lease, which carries them out.
//!
//! Both sides meet in the `imgcrawl-ha` bucket: the asker writes a [`FailoverRequest`]
//! under [`FAILOVER_REQUEST_KEY`] (one pending request at a time: a newer one replaces
//! it), the lease holder answers each request once with a [`FailoverResult`] carrying
//! the same id under [`FAILOVER_RESULT_KEY`], and the asker polls for it. A request no
//! watcher answered in time is withdrawn ([`request_failover`]), and a watcher refuses
//! a request older than three of its request timeouts as expired, so an unanswered
//! request does not fire later, when a watcher starts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::debug;
use uuid::Uuid;

use crate::ha::{HaStore, Pointer};
use crate::BusError;

/// KV key of the pending manual failover request (of the `postgres` target).
pub const FAILOVER_REQUEST_KEY: &str = "postgres-failover-request";
/// KV key of the answer to the last manual failover request.
pub const FAILOVER_RESULT_KEY: &str = "postgres-failover-result";

/// How often an asker looks for the answer.
const POLL: Duration = Duration::from_millis(50);

/// A manual failover (or switchover) request, stored in KV so anyone who reaches NATS
/// can ask and the lease holder carries it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRequest {
    /// Request id.
    pub id: Uuid,
    /// The node to make primary.
    pub target: String,
    /// Why, for the history.
    pub reason: Option<String>,
    /// Allow a lagging target.
    pub force: bool,
    /// When it was asked for.
    pub at: DateTime<Utc>,
}

impl FailoverRequest {
    /// A new request (fresh id, now).
    pub fn new(target: &str, reason: Option<String>, force: bool) -> FailoverRequest {
        FailoverRequest {
            id: Uuid::now_v7(),
            target: target.to_string(),
            reason,
            force,
            at: Utc::now(),
        }
    }
}

/// The answer to a [`FailoverRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverResult {
    /// The request answered.
    pub id: Uuid,
    /// Whether the target is primary now.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// The pointer afterwards.
    pub pointer: Option<Pointer>,
    /// The watcher that acted.
    pub by: String,
}

/// Writes `req` as the pending request (replacing any other). Returns its revision.
pub async fn send_failover_request(
    store: &HaStore,
    req: &FailoverRequest,
) -> Result<u64, BusError> {
    store.put(FAILOVER_REQUEST_KEY, req).await
}

/// The answer to request `id`, if one is recorded.
pub async fn failover_result(
    store: &HaStore,
    id: Uuid,
) -> Result<Option<FailoverResult>, BusError> {
    let found = store.get::<FailoverResult>(FAILOVER_RESULT_KEY).await?;
    Ok(found.map(|(r, _)| r).filter(|r| r.id == id))
}

/// Polls for the answer to request `id` until `deadline`. A failed read is retried;
/// if the last one failed, its error is returned instead of "no answer".
pub async fn wait_failover_result(
    store: &HaStore,
    id: Uuid,
    deadline: Instant,
) -> Result<Option<FailoverResult>, BusError> {
    loop {
        let last = match tokio::time::timeout_at(deadline, failover_result(store, id)).await {
            Ok(Ok(Some(r))) => return Ok(Some(r)),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => {
                debug!(error = %e, "cannot read the failover result yet");
                Err(e)
            }
            Err(_) => Ok(None),
        };
        let now = Instant::now();
        if now >= deadline {
            return last;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// Withdraws the pending request written at `revision`, unless something was written
/// since (a newer request). True if withdrawn.
async fn withdraw(store: &HaStore, revision: u64) -> bool {
    let deleted = store
        .kv()
        .delete_expect_revision(FAILOVER_REQUEST_KEY, Some(revision))
        .await;
    if let Err(e) = &deleted {
        debug!(error = %e, "failover request not withdrawn (replaced, or NATS failed)");
    }
    deleted.is_ok()
}

/// Asks the HA watcher holding the lease to make `target` the primary, and waits up to
/// `wait` for its answer: `Some` with the result (`ok`, or refused with `error`),
/// `None` if no watcher answered in time. An unanswered request is withdrawn (unless a
/// newer one replaced it) and looked for once more, so `None` means the watcher had not
/// answered; a watcher that had already taken it may still be carrying it out (the
/// pointer tells).
pub async fn request_failover(
    store: &HaStore,
    target: &str,
    reason: Option<String>,
    force: bool,
    wait: Duration,
) -> Result<Option<FailoverResult>, BusError> {
    let req = FailoverRequest::new(target, reason, force);
    let deadline = Instant::now() + wait;
    let revision = send_failover_request(store, &req).await?;
    if let Some(r) = wait_failover_result(store, req.id, deadline).await? {
        return Ok(Some(r));
    }
    withdraw(store, revision).await;
    failover_result(store, req.id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::POSTGRES;

    #[test]
    fn the_keys_belong_to_the_postgres_target_and_requests_round_trip() {
        assert_eq!(FAILOVER_REQUEST_KEY, format!("{POSTGRES}-failover-request"));
        assert_eq!(FAILOVER_RESULT_KEY, format!("{POSTGRES}-failover-result"));
        let a = FailoverRequest::new("pg2", Some("maintenance".into()), true);
        let b = FailoverRequest::new("pg2", None, false);
        assert_ne!(a.id, b.id, "every request has its own id");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<FailoverRequest>(&json).unwrap(), a);
        // the form stored by earlier versions still reads
        let stored = r#"{"id":"0191e7a2-7d2f-7000-8000-000000000001","ok":false,
            "error":"node pg2 is down","pointer":null,"by":"w1"}"#;
        let r: FailoverResult = serde_json::from_str(stored).unwrap();
        assert_eq!(
            (r.ok, r.error.as_deref()),
            (false, Some("node pg2 is down"))
        );
    }
}
