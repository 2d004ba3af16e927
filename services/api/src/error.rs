//! Errors: [`ApiError`] at the crate boundary (starting and running the server), and
//! how the API's dependencies' errors become an [`HttpError`] (the JSON error shape
//! shared with the HA API, in `imgcrawl_web::error`).

use axum::http::StatusCode;

pub use imgcrawl_web::error::{ErrorBody, ErrorDetail, HttpError, HttpResult};

use crate::db::DbError;

/// Why the API server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No admin token was configured.
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
    /// Tokens, proxies or TLS could not be set up.
    #[error(transparent)]
    Web(#[from] imgcrawl_web::WebError),
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

/// Maps a database error: unreachable or not yet migrated is 503, anything else is an
/// internal error. Logged; the driver's text never reaches the client.
pub fn db(op: &str, e: impl Into<sqlx::Error>) -> HttpError {
    let e: sqlx::Error = e.into();
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(op, error = %e, "index database unavailable");
            HttpError::unavailable("the index database is unavailable; try again shortly")
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => HttpError::unavailable(
            "the index has not created its schema yet; start the index stage",
        ),
        _ => HttpError::internal(op, e),
    }
}

/// Maps a bucket error: a missing object is 404, anything else 503.
pub fn bucket(key: &str, e: object_store::Error) -> HttpError {
    match e {
        object_store::Error::NotFound { .. } => HttpError::new(
            StatusCode::NOT_FOUND,
            "content_missing",
            "the image is indexed but its object is not in the bucket",
        ),
        e => {
            tracing::warn!(key, error = %e, "bucket read failed");
            HttpError::unavailable("the bucket is unavailable; try again shortly")
        }
    }
}

/// A failed read: the index database's errors as [`db`] maps them, NATS down as 503.
impl From<DbError> for HttpError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query { op, source } => db(op, source),
            DbError::Nats { .. } => {
                HttpError::unavailable("nats is unavailable; try again shortly")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_hide_their_detail() {
        let e = db("list images", sqlx::Error::RowNotFound);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        let e = db("list images", sqlx::Error::PoolTimedOut);
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
    }
}
