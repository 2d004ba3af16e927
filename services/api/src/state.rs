//! What every handler shares: the database nodes (and the primary's pool), the bus,
//! the bucket, the tokens, the rate limiter, the thumbnailer and a few small caches.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use imgcrawl_bus::Bus;
use object_store::ObjectStore;
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::crawl::{ImageCounters, IndexLag, JobState, JobStatus, PageCounters, Rates};
use crate::nodes::Nodes;
use crate::thumbs::Thumbnailer;
use crate::Config;
use imgcrawl_web::{Limiter, Tokens};

/// How many jobs requested through this server are remembered until the index has them.
const RECENT_JOBS: usize = 1024;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The index's PostgreSQL nodes and the primary reads go to.
    pub nodes: Arc<Nodes>,
    /// NATS: writes are events.
    pub bus: Bus,
    /// The bucket the store stage writes.
    pub store: Arc<dyn ObjectStore>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The valid bearer tokens and their scopes.
    pub tokens: Arc<Tokens>,
    /// Per-client rate limit (and the trusted proxies that tell clients apart).
    pub limiter: Arc<Limiter>,
    /// Thumbnails.
    pub thumbs: Arc<Thumbnailer>,
    /// Jobs requested here, not necessarily indexed yet.
    pub recent: Arc<RecentJobs>,
    /// The last index-lag measurement and the node it was made on, reused for a second.
    pub lag_cache: Arc<Mutex<Option<(Instant, String, IndexLag)>>>,
}

impl AppState {
    /// The read pool on the current primary (take it once per request).
    pub fn db(&self) -> PgPool {
        self.nodes.pool()
    }
}

/// A job this server published.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentJob {
    /// The job.
    pub job_id: Uuid,
    /// Its seeds.
    pub seeds: Vec<String>,
    /// Its label.
    pub label: Option<String>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}

impl RecentJob {
    /// Its status while the index does not have it yet.
    pub fn status(&self) -> JobStatus {
        let elapsed = ((Utc::now() - self.requested_at).num_milliseconds().max(0) as f64) / 1000.0;
        JobStatus {
            job_id: self.job_id,
            state: JobState::Requested,
            label: self.label.clone(),
            seeds: self.seeds.clone(),
            requested_at: Some(self.requested_at),
            stopped_at: None,
            completed_at: None,
            last_event_at: None,
            pages: PageCounters::default(),
            images: ImageCounters::default(),
            bytes_downloaded: 0,
            elapsed_secs: elapsed,
            rate: Rates::default(),
        }
    }
}

/// The most recent jobs requested through this server (bounded).
#[derive(Debug, Default)]
pub struct RecentJobs {
    jobs: Mutex<VecDeque<RecentJob>>,
}

impl RecentJobs {
    /// Remembers a job, forgetting the oldest past the bound.
    pub fn push(&self, job: RecentJob) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.len() >= RECENT_JOBS {
            jobs.pop_front();
        }
        jobs.push_back(job);
    }

    /// The job, if it was requested here.
    pub fn get(&self, job: Uuid) -> Option<RecentJob> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().find(|j| j.job_id == job).cloned()
    }

    /// Every remembered job, newest first.
    pub fn newest_first(&self) -> Vec<RecentJob> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_jobs_are_bounded_and_newest_first() {
        let r = RecentJobs::default();
        let job = |n: u128| RecentJob {
            job_id: Uuid::from_u128(n),
            seeds: vec![],
            label: None,
            requested_at: Utc::now(),
        };
        for n in 0..(RECENT_JOBS as u128 + 5) {
            r.push(job(n));
        }
        assert!(r.get(Uuid::from_u128(0)).is_none());
        assert!(r.get(Uuid::from_u128(5)).is_some());
        let all = r.newest_first();
        assert_eq!(all.len(), RECENT_JOBS);
        assert_eq!(all[0].job_id, Uuid::from_u128(RECENT_JOBS as u128 + 4));
    }
}
