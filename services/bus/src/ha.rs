//! The HA pointer: which node is the primary of a projection target, and its fencing
//! epoch, in KV bucket `imgcrawl-ha` (key per target: `postgres`, `objects`).
//!
//! The HA watcher (`imgcrawl ha`) is the only writer of a pointer, always with
//! compare-and-set on the key's revision, and every new pointer carries a strictly
//! higher epoch. Everything else follows it: [`current_primary`] for one-shot readers
//! (`imgcrawl status`, `imgcrawl images`), [`HaStore::follow`] for long-lived ones (the
//! index writers, an API), which sees a change as soon as the server delivers it (a
//! watch) and polls once a second as a safety net.
//!
//! The pointer names a node, never a URL: URLs may carry passwords, and every process
//! has the node list ([`Node`]) in its own configuration.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{Bus, BusError};

/// The KV bucket holding the pointers, the watchers' lease and requests.
pub const HA_BUCKET: &str = "imgcrawl-ha";
/// The pointer key of the PostgreSQL projection.
pub const POSTGRES: &str = "postgres";

/// A projection node as configured: a name, where it is, and its priority in elections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Name used in the pointer, the API and logs (letters, digits, `-`, `_`).
    pub name: String,
    /// Connection URL (`postgres://...`).
    pub url: String,
    /// Election priority: the healthy node with the lowest number wins. Default 1.
    #[serde(default = "one")]
    pub priority: u32,
}

fn one() -> u32 {
    1
}

/// Parses `name=url,name=url,...` (priorities by position: 1, 2, ...), the form of
/// `IMGCRAWL_HA_NODES`. Empty input is no nodes.
pub fn parse_nodes(spec: &str) -> Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    for (i, part) in spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let Some((name, url)) = part.split_once('=') else {
            return Err(format!("node {part:?} is not name=url"));
        };
        let node = Node {
            name: name.trim().to_string(),
            url: url.trim().to_string(),
            priority: u32::try_from(i + 1).unwrap_or(u32::MAX),
        };
        nodes.push(node);
    }
    check_nodes(&nodes)?;
    Ok(nodes)
}

/// Refuses empty, badly formed or duplicate node names and empty URLs.
pub fn check_nodes(nodes: &[Node]) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        let ok = !n.name.is_empty()
            && n.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!(
                "node name {:?} must be letters, digits, - or _",
                n.name
            ));
        }
        if n.url.is_empty() {
            return Err(format!("node {} has no url", n.name));
        }
        if nodes[..i].iter().any(|o| o.name == n.name) {
            return Err(format!("node {} is configured twice", n.name));
        }
    }
    Ok(())
}

/// Who the primary of a target is, and since which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The primary node's name.
    pub primary: String,
    /// The fencing epoch: strictly increasing with every change of primary.
    pub epoch: u64,
    /// Why this node became primary.
    pub reason: String,
    /// When the watcher wrote it.
    pub at: DateTime<Utc>,
    /// The primary before (none for the first election).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The URL of the node `pointer` names, if it is one of `nodes`.
pub fn primary_url<'a>(nodes: &'a [Node], pointer: Option<&Pointer>) -> Option<&'a str> {
    let p = pointer?;
    nodes
        .iter()
        .find(|n| n.name == p.primary)
        .map(|n| n.url.as_str())
}

fn kv_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kv {
        bucket: HA_BUCKET.into(),
        detail: e.to_string(),
    }
}

/// The HA bucket's configuration (storage and replicas are set by
/// [`crate::topology::ensure_kv`]).
pub fn kv_config() -> kv::Config {
    kv::Config {
        bucket: HA_BUCKET.into(),
        description: "HA pointers (primary, epoch), watcher lease, requests".into(),
        history: 16,
        ..Default::default()
    }
}

/// Handle to the `imgcrawl-ha` bucket.
#[derive(Clone)]
pub struct HaStore {
    kv: kv::Store,
}

impl HaStore {
    /// Opens the bucket, creating it if needed (idempotent).
    pub async fn open(bus: &Bus) -> Result<HaStore, BusError> {
        let kv = crate::topology::ensure_kv(&bus.js, &bus.config, kv_config()).await?;
        Ok(HaStore { kv })
    }

    /// The raw KV store.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// The value at `key` and its revision (none if absent or deleted).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>, BusError> {
        let Some(entry) = self.kv.entry(key).await.map_err(kv_err)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let v = serde_json::from_slice(&entry.value)
            .map_err(|e| kv_err(format!("{key}: undecodable value: {e}")))?;
        Ok(Some((v, entry.revision)))
    }

    /// Writes `value` at `key` if the key is still at `revision` (`None`: if it does
    /// not exist). Returns the new revision, or `None` if someone else wrote first.
    pub async fn put_if<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        revision: Option<u64>,
    ) -> Result<Option<u64>, BusError> {
        let body = Bytes::from(serde_json::to_vec(value).map_err(kv_err)?);
        match revision {
            None => match self.kv.create(key, body).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(kv_err(e)),
            },
            Some(rev) => match self.kv.update(key, body, rev).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(kv_err(e)),
            },
        }
    }

    /// Writes `value` at `key` unconditionally.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<u64, BusError> {
        let body = Bytes::from(serde_json::to_vec(value).map_err(kv_err)?);
        self.kv.put(key, body).await.map_err(kv_err)
    }

    /// The pointer of `target` and its revision.
    pub async fn pointer(&self, target: &str) -> Result<Option<(Pointer, u64)>, BusError> {
        self.get(target).await
    }

    /// Follows the pointer of `target` until `shutdown`: the receiver holds the latest
    /// pointer (none until one exists) and changes within a second of a new one.
    pub fn follow(
        &self,
        target: &str,
        shutdown: CancellationToken,
    ) -> watch::Receiver<Option<Pointer>> {
        let (tx, rx) = watch::channel(None);
        let (store, key) = (self.clone(), target.to_string());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = store.follow_loop(&key, &tx) => {}
            }
        });
        rx
    }

    async fn follow_loop(&self, key: &str, tx: &watch::Sender<Option<Pointer>>) {
        loop {
            self.poll_once(key, tx).await;
            let mut watch = match self.kv.watch(key).await {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %e, key, "cannot watch the ha pointer; polling");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Poll after the watch is in place: nothing written in between is missed.
            self.poll_once(key, tx).await;
            loop {
                let next = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
                match next {
                    Ok(Some(Ok(entry))) => publish_entry(tx, &entry),
                    Ok(Some(Err(e))) => {
                        debug!(error = %e, "ha pointer watch broke; re-opening");
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => self.poll_once(key, tx).await,
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    async fn poll_once(&self, key: &str, tx: &watch::Sender<Option<Pointer>>) {
        match self.pointer(key).await {
            Ok(p) => {
                let p = p.map(|(p, _)| p);
                tx.send_if_modified(|cur| newer(cur, p));
            }
            Err(e) => debug!(error = %e, key, "cannot read the ha pointer"),
        }
    }
}

/// Replaces `cur` with `next` unless `next` is older (a lower epoch) than `cur`: a
/// late poll answer must never take a follower back.
fn newer(cur: &mut Option<Pointer>, next: Option<Pointer>) -> bool {
    match (&*cur, next) {
        (_, None) => false,
        (Some(c), Some(n)) if n.epoch < c.epoch || *c == n => false,
        (_, Some(n)) => {
            *cur = Some(n);
            true
        }
    }
}

fn publish_entry(tx: &watch::Sender<Option<Pointer>>, entry: &kv::Entry) {
    if entry.operation != kv::Operation::Put {
        return;
    }
    match serde_json::from_slice::<Pointer>(&entry.value) {
        Ok(p) => {
            tx.send_if_modified(|cur| newer(cur, Some(p)));
        }
        Err(e) => warn!(error = %e, key = %entry.key, "undecodable ha pointer; ignored"),
    }
}

/// The current pointer of `target` (none before the first election).
pub async fn current_primary(bus: &Bus, target: &str) -> Result<Option<Pointer>, BusError> {
    Ok(HaStore::open(bus)
        .await?
        .pointer(target)
        .await?
        .map(|(p, _)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr(primary: &str, epoch: u64) -> Pointer {
        Pointer {
            primary: primary.into(),
            epoch,
            reason: String::new(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            previous: None,
        }
    }

    #[test]
    fn node_lists_parse_with_priorities_by_position() {
        let n = parse_nodes("pg1=postgres://a/x, pg2=postgres://b/x").unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].name.as_str(), n[0].priority), ("pg1", 1));
        assert_eq!((n[1].url.as_str(), n[1].priority), ("postgres://b/x", 2));
        assert!(parse_nodes("").unwrap().is_empty());
        assert!(parse_nodes("pg1").is_err());
        assert!(parse_nodes("pg1=a,pg1=b").is_err());
        assert!(parse_nodes("p g=a").is_err());
    }

    #[test]
    fn followers_never_go_back_to_an_older_epoch() {
        let mut cur = None;
        assert!(newer(&mut cur, Some(ptr("a", 1))));
        assert!(newer(&mut cur, Some(ptr("b", 2))));
        assert!(!newer(&mut cur, Some(ptr("a", 1))));
        assert!(!newer(&mut cur, Some(ptr("b", 2))));
        assert!(!newer(&mut cur, None));
        assert_eq!(cur.as_ref().map(|p| p.epoch), Some(2));
        let nodes = parse_nodes("a=u1,b=u2").unwrap();
        assert_eq!(primary_url(&nodes, cur.as_ref()), Some("u2"));
        assert_eq!(primary_url(&nodes, Some(&ptr("c", 3))), None);
    }
}
