//! Following the HA pointer: the pointer read once at start, then every change the
//! KV watch (or its once-a-second poll) delivers, applied to [`Nodes`].

use std::sync::{Arc, Weak};

use imgcrawl_bus::ha::{HaStore, Pointer, POSTGRES};
use imgcrawl_bus::Bus;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{read_pool, Nodes, Primary};
use crate::ApiError;

impl Nodes {
    /// Applies a pointer: if it names another known node, reads move there (a new
    /// pool; the old one is closed). An older epoch than the last seen is ignored; a
    /// node this API does not know is recorded but reads stay where they are. Returns
    /// whether the primary changed. Needs a Tokio runtime (the old pool closes in a
    /// task).
    pub fn follow_pointer(&self, pointer: Option<Pointer>) -> bool {
        let Some(p) = pointer.filter(|_| self.watched) else {
            return false;
        };
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.pointer.as_ref().is_some_and(|c| c.epoch > p.epoch) {
            return false;
        }
        let target = self.nodes.iter().find(|n| n.name == p.primary);
        let Some(node) = target.filter(|n| n.name != cur.node) else {
            if target.is_none() {
                warn!(primary = %p.primary, epoch = p.epoch, reads = %cur.node,
                    "the ha pointer names a node this api is not configured with; reads stay");
            }
            let same = Primary {
                pointer: Some(p),
                ..(**cur).clone()
            };
            *cur = Arc::new(same);
            return false;
        };
        let next = Primary {
            node: node.name.clone(),
            pool: read_pool(&node.options, self.max_connections, self.acquire_timeout),
            pointer: Some(p),
        };
        let old = std::mem::replace(&mut *cur, Arc::new(next));
        drop(cur);
        info!(from = %old.node, to = %node.name, "the ha pointer moved: reads go to the new primary");
        let pool = old.pool.clone();
        tokio::spawn(async move { pool.close().await });
        true
    }

    /// In `watched` mode: reads the pointer once (so the first requests already go to
    /// the primary), then follows it until the last handle to these nodes is dropped.
    pub async fn start_following(self: &Arc<Self>, bus: &Bus) -> Result<(), ApiError> {
        if !self.watched {
            return Ok(());
        }
        let store = HaStore::open(bus)
            .await
            .map_err(|e| ApiError::Ha(e.to_string()))?;
        match store.pointer(POSTGRES).await {
            Ok(p) => {
                self.follow_pointer(p.map(|(p, _)| p));
            }
            Err(e) => warn!(error = %e, "cannot read the ha pointer yet; following it"),
        }
        let stop = CancellationToken::new();
        let rx = store.follow(POSTGRES, stop.child_token());
        *self.follow.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop.drop_guard());
        tokio::spawn(follow(Arc::downgrade(self), rx));
        let p = self.primary();
        info!(primary = %p.node, epoch = p.pointer.as_ref().map(|p| p.epoch), nodes = self.nodes.len(),
            "api reads follow the ha pointer");
        Ok(())
    }
}

/// Applies every pointer `rx` receives while the nodes exist.
async fn follow(nodes: Weak<Nodes>, mut rx: watch::Receiver<Option<Pointer>>) {
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let Some(nodes) = nodes.upgrade() else { return };
        nodes.follow_pointer(p);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Config;

    fn ptr(primary: &str, epoch: u64) -> Option<Pointer> {
        Some(Pointer {
            primary: primary.into(),
            epoch,
            reason: String::new(),
            at: chrono::Utc::now(),
            previous: None,
        })
    }

    fn watched() -> Nodes {
        let config = Config {
            nodes: imgcrawl_bus::ha::parse_nodes(
                "pg1=postgres://u:secret@127.0.0.1:9/a,pg2=postgres://127.0.0.1:9/b",
            )
            .unwrap(),
            ..Config::default()
        };
        Nodes::new(&config).unwrap()
    }

    #[tokio::test]
    async fn reads_move_with_the_pointer_and_never_back_to_an_older_epoch() {
        let n = watched();
        assert_eq!((n.mode(), n.primary().node.as_str()), ("watched", "pg1"));
        assert!(!n.nodes[0].url.contains("secret"));
        assert!(!n.follow_pointer(ptr("pg1", 1)), "already there");
        assert_eq!(n.primary().pointer.as_ref().map(|p| p.epoch), Some(1));
        let old = n.pool();
        assert!(n.follow_pointer(ptr("pg2", 2)));
        assert_eq!(n.primary().node, "pg2");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !old.is_closed() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the old pool is closed");
        assert!(
            !n.follow_pointer(ptr("pg1", 1)),
            "an older epoch is ignored"
        );
        assert!(!n.follow_pointer(ptr("pg9", 3)), "unknown node: reads stay");
        let p = n.primary();
        assert_eq!(
            (p.node.as_str(), p.pointer.as_ref().map(|p| p.epoch)),
            ("pg2", Some(3))
        );
        assert!(n.follow_pointer(ptr("pg1", 4)));
        assert!(n.check_pool(&n.primary(), "pg2").is_some());
        assert!(n.check_pool(&n.primary(), "pg9").is_none());
    }

    #[tokio::test]
    async fn a_single_database_follows_no_pointer() {
        let n = Nodes::new(&Config::default()).unwrap();
        assert!(!n.follow_pointer(ptr("postgres", 5)));
        assert!(n.primary().pointer.is_none());
    }
}
