//! Errors: [`ApiError`] at the crate boundary (starting and running the server) and
//! [`HttpError`], the JSON error every endpoint answers with.
//!
//! An error response is `{"error": {"code": "...", "message": "...", "field": "..."}}`
//! with a stable machine-readable `code`. Internal failures are logged with their
//! detail and answered with a generic message: no SQL, no driver text, no backtrace
//! ever reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// Why the API server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token was configured.
    #[error("no api token: set IMGCRAWL_API_TOKEN or give a token file")]
    NoToken,
    /// A setting is unusable.
    #[error("config: {0}")]
    Config(String),
    /// The index database could not be reached at start.
    #[error("cannot connect to postgres at {url}: {detail}")]
    Database {
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        detail: String,
    },
    /// The HA pointer could not be followed (the `imgcrawl-ha` KV bucket).
    #[error("ha pointer: {0}")]
    Ha(String),
    /// The bucket could not be opened.
    #[error(transparent)]
    Bucket(#[from] imgcrawl_bucket::BucketError),
    /// The listening socket could not be bound.
    #[error("listen on {addr}: {detail}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        detail: String,
    },
    /// The server failed while running.
    #[error("serve: {0}")]
    Serve(String),
}

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

    /// Maps a database error: unreachable or not yet migrated is 503, anything else
    /// is an internal error. Logged; the driver's text never reaches the client.
    pub fn db(op: &str, e: impl Into<sqlx::Error>) -> Self {
        let e: sqlx::Error = e.into();
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(op, error = %e, "index database unavailable");
                Self::unavailable("the index database is unavailable; try again shortly")
            }
            sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => {
                Self::unavailable("the index has not created its schema yet; start the index stage")
            }
            _ => Self::internal(op, e),
        }
    }

    /// Maps a bucket error: a missing object is 404, anything else 503.
    pub fn bucket(key: &str, e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "content_missing",
                "the image is indexed but its object is not in the bucket",
            ),
            e => {
                tracing::warn!(key, error = %e, "bucket read failed");
                Self::unavailable("the bucket is unavailable; try again shortly")
            }
        }
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

impl From<DbError> for HttpError {
    /// A failed read: the index database's errors as [`HttpError::db`] maps them, NATS
    /// down as 503.
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query { op, source } => Self::db(op, source),
            DbError::Nats { .. } => Self::unavailable("nats is unavailable; try again shortly"),
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
        let e = HttpError::db("list images", sqlx::Error::RowNotFound);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        let e = HttpError::db("list images", sqlx::Error::PoolTimedOut);
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
