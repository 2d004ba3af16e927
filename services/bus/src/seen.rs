//! The URL seen-set and per-job budgets, shared by every crawler replica.
//!
//! [`SeenSet::claim`] is an atomic KV create: the first replica to claim a key wins.
//! The winner stores an owner tag (the message that discovered the URL), so when that
//! message is redelivered after a crash the same owner sees [`Claim::Mine`] and
//! re-publishes (JetStream deduplicates by message id) instead of losing the URL.
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
    /// Someone else claimed it first.
    Other,
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

    /// Claims one key for `owner`.
    pub async fn claim(&self, key: &str, owner: &str) -> Result<Claim, BusError> {
        match self.kv.create(key, owner.to_string().into()).await {
            Ok(_) => Ok(Claim::First),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                // Reads may be answered by any replica (direct get), and one that is
                // behind (a node back from a partition) does not have the key yet.
                // "Absent" is then not an answer: taking it for another owner's claim
                // made a redelivered page skip links it had claimed itself, and
                // nobody ever published them (lost pages in the chaos partition
                // case). A key is written once, so any value read is the value.
                match self.kv.get(key).await.map_err(kv_err)? {
                    Some(v) if v.as_ref() == owner.as_bytes() => Ok(Claim::Mine),
                    Some(_) => Ok(Claim::Other),
                    None => Err(kv_err(format!(
                        "claim {key} exists but reads as absent (a replica behind); try again"
                    ))),
                }
            }
            Err(e) => Err(kv_err(e)),
        }
    }

    /// The owner tag a key was claimed with, if it was (diagnostics: who holds a URL).
    pub async fn owner(&self, key: &str) -> Result<Option<String>, BusError> {
        Ok(self
            .kv
            .get(key)
            .await
            .map_err(kv_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Claims many keys concurrently; results are in the order of `keys`.
    pub async fn claim_all(&self, keys: &[String], owner: &str) -> Result<Vec<Claim>, BusError> {
        try_join_all(keys.iter().map(|k| self.claim(k, owner))).await
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
