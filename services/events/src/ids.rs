//! Deterministic identifiers: URL keys, job ids for hand-published requests, trace context.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for job ids derived from stream sequences (UUIDv5).
const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_7f3e_9b2d_4c8a_a5e1_0d3f_2b7c_9e41);

/// A short stable key for a URL: 32 hex chars of its SHA-256. Used in message ids and
/// seen-set keys (KV keys cannot hold arbitrary URL characters).
pub fn url_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    hex::encode(&digest[..16])
}

/// The job id of a request published without one: derived from the stream and the
/// sequence the request landed at, so every consumer and every replay agrees on it.
pub fn job_id_from_sequence(stream: &str, sequence: u64) -> Uuid {
    Uuid::new_v5(&JOB_NAMESPACE, format!("{stream}:{sequence}").as_bytes())
}

/// A W3C `traceparent` whose trace id is the job id, and whose span id is derived from
/// the message id, so one crawl is one trace across every stage.
pub fn traceparent(job_id: Option<Uuid>, msg_id: &str) -> String {
    let trace = match job_id {
        Some(j) if !j.is_nil() => j.simple().to_string(),
        _ => hex::encode(&Sha256::digest(msg_id.as_bytes())[..16]),
    };
    let span = hex::encode(&Sha256::digest(msg_id.as_bytes())[16..24]);
    format!("00-{trace}-{span}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_key_is_stable_and_short() {
        assert_eq!(url_key("http://a/"), url_key("http://a/"));
        assert_ne!(url_key("http://a/"), url_key("http://b/"));
        assert_eq!(url_key("x").len(), 32);
    }

    #[test]
    fn job_ids_from_sequences_are_deterministic() {
        assert_eq!(job_id_from_sequence("S", 7), job_id_from_sequence("S", 7));
        assert_ne!(job_id_from_sequence("S", 7), job_id_from_sequence("S", 8));
    }

    #[test]
    fn traceparent_has_w3c_shape() {
        let j = Uuid::from_u128(0xabc);
        let t = traceparent(Some(j), "m");
        let parts: Vec<_> = t.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1], j.simple().to_string());
        assert_eq!(parts[2].len(), 16);
    }
}
