//! The `projection_checkpoint` rows: per writer, the last applied stream sequence
//! (written in the same transaction as the rows it covers) and the HA fencing epoch.
//! Every read and write of the table is here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::{db, ReadModelError};
use crate::write::clean::{big, ts};

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last applied stream sequence (0 = nothing yet).
    pub last_seq: u64,
    /// HA fencing epoch of the writer that wrote it.
    pub epoch: i64,
    /// Publish time of the last applied event.
    pub updated_at: Option<DateTime<Utc>>,
}

type Row = (i64, i64, Option<DateTime<Utc>>);

fn from_row((s, epoch, updated_at): Row) -> Checkpoint {
    Checkpoint {
        last_seq: u64::try_from(s).unwrap_or(0),
        epoch,
        updated_at,
    }
}

/// The checkpoint named `name`, if it exists (no lock: for start-up, status and the
/// HA watcher's probes). `e` is a pool or a connection.
pub async fn read<'c>(
    e: impl PgExecutor<'c>,
    name: &str,
) -> Result<Option<Checkpoint>, ReadModelError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT last_seq, epoch, updated_at FROM projection_checkpoint WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(e)
    .await
    .map_err(db("read checkpoint"))?;
    Ok(row.map(from_row))
}

/// Every checkpoint row, by name (for `imgcrawl status`).
pub async fn all(pool: &PgPool) -> Result<Vec<(String, Checkpoint)>, ReadModelError> {
    let rows: Vec<(String, i64, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT name, last_seq, epoch, updated_at FROM projection_checkpoint ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(db("read checkpoints"))?;
    Ok(rows
        .into_iter()
        .map(|(n, s, e, u)| (n, from_row((s, e, u))))
        .collect())
}

/// Whether the database holds a projection yet (the checkpoint table exists).
pub async fn table_exists(c: &mut PgConnection) -> Result<bool, ReadModelError> {
    sqlx::query_scalar("SELECT to_regclass('public.projection_checkpoint') IS NOT NULL")
        .fetch_one(c)
        .await
        .map_err(db("look for the checkpoint table"))
}

/// Creates the row if needed and locks it for the rest of the transaction, so two
/// writers with one checkpoint name serialise instead of interleaving.
pub(crate) async fn lock(c: &mut PgConnection, name: &str) -> Result<Checkpoint, ReadModelError> {
    sqlx::query("INSERT INTO projection_checkpoint (name, last_seq, epoch) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut *c)
        .await
        .map_err(db("create checkpoint"))?;
    let row: Row = sqlx::query_as(
        "SELECT last_seq, epoch, updated_at FROM projection_checkpoint WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(c)
    .await
    .map_err(db("lock checkpoint"))?;
    Ok(from_row(row))
}

/// Moves the checkpoint forward (never back).
pub(crate) async fn advance(
    c: &mut PgConnection,
    name: &str,
    last_seq: u64,
    updated_at: Option<DateTime<Utc>>,
) -> Result<(), ReadModelError> {
    sqlx::query(
        "UPDATE projection_checkpoint SET last_seq = GREATEST(last_seq, $2), updated_at = COALESCE($3, updated_at)
         WHERE name = $1",
    )
    .bind(name)
    .bind(big(last_seq))
    .bind(updated_at.map(ts))
    .execute(c)
    .await
    .map_err(db("advance checkpoint"))?;
    Ok(())
}

/// Fencing, inside a projection transaction: records `epoch` on checkpoint row
/// `name` unless the row records a newer one. Returns `None` when recorded (the row
/// stays locked until the transaction ends), or the node's newer epoch.
pub async fn raise_epoch(
    c: &mut PgConnection,
    name: &str,
    epoch: u64,
) -> Result<Option<u64>, ReadModelError> {
    let raised: Option<i64> = sqlx::query_scalar(
        "UPDATE projection_checkpoint SET epoch = $2 WHERE name = $1 AND epoch <= $2 RETURNING epoch",
    )
    .bind(name)
    .bind(big(epoch))
    .fetch_optional(&mut *c)
    .await
    .map_err(db("check fencing epoch"))?;
    if raised.is_some() {
        return Ok(None);
    }
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO projection_checkpoint (name, last_seq, epoch) VALUES ($1, 0, $2)
         ON CONFLICT (name) DO NOTHING RETURNING epoch",
    )
    .bind(name)
    .bind(big(epoch))
    .fetch_optional(&mut *c)
    .await
    .map_err(db("check fencing epoch"))?;
    if created.is_some() {
        return Ok(None);
    }
    let node: i64 =
        sqlx::query_scalar("SELECT epoch FROM projection_checkpoint WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_one(&mut *c)
            .await
            .map_err(db("check fencing epoch"))?;
    if node <= big(epoch) {
        return Ok(None); // raced with the row's creation; the lock now orders us
    }
    Ok(Some(u64::try_from(node).unwrap_or(0)))
}

/// For the HA watcher: records `epoch` on checkpoint row `name` (created if missing,
/// never lowered) and returns the node's epoch afterwards. Waits for a writer's
/// transaction in flight on that row to end.
pub async fn stamp(c: &mut PgConnection, name: &str, epoch: u64) -> Result<u64, ReadModelError> {
    let e: i64 = sqlx::query_scalar(
        "INSERT INTO projection_checkpoint (name, last_seq, epoch) VALUES ($1, 0, $2)
         ON CONFLICT (name) DO UPDATE SET epoch = GREATEST(projection_checkpoint.epoch, EXCLUDED.epoch)
         RETURNING epoch",
    )
    .bind(name)
    .bind(big(epoch))
    .fetch_one(c)
    .await
    .map_err(db("stamp fencing epoch"))?;
    Ok(u64::try_from(e).unwrap_or(0))
}
