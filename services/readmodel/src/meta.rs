//! Which stream a database projects: the `projection_meta` row (the stream's name and
//! id, or the creation time an earlier release recorded). Deciding whether a row
//! belongs to a stream is the index's business (it knows the stream); reading and
//! writing the row is here.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{db, ReadModelError};

/// What a database records about the stream it projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStream {
    /// Stream name.
    pub stream: String,
    /// The stream's id (none in a row recorded by an earlier release and not yet
    /// recognised).
    pub id: Option<String>,
    /// The creation time an earlier release recorded (none in newer databases).
    pub created: Option<DateTime<Utc>>,
}

impl std::fmt::Display for RecordedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.id, self.created) {
            (Some(id), _) => write!(f, "{} (id {id})", self.stream),
            (None, Some(t)) => write!(
                f,
                "{} created {}",
                self.stream,
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
            (None, None) => write!(f, "{}", self.stream),
        }
    }
}

/// What the database records, if anything (the table exists once migrated).
pub async fn read<'c>(e: impl PgExecutor<'c>) -> Result<Option<RecordedStream>, ReadModelError> {
    let row: Option<(String, Option<String>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT stream, stream_id, stream_created FROM projection_meta")
            .fetch_optional(e)
            .await
            .map_err(db("read projection meta"))?;
    Ok(row.map(|(stream, id, created)| RecordedStream {
        stream,
        id,
        created,
    }))
}

/// Records stream `id` on a row of stream `stream` that has none yet (a database of
/// an earlier release, recognised as this stream's).
pub async fn record_id<'c>(
    e: impl PgExecutor<'c>,
    stream: &str,
    id: &str,
) -> Result<(), ReadModelError> {
    sqlx::query(
        "UPDATE projection_meta SET stream_id = $1 WHERE stream_id IS NULL AND stream = $2",
    )
    .bind(id)
    .bind(stream)
    .execute(e)
    .await
    .map_err(db("record the stream id"))?;
    Ok(())
}

/// Records stream `stream` with `id` if the database records nothing yet, and returns
/// what it records afterwards. Runs inside the batch's transaction.
pub async fn claim(
    c: &mut PgConnection,
    stream: &str,
    id: &str,
) -> Result<Option<RecordedStream>, ReadModelError> {
    sqlx::query(
        "INSERT INTO projection_meta (singleton, stream, stream_id) VALUES (true, $1, $2)
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(stream)
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(db("claim projection meta"))?;
    read(c).await
}

/// The database's first job: its id, request sequence and request time (to recognise
/// the stream a database of an earlier release projects).
pub async fn first_job<'c>(
    e: impl PgExecutor<'c>,
) -> Result<Option<(Uuid, i64, DateTime<Utc>)>, ReadModelError> {
    sqlx::query_as(
        "SELECT job_id, request_seq, requested_at FROM jobs ORDER BY request_seq LIMIT 1",
    )
    .fetch_optional(e)
    .await
    .map_err(db("read the first job"))
}
