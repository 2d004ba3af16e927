//! The HA mutations both HTTP servers serve (the API's `POST /api/ha/failover`, a
//! watcher's `POST /api/failover` and `POST /api/sync`), in one place: the body, the
//! choice of the node to promote, the request to the watcher holding the lease and
//! how its answer becomes an HTTP answer, and the bound on waiting.
//!
//! A failover body is empty (promote the one standby) or `{"target", "reason",
//! "force"}`; an unknown node is 404, the primary 409 `already_primary`, a single node
//! 409 `no_standby`, several standbys and no target 422 `target_required`. The watcher
//! answers through KV (`imgcrawl_bus::ha_requests`): refused is 409 `failover_refused`,
//! no answer in time 503 `no_watcher` (the request is withdrawn), NATS down 503.

use std::time::Duration;

use imgcrawl_bus::ha::HaStore;
use imgcrawl_bus::ha_requests::{request_failover, FailoverResult};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{HttpError, HttpResult};

/// Longest `reason`, in characters.
pub const MAX_REASON: usize = 500;

/// Longest wait a client may ask for (`timeout_secs`), in seconds.
pub const MAX_WAIT_SECS: u64 = 3600;

/// A failover request's body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// Node to promote (default: the standby, when there is exactly one).
    #[serde(default)]
    pub target: Option<String>,
    /// Why, for the failover history.
    #[serde(default)]
    pub reason: Option<String>,
    /// Promote the target even if it lags behind the stream (the HA watcher refuses a
    /// lagging target otherwise).
    #[serde(default)]
    pub force: bool,
}

/// Refuses (422, field `reason`) a reason longer than [`MAX_REASON`] characters.
pub fn check_reason(reason: Option<&str>) -> HttpResult<()> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON) {
        let msg = format!("reasons are at most {MAX_REASON} characters");
        return Err(HttpError::unprocessable("invalid_reason", msg).field("reason"));
    }
    Ok(())
}

/// Parses a failover body: empty is the default request.
pub fn parse_failover(body: &[u8]) -> HttpResult<FailoverRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FailoverRequest::default());
    }
    let req: FailoverRequest = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            HttpError::unprocessable("invalid_body", e.to_string())
        }
        _ => HttpError::bad_request("malformed_json", e.to_string()),
    })?;
    check_reason(req.reason.as_deref())?;
    Ok(req)
}

/// The node to promote among `names`: the one asked for, else the only standby.
pub fn pick_target(
    primary: Option<&str>,
    names: &[&str],
    asked: Option<&str>,
) -> HttpResult<String> {
    let current = primary.unwrap_or("(none)");
    match asked {
        Some(t) if Some(t) == primary => Err(HttpError::conflict(
            "already_primary",
            format!("{t} is already the primary"),
        )),
        Some(t) if !names.contains(&t) => Err(HttpError::not_found(format!(
            "unknown node {t:?}; the nodes are: {}",
            names.join(", ")
        ))
        .field("target")),
        _ if names.len() < 2 => Err(HttpError::conflict(
            "no_standby",
            format!("single node ({current}): there is no standby to fail over to"),
        )),
        Some(t) => Ok(t.to_string()),
        None => {
            let standbys: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| Some(*n) != primary)
                .collect();
            match standbys.as_slice() {
                [one] => Ok(one.to_string()),
                several => Err(HttpError::unprocessable(
                    "target_required",
                    format!(
                        "several standbys ({}): name the node to promote in `target`",
                        several.join(", ")
                    ),
                )
                .field("target")),
            }
        }
    }
}

/// Asks the watcher holding the lease to promote `target` and waits up to `wait` for
/// its answer: `Ok` only when it did.
pub async fn failover(
    store: &HaStore,
    target: &str,
    req: FailoverRequest,
    wait: Duration,
) -> HttpResult<FailoverResult> {
    let asked = request_failover(store, target, req.reason, req.force, wait).await;
    match asked.map_err(nats_down)? {
        Some(r) if r.ok => Ok(r),
        Some(r) => Err(HttpError::conflict(
            "failover_refused",
            format!(
                "the HA watcher ({}) refused: {}",
                r.by,
                r.error.as_deref().unwrap_or("no reason given")
            ),
        )),
        None => Err(no_watcher(wait)),
    }
}

/// 503 `no_watcher`: nobody holding the lease answered within `wait`.
pub fn no_watcher(wait: Duration) -> HttpError {
    HttpError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "no_watcher",
        format!(
            "no HA watcher holding the lease answered within {:.1} s (is `imgcrawl ha` running?); the request was withdrawn",
            wait.as_secs_f64()
        ),
    )
}

/// 503 for a NATS failure during an HA request (logged with its detail).
pub fn nats_down(e: imgcrawl_bus::BusError) -> HttpError {
    tracing::warn!(error = %e, "ha request failed");
    HttpError::unavailable(
        "nats is unavailable: the request could not be made or its answer read; check the HA status before asking again",
    )
}

/// A client's `timeout_secs` (`field`) as a duration: `default` when absent, 422
/// `invalid_timeout` outside `1..=max`.
pub fn wait_secs(field: &str, value: Option<u64>, default: u64, max: u64) -> HttpResult<Duration> {
    match value {
        None => Ok(Duration::from_secs(default.min(max))),
        Some(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
        Some(s) => Err(HttpError::unprocessable(
            "invalid_timeout",
            format!("{field} {s} is outside 1..={max} seconds"),
        )
        .field(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn bodies_are_parsed_and_bounded() {
        assert!(parse_failover(b"  \n").unwrap().target.is_none());
        let r = parse_failover(br#"{"target":"pg2","force":true}"#).unwrap();
        assert_eq!((r.target.as_deref(), r.force), (Some("pg2"), true));
        let e = parse_failover(b"{nope").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
        let e = parse_failover(br#"{"target":"pg2","forse":true}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
        );
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_REASON + 1));
        let e = parse_failover(long.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_reason", Some("reason"))
        );
    }

    #[test]
    fn the_target_is_checked_against_the_nodes() {
        let two = ["pg1", "pg2"];
        assert_eq!(pick_target(Some("pg1"), &two, None).unwrap(), "pg2");
        assert_eq!(pick_target(Some("pg1"), &two, Some("pg2")).unwrap(), "pg2");
        let e = pick_target(Some("pg1"), &two, Some("pg1")).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "already_primary")
        );
        let e = pick_target(Some("pg1"), &two, Some("nope")).unwrap_err();
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::NOT_FOUND, Some("target"))
        );
        let e = pick_target(Some("pg1"), &["pg1"], None).unwrap_err();
        assert_eq!(e.code, "no_standby");
        let e = pick_target(Some("pg1"), &["pg1", "pg2", "pg3"], None).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "target_required")
        );
        // before any election there is no primary: a named node is fine
        assert_eq!(pick_target(None, &two, Some("pg1")).unwrap(), "pg1");
    }

    #[test]
    fn waits_are_clamped_with_a_clear_error() {
        assert_eq!(
            wait_secs("timeout_secs", None, 300, MAX_WAIT_SECS).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            wait_secs("timeout_secs", Some(60), 300, MAX_WAIT_SECS).unwrap(),
            Duration::from_secs(60)
        );
        for bad in [0, MAX_WAIT_SECS + 1, u64::MAX] {
            let e = wait_secs("timeout_secs", Some(bad), 300, MAX_WAIT_SECS).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_timeout")
            );
            assert_eq!(e.field.as_deref(), Some("timeout_secs"));
            assert!(e.message.contains(&bad.to_string()), "{}", e.message);
        }
    }
}
