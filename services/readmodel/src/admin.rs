//! Database-server chores around the projection: a liveness ping, and creating,
//! finding and dropping whole databases (scratch and reference replays, the embedded
//! stack, benchmarks). Names are quoted as identifiers, never bound.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::digest::ident;
use crate::error::{db, ReadModelError};
use imgcrawl_events::redact;

/// A connection to the server of `url` (for the statements below).
pub async fn connect_server(url: &str) -> Result<PgConnection, ReadModelError> {
    PgConnection::connect(url)
        .await
        .map_err(|source| ReadModelError::Connect {
            url: redact(url),
            source,
        })
}

/// Runs `SELECT 1` within `timeout`: the round trip in milliseconds, or the driver's
/// error (`None` when no answer came in time).
pub async fn ping(pool: &PgPool, timeout: Duration) -> Result<f64, Option<sqlx::Error>> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await {
        Ok(Ok(_)) => Ok(start.elapsed().as_secs_f64() * 1000.0),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// Whether database `name` exists on the server `c` is connected to.
pub async fn database_exists(c: &mut PgConnection, name: &str) -> Result<bool, ReadModelError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(c)
        .await
        .map_err(db("look for a database"))?;
    Ok(found.is_some())
}

/// Creates database `name`; `Ok(false)` if it already exists (created concurrently).
pub async fn create_database(c: &mut PgConnection, name: &str) -> Result<bool, ReadModelError> {
    let created = sqlx::query(&format!("CREATE DATABASE {}", ident(name)))
        .execute(c)
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_database(&e) => Ok(false),
        Err(e) => Err(db("create database")(e)),
    }
}

fn is_duplicate_database(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42P04")
}

/// Drops database `name` if it exists, closing other sessions on it where the server
/// can (PostgreSQL >= 13) and without that on older servers.
pub async fn drop_database(c: &mut PgConnection, name: &str) -> Result<(), ReadModelError> {
    let name = ident(name);
    let forced = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut *c)
        .await;
    if forced.is_err() {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut *c)
            .await
            .map_err(db("drop database"))?;
    }
    Ok(())
}
