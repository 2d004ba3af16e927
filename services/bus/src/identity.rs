//! The event stream's identity: an id written once into the stream's metadata.
//!
//! Projections (the PostgreSQL index, the object replay's bucket) record which stream
//! they were built from, so that a database or bucket holding the projection of
//! another stream (one deleted and created again, another cluster's) is refused
//! instead of mixed. The first releases used the stream's creation time for that, but
//! nats-server (2.10 at least) does not keep it: a stream *update* rewrites the
//! stream's `meta.inf` with the time the file store was loaded, so after
//! restart → update → restart the server reports a new creation time for the same
//! stream (docs/failure-handling.md, "Stream identity").
//!
//! The identity is now the metadata key [`STREAM_ID_KEY`]: a random UUID written when
//! the stream is created and never changed. A stream made by an earlier release has
//! no id; the first process to start adopts one for it (deterministic, so racing
//! processes agree) and also records [`STREAM_CREATED_KEY`], the creation time the
//! server reported then, so that projections recorded by earlier releases (which know
//! only that time) are still recognised.

use std::collections::HashMap;

use async_nats::jetstream::stream;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::worker::to_chrono;

/// Stream metadata key holding the stream's id (a UUID).
pub const STREAM_ID_KEY: &str = "imgcrawl.stream-id";

/// Stream metadata key holding the creation time the server reported when an id was
/// adopted for a stream made by an earlier release (RFC 3339, microseconds).
pub const STREAM_CREATED_KEY: &str = "imgcrawl.stream-created";

/// Which stream: its name and its id, plus what earlier releases knew it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    /// Stream name, e.g. `IMGCRAWL`.
    pub stream: String,
    /// The id from the stream's metadata.
    pub id: String,
    /// The creation time earlier releases recorded for this stream, when the id was
    /// adopted (none for streams created with an id).
    pub legacy_created: Option<DateTime<Utc>>,
}

impl std::fmt::Display for StreamIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {})", self.stream, self.id)
    }
}

impl StreamIdentity {
    /// The identity in a stream's info; none if the stream has no id yet.
    pub fn of(info: &stream::Info) -> Option<StreamIdentity> {
        let id = info.config.metadata.get(STREAM_ID_KEY)?;
        Some(StreamIdentity {
            stream: info.config.name.clone(),
            id: id.clone(),
            legacy_created: info
                .config
                .metadata
                .get(STREAM_CREATED_KEY)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    }

    /// Whether a projection recorded by an earlier release (stream name and creation
    /// time only) belongs to this stream.
    pub fn matches_legacy(&self, stream: &str, created: DateTime<Utc>) -> bool {
        stream == self.stream
            && self
                .legacy_created
                .is_some_and(|t| micros(t) == micros(created))
    }
}

/// A time truncated to microseconds (PostgreSQL's resolution).
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Metadata for a new stream: a fresh random id.
pub(crate) fn new_metadata() -> HashMap<String, String> {
    HashMap::from([(STREAM_ID_KEY.to_string(), uuid::Uuid::new_v4().to_string())])
}

/// The metadata to add to a stream made by an earlier release: an id derived from its
/// name and current creation time (two processes adopting at once write the same),
/// and that creation time. None if the stream has an id already.
pub(crate) fn adoption(info: &stream::Info) -> Option<HashMap<String, String>> {
    if info.config.metadata.contains_key(STREAM_ID_KEY) {
        return None;
    }
    let created = micros(to_chrono(info.created)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let seed = format!("{}\n{}", info.config.name, created);
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
    let mut metadata = info.config.metadata.clone();
    metadata.insert(STREAM_ID_KEY.into(), id.to_string());
    metadata.insert(STREAM_CREATED_KEY.into(), created);
    Some(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn info(metadata: &[(&str, &str)]) -> stream::Info {
        let config = stream::Config {
            name: "IMGCRAWL".into(),
            subjects: vec!["imgcrawl.>".into()],
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let v = serde_json::json!({
            "config": config,
            "created": "2026-01-01T00:00:00.123456789Z",
            "state": {"messages": 0, "bytes": 0, "first_seq": 0, "first_ts": "0001-01-01T00:00:00Z",
                      "last_seq": 0, "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0},
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_stream_with_an_id_is_not_adopted_again_and_reads_back() {
        let i = info(&[(STREAM_ID_KEY, "abc")]);
        assert!(adoption(&i).is_none());
        let id = StreamIdentity::of(&i).unwrap();
        assert_eq!(id.id, "abc");
        assert_eq!(id.legacy_created, None);
        assert_eq!(id.to_string(), "IMGCRAWL (id abc)");
    }

    #[test]
    fn adoption_is_deterministic_keeps_other_metadata_and_records_the_legacy_time() {
        let i = info(&[("owner", "ops")]);
        assert!(StreamIdentity::of(&i).is_none());
        let a = adoption(&i).unwrap();
        assert_eq!(a, adoption(&i).unwrap(), "racing adopters agree");
        assert_eq!(a["owner"], "ops");
        assert_eq!(a[STREAM_CREATED_KEY], "2026-01-01T00:00:00.123456Z");
        let mut adopted = i.clone();
        adopted.config.metadata = a;
        let id = StreamIdentity::of(&adopted).unwrap();
        let t = Utc.timestamp_opt(1_767_225_600, 123_456_000).unwrap();
        assert!(id.matches_legacy("IMGCRAWL", t));
        assert!(!id.matches_legacy("OTHER", t));
        assert!(!id.matches_legacy("IMGCRAWL", t + chrono::Duration::seconds(1)));
    }

    #[test]
    fn new_streams_get_distinct_ids() {
        assert_ne!(new_metadata()[STREAM_ID_KEY], new_metadata()[STREAM_ID_KEY]);
    }
}
