//! HA: running the index writers of several PostgreSQL nodes, one projection loop
//! per node, each following the HA pointer through its [`Fence`] (see the `fencing`
//! module for roles and epochs).

use imgcrawl_bus::ha::{HaStore, Node, POSTGRES};
use imgcrawl_bus::Bus;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, Instrument};

use crate::fencing::Fence;
use crate::mode::Mode;
use crate::stage::drive;
use crate::{Config, IndexError};

/// Runs the writer of one node with `fence` until `shutdown`: the live loop, which
/// publishes only while the fence says primary.
pub async fn run_fenced(
    bus: Bus,
    config: Config,
    fence: Fence,
    shutdown: CancellationToken,
) -> Result<(), IndexError> {
    drive(bus, config, Mode::fenced(fence), shutdown)
        .await
        .map(|_| ())
}

/// Runs the writer of node `node` (its `config.database_url`), following the
/// `postgres` pointer, until `shutdown`.
pub async fn run_node(
    bus: Bus,
    config: Config,
    node: &str,
    shutdown: CancellationToken,
) -> Result<(), IndexError> {
    let store = HaStore::open(&bus).await?;
    let pointer = store.follow(POSTGRES, shutdown.child_token());
    run_fenced(bus, config, Fence::new(node, pointer), shutdown).await
}

/// Runs one writer per node (each with `config`, its URL replaced by the node's) until
/// `shutdown`. A writer that fails (a node holding another stream's projection) is
/// logged and the others go on: one bad node must not stop the primary's writer. The
/// first failure is returned once every writer has ended.
pub async fn run_nodes(
    bus: Bus,
    config: Config,
    nodes: &[Node],
    shutdown: CancellationToken,
) -> Result<(), IndexError> {
    let mut set = JoinSet::new();
    for n in nodes {
        let config = Config {
            database_url: n.url.clone(),
            ..config.clone()
        };
        let (bus, name, stop) = (bus.clone(), n.name.clone(), shutdown.clone());
        let span = tracing::info_span!("node", node = %n.name);
        let writer = async move {
            let r = run_node(bus, config, &name, stop).await;
            if let Err(e) = &r {
                error!(node = %name, error = %e, "index writer stopped; the other nodes go on");
            }
            r
        };
        set.spawn(writer.instrument(span));
    }
    info!(nodes = nodes.len(), "ha index writers started");
    let mut first = Ok(());
    while let Some(joined) = set.join_next().await {
        let r = joined.unwrap_or_else(|e| Err(IndexError::Stream(format!("writer task: {e}"))));
        if let (Err(e), true) = (r, first.is_ok()) {
            first = Err(e);
        }
    }
    first
}
