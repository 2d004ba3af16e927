//! Connecting to PostgreSQL, the embedded migrations, and reading checkpoints.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::apply::checkpoint::Checkpoint;
use crate::error::{db, redact, IndexError};

/// The migrations in `services/index/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a small pool (the projection is one ordered writer per database).
pub async fn connect(url: &str) -> Result<PgPool, IndexError> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| IndexError::Connect {
            url: redact(url),
            source,
        })
}

/// Creates or upgrades the schema (idempotent; serialised by an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), IndexError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The checkpoint named `name`, if it exists (no lock: for start-up and status).
pub async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<Option<Checkpoint>, IndexError> {
    let row: Option<(i64, i64, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT last_seq, epoch, updated_at FROM projection_checkpoint WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(db("read checkpoint"))?;
    Ok(row.map(|(s, epoch, updated_at)| Checkpoint {
        last_seq: u64::try_from(s).unwrap_or(0),
        epoch,
        updated_at,
    }))
}
