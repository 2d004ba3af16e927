//! Which stream a database projects: the `projection_meta` row.
//!
//! The first committed batch records the stream's name and creation time; every batch
//! (live or replay) checks it in the same transaction, and the writers check it at
//! start, so a database that holds the projection of another stream (a stream deleted
//! and created again, another cluster's) is refused instead of mixed.

use chrono::{DateTime, Utc};
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
use sqlx::{PgConnection, PgPool};

use crate::error::{db, IndexError};

/// The identity of a stream: its name and when the server created it (to the
/// microsecond, PostgreSQL's resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    /// Stream name, e.g. `IMGCRAWL`.
    pub stream: String,
    /// Creation time from the server's stream info.
    pub created: DateTime<Utc>,
}

impl std::fmt::Display for StreamIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created {}",
            self.stream,
            self.created
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

/// Where a stream is: its identity and last sequence, as the server reports them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// Which stream.
    pub identity: StreamIdentity,
    /// Its last sequence (0 when empty).
    pub last_seq: u64,
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Reads the identity and last sequence of the bus's event stream.
pub async fn stream_position(bus: &Bus) -> Result<StreamPosition, IndexError> {
    let name = &bus.config.stream;
    let mut stream = bus
        .js
        .get_stream(name)
        .await
        .map_err(|e| IndexError::Stream(format!("get stream {name}: {e}")))?;
    let info = stream
        .info()
        .await
        .map_err(|e| IndexError::Stream(format!("stream info {name}: {e}")))?;
    Ok(StreamPosition {
        identity: StreamIdentity {
            stream: info.config.name.clone(),
            created: micros(to_chrono(info.created)),
        },
        last_seq: info.state.last_sequence,
    })
}

/// The identity recorded in the database, if any (the table exists once migrated).
pub async fn recorded_stream(pool: &PgPool) -> Result<Option<StreamIdentity>, IndexError> {
    let row: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT stream, stream_created FROM projection_meta")
            .fetch_optional(pool)
            .await
            .map_err(db("read projection meta"))?;
    Ok(row.map(|(stream, created)| StreamIdentity { stream, created }))
}

/// Refuses `found` (what the database records) unless it is `ours` (or nothing yet).
pub fn check(found: Option<&StreamIdentity>, ours: &StreamIdentity) -> Result<(), IndexError> {
    match found {
        Some(f) if f != ours => Err(IndexError::ForeignStream {
            database: f.to_string(),
            stream: ours.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Records `ours` if the database records nothing yet, and refuses it if the database
/// records another stream. Runs inside the batch's transaction (one statement).
pub(crate) async fn claim(c: &mut PgConnection, ours: &StreamIdentity) -> Result<(), IndexError> {
    let found: (String, DateTime<Utc>) = sqlx::query_as(
        "WITH ins AS (
             INSERT INTO projection_meta (singleton, stream, stream_created) VALUES (true, $1, $2)
             ON CONFLICT (singleton) DO NOTHING RETURNING stream, stream_created)
         SELECT stream, stream_created FROM ins
         UNION ALL SELECT stream, stream_created FROM projection_meta",
    )
    .bind(&ours.stream)
    .bind(ours.created)
    .fetch_one(c)
    .await
    .map_err(db("claim projection meta"))?;
    let found = StreamIdentity {
        stream: found.0,
        created: found.1,
    };
    check(Some(&found), ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn another_stream_is_refused_with_both_identities_named() {
        let t = Utc.timestamp_opt(1_767_225_600, 123_456_789).unwrap();
        let ours = StreamIdentity {
            stream: "IMGCRAWL".into(),
            created: micros(t),
        };
        assert_eq!(ours.created.timestamp_subsec_nanos(), 123_456_000);
        assert!(check(None, &ours).is_ok());
        assert!(check(Some(&ours.clone()), &ours).is_ok());
        let other = StreamIdentity {
            created: micros(t + chrono::Duration::seconds(1)),
            ..ours.clone()
        };
        let msg = check(Some(&other), &ours).unwrap_err().to_string();
        assert!(msg.contains("another stream"), "{msg}");
        assert!(msg.contains("2026-01-01T00:00:01.123456Z"), "{msg}");
        assert!(msg.contains("2026-01-01T00:00:00.123456Z"), "{msg}");
    }
}
