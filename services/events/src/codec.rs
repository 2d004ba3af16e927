//! Encoding events for the wire and decoding (with validation) what arrives.
//!
//! Decoding never panics: anything that is not a valid event of a known kind and
//! version is a [`DecodeError`], which stages dead-letter with its message as the reason.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ids::traceparent;
use crate::kinds::{EventKind, SCHEMA_VERSION};
use crate::types::*;

/// Header carrying the deterministic message id (JetStream deduplication).
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Header carrying the event type and schema version, e.g. `image.downloaded.v1`.
pub const HEADER_EVENT: &str = "Imgcrawl-Event";
/// Header carrying the W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header a restored event carries: when the original stream stored it (RFC 3339),
/// read in place of the message time (`docs/backup.md`).
pub const HEADER_STORED_AT: &str = "Imgcrawl-Stored-At";

/// Why bytes on a subject are not a valid event. Every variant is poison: retrying
/// cannot fix it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The subject is not an event subject.
    #[error("unknown event subject {0:?}")]
    UnknownSubject(String),
    /// The `Imgcrawl-Event` header names another kind or an unsupported version.
    #[error("unsupported event header {0:?} (this build reads version {SCHEMA_VERSION})")]
    UnknownVersion(String),
    /// The body is not JSON of the kind's shape.
    #[error("malformed {kind} body: {detail}")]
    Malformed {
        /// The kind the subject promised.
        kind: EventKind,
        /// The JSON error.
        detail: String,
    },
    /// The body parsed but breaks a rule (bad URL, bad hash...).
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// An event ready to publish.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// Subject to publish on.
    pub subject: String,
    /// `Nats-Msg-Id` value.
    pub msg_id: String,
    /// `Imgcrawl-Event` value.
    pub event_header: String,
    /// `traceparent` value.
    pub traceparent: String,
    /// JSON body.
    pub payload: Vec<u8>,
}

impl Event {
    /// Encodes the event: subject, headers and JSON body.
    pub fn encode(&self) -> EncodedEvent {
        let kind = self.kind();
        let msg_id = self.msg_id();
        let payload = match self {
            Event::CrawlRequested(e) => to_vec(e),
            Event::CrawlStopped(e) => to_vec(e),
            Event::PageDiscovered(e) => to_vec(e),
            Event::PageFetched(e) => to_vec(e),
            Event::PageFailed(e) => to_vec(e),
            Event::ImageDiscovered(e) => to_vec(e),
            Event::ImageDownloaded(e) => to_vec(e),
            Event::ImageRejected(e) => to_vec(e),
            Event::ImageStored(e) => to_vec(e),
            Event::ImageIndexed(e) => to_vec(e),
            Event::ImagesIndexed(e) => to_vec(e),
            Event::ImageDeleted(e) => to_vec(e),
            Event::CrawlCompleted(e) => to_vec(e),
            Event::HaFailover(e) => to_vec(e),
        };
        EncodedEvent {
            subject: kind.subject(),
            traceparent: traceparent(self.job_id(), &msg_id),
            msg_id,
            event_header: kind.header_value(),
            payload,
        }
    }
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs cannot fail.
    serde_json::to_vec(v).expect("event structs always serialize")
}

fn parse<T: DeserializeOwned>(kind: EventKind, payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed {
        kind,
        detail: e.to_string(),
    })
}

/// Decodes an event from its subject, its `Imgcrawl-Event` header (absent on
/// hand-published messages, which are then read as the current version) and its body.
pub fn decode(
    subject: &str,
    event_header: Option<&str>,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    let kind = EventKind::from_subject(subject)
        .ok_or_else(|| DecodeError::UnknownSubject(subject.to_string()))?;
    if let Some(h) = event_header {
        if h != kind.header_value() {
            return Err(DecodeError::UnknownVersion(h.to_string()));
        }
    }
    let event = match kind {
        EventKind::CrawlRequested => Event::CrawlRequested(parse(kind, payload)?),
        EventKind::CrawlStopped => Event::CrawlStopped(parse(kind, payload)?),
        EventKind::PageDiscovered => Event::PageDiscovered(parse(kind, payload)?),
        EventKind::PageFetched => Event::PageFetched(parse(kind, payload)?),
        EventKind::PageFailed => Event::PageFailed(parse(kind, payload)?),
        EventKind::ImageDiscovered => Event::ImageDiscovered(parse(kind, payload)?),
        EventKind::ImageDownloaded => Event::ImageDownloaded(parse(kind, payload)?),
        EventKind::ImageRejected => Event::ImageRejected(parse(kind, payload)?),
        EventKind::ImageStored => Event::ImageStored(parse(kind, payload)?),
        EventKind::ImageIndexed => Event::ImageIndexed(parse(kind, payload)?),
        EventKind::ImagesIndexed => Event::ImagesIndexed(parse(kind, payload)?),
        EventKind::ImageDeleted => Event::ImageDeleted(parse(kind, payload)?),
        EventKind::CrawlCompleted => Event::CrawlCompleted(parse(kind, payload)?),
        EventKind::HaFailover => Event::HaFailover(parse(kind, payload)?),
    };
    validate(&event)?;
    Ok(event)
}

fn check_url(field: &str, u: &str) -> Result<(), DecodeError> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(DecodeError::Invalid(format!(
            "{field} {u:?} is not an http(s) url"
        ))),
        Err(e) => Err(DecodeError::Invalid(format!("{field} {u:?}: {e}"))),
    }
}

fn check_sha(s: &str) -> Result<(), DecodeError> {
    match crate::Sha256::is_valid(s) {
        true => Ok(()),
        false => Err(DecodeError::Invalid(
            crate::InvalidSha256(s.to_owned()).to_string(),
        )),
    }
}

/// Rules serde cannot express: URLs are http(s), hashes are lowercase hex.
fn validate(event: &Event) -> Result<(), DecodeError> {
    match event {
        Event::CrawlRequested(_) | Event::CrawlStopped(_) | Event::CrawlCompleted(_) => Ok(()),
        Event::PageDiscovered(e) => check_url("url", &e.url),
        Event::PageFetched(e) => check_url("url", &e.url),
        Event::PageFailed(e) => check_url("url", &e.url),
        Event::ImageDiscovered(e) => check_url("url", &e.url),
        Event::ImageDownloaded(e) => {
            check_url("url", &e.url)?;
            check_sha(&e.sha256)
        }
        Event::ImageRejected(e) => check_url("url", &e.url),
        Event::ImageStored(e) => check_sha(&e.sha256),
        Event::ImageIndexed(e) => check_sha(&e.sha256),
        Event::ImagesIndexed(e) => e.images.iter().try_for_each(|i| check_sha(&i.sha256)),
        Event::ImageDeleted(e) => check_sha(&e.sha256),
        Event::HaFailover(e) => check_failover(e),
    }
}

/// A failover names a target and a new primary, and its epoch is at least 1.
fn check_failover(e: &HaFailover) -> Result<(), DecodeError> {
    if e.target.is_empty() || e.to.is_empty() {
        return Err(DecodeError::Invalid(
            "ha.failover needs a target and a new primary".into(),
        ));
    }
    if e.epoch == 0 {
        return Err(DecodeError::Invalid(
            "ha.failover epoch must be at least 1".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn discovered() -> Event {
        Event::PageDiscovered(PageDiscovered {
            job_id: Uuid::from_u128(1),
            url: "http://a.test/x".into(),
            depth: 1,
            referrer: None,
            occurred_at: Utc::now(),
        })
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let e = discovered();
        let enc = e.encode();
        assert_eq!(enc.subject, "imgcrawl.page.discovered");
        assert_eq!(enc.event_header, "page.discovered.v1");
        assert_eq!(
            decode(&enc.subject, Some(&enc.event_header), &enc.payload).unwrap(),
            e
        );
    }

    #[test]
    fn bad_input_is_a_typed_error_not_a_panic() {
        let enc = discovered().encode();
        assert!(matches!(
            decode(&enc.subject, Some("page.discovered.v9"), &enc.payload),
            Err(DecodeError::UnknownVersion(_))
        ));
        assert!(matches!(
            decode(&enc.subject, None, b"{not json"),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode("imgcrawl.nope", None, b"{}"),
            Err(DecodeError::UnknownSubject(_))
        ));
        let bad_url = br#"{"job_id":"00000000-0000-0000-0000-000000000001","url":"javascript:x","depth":0,"occurred_at":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(
            decode(&enc.subject, None, bad_url),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn hand_published_request_decodes_without_headers() {
        let e = decode(
            "imgcrawl.crawl.requested",
            None,
            br#"{"url":"https://example.org/"}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            Event::CrawlRequested(CrawlRequested { url: Some(_), .. })
        ));
    }

    #[test]
    fn failovers_round_trip_and_are_checked() {
        let e = Event::HaFailover(HaFailover {
            target: "postgres".into(),
            from: Some("pg1".into()),
            to: "pg2".into(),
            epoch: 2,
            reason: "primary pg1 down".into(),
            manual: false,
            occurred_at: Utc::now(),
        });
        let enc = e.encode();
        assert_eq!(enc.subject, "imgcrawl.ha.failover");
        assert_eq!(enc.msg_id, "ha.failover:postgres:2");
        assert_eq!(
            decode(&enc.subject, Some(&enc.event_header), &enc.payload).unwrap(),
            e
        );
        let zero = br#"{"target":"postgres","to":"pg2","epoch":0,"reason":"x","occurred_at":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(
            decode(&enc.subject, None, zero),
            Err(DecodeError::Invalid(_))
        ));
    }

    fn indexed(n: usize) -> Vec<IndexedImage> {
        (0..n)
            .map(|i| IndexedImage {
                seq: 10 + i as u64,
                job_id: Uuid::from_u128(3),
                url: format!("http://a.test/{i}.png"),
                sha256: format!("{i:064x}"),
                image_id: i as i64 + 1,
                stored_at: Utc::now(),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_announced_per_job_in_parts_named_by_its_checkpoint() {
        let mut all = indexed(ImagesIndexed::MAX_IMAGES * 2 + 2);
        let other = Uuid::from_u128(4);
        all[1].job_id = other;
        let parts = ImagesIndexed::parts(41, &all, Utc::now());
        assert_eq!(parts.len(), 4, "job 3 in three parts, job 4 in one");
        assert_eq!(parts[2].images.len(), 1, "job 3's last part");
        assert_eq!(parts[3].job_id, other);
        assert!(parts
            .iter()
            .all(|p| p.images.iter().all(|i| i.job_id == p.job_id)));
        let mut flat: Vec<_> = parts.iter().flat_map(|p| p.images.clone()).collect();
        flat.sort_by_key(|i| i.seq);
        assert_eq!(flat, all, "every source once");
        let ids: Vec<_> = parts
            .iter()
            .map(|p| Event::ImagesIndexed(p.clone()).msg_id())
            .collect();
        let j = Uuid::from_u128(3);
        assert_eq!(
            ids,
            [
                format!("images.indexed:41:{j}:0"),
                format!("images.indexed:41:{j}:1"),
                format!("images.indexed:41:{j}:2"),
                format!("images.indexed:41:{other}:0"),
            ]
        );
        assert_eq!(Event::ImagesIndexed(parts[3].clone()).job_id(), Some(other));
        assert!(ImagesIndexed::parts(41, &[], Utc::now()).is_empty());
        let e = Event::ImagesIndexed(parts[0].clone());
        let enc = e.encode();
        assert_eq!(enc.subject, "imgcrawl.images.indexed");
        assert!(enc.payload.len() < 256 * 1024, "a full part stays small");
        assert_eq!(
            decode(&enc.subject, Some(&enc.event_header), &enc.payload).unwrap(),
            e
        );
        let bad = String::from_utf8(enc.payload)
            .unwrap()
            .replacen(&all[0].sha256, "not-a-sha", 1);
        assert!(matches!(
            decode(&enc.subject, None, bad.as_bytes()),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn both_outcomes_of_one_url_share_a_message_id() {
        let now = Utc::now();
        let j = Uuid::from_u128(2);
        let ok = Event::PageFetched(PageFetched {
            job_id: j,
            url: "http://a/".into(),
            final_url: "http://a/".into(),
            depth: 0,
            status: 200,
            bytes: 1,
            title: None,
            links_found: 0,
            pages_discovered: 0,
            images_found: 0,
            images_discovered: 0,
            render: None,
            occurred_at: now,
        });
        let bad = Event::PageFailed(PageFailed {
            job_id: j,
            url: "http://a/".into(),
            depth: 0,
            reason: PageFailure::Network,
            detail: String::new(),
            http_status: None,
            occurred_at: now,
        });
        assert_eq!(ok.msg_id(), bad.msg_id());
        // A second visit of the page at a smaller depth is not a duplicate of the first.
        let Event::PageFailed(mut shallower) = bad.clone() else {
            unreachable!()
        };
        shallower.depth = 1;
        assert_ne!(Event::PageFailed(shallower).msg_id(), bad.msg_id());
        let found = |depth| {
            Event::PageDiscovered(PageDiscovered {
                job_id: j,
                url: "http://a/".into(),
                depth,
                referrer: None,
                occurred_at: now,
            })
            .msg_id()
        };
        assert_eq!(found(2), found(2));
        assert_ne!(found(2), found(1));
    }
}
