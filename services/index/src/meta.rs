//! Which stream a database projects: the `projection_meta` row.
//!
//! The first committed batch records the stream's name and id (see
//! [`imgcrawl_bus::identity`]); every batch (live or replay) checks it in the same
//! transaction, and the writers check it at start, so a database that holds the
//! projection of another stream (a stream deleted and created again, another
//! cluster's) is refused instead of mixed.
//!
//! Databases recorded by earlier releases hold the stream's creation time instead of
//! its id. A writer recognises such a database ([`recognise_legacy`]) when the time
//! is the one the stream's metadata kept at adoption, or, since that time drifted
//! across nats-server restarts, when the database's first job is the request stored at
//! the same sequence of the stream; it then records the id and goes on.

use imgcrawl_bus::identity::{micros, StreamIdentity};
use imgcrawl_bus::topology;
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
use imgcrawl_events::{decode, job_id_from_sequence, Event, HEADER_EVENT};
use imgcrawl_readmodel as readmodel;
use sqlx::{PgConnection, PgPool};
use tracing::info;

use crate::error::IndexError;
use crate::RecordedStream;

/// Where a stream is: its identity and last sequence, as the server reports them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// Which stream.
    pub identity: StreamIdentity,
    /// Its last sequence (0 when empty).
    pub last_seq: u64,
}

/// Reads the identity and last sequence of the bus's event stream.
pub async fn stream_position(bus: &Bus) -> Result<StreamPosition, IndexError> {
    let name = &bus.config.stream;
    let info = topology::stream_info(&bus.js, name)
        .await
        .map_err(|e| IndexError::Stream(e.to_string()))?
        .ok_or_else(|| IndexError::Stream(format!("stream {name} does not exist")))?;
    let identity = StreamIdentity::of(&info).ok_or_else(|| {
        IndexError::Stream(format!(
            "stream {name} has no id in its metadata yet (any imgcrawl worker adopts one at start)"
        ))
    })?;
    Ok(StreamPosition {
        identity,
        last_seq: info.state.last_sequence,
    })
}

/// What the database records, if anything (the table exists once migrated).
pub async fn recorded_stream(pool: &PgPool) -> Result<Option<RecordedStream>, IndexError> {
    Ok(readmodel::meta::read(pool).await?)
}

/// Refuses `found` (what the database records) unless it is `ours` (or nothing yet).
/// A row of an earlier release is accepted when its creation time is the one the
/// stream kept at adoption ([`StreamIdentity::matches_legacy`]).
pub fn check(found: Option<&RecordedStream>, ours: &StreamIdentity) -> Result<(), IndexError> {
    let Some(f) = found else { return Ok(()) };
    let same = match (&f.id, f.created) {
        (Some(id), _) => f.stream == ours.stream && *id == ours.id,
        (None, Some(t)) => ours.matches_legacy(&f.stream, t),
        (None, None) => false,
    };
    if same {
        Ok(())
    } else {
        Err(IndexError::ForeignStream {
            database: f.to_string(),
            stream: ours.to_string(),
        })
    }
}

/// For a database recorded by an earlier release (no stream id): decides whether it
/// belongs to `ours` and, if so, records the id. Returns what the database records
/// afterwards. A row with an id, or none, is returned as it is.
pub async fn recognise_legacy(
    bus: &Bus,
    pool: &PgPool,
    ours: &StreamIdentity,
) -> Result<Option<RecordedStream>, IndexError> {
    let recorded = recorded_stream(pool).await?;
    let Some(r) = &recorded else { return Ok(None) };
    if r.id.is_some() || r.stream != ours.stream {
        return Ok(recorded);
    }
    let by_time = r.created.is_some_and(|t| ours.matches_legacy(&r.stream, t));
    if !by_time && !first_job_matches(bus, pool).await? {
        return Ok(recorded);
    }
    readmodel::meta::record_id(pool, &ours.stream, &ours.id).await?;
    info!(stream = %ours, by_time, "recognised a projection recorded by an earlier release");
    recorded_stream(pool).await
}

/// Whether the database's first job is the crawl request stored at the same sequence
/// of the bus's stream: the same job id, and, for a request published without one
/// (whose id derives from the sequence alone), the same request time. A database with
/// no job holds nothing of any stream and matches.
async fn first_job_matches(bus: &Bus, pool: &PgPool) -> Result<bool, IndexError> {
    let first = readmodel::meta::first_job(pool).await?;
    let Some((job, seq, requested_at)) = first else {
        return Ok(true);
    };
    let Ok(seq) = u64::try_from(seq) else {
        return Ok(false);
    };
    let stream = bus
        .js
        .get_stream(&bus.config.stream)
        .await
        .map_err(|e| IndexError::Stream(e.to_string()))?;
    // A message that is gone (purged, aged out) proves nothing: not recognised.
    let Ok(msg) = stream.get_raw_message(seq).await else {
        return Ok(false);
    };
    let header = msg
        .headers
        .get(HEADER_EVENT)
        .map(|v| v.as_str().to_string());
    let Ok(Event::CrawlRequested(r)) = decode(&msg.subject, header.as_deref(), &msg.payload) else {
        return Ok(false);
    };
    Ok(match r.job_id {
        Some(id) => id == job,
        None => {
            let at: chrono::DateTime<chrono::Utc> =
                r.occurred_at.unwrap_or_else(|| to_chrono(msg.time));
            job_id_from_sequence(&bus.config.stream, seq) == job && micros(at) == requested_at
        }
    })
}

/// Records `ours` if the database records nothing yet, and refuses it if the database
/// records another stream. Runs inside the batch's transaction (one statement).
pub(crate) async fn claim(c: &mut PgConnection, ours: &StreamIdentity) -> Result<(), IndexError> {
    let found = readmodel::meta::claim(c, &ours.stream, &ours.id).await?;
    check(found.as_ref(), ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn ours(legacy: Option<DateTime<Utc>>) -> StreamIdentity {
        StreamIdentity {
            stream: "IMGCRAWL".into(),
            id: "b7a1".into(),
            legacy_created: legacy,
        }
    }

    #[test]
    fn another_stream_is_refused_with_both_identities_named() {
        let ours = ours(None);
        assert!(check(None, &ours).is_ok());
        let same = RecordedStream {
            stream: "IMGCRAWL".into(),
            id: Some("b7a1".into()),
            created: None,
        };
        assert!(check(Some(&same), &ours).is_ok());
        let other = RecordedStream {
            id: Some("c9d2".into()),
            ..same
        };
        let msg = check(Some(&other), &ours).unwrap_err().to_string();
        assert!(msg.contains("another stream"), "{msg}");
        assert!(msg.contains("IMGCRAWL (id c9d2)"), "{msg}");
        assert!(msg.contains("IMGCRAWL (id b7a1)"), "{msg}");
    }

    #[test]
    fn a_row_of_an_earlier_release_is_accepted_by_the_adopted_creation_time_only() {
        let t = Utc.timestamp_opt(1_767_225_600, 123_456_000).unwrap();
        let legacy = RecordedStream {
            stream: "IMGCRAWL".into(),
            id: None,
            created: Some(t),
        };
        assert!(check(Some(&legacy), &ours(Some(t))).is_ok());
        let later = ours(Some(t + chrono::Duration::seconds(1)));
        let msg = check(Some(&legacy), &later).unwrap_err().to_string();
        assert!(
            msg.contains("IMGCRAWL created 2026-01-01T00:00:00.123456Z"),
            "{msg}"
        );
        assert!(check(Some(&legacy), &ours(None)).is_err());
    }
}
