//! The PostgreSQL nodes the API reads from, and which one is the primary.
//!
//! Without HA nodes in the configuration there is one node, `database_url`, named after
//! the index's checkpoint row (`postgres`), and it is always the primary (mode
//! `single`). With HA nodes (mode `watched`) the primary is the node the HA pointer
//! names (KV `imgcrawl-ha`, key `postgres`; the first node before any election),
//! followed live with [`HaStore::follow`]: when the pointer names another node, a pool
//! on that node replaces the read pool and the old pool is closed. Handlers take the
//! pool when they start ([`Nodes::pool`]), so every request after the switch reads from
//! the new primary; one that took the old pool just before finishes there, or answers
//! 503 if the pool closed under it.
//!
//! In `watched` mode every node also has a pool of its own (one connection, opened on
//! demand) for the checks of `/api/ha-status`; the primary is checked through the read
//! pool, as the requests use it.

mod follow;

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imgcrawl_bus::ha::{check_nodes, Node, Pointer};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::DropGuard;

use crate::{ApiError, Config};
use imgcrawl_events::redact;

/// A configured node and its check pool.
#[derive(Debug)]
pub struct NodeConn {
    /// Its name.
    pub name: String,
    /// Its URL, password replaced (for status answers and logs).
    pub url: String,
    options: PgConnectOptions,
    /// The pool of `/api/ha-status` checks (`watched` mode only).
    check: Option<PgPool>,
}

/// The node reads go to.
#[derive(Debug, Clone)]
pub struct Primary {
    /// The node's name.
    pub node: String,
    /// The read pool on it.
    pub pool: PgPool,
    /// The HA pointer last seen (none in `single` mode and before any election).
    pub pointer: Option<Pointer>,
}

impl Primary {
    /// The primary's name: the pointer's, else the node reads go to.
    pub fn name(&self) -> &str {
        self.pointer.as_ref().map_or(&self.node, |p| &p.primary)
    }
}

/// The nodes and the current primary; shared by every handler.
#[derive(Debug)]
pub struct Nodes {
    watched: bool,
    nodes: Vec<NodeConn>,
    current: RwLock<Arc<Primary>>,
    max_connections: u32,
    acquire_timeout: Duration,
    /// Stops following the pointer when the last handle is dropped.
    follow: std::sync::Mutex<Option<DropGuard>>,
}

/// A read pool: connects on demand, waits at most `acquire_timeout` for a connection.
fn read_pool(options: &PgConnectOptions, max: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options.clone())
}

impl NodeConn {
    /// Parses the node's URL; with `check` (the check timeout), adds its check pool.
    fn new(n: &Node, check: Option<Duration>) -> Result<NodeConn, ApiError> {
        let options = PgConnectOptions::from_str(&n.url).map_err(|e| ApiError::Database {
            url: redact(&n.url),
            detail: format!("node {}: {e}", n.name),
        })?;
        let check = check.map(|timeout| {
            PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                .idle_timeout(Some(Duration::from_secs(60)))
                .connect_lazy_with(options.clone())
        });
        Ok(NodeConn {
            name: n.name.clone(),
            url: redact(&n.url),
            options,
            check,
        })
    }
}

impl Nodes {
    /// The nodes of `config` with the first one as primary. Pools connect lazily, so
    /// the server starts (and `/readyz` says why it is not ready) while a node is down.
    pub fn new(config: &Config) -> Result<Nodes, ApiError> {
        let watched = !config.nodes.is_empty();
        let configured = if watched {
            check_nodes(&config.nodes).map_err(ApiError::Config)?;
            config.nodes.clone()
        } else {
            vec![Node {
                name: config.checkpoint_name.clone(),
                url: config.database_url.clone(),
                priority: 1,
            }]
        };
        let check = watched.then(|| config.check_timeout());
        let nodes = configured
            .iter()
            .map(|n| NodeConn::new(n, check))
            .collect::<Result<Vec<_>, _>>()?;
        let (max_connections, acquire_timeout) = (
            config.db_max_connections.max(1),
            config.db_acquire_timeout(),
        );
        let first = Primary {
            node: nodes[0].name.clone(),
            pool: read_pool(&nodes[0].options, max_connections, acquire_timeout),
            pointer: None,
        };
        Ok(Nodes {
            watched,
            nodes,
            current: RwLock::new(Arc::new(first)),
            max_connections,
            acquire_timeout,
            follow: std::sync::Mutex::new(None),
        })
    }

    /// `watched` (HA nodes, the pointer picks the primary) or `single`.
    pub fn mode(&self) -> &'static str {
        if self.watched {
            "watched"
        } else {
            "single"
        }
    }

    /// Every configured node (in `single` mode, the one database).
    pub fn list(&self) -> &[NodeConn] {
        &self.nodes
    }

    /// The primary now.
    pub fn primary(&self) -> Arc<Primary> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The read pool on the primary now.
    pub fn pool(&self) -> PgPool {
        self.primary().pool.clone()
    }

    /// The pool to check node `name` with: the read pool if it is the primary `p`,
    /// else its own check pool.
    pub fn check_pool(&self, p: &Primary, name: &str) -> Option<PgPool> {
        if p.node == name {
            return Some(p.pool.clone());
        }
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| n.check.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_nodes_the_database_url_is_the_only_node() {
        let n = Nodes::new(&Config::default()).unwrap();
        assert_eq!(
            (n.mode(), n.primary().node.as_str(), n.list().len()),
            ("single", "postgres", 1)
        );
        assert!(n.primary().pointer.is_none());
        assert!(
            n.list()[0].check.is_none(),
            "the one node is checked through reads"
        );
        let bad = Config {
            nodes: vec![Node {
                name: "bad name".into(),
                url: "postgres://x/y".into(),
                priority: 1,
            }],
            ..Config::default()
        };
        assert!(matches!(Nodes::new(&bad), Err(ApiError::Config(_))));
        let unparsable = Config {
            database_url: "postgres://host:notaport/db".into(),
            ..Config::default()
        };
        assert!(matches!(
            Nodes::new(&unparsable),
            Err(ApiError::Database { .. })
        ));
    }
}
