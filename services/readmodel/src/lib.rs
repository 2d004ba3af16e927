//! imgcrawl's read model: the PostgreSQL projection's schema, its writes and every
//! query that reads it. No SQL string lives outside this crate (integration tests
//! keep their own assertion SQL).
//!
//! The way quickwit's metastore owns its schema: one crate owns the migrations
//! ([`MIGRATOR`], `migrations/`), connecting ([`connect`], [`migrate`]) and one module
//! per concern:
//!
//! * [`checkpoint`]: the writers' positions and HA fencing epochs;
//! * [`meta`]: which stream the database projects;
//! * [`lag`]: how far a projection is behind the stream (the one definition);
//! * [`jobs`], [`images`], [`sources`]: what the API, the gallery and
//!   the CLI read;
//! * [`digest`]: per-table digests for `imgcrawl verify` and the HA consistency check;
//! * [`admin`]: database-server chores (ping, create and drop databases);
//! * [`write`]: the index stage's write API, [`write::apply_batch`], which applies a
//!   batch of events with multi-row statements and advances the checkpoint in the same
//!   transaction.
//!
//! It depends on the event vocabulary and sqlx only: no HTTP, no NATS, no stage.
//! Callers that need the stream's end read it from the bus and pass it in.

pub mod admin;
pub mod checkpoint;
mod counters;
pub mod digest;
mod error;
pub mod images;
pub mod jobs;
pub mod lag;
pub mod meta;
pub mod sources;
pub mod write;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub use checkpoint::Checkpoint;
pub use counters::Counters;
pub use error::ReadModelError;
use imgcrawl_events::redact;

/// The migrations in `services/readmodel/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a small pool (the projection is one ordered writer per database).
pub async fn connect(url: &str) -> Result<PgPool, ReadModelError> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| ReadModelError::Connect {
            url: redact(url),
            source,
        })
}

/// Creates or upgrades the schema (idempotent; serialised by an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), ReadModelError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
