//! Resolved job specs and their run state, shared by every stage replica.
//!
//! The crawl stage writes a job's [`JobSpec`] when it accepts the request and flips
//! `stopped` when the job is stopped; the download stage reads the image filters and
//! politeness from here. Reads are cached for a second, so a stop reaches every
//! replica within about a second without a KV round trip per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use imgcrawl_events::JobSpec;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::BusError;

/// How long a cached record is trusted.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// Cached records and when they were read.
type Cache = HashMap<Uuid, (Arc<JobRecord>, Instant)>;

/// A job as the stages see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The spec (absent when a stop arrived before the request was processed).
    pub spec: Option<JobSpec>,
    /// Stopped: in-flight work drains, nothing new starts.
    pub stopped: bool,
}

/// Handle to the jobs bucket with a small read cache.
#[derive(Clone)]
pub struct JobStore {
    kv: kv::Store,
    cache: Arc<Mutex<Cache>>,
}

fn kv_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kv {
        bucket: "jobs".into(),
        detail: e.to_string(),
    }
}

impl JobStore {
    /// Wraps a KV store.
    pub fn new(kv: kv::Store) -> Self {
        JobStore {
            kv,
            cache: Arc::default(),
        }
    }

    fn key(job: Uuid) -> String {
        job.simple().to_string()
    }

    /// Reads a job (cached for a second).
    pub async fn get(&self, job: Uuid) -> Result<Option<Arc<JobRecord>>, BusError> {
        if let Some((rec, at)) = self.cache.lock().expect("cache lock").get(&job) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(rec.clone()));
            }
        }
        let Some(entry) = self.kv.entry(Self::key(job)).await.map_err(kv_err)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let rec: JobRecord = serde_json::from_slice(&entry.value).map_err(kv_err)?;
        let rec = Arc::new(rec);
        self.cache
            .lock()
            .expect("cache lock")
            .insert(job, (rec.clone(), Instant::now()));
        Ok(Some(rec))
    }

    /// Applies `f` to the stored record with compare-and-set, retrying on races.
    async fn modify(
        &self,
        job: Uuid,
        f: impl Fn(Option<JobRecord>) -> JobRecord,
    ) -> Result<JobRecord, BusError> {
        let key = Self::key(job);
        loop {
            let entry = self.kv.entry(key.clone()).await.map_err(kv_err)?;
            let (cur, rev) = match entry {
                Some(e) if e.operation == kv::Operation::Put => (
                    Some(serde_json::from_slice::<JobRecord>(&e.value).map_err(kv_err)?),
                    Some(e.revision),
                ),
                _ => (None, None),
            };
            let next = f(cur.clone());
            if Some(&next) == cur.as_ref() {
                return Ok(next);
            }
            let body: bytes::Bytes = serde_json::to_vec(&next)
                .expect("job records serialize")
                .into();
            let ok = match rev {
                Some(r) => match self.kv.update(&key, body, r).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(kv_err(e)),
                },
                None => match self.kv.create(&key, body).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(kv_err(e)),
                },
            };
            if ok {
                self.cache
                    .lock()
                    .expect("cache lock")
                    .insert(job, (Arc::new(next.clone()), Instant::now()));
                return Ok(next);
            }
        }
    }

    /// Records a job's spec (idempotent; keeps an earlier stop).
    pub async fn put_spec(&self, spec: &JobSpec) -> Result<JobRecord, BusError> {
        self.modify(spec.job_id, |cur| JobRecord {
            spec: Some(spec.clone()),
            stopped: cur.is_some_and(|c| c.stopped),
        })
        .await
    }

    /// Marks a job stopped (idempotent; works before the spec is known).
    pub async fn stop(&self, job: Uuid) -> Result<JobRecord, BusError> {
        self.modify(job, |cur| JobRecord {
            spec: cur.and_then(|c| c.spec),
            stopped: true,
        })
        .await
    }
}
