//! Which replica of a stage works which partition: leases in KV `imgcrawl-partitions`.
//!
//! Every replica of a partitioned stage ([`crate::partitions`]) runs one [`Ownership`]
//! and calls [`Ownership::tick`] every third of the lease's time to live. A tick:
//!
//! 1. writes the replica's heartbeat (`<stage>.member.<id>`, with an expiry) and reads
//!    the others': the live replicas decide the fair share, `ceil(partitions / live)`
//!    (a replica that sees itself alone on its first tick takes nothing yet: others
//!    started with it may not have written their heartbeats);
//! 2. renews the leases it holds (`<stage>.p<n>`, compare-and-set on the revision); a
//!    lease another replica took is lost and its work stops. A renewal the store does
//!    not answer is retried next tick and the work goes on: during an election nobody
//!    can take the lease either, and stopping would hand buffered messages back (each
//!    time spending one of their deliveries);
//! 3. gives up partitions above the fair share (a replica joined: rebalancing), and
//!    takes free or expired ones below it (a replica died or left: takeover).
//!
//! A lease is a record `{owner, expires_ms}` judged on wall clocks (as host leases
//! are: the machines need NTP). A replica that dies keeps its partitions until their
//! leases expire: the takeover time is at most one time to live plus one tick. A
//! replica that stops cleanly frees its partitions at once ([`Ownership::release`]).
//!
//! Ownership decides who *pulls* a partition's consumer; it is not what makes work
//! safe. During a handover two replicas may briefly both pull one partition: the
//! consumer still hands each message to one of them, and the host leases
//! (`imgcrawl_fetch::leases`) still give one process at a time a host's requests.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::{Bus, BusError};

/// The bucket's name.
pub const PARTITIONS_BUCKET: &str = "imgcrawl-partitions";

/// The bucket's configuration (storage and replicas are set by
/// [`crate::topology::ensure_kv`]).
pub fn kv_config() -> kv::Config {
    kv::Config {
        bucket: PARTITIONS_BUCKET.into(),
        description: "partition leases: which replica of a stage works which partition".into(),
        history: 1,
        ..Default::default()
    }
}

/// Opens the bucket, creating it if needed (idempotent).
pub async fn open(bus: &Bus) -> Result<kv::Store, BusError> {
    crate::patience::patiently("partition leases", || {
        crate::topology::ensure_kv(&bus.js, &bus.config, kv_config())
    })
    .await
}

fn kv_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kv {
        bucket: PARTITIONS_BUCKET.into(),
        detail: e.to_string(),
    }
}

/// A lease or heartbeat record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    /// The replica holding it; empty when released.
    owner: String,
    /// Wall-clock milliseconds after which it is void.
    expires_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A partition as one tick sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Held by this replica.
    Mine,
    /// Held by a live lease of another replica.
    Taken,
    /// Absent, released or expired: may be taken.
    Free,
}

/// What to do after reading the slots: which of ours to give up, which free ones to
/// take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions to release (above the fair share).
    pub release: Vec<u16>,
    /// Partitions to try to take (below the fair share).
    pub acquire: Vec<u16>,
}

/// The fair share of `count` partitions among `live` replicas.
pub fn fair_share(count: u16, live: usize) -> usize {
    usize::from(count).div_ceil(live.max(1))
}

/// Decides a tick: keep up to the fair share, preferring partitions nearest after
/// `offset` (each replica's own starting point, so replicas reach for different free
/// partitions first and keep a stable set).
pub fn plan(slots: &[Slot], live: usize, offset: u16) -> Plan {
    let n = slots.len();
    if n == 0 {
        return Plan::default();
    }
    let share = fair_share(n as u16, live);
    let order: Vec<u16> = (0..n)
        .map(|i| ((usize::from(offset) + i) % n) as u16)
        .collect();
    let mine: Vec<u16> = order
        .iter()
        .copied()
        .filter(|p| slots[usize::from(*p)] == Slot::Mine)
        .collect();
    let mut out = Plan::default();
    if mine.len() > share {
        out.release = mine[share..].to_vec();
    } else {
        out.acquire = order
            .iter()
            .copied()
            .filter(|p| slots[usize::from(*p)] == Slot::Free)
            .take(share - mine.len())
            .collect();
    }
    out
}

/// What one tick changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Partitions newly held: start working them.
    pub acquired: Vec<u16>,
    /// Partitions lost (taken, or not renewable in time): stop working them.
    pub lost: Vec<u16>,
    /// Partitions above the fair share: stop working them, then [`Ownership::release`].
    pub surplus: Vec<u16>,
}

/// One replica's leases on one stage's partitions.
pub struct Ownership {
    kv: kv::Store,
    stage: String,
    me: String,
    count: u16,
    ttl: Duration,
    offset: u16,
    /// Held partitions: revision of our record and its expiry.
    held: BTreeMap<u16, (u64, u64)>,
    /// Ticks so far.
    ticks: u64,
}

impl Ownership {
    /// Leases on `count` partitions of `stage` for the replica `me`.
    pub fn new(kv: kv::Store, stage: &str, me: &str, count: u16, ttl: Duration) -> Self {
        let offset = (me
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
            % u32::from(count.max(1))) as u16;
        Ownership {
            kv,
            stage: stage.to_string(),
            me: me.to_string(),
            count: count.max(1),
            ttl,
            offset,
            held: BTreeMap::new(),
            ticks: 0,
        }
    }

    /// How often [`Ownership::tick`] should run: a third of the time to live.
    pub fn period(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(50))
    }

    /// The partitions held now.
    pub fn held(&self) -> impl Iterator<Item = u16> + '_ {
        self.held.keys().copied()
    }

    fn key(&self, p: u16) -> String {
        format!("{}.p{p}", self.stage)
    }

    fn member_prefix(&self) -> String {
        format!("{}.member.", self.stage)
    }

    fn record(&self, owner: &str) -> (bytes::Bytes, u64) {
        let expires_ms = now_ms() + self.ttl.as_millis() as u64;
        let r = Record {
            owner: owner.to_string(),
            expires_ms,
        };
        (
            serde_json::to_vec(&r).expect("record serializes").into(),
            expires_ms,
        )
    }

    /// Writes this replica's heartbeat and counts the live replicas (itself included);
    /// heartbeats long expired are deleted.
    async fn members(&self) -> Result<usize, BusError> {
        let (value, _) = self.record(&self.me);
        self.kv
            .put(format!("{}{}", self.member_prefix(), self.me), value)
            .await
            .map_err(kv_err)?;
        let prefix = self.member_prefix();
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(kv_err)?
            .try_filter(|k| futures::future::ready(k.starts_with(&prefix)))
            .try_collect()
            .await
            .map_err(kv_err)?;
        let now = now_ms();
        let stale_after = 10 * self.ttl.as_millis() as u64;
        let mut live = 0;
        for key in keys {
            match self.read(&key).await? {
                Some((r, _)) if r.expires_ms > now => live += 1,
                Some((r, _)) if now.saturating_sub(r.expires_ms) > stale_after => {
                    if let Err(e) = self.kv.delete(&key).await {
                        debug!(%key, error = %e, "stale heartbeat not deleted");
                    }
                }
                _ => {}
            }
        }
        Ok(live.max(1))
    }

    async fn read(&self, key: &str) -> Result<Option<(Record, u64)>, BusError> {
        let Some(entry) = self.kv.entry(key).await.map_err(kv_err)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(Some((
                Record {
                    owner: String::new(),
                    expires_ms: 0,
                },
                entry.revision,
            )));
        }
        let record = serde_json::from_slice(&entry.value).unwrap_or(Record {
            owner: String::new(),
            expires_ms: 0,
        });
        Ok(Some((record, entry.revision)))
    }

    /// One round: heartbeat, renew, then give up or take partitions (see the module
    /// docs). Partitions in [`Changes::surplus`] are still held: stop their work, then
    /// call [`Ownership::release`].
    pub async fn tick(&mut self) -> Result<Changes, BusError> {
        let live = self.members().await?;
        let mut changes = Changes::default();
        self.ticks += 1;
        if self.ticks == 1 && live == 1 && self.count > 1 {
            // Alone on the first tick: replicas started together may not have written
            // their heartbeats yet. Taking everything now and handing most of it over
            // a tick later would send buffered messages round (some wait for their
            // ack_wait): wait one tick, then take the fair share. A single partition
            // (a backup target's lease) has nothing to balance and is taken at once.
            return Ok(changes);
        }
        // renew what we hold
        let held: Vec<(u16, (u64, u64))> = self.held.iter().map(|(p, v)| (*p, *v)).collect();
        for (p, (rev, expires)) in held {
            let (value, new_expiry) = self.record(&self.me);
            match self.kv.update(self.key(p), value, rev).await {
                Ok(r) => {
                    self.held.insert(p, (r, new_expiry));
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    warn!(stage = %self.stage, partition = p, "partition lease taken by another replica");
                    self.held.remove(&p);
                    changes.lost.push(p);
                }
                // The store did not answer (a leader election, a partition): keep
                // working the partition. Two replicas pulling one partition for a while
                // is harmless (the consumer gives each message to one of them, host
                // leases keep the politeness), while stopping would hand the buffered
                // messages back and spend one of their deliveries each time.
                Err(e) => {
                    let overdue = now_ms() >= expires;
                    debug!(stage = %self.stage, partition = p, overdue, error = %e, "partition lease renewal failed; will retry");
                }
            }
        }
        // read every slot
        let now = now_ms();
        let mut slots = Vec::with_capacity(usize::from(self.count));
        let mut revisions = Vec::with_capacity(usize::from(self.count));
        for p in 0..self.count {
            if self.held.contains_key(&p) {
                slots.push(Slot::Mine);
                revisions.push(None);
                continue;
            }
            match self.read(&self.key(p)).await? {
                None => {
                    slots.push(Slot::Free);
                    revisions.push(None);
                }
                Some((r, rev)) => {
                    let taken = r.expires_ms > now && !r.owner.is_empty() && r.owner != self.me;
                    slots.push(if taken { Slot::Taken } else { Slot::Free });
                    revisions.push(Some(rev));
                }
            }
        }
        let plan = plan(&slots, live, self.offset);
        changes.surplus = plan.release;
        for p in plan.acquire {
            let (value, expiry) = self.record(&self.me);
            let res = match revisions[usize::from(p)] {
                None => self
                    .kv
                    .create(self.key(p), value)
                    .await
                    .map_err(|e| e.to_string()),
                Some(rev) => self
                    .kv
                    .update(self.key(p), value, rev)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match res {
                Ok(rev) => {
                    self.held.insert(p, (rev, expiry));
                    changes.acquired.push(p);
                }
                // another replica was faster: next tick
                Err(e) => {
                    debug!(stage = %self.stage, partition = p, error = %e, "partition not taken")
                }
            }
        }
        if !changes.acquired.is_empty() || !changes.lost.is_empty() || !changes.surplus.is_empty() {
            info!(
                stage = %self.stage,
                live,
                share = fair_share(self.count, live),
                acquired = ?changes.acquired,
                lost = ?changes.lost,
                surplus = ?changes.surplus,
                "partition ownership changed"
            );
        }
        Ok(changes)
    }

    /// Frees partitions this replica holds (their work must have stopped), so another
    /// replica takes them at its next tick instead of after the lease expires.
    pub async fn release(&mut self, partitions: &[u16]) {
        for p in partitions {
            let Some((rev, _)) = self.held.remove(p) else {
                continue;
            };
            let value: bytes::Bytes = serde_json::to_vec(&Record {
                owner: String::new(),
                expires_ms: 0,
            })
            .expect("record serializes")
            .into();
            if let Err(e) = self.kv.update(self.key(*p), value, rev).await {
                debug!(stage = %self.stage, partition = p, error = %e, "release failed; the lease will expire");
            }
        }
    }

    /// Frees every partition held and removes the heartbeat (a clean stop).
    pub async fn release_all(&mut self) {
        let all: Vec<u16> = self.held().collect();
        self.release(&all).await;
        let key = format!("{}{}", self.member_prefix(), self.me);
        if let Err(e) = self.kv.delete(&key).await {
            debug!(%key, error = %e, "heartbeat not removed; it will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Slot::*;

    #[test]
    fn the_share_is_the_ceiling() {
        assert_eq!(fair_share(16, 1), 16);
        assert_eq!(fair_share(16, 3), 6);
        assert_eq!(fair_share(16, 4), 4);
        assert_eq!(fair_share(4, 8), 1);
        assert_eq!(fair_share(16, 0), 16);
    }

    #[test]
    fn a_lone_replica_takes_everything_free() {
        let p = plan(&[Free, Free, Taken, Free], 1, 0);
        assert_eq!(p.acquire, vec![0, 1, 3]);
        assert!(p.release.is_empty());
    }

    #[test]
    fn a_replica_above_its_share_gives_up_the_rest() {
        // four partitions all ours, a second replica appeared: keep two
        let p = plan(&[Mine, Mine, Mine, Mine], 2, 1);
        assert_eq!(
            p.release,
            vec![3, 0],
            "keeps the two nearest after its offset"
        );
        assert!(p.acquire.is_empty());
    }

    #[test]
    fn a_replica_below_its_share_takes_free_ones_from_its_offset() {
        let p = plan(&[Taken, Free, Free, Free, Mine, Taken], 2, 3);
        assert_eq!(
            p.acquire,
            vec![3, 1],
            "share 3: one held, two more from offset 3 on"
        );
        let none_free = plan(&[Taken, Taken, Mine, Taken], 2, 0);
        assert_eq!(none_free, Plan::default());
    }

    #[test]
    fn replicas_with_different_offsets_reach_for_different_partitions() {
        let slots = [Free; 8];
        let a = plan(&slots, 2, 0).acquire;
        let b = plan(&slots, 2, 4).acquire;
        assert_eq!(a, vec![0, 1, 2, 3]);
        assert_eq!(b, vec![4, 5, 6, 7]);
    }
}
