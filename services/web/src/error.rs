//! [`HttpError`], the JSON error every imgcrawl HTTP server (the API and the HA API)
//! answers with.
//!
//! An error response is `{"error": {"code": "...", "message": "...", "field": "..."}}`
//! with a stable machine-readable `code`. Internal failures are logged with their
//! detail and answered with a generic message: no SQL, no driver text, no backtrace
//! ever reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_url`, `unauthorized`, `rate_limited`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer: status, code, message, and optionally the field at fault and a
/// `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Message for people.
    pub message: String,
    /// The field at fault.
    pub field: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl HttpError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The same error naming the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed (bad parameter, bad cursor, bad JSON).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: the request is well-formed but refused (bad URL, private address...).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 401 with code `unauthorized` (and `WWW-Authenticate: Bearer`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a token that is not valid (`forbidden`) or lacks the scope (`insufficient_scope`).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: a dependency (PostgreSQL, NATS, the bucket) is unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry(1)
    }

    /// 500: logged with its detail, answered without it.
    pub fn internal(op: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(op, error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error while trying to {op} (details are in the server log)"),
        )
    }

    /// The same error with `Retry-After: secs`.
    pub fn retry(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        let h = res.headers_mut();
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read, so the connection cannot carry another
            // request: say so, or a client reusing it gets a reset on its next request.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The result of a handler.
pub type HttpResult<T> = Result<T, HttpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_too_large_closes_the_connection() {
        let e = HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "too large");
        let res = e.into_response();
        assert_eq!(res.headers()[header::CONNECTION], "close");
        let ok = HttpError::bad_request("malformed_json", "x").into_response();
        assert!(ok.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let e = HttpError::internal("list images", "syntax error at or near SELECT");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("SELECT"), "{}", e.message);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        let e = HttpError::unavailable("nats is down");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
    }

    #[test]
    fn responses_carry_the_code_and_the_headers() {
        let res =
            HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no token").into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let res = HttpError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down")
            .retry(3)
            .into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "3");
    }
}
