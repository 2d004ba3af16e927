//! What a failed fetch means: a rejection now, or a retry first.
//!
//! Transient failures (HTTP 5xx and 429, timeouts, network errors) are retried until
//! the image URL has been delivered `retry_deliveries` times, then rejected with their
//! reason. Everything else is rejected at once.

use std::time::Duration;

use imgcrawl_events::RejectReason;
use imgcrawl_fetch::{BodyError, FetchError};

use crate::validate::Rejection;

/// A failure before the bytes could be validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The rejection if it is (or becomes) final.
    pub rejection: Rejection,
    /// `Some(delay)` when another delivery may succeed.
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(reason: RejectReason, detail: String, retry_after: Option<Duration>) -> Self {
        Failure {
            rejection: Rejection::new(reason, detail),
            retry_after,
        }
    }
}

/// Base delay before retrying a transient failure.
const RETRY_BASE: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Maps an error of `Fetcher::get`.
pub fn fetch_error(e: &FetchError) -> Failure {
    let detail = e.to_string();
    match e {
        FetchError::Robots(_) => Failure::new(RejectReason::Robots, detail, None),
        FetchError::BlockedAddress(_) => Failure::new(RejectReason::BlockedAddress, detail, None),
        FetchError::RedirectLoop(_) | FetchError::TooManyRedirects(_) => {
            Failure::new(RejectReason::TooManyRedirects, detail, None)
        }
        FetchError::Timeout(_) => Failure::new(RejectReason::Timeout, detail, Some(RETRY_BASE)),
        FetchError::Network(_) => Failure::new(RejectReason::Network, detail, Some(RETRY_BASE)),
        // Images have no scope, so `OutOfScope` cannot happen; neither can retrying fix
        // a bad URL. Both are reported as network failures with their detail.
        FetchError::InvalidUrl(_) | FetchError::OutOfScope(_) => {
            Failure::new(RejectReason::Network, detail, None)
        }
    }
}

/// Maps an error of `Fetched::read_capped`.
pub fn body_error(e: &BodyError) -> Failure {
    let detail = e.to_string();
    match e {
        BodyError::TooLarge { .. } => Failure::new(RejectReason::TooLarge, detail, None),
        BodyError::Timeout(_) => Failure::new(RejectReason::Timeout, detail, Some(RETRY_BASE)),
        BodyError::Network(_) => Failure::new(RejectReason::Network, detail, Some(RETRY_BASE)),
    }
}

/// Maps a non-2xx HTTP status; `retry_after` is the response's `Retry-After` value.
pub fn http_status(status: u16, retry_after: Option<&str>) -> Failure {
    let detail = format!("http status {status}");
    let transient = status == 429 || (500..600).contains(&status);
    let delay = transient.then(|| parse_retry_after(retry_after).unwrap_or(RETRY_BASE));
    Failure::new(RejectReason::HttpStatus, detail, delay)
}

/// `Retry-After` in delta-seconds form (HTTP dates are ignored), capped.
fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    let secs: u64 = v?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.max(1)).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_errors_map_to_reasons() {
        let cases = [
            (FetchError::Robots("x".into()), RejectReason::Robots, false),
            (
                FetchError::BlockedAddress("x".into()),
                RejectReason::BlockedAddress,
                false,
            ),
            (
                FetchError::RedirectLoop("x".into()),
                RejectReason::TooManyRedirects,
                false,
            ),
            (
                FetchError::TooManyRedirects(5),
                RejectReason::TooManyRedirects,
                false,
            ),
            (FetchError::Timeout("x".into()), RejectReason::Timeout, true),
            (FetchError::Network("x".into()), RejectReason::Network, true),
            (
                FetchError::InvalidUrl("x".into()),
                RejectReason::Network,
                false,
            ),
        ];
        for (e, reason, retry) in cases {
            let f = fetch_error(&e);
            assert_eq!(
                (f.rejection.reason, f.retry_after.is_some()),
                (reason, retry),
                "{e}"
            );
            assert_eq!(f.rejection.detail, e.to_string());
        }
    }

    #[test]
    fn body_errors_map_to_reasons() {
        assert_eq!(
            body_error(&BodyError::TooLarge { limit: 9 })
                .rejection
                .reason,
            RejectReason::TooLarge
        );
        assert!(body_error(&BodyError::TooLarge { limit: 9 })
            .retry_after
            .is_none());
        assert!(body_error(&BodyError::Network("reset".into()))
            .retry_after
            .is_some());
    }

    #[test]
    fn server_errors_and_throttling_retry_client_errors_do_not() {
        for s in [500, 502, 503, 599, 429] {
            assert!(http_status(s, None).retry_after.is_some(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 304, 301] {
            let f = http_status(s, None);
            assert!(f.retry_after.is_none(), "{s}");
            assert_eq!(f.rejection.reason, RejectReason::HttpStatus);
        }
        assert_eq!(
            http_status(429, Some(" 30 ")).retry_after,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            http_status(503, Some("99999")).retry_after,
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            http_status(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")).retry_after,
            Some(RETRY_BASE)
        );
    }
}
