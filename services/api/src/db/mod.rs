//! Reads from the index through the read model (`imgcrawl-readmodel`), in the API's
//! vocabulary; nothing here knows HTTP, and no SQL lives here. The API never writes
//! the projection: every change is an event. Which node is read is
//! [`crate::nodes`]'s business.

mod error;
pub mod images;
pub mod jobs;

use std::time::Duration;

use sqlx::PgPool;

pub use error::DbError;

/// Runs `select 1` with a timeout; the round trip in milliseconds, or why not.
pub async fn ping(db: &PgPool, timeout: Duration) -> Result<f64, String> {
    imgcrawl_readmodel::admin::ping(db, timeout)
        .await
        .map_err(|e| match e {
            Some(e) => short_db_error(&e),
            None => format!("no answer within {timeout:?}"),
        })
}

/// A database error for people, without SQL or server detail.
pub fn short_db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => {
            "no connection in time (the database is down or saturated)".into()
        }
        sqlx::Error::PoolClosed => "the pool was closed (the primary changed)".into(),
        sqlx::Error::Io(io) => format!("connection failed: {}", io.kind()),
        sqlx::Error::Tls(_) => "tls handshake failed".into(),
        sqlx::Error::Database(d) => format!("database error {}", d.code().unwrap_or_default()),
        _ => "database error".into(),
    }
}

/// `host:port/database` of a PostgreSQL URL: no user, no password.
pub fn endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparsable url)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hide_credentials() {
        let url = "postgres://user:secret@db.internal:6543/imgcrawl";
        assert_eq!(endpoint(url), "db.internal:6543/imgcrawl");
        assert_eq!(endpoint("postgres://u@h/x"), "h:5432/x");
    }
}
