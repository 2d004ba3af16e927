//! Where host leases are kept: a compare-and-set key-value store. In production the
//! NATS KV bucket `imgcrawl-hosts` ([`KvLeaseStore`]); in unit tests an in-memory map
//! ([`MemoryLeaseStore`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;
use futures::future::BoxFuture;

/// A failed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasError {
    /// The key moved on since the revision we wrote against (or exists, on create).
    Conflict,
    /// The store could not be reached or refused the write.
    Other(String),
}

/// A value and its revision.
pub type Entry = (Vec<u8>, u64);

/// A compare-and-set store of small values.
pub trait LeaseStore: Send + Sync {
    /// The value of `key` and its revision, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, String>>;
    /// Creates `key`; fails with [`CasError::Conflict`] if it exists.
    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<u64, CasError>>;
    /// Writes `key` if its revision is still `revision`.
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, CasError>>;
}

/// Host leases in a NATS KV bucket.
pub struct KvLeaseStore {
    kv: kv::Store,
}

impl KvLeaseStore {
    /// Leases in `kv` (the bus opens the bucket: `imgcrawl_bus::hosts::open`).
    pub fn new(kv: kv::Store) -> KvLeaseStore {
        KvLeaseStore { kv }
    }
}

impl LeaseStore for KvLeaseStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, String>> {
        Box::pin(async move {
            match self.kv.entry(key).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => {
                    Ok(Some((e.value.to_vec(), e.revision)))
                }
                // a deleted or purged key reads as absent; its revision still counts
                Ok(Some(e)) => Ok(Some((Vec::new(), e.revision))),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("read host lease {key}: {e}")),
            }
        })
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<u64, CasError>> {
        Box::pin(async move {
            match self.kv.create(key, value.into()).await {
                Ok(rev) => Ok(rev),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(CasError::Conflict),
                Err(e) => Err(CasError::Other(format!("create host lease {key}: {e}"))),
            }
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, CasError>> {
        Box::pin(async move {
            match self.kv.update(key, value.into(), revision).await {
                Ok(rev) => Ok(rev),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Err(CasError::Conflict)
                }
                Err(e) => Err(CasError::Other(format!("update host lease {key}: {e}"))),
            }
        })
    }
}

/// Host leases in memory (one process; for tests).
#[derive(Clone, Default)]
pub struct MemoryLeaseStore {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    /// The last revision handed out.
    seq: Arc<Mutex<u64>>,
}

impl MemoryLeaseStore {
    fn next(&self) -> u64 {
        let mut s = self.seq.lock().expect("store lock");
        *s += 1;
        *s
    }
}

impl LeaseStore for MemoryLeaseStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, String>> {
        let v = self.map.lock().expect("store lock").get(key).cloned();
        Box::pin(async move { Ok(v) })
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<u64, CasError>> {
        let r = {
            let mut map = self.map.lock().expect("store lock");
            if map.contains_key(key) {
                Err(CasError::Conflict)
            } else {
                let rev = self.next();
                map.insert(key.to_string(), (value, rev));
                Ok(rev)
            }
        };
        Box::pin(async move { r })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, CasError>> {
        let r = {
            let mut map = self.map.lock().expect("store lock");
            match map.get(key) {
                Some((_, rev)) if *rev == revision => {
                    let rev = self.next();
                    map.insert(key.to_string(), (value, rev));
                    Ok(rev)
                }
                _ => Err(CasError::Conflict),
            }
        };
        Box::pin(async move { r })
    }
}
