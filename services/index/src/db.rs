//! The read model (`imgcrawl-readmodel`) as the index uses it: connecting, the
//! schema, checkpoints and the write API, with the index's error type.

use imgcrawl_readmodel::write::{self, BatchEffects, Sourced};
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::IndexError;

pub use imgcrawl_readmodel::{Checkpoint, MIGRATOR};

/// Opens a small pool (the projection is one ordered writer per database).
pub async fn connect(url: &str) -> Result<PgPool, IndexError> {
    Ok(imgcrawl_readmodel::connect(url).await?)
}

/// Creates or upgrades the schema (idempotent; serialised by an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), IndexError> {
    Ok(imgcrawl_readmodel::migrate(pool).await?)
}

/// The checkpoint named `name`, if it exists (no lock: for start-up and status).
pub async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<Option<Checkpoint>, IndexError> {
    Ok(imgcrawl_readmodel::checkpoint::read(pool, name).await?)
}

/// Applies `events` to the projection named `checkpoint_name` inside `tx` and
/// advances its checkpoint ([`write::apply_batch`]). The caller commits and only
/// then publishes [`BatchEffects::events`].
pub async fn apply_batch(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
) -> Result<BatchEffects, IndexError> {
    Ok(write::apply_batch(tx, checkpoint_name, events).await?)
}

/// [`apply_batch`], and moves the checkpoint to at least `through`
/// ([`write::apply_batch_through`]).
pub async fn apply_batch_through(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
    through: u64,
) -> Result<BatchEffects, IndexError> {
    Ok(write::apply_batch_through(tx, checkpoint_name, events, through).await?)
}

/// [`apply_batch_through`], listing the sources `images.indexed` announces only if `indexed`
/// ([`write::Options`]): the live stage passes `publish_indexed`, a replay false.
pub async fn apply_batch_with(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
    through: u64,
    indexed: bool,
) -> Result<BatchEffects, IndexError> {
    let options = write::Options { indexed };
    Ok(write::apply_batch_with(tx, checkpoint_name, events, through, options).await?)
}
