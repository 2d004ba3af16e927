//! The watchers' lease: of several watchers, only the holder acts (elects, fences,
//! runs consistency checks, answers requests); the others check and report.
//!
//! The lease is a KV record (`postgres-lease` in `imgcrawl-ha`) written only with
//! compare-and-set on its revision. The holder renews it every check interval. Another
//! watcher takes it over when its revision has not changed for a whole lease duration,
//! measured on its own monotonic clock from when it first saw that revision (no clock
//! comparison between machines). The holder stops acting once its last successful
//! renewal is older than the lease minus one interval, so an old holder cut off from
//! NATS has stopped before anyone else can start. A watcher that shuts down cleanly
//! releases the lease (empty holder) and another takes it at its next renewal.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use imgcrawl_bus::ha::HaStore;
use imgcrawl_bus::BusError;
use serde::{Deserialize, Serialize};
use tracing::info;

/// The lease record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The watcher holding it (empty: released).
    pub holder: String,
    /// When the holder took it.
    pub since: DateTime<Utc>,
    /// When it was last renewed (informational: takeover uses revisions, not clocks).
    pub renewed_at: DateTime<Utc>,
}

/// One watcher's view of the lease.
#[derive(Debug)]
pub struct Lease {
    key: String,
    me: String,
    duration: Duration,
    interval: Duration,
    /// When we sent our last successful renewal.
    renewed: Option<Instant>,
    since: Option<DateTime<Utc>>,
    /// Someone else's record: its revision and when we first saw it.
    observed: Option<(u64, Instant)>,
    holder: Option<String>,
}

impl Lease {
    /// A lease at `key` for watcher `me`.
    pub fn new(key: &str, me: &str, duration: Duration, interval: Duration) -> Lease {
        Lease {
            key: key.into(),
            me: me.into(),
            duration,
            interval,
            renewed: None,
            since: None,
            observed: None,
            holder: None,
        }
    }

    /// Whether this watcher holds the lease and may act.
    pub fn is_leader(&self) -> bool {
        let valid = self
            .duration
            .saturating_sub(self.interval)
            .max(self.interval);
        self.renewed.is_some_and(|t| t.elapsed() < valid)
    }

    /// The holder as last seen (none before the first look, or when released).
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }

    /// Renews, takes or observes the lease; returns whether we hold it now.
    pub async fn tick(&mut self, store: &HaStore) -> Result<bool, BusError> {
        let sent = Instant::now();
        match store.get::<LeaseRecord>(&self.key).await? {
            None => self.write(store, None, sent).await?,
            Some((rec, rev)) if rec.holder == self.me => {
                self.write(store, Some(rev), sent).await?;
            }
            Some((rec, rev)) => {
                self.renewed = None;
                self.since = None;
                let expired = match self.observed {
                    Some((r, first)) if r == rev => first.elapsed() >= self.duration,
                    _ => {
                        self.observed = Some((rev, Instant::now()));
                        false
                    }
                };
                self.holder = Some(rec.holder.clone());
                if rec.holder.is_empty() || expired {
                    info!(previous = %rec.holder, "taking over the watcher lease");
                    self.write(store, Some(rev), sent).await?;
                }
            }
        }
        Ok(self.is_leader())
    }

    async fn write(
        &mut self,
        store: &HaStore,
        rev: Option<u64>,
        sent: Instant,
    ) -> Result<(), BusError> {
        let now = Utc::now();
        let rec = LeaseRecord {
            holder: self.me.clone(),
            since: self.since.unwrap_or(now),
            renewed_at: now,
        };
        if store.put_if(&self.key, &rec, rev).await?.is_some() {
            if self.renewed.is_none() {
                info!(watcher = %self.me, "holding the watcher lease");
            }
            self.renewed = Some(sent);
            self.since = Some(rec.since);
            self.holder = Some(self.me.clone());
            self.observed = None;
        } else {
            self.renewed = None;
            self.since = None;
        }
        Ok(())
    }

    /// Gives the lease up (if held), so another watcher takes it at once.
    pub async fn release(&mut self, store: &HaStore) {
        if let Ok(Some((rec, rev))) = store.get::<LeaseRecord>(&self.key).await {
            if rec.holder == self.me {
                let released = LeaseRecord {
                    holder: String::new(),
                    ..rec
                };
                let _ = store.put_if(&self.key, &released, Some(rev)).await;
            }
        }
        self.renewed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_stops_acting_before_anyone_may_take_over() {
        let mut l = Lease::new(
            "k",
            "me",
            Duration::from_millis(300),
            Duration::from_millis(100),
        );
        assert!(!l.is_leader());
        l.renewed = Some(Instant::now());
        assert!(l.is_leader());
        l.renewed = Some(Instant::now() - Duration::from_millis(250));
        assert!(!l.is_leader(), "valid for lease - interval only");
        assert_eq!(l.holder(), None);
    }
}
