//! Host leases: politeness that holds across processes.
//!
//! Each process gates its own requests per host ([`crate::politeness`]); with several
//! crawl and download replicas that is one gate per process, and a host would see the
//! sum of their rates. A host lease makes one process at a time the host's only
//! fetcher: a process sends a request to a host only while it holds the host's lease,
//! and then its own gate (concurrency, interval, back-off) is the host's gate. Requests
//! cost no coordination while the lease is held; the store is written when a lease is
//! taken, renewed (every third of its time to live), handed over or released.
//!
//! **The record** (one key per host, JSON): the holder and until when its lease is
//! valid, when the next request to the host may start and the host's back-off (so
//! the next holder honours the previous holder's interval and a 429 slows the host
//! down for every process), processes waiting for the host, and a hand-over
//! reservation.
//!
//! **Taking.** A process that wants a host reads the record; when nobody holds it, the
//! lease expired, or it is reserved for this process, the process writes itself in
//! with compare-and-set (a concurrent writer makes it read again), seeds its gate with
//! the record's next start and back-off, and keeps the lease with a background task.
//! Otherwise it adds itself to the waiters and polls.
//!
//! **Giving up.** The keeper releases the lease when the host has been idle in this
//! process for `idle_release`, or when it held the lease for `max_hold` and another
//! process waits. It first stops granting (new requests of this process wait), waits
//! for its requests in flight to finish (so two processes never have requests in
//! flight to one host at once), then writes the release with its gate's next start
//! and back-off and reserves the host for the longest waiter for one time to live.
//!
//! **Failures.** A holder that dies keeps the host until its lease expires (`ttl`):
//! that bounds the takeover time. A holder that cannot renew (store unreachable)
//! stops starting requests once its lease is within `margin` of expiry, so it never
//! fetches on a lease another process may already have taken. Validity is judged on
//! wall clocks: processes on different machines need synchronised clocks (NTP), and
//! `margin` must exceed their skew.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::lease_store::{CasError, LeaseStore};
use crate::politeness::Politeness;
use crate::robots::RobotsTxt;
use crate::FetchError;

/// How long a request waits for an unavailable lease store before it fails.
const STORE_PATIENCE: Duration = Duration::from_secs(90);

/// Timings of host leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease is valid without renewal: the longest a dead holder keeps a
    /// host from the others.
    pub ttl: Duration,
    /// A lease is not used within this much of its expiry.
    pub margin: Duration,
    /// A host idle this long in the holder is released.
    pub idle_release: Duration,
    /// Held this long while another process waits, the lease is handed over.
    pub max_hold: Duration,
    /// How often a waiting process looks again.
    pub poll: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(6),
            margin: Duration::from_secs(1),
            idle_release: Duration::from_millis(500),
            max_hold: Duration::from_secs(2),
            poll: Duration::from_millis(25),
        }
    }
}

/// One host's lease record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Record {
    /// Who holds the lease (none: free).
    holder: Option<String>,
    /// The lease is valid until this wall time (ms since the epoch).
    until_ms: u64,
    /// No request to the host starts before this wall time.
    next_at_ms: u64,
    /// The host's back-off, ms.
    backoff_ms: u64,
    /// Processes waiting for the host, with when they last said so (wall ms).
    waiters: BTreeMap<String, u64>,
    /// Only this process may take the free lease until the given wall time.
    reserved: Option<(String, u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Record {
    fn parse(bytes: &[u8]) -> Record {
        // an unreadable or deleted record is a free host
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lease record serialises")
    }

    /// Whether `me` may take the lease at `now`.
    fn free_for(&self, me: &str, now: u64) -> bool {
        let held = self.holder.as_deref().is_some_and(|h| h != me) && self.until_ms > now;
        let reserved = self
            .reserved
            .as_ref()
            .is_some_and(|(who, until)| who != me && *until > now);
        !held && !reserved
    }

    /// Waiters other than `me` heard from within `fresh` ms.
    fn others_waiting(&self, me: &str, now: u64, fresh: u64) -> Vec<(&String, u64)> {
        let mut w: Vec<(&String, u64)> = self
            .waiters
            .iter()
            .filter(|(id, at)| id.as_str() != me && now.saturating_sub(**at) <= fresh)
            .map(|(id, at)| (id, *at))
            .collect();
        w.sort_by_key(|(_, at)| *at);
        w
    }
}

/// This process's view of one host's lease.
struct HostLease {
    host: String,
    key: String,
    state: Mutex<Holding>,
    /// Requests of this process waiting at the host's gate under the lease.
    queued: AtomicUsize,
    /// Requests of this process in flight to the host.
    inflight: AtomicUsize,
}

impl HostLease {
    /// Whether requests may start under the lease now.
    fn usable(&self, margin: Duration) -> bool {
        let s = self.state.lock().expect("lease lock");
        !s.releasing
            && s.held
                .as_ref()
                .is_some_and(|h| h.until_ms > now_ms() + ms(margin))
    }
}

#[derive(Default)]
struct Holding {
    /// Held, with the record's revision and validity.
    held: Option<Held>,
    /// The keeper is giving the lease up: new requests wait.
    releasing: bool,
    /// When a request last finished or started.
    last_used: Option<Instant>,
    /// When this process last told the record it waits.
    announced: Option<Instant>,
}

struct Held {
    revision: u64,
    until_ms: u64,
    since: Instant,
}

/// A request's place under its host's lease while it waits at the host's gate; it
/// becomes a [`LeaseHold`] when the request starts ([`Ticket::start`]).
pub struct Ticket {
    lease: Arc<HostLease>,
    margin: Duration,
    started: bool,
}

impl Ticket {
    /// The hold of a request about to be sent, or `None` when the lease is being given
    /// up or about to expire (the caller then waits for the lease again).
    pub(crate) fn start(mut self) -> Option<LeaseHold> {
        self.lease.queued.fetch_sub(1, Ordering::SeqCst);
        self.started = true;
        // counted in flight before the check, so a release either sees it or refuses it
        self.lease.inflight.fetch_add(1, Ordering::SeqCst);
        let hold = LeaseHold {
            lease: self.lease.clone(),
        };
        self.lease.usable(self.margin).then_some(hold)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.started {
            self.lease.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A request's hold on its host's lease: the lease is not given up while it lives.
pub struct LeaseHold {
    lease: Arc<HostLease>,
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.lease.inflight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut s) = self.lease.state.lock() {
            s.last_used = Some(Instant::now());
        }
    }
}

impl std::fmt::Debug for LeaseHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHold")
            .field("host", &self.lease.host)
            .finish()
    }
}

/// The host leases of one process.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn LeaseStore>,
    me: String,
    cfg: LeaseConfig,
    hosts: Mutex<HashMap<String, Arc<HostLease>>>,
}

/// A robots.txt shared through the store.
#[derive(Serialize, Deserialize)]
struct SharedRobots {
    /// When it was fetched (wall ms).
    fetched_ms: u64,
    txt: RobotsTxt,
}

/// The store key of `origin`'s shared robots.txt.
fn robots_key(origin: &str) -> String {
    let hex: String = origin.bytes().map(|b| format!("{b:02x}")).collect();
    format!("robots.{hex}")
}

/// A key for `host` the store accepts (letters, digits, `-`, `_`, `.`; else hex).
fn key_of(host: &str) -> String {
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain && !host.starts_with('.') && !host.ends_with('.') && !host.is_empty() {
        format!("host.{host}")
    } else {
        let hex: String = host.bytes().map(|b| format!("{b:02x}")).collect();
        format!("hex.{hex}")
    }
}

impl Leases {
    /// Leases kept in `store`, taken under the name `me` (unique per process).
    pub fn new(store: Arc<dyn LeaseStore>, me: impl Into<String>, cfg: LeaseConfig) -> Leases {
        Leases {
            inner: Arc::new(Inner {
                store,
                me: me.into(),
                cfg,
                hosts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This process's name in the records.
    pub fn me(&self) -> &str {
        &self.inner.me
    }

    fn lease(&self, host: &str) -> Arc<HostLease> {
        let mut map = self.inner.hosts.lock().expect("leases lock");
        map.entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostLease {
                    host: host.to_string(),
                    key: key_of(host),
                    state: Mutex::new(Holding::default()),
                    queued: AtomicUsize::new(0),
                    inflight: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits until this process holds `host`'s lease and returns a ticket under it; a
    /// lease newly taken seeds `politeness` with the host's next start and back-off.
    pub(crate) async fn hold(
        &self,
        host: &str,
        politeness: &Politeness,
    ) -> Result<Ticket, FetchError> {
        let lease = self.lease(host);
        // the store (JetStream) can be between leaders for tens of seconds: a request
        // waits that out like any other JetStream client instead of failing (which
        // would count against its URL and could reject it)
        let mut unavailable_since: Option<Instant> = None;
        let mut pause = self.inner.cfg.poll;
        loop {
            if let Some(hold) = self.grant(&lease) {
                return Ok(hold);
            }
            let releasing = lease.state.lock().expect("lease lock").releasing;
            if !releasing {
                match self.try_take(&lease, politeness).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        unavailable_since = None;
                        pause = self.inner.cfg.poll;
                    }
                    Err(e) => {
                        let since = *unavailable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= STORE_PATIENCE {
                            return Err(FetchError::Network(format!("host lease for {host}: {e}")));
                        }
                        debug!(%host, error = %e, "host lease store unavailable; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            tokio::time::sleep(self.inner.cfg.poll).await;
        }
    }

    /// Waits for `host`'s lease and holds it, without a request (robots.txt lookups
    /// that must not interleave with another process's).
    pub(crate) async fn claim(
        &self,
        host: &str,
        politeness: &Politeness,
    ) -> Result<LeaseHold, FetchError> {
        loop {
            if let Some(hold) = self.hold(host, politeness).await?.start() {
                return Ok(hold);
            }
        }
    }

    /// A robots.txt of `origin` another process fetched less than `ttl` ago.
    pub(crate) async fn shared_robots(&self, origin: &str, ttl: Duration) -> Option<RobotsTxt> {
        let (bytes, _) = self.inner.store.get(&robots_key(origin)).await.ok()??;
        let shared: SharedRobots = serde_json::from_slice(&bytes).ok()?;
        (now_ms().saturating_sub(shared.fetched_ms) < ms(ttl)).then_some(shared.txt)
    }

    /// Shares the robots.txt of `origin` just fetched (best effort).
    pub(crate) async fn share_robots(&self, origin: &str, txt: &RobotsTxt) {
        let key = robots_key(origin);
        let value = serde_json::to_vec(&SharedRobots {
            fetched_ms: now_ms(),
            txt: txt.clone(),
        })
        .expect("robots.txt serialises");
        let store = &self.inner.store;
        let written = match store.get(&key).await {
            Ok(Some((_, rev))) => store.update(&key, value, rev).await,
            Ok(None) => store.create(&key, value).await,
            Err(e) => Err(CasError::Other(e)),
        };
        if let Err(e) = written {
            debug!(%origin, error = ?e, "robots.txt not shared");
        }
    }

    /// A ticket if the lease is held, valid for a while and not being given up.
    fn grant(&self, lease: &Arc<HostLease>) -> Option<Ticket> {
        if !lease.usable(self.inner.cfg.margin) {
            return None;
        }
        lease.queued.fetch_add(1, Ordering::SeqCst);
        lease.state.lock().expect("lease lock").last_used = Some(Instant::now());
        Some(Ticket {
            lease: lease.clone(),
            margin: self.inner.cfg.margin,
            started: false,
        })
    }

    /// Waits for `host`'s lease and its gate, and returns the request's slot: the gate's
    /// permit and the lease hold. A request whose lease is given up while it waited at
    /// the gate waits for the lease again.
    pub(crate) async fn slot(
        &self,
        host: &str,
        politeness: &Politeness,
        concurrency: u32,
        interval: Duration,
    ) -> Result<(crate::politeness::HostPermit, LeaseHold), FetchError> {
        loop {
            // waiting for another process's lease does no work: the handler slot is
            // lent meanwhile (and taken again before the gate reserves a start)
            let ticket = imgcrawl_telemetry::slot::idle(self.hold(host, politeness)).await?;
            let permit = politeness.acquire(host, concurrency, interval).await;
            if let Some(hold) = ticket.start() {
                return Ok((permit, hold));
            }
        }
    }

    /// One attempt to take the lease: `Ok(true)` when taken, `Ok(false)` when another
    /// process holds it (this one is then among the waiters).
    async fn try_take(
        &self,
        lease: &Arc<HostLease>,
        politeness: &Politeness,
    ) -> Result<bool, String> {
        let cfg = self.inner.cfg;
        let me = self.inner.me.as_str();
        let current = self.inner.store.get(&lease.key).await?;
        let now = now_ms();
        let (mut record, revision) = match &current {
            Some((bytes, rev)) => (Record::parse(bytes), Some(*rev)),
            None => (Record::default(), None),
        };
        if !record.free_for(me, now) {
            self.announce(lease, record, revision, now).await;
            return Ok(false);
        }
        record.holder = Some(me.to_string());
        record.until_ms = now + ms(cfg.ttl);
        record.waiters.remove(me);
        record.reserved = None;
        let written = match revision {
            Some(rev) => {
                self.inner
                    .store
                    .update(&lease.key, record.bytes(), rev)
                    .await
            }
            None => self.inner.store.create(&lease.key, record.bytes()).await,
        };
        let revision = match written {
            Ok(r) => r,
            Err(CasError::Conflict) => return Ok(false), // someone else moved: look again
            Err(CasError::Other(e)) => return Err(e),
        };
        politeness.seed(
            &lease.host,
            record.next_at_ms.saturating_sub(now),
            Duration::from_millis(record.backoff_ms),
        );
        let kept = {
            let mut s = lease.state.lock().expect("lease lock");
            let kept = s.held.is_some(); // its keeper still runs: renewed, not re-taken
            let since = s.held.as_ref().map_or_else(Instant::now, |h| h.since);
            s.held = Some(Held {
                revision,
                until_ms: record.until_ms,
                since,
            });
            s.releasing = false;
            s.announced = None;
            kept
        };
        if !kept {
            debug!(host = %lease.host, "host lease taken");
            tokio::spawn(keep(
                Arc::downgrade(&self.inner),
                lease.clone(),
                politeness.clone(),
            ));
        }
        Ok(true)
    }

    /// Adds this process to the record's waiters (at most once per third of a ttl).
    async fn announce(
        &self,
        lease: &Arc<HostLease>,
        mut record: Record,
        revision: Option<u64>,
        now: u64,
    ) {
        let Some(revision) = revision else { return };
        let due = {
            let s = lease.state.lock().expect("lease lock");
            s.announced
                .is_none_or(|a| a.elapsed() >= self.inner.cfg.ttl / 3)
        };
        if !due {
            return;
        }
        let fresh = ms(self.inner.cfg.ttl) * 2;
        record
            .waiters
            .retain(|_, at| now.saturating_sub(*at) <= fresh);
        record.waiters.insert(self.inner.me.clone(), now);
        if self
            .inner
            .store
            .update(&lease.key, record.bytes(), revision)
            .await
            .is_ok()
        {
            lease.state.lock().expect("lease lock").announced = Some(Instant::now());
        }
    }
}

/// Keeps a held lease: renews it, and gives it up when idle or when another process
/// has waited long enough. It stops, without releasing, once the process's fetchers
/// are gone (the lease then expires, as a dead process's does).
async fn keep(owner: Weak<Inner>, lease: Arc<HostLease>, politeness: Politeness) {
    let Some(cfg) = owner.upgrade().map(|i| i.cfg) else {
        return;
    };
    let tick = (cfg.ttl / 3)
        .min(cfg.idle_release / 2)
        .max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = owner.upgrade() else {
            return;
        };
        let leases = Leases { inner };
        let me = leases.inner.me.clone();
        let store = leases.inner.store.clone();
        let (idle, held_for, until_ms) = {
            let s = lease.state.lock().expect("lease lock");
            let Some(h) = s.held.as_ref() else { return };
            let idle = lease.inflight.load(Ordering::SeqCst) == 0
                && lease.queued.load(Ordering::SeqCst) == 0
                && s.last_used.is_none_or(|u| u.elapsed() >= cfg.idle_release);
            (idle, h.since.elapsed(), h.until_ms)
        };
        let read = match store.get(&lease.key).await {
            Ok(Some((bytes, rev))) => Some((Record::parse(&bytes), rev)),
            Ok(None) => None,
            Err(e) => {
                warn!(host = %lease.host, error = %e, "cannot renew a host lease");
                if until_ms <= now_ms() {
                    drop_lease(&lease);
                    return;
                }
                continue;
            }
        };
        let Some((mut record, rev)) = read.filter(|(r, _)| r.holder.as_deref() == Some(&me)) else {
            warn!(host = %lease.host, "host lease lost");
            drop_lease(&lease);
            return;
        };
        let now = now_ms();
        let waiting = record.others_waiting(&me, now, ms(cfg.ttl) * 2);
        let hand_over = !waiting.is_empty() && held_for >= cfg.max_hold;
        if idle || hand_over {
            let next = waiting.first().map(|(id, _)| (*id).clone());
            release(&leases, &lease, &politeness, record, rev, next).await;
            return;
        }
        record.until_ms = now + ms(cfg.ttl);
        match store.update(&lease.key, record.bytes(), rev).await {
            Ok(r) => {
                let mut s = lease.state.lock().expect("lease lock");
                if let Some(h) = s.held.as_mut() {
                    h.revision = r;
                    h.until_ms = record.until_ms;
                }
            }
            // a waiter wrote meanwhile: the next tick reads it again
            Err(CasError::Conflict) => {}
            Err(CasError::Other(e)) => {
                warn!(host = %lease.host, error = %e, "cannot renew a host lease")
            }
        }
    }
}

fn drop_lease(lease: &HostLease) {
    let mut s = lease.state.lock().expect("lease lock");
    s.held = None;
    s.releasing = false;
}

/// Stops granting, waits for the requests in flight, then writes the release with the
/// gate's next start and back-off, reserving the host for `next`.
async fn release(
    leases: &Leases,
    lease: &Arc<HostLease>,
    politeness: &Politeness,
    mut record: Record,
    mut rev: u64,
    next: Option<String>,
) {
    let cfg = leases.inner.cfg;
    let me = leases.inner.me.clone();
    lease.state.lock().expect("lease lock").releasing = true;
    while lease.inflight.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..20 {
        let now = now_ms();
        let (wait, backoff) = politeness.timing(&lease.host);
        record.holder = None;
        record.until_ms = 0;
        record.next_at_ms = record.next_at_ms.max(now + ms(wait));
        record.backoff_ms = ms(backoff);
        record.reserved = next.clone().map(|n| (n, now + ms(cfg.ttl)));
        match leases
            .inner
            .store
            .update(&lease.key, record.bytes(), rev)
            .await
        {
            Ok(_) => break,
            Err(CasError::Conflict) => {
                // a waiter announced itself: read again and release what is there
                match leases.inner.store.get(&lease.key).await {
                    Ok(Some((bytes, r))) => {
                        let fresh = Record::parse(&bytes);
                        if fresh.holder.as_deref() != Some(&me) {
                            break;
                        }
                        record = Record {
                            next_at_ms: record.next_at_ms,
                            ..fresh
                        };
                        rev = r;
                    }
                    _ => break,
                }
            }
            Err(CasError::Other(e)) => {
                warn!(host = %lease.host, error = %e, "cannot release a host lease; it expires");
                break;
            }
        }
    }
    debug!(host = %lease.host, to = ?next, "host lease released");
    drop_lease(lease);
}

#[cfg(test)]
mod tests;
