//! The `projection_checkpoint` row: the last applied stream sequence, written in the
//! same transaction as the rows it covers.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::clean::{big, ts};
use crate::error::{db, IndexError};

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

/// Creates the row if needed and locks it for the rest of the transaction, so two
/// writers with one checkpoint name serialise instead of interleaving.
pub(crate) async fn lock(c: &mut PgConnection, name: &str) -> Result<Checkpoint, IndexError> {
    sqlx::query("INSERT INTO projection_checkpoint (name, last_seq, epoch) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut *c)
        .await
        .map_err(db("create checkpoint"))?;
    let (last_seq, epoch, updated_at): (i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT last_seq, epoch, updated_at FROM projection_checkpoint WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(c)
    .await
    .map_err(db("lock checkpoint"))?;
    Ok(Checkpoint {
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        epoch,
        updated_at,
    })
}

/// Moves the checkpoint forward (never back).
pub(crate) async fn advance(
    c: &mut PgConnection,
    name: &str,
    last_seq: u64,
    updated_at: Option<DateTime<Utc>>,
) -> Result<(), IndexError> {
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
