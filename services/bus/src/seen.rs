//! The URL seen-set and per-job budgets, shared by every crawler replica.
//!
//! [`SeenSet::claim`] is an atomic KV create: the first replica to claim a key wins.
//! The winner stores an owner tag (the message that discovered the URL), so when that
//! message is redelivered after a crash the same owner sees [`Claim::Mine`] and
//! re-publishes (JetStream deduplicates by message id) instead of losing the URL.
//!
//! **Depth.** A page's claim also records the link depth it was found at. First come
//! is not shortest path: with concurrent handlers, redeliveries and faults, a page can
//! be reached first along a longer path, and a job's `max_depth` would then cut off
//! pages a breadth-first crawl reaches (the chaos `partition` case lost whole pages
//! this way: their only linkers had been claimed too deep). A claim found at a smaller
//! depth than the recorded one takes the key over with compare-and-set
//! ([`Claim::Lowered`]), and the caller publishes the page again at that depth. So a
//! page's depth is its shortest link distance from the seed, whatever the order.
//!
//! [`SeenSet::reserve`] grants up to `want` units of a per-job budget (pages, images)
//! with compare-and-set, so `max_pages` holds across replicas. Within one process the
//! reservations of a budget take turns (one compare-and-set in flight per budget), so
//! concurrent handlers do not make each other's writes fail and retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;
use futures::future::try_join_all;
use imgcrawl_events::url_key;
use uuid::Uuid;

use crate::BusError;

/// Who got a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This call created the key.
    First,
    /// The key exists and carries this caller's owner tag (a redelivery).
    Mine,
    /// Someone else claimed it first (at the same or a smaller depth).
    Other,
    /// Someone else claimed it first, at a greater depth; this caller has taken the key
    /// over at its smaller depth and must publish the URL again.
    Lowered,
}

/// Compare-and-set attempts to lower a claim before giving up (the caller retries).
const LOWER_ATTEMPTS: usize = 16;

/// The stored value of a claim: the owner tag, and `/depth` when a depth is given.
fn claim_value(owner: &str, depth: Option<u32>) -> String {
    match depth {
        Some(d) => format!("{owner}/{d}"),
        None => owner.to_string(),
    }
}

/// Splits a stored claim into its owner tag and depth (none for image claims and for
/// claims written before depths were recorded).
fn parse_claim(value: &[u8]) -> (String, Option<u32>) {
    let s = String::from_utf8_lossy(value);
    match s.rsplit_once('/') {
        Some((owner, d)) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
            match d.parse() {
                Ok(d) => (owner.to_string(), Some(d)),
                Err(_) => (s.into_owned(), None),
            }
        }
        _ => (s.into_owned(), None),
    }
}

/// Budget keys in use at most before idle turnstiles are dropped.
const MAX_TURNSTILES: usize = 1024;

/// One async lock per budget key: reservations of a budget take turns in this process.
type Turnstiles = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Handle to the seen-set bucket.
#[derive(Clone)]
pub struct SeenSet {
    kv: kv::Store,
    turnstiles: Turnstiles,
}

fn kv_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kv {
        bucket: "seen".into(),
        detail: e.to_string(),
    }
}

impl SeenSet {
    /// Wraps a KV store.
    pub fn new(kv: kv::Store) -> Self {
        SeenSet {
            kv,
            turnstiles: Turnstiles::default(),
        }
    }

    /// The lock reservations of budget `key` take turns on.
    fn turnstile(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.turnstiles.lock().expect("turnstile lock");
        if let Some(t) = map.get(key) {
            return t.clone();
        }
        if map.len() >= MAX_TURNSTILES {
            map.retain(|_, t| Arc::strong_count(t) > 1);
        }
        map.entry(key.to_string()).or_default().clone()
    }

    /// The key for `url` of kind `kind` (`page`, `image`) in `job`.
    pub fn key(job: Uuid, kind: &str, url: &str) -> String {
        format!("{}.{kind}.{}", job.simple(), url_key(url))
    }

    /// Claims one key for `owner`, found at link depth `depth` (pages; `None` for
    /// image URLs, which have no depth limit).
    pub async fn claim(
        &self,
        key: &str,
        owner: &str,
        depth: Option<u32>,
    ) -> Result<Claim, BusError> {
        let value = claim_value(owner, depth);
        match self.kv.create(key, value.clone().into()).await {
            Ok(_) => return Ok(Claim::First),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(kv_err(e)),
        }
        for _ in 0..LOWER_ATTEMPTS {
            // Reads may be answered by any replica (direct get), and one that is
            // behind (a node back from a partition) does not have the key yet.
            // "Absent" is then not an answer: taking it for another owner's claim
            // made a redelivered page skip links it had claimed itself, and
            // nobody ever published them (lost pages in the chaos partition case).
            let entry = match self.kv.entry(key).await.map_err(kv_err)? {
                Some(e) if e.operation == kv::Operation::Put => e,
                _ => {
                    return Err(kv_err(format!(
                        "claim {key} exists but reads as absent (a replica behind); try again"
                    )))
                }
            };
            let (held_by, held_at) = parse_claim(&entry.value);
            if held_by == owner {
                return Ok(Claim::Mine);
            }
            match (depth, held_at) {
                (Some(ours), Some(theirs)) if ours < theirs => {}
                _ => return Ok(Claim::Other),
            }
            match self
                .kv
                .update(key, value.clone().into(), entry.revision)
                .await
            {
                Ok(_) => return Ok(Claim::Lowered),
                // Changed since the read (lowered by someone else, or the read came
                // from a replica behind): read again.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(kv_err(e)),
            }
        }
        Err(kv_err(format!(
            "claim {key}: could not lower it in {LOWER_ATTEMPTS} attempts; try again"
        )))
    }

    /// The owner tag and depth a key was claimed with, if it was (diagnostics: who
    /// holds a URL).
    pub async fn owner(&self, key: &str) -> Result<Option<(String, Option<u32>)>, BusError> {
        Ok(self
            .kv
            .get(key)
            .await
            .map_err(kv_err)?
            .map(|v| parse_claim(&v)))
    }

    /// Claims many keys concurrently at one depth; results are in the order of `keys`.
    pub async fn claim_all(
        &self,
        keys: &[String],
        owner: &str,
        depth: Option<u32>,
    ) -> Result<Vec<Claim>, BusError> {
        try_join_all(keys.iter().map(|k| self.claim(k, owner, depth))).await
    }

    /// Grants up to `want` units of the budget `name` of `job` whose total is `limit`;
    /// returns how many were granted (0 when the budget is spent).
    pub async fn reserve(
        &self,
        job: Uuid,
        name: &str,
        want: u64,
        limit: u64,
    ) -> Result<u64, BusError> {
        if want == 0 {
            return Ok(0);
        }
        let key = format!("{}.budget.{name}", job.simple());
        let turnstile = self.turnstile(&key);
        let _turn = turnstile.lock().await;
        loop {
            let entry = self.kv.entry(key.clone()).await.map_err(kv_err)?;
            let (used, revision) = match &entry {
                Some(e) if e.operation == kv::Operation::Put => (
                    std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0),
                    Some(e.revision),
                ),
                _ => (0, None),
            };
            let granted = want.min(limit.saturating_sub(used));
            if granted == 0 {
                return Ok(0);
            }
            let value = (used + granted).to_string().into();
            let res = match revision {
                Some(r) => self
                    .kv
                    .update(&key, value, r)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .kv
                    .create(&key, value)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            };
            match res {
                Ok(()) => return Ok(granted),
                Err(true) => continue, // lost the race: read again
                Err(false) => return Err(kv_err(format!("budget {key}: update failed"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_round_trip() {
        assert_eq!(claim_value("seq:12", Some(3)), "seq:12/3");
        assert_eq!(parse_claim(b"seq:12/3"), ("seq:12".into(), Some(3)));
        assert_eq!(claim_value("seq:12", None), "seq:12");
        // Image claims, and page claims written before depths were recorded.
        assert_eq!(parse_claim(b"seq:12"), ("seq:12".into(), None));
        assert_eq!(parse_claim(b"a/b"), ("a/b".into(), None));
        assert_eq!(parse_claim(b"a/"), ("a/".into(), None));
        assert_eq!(
            parse_claim(b"a/99999999999999999999"),
            ("a/99999999999999999999".into(), None)
        );
    }
}
