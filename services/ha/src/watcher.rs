//! The watcher's tasks: one health checker per node, the lease, the decision loop,
//! watches on the pointer and on the request keys, and the HTTP API.
//!
//! Every watcher checks every node and serves the status; only the lease holder acts.
//! A checker that sees a node change health wakes the decision loop at once, so an
//! election follows detection within milliseconds, not at the next round. While
//! holding the lease, a checker stamps the current epoch on a node that is behind it
//! (first of all on a node that returns) within the probe itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures::StreamExt;
use imgcrawl_bus::ha::{check_nodes, HaStore, Node, POSTGRES};
use imgcrawl_bus::ha_requests::FAILOVER_REQUEST_KEY;
use imgcrawl_bus::retry::Policy;
use imgcrawl_bus::Bus;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::health::{probe, Health};
use crate::lease::Lease;
use crate::refresh::{oldest_waiting, refresh_pointer};
use crate::rounds::decision_loop;
use crate::state::{lease_key, sync_request_key, Shared, Status};
use crate::{api, Config, HaError};

/// A running watcher.
pub struct Watcher {
    shared: Arc<Shared>,
    addr: Option<std::net::SocketAddr>,
    tasks: JoinSet<()>,
}

impl Watcher {
    /// The HTTP API's address, if it listens.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }

    /// This watcher's id in the lease.
    pub fn id(&self) -> &str {
        &self.shared.me
    }

    /// Whether it holds the lease.
    pub fn is_leader(&self) -> bool {
        self.shared.lock().leader
    }

    /// The status document (`GET /api/status`).
    pub fn status(&self) -> Status {
        crate::state::status(&self.shared)
    }

    /// Waits until every task ended (after shutdown).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// Kills the watcher like a crash would: every task aborted, the lease not
    /// released (tests).
    pub fn abort(mut self) {
        self.tasks.abort_all();
    }
}

/// Starts a watcher: validates the config, opens the `imgcrawl-ha` bucket, binds the
/// API and spawns the tasks.
pub async fn start(
    bus: Bus,
    config: Config,
    shutdown: CancellationToken,
) -> Result<Watcher, HaError> {
    if config.nodes.is_empty() {
        return Err(HaError::Config("no nodes configured".into()));
    }
    check_nodes(&config.nodes).map_err(HaError::Config)?;
    let store = HaStore::open(&bus).await?;
    let me = config.watcher_id.clone().unwrap_or_else(|| {
        format!(
            "watcher-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let shared = Shared::new(config.clone(), me.clone(), bus, store, shutdown.clone());
    let mut tasks = JoinSet::new();
    let addr = if config.listen.is_empty() {
        None
    } else {
        let tokens = config.tokens()?;
        let tls = config
            .tls
            .as_ref()
            .map(imgcrawl_web::TlsConfig::load)
            .transpose()
            .map_err(|e| HaError::Config(e.to_string()))?;
        let app = api::router(shared.clone(), Arc::new(tokens), config.public_reads);
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| HaError::Listen {
                addr: config.listen.clone(),
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().ok();
        tasks.spawn(api::serve(listener, app, tls, shutdown.clone()));
        addr
    };
    for (i, node) in config.nodes.iter().enumerate() {
        let span = tracing::info_span!("check", node = %node.name);
        let task = checker(shared.clone(), i, node.clone(), shutdown.clone());
        tasks.spawn(task.instrument(span));
    }
    tasks.spawn(lease_loop(shared.clone(), shutdown.clone()));
    tasks.spawn(follow_pointer(shared.clone(), shutdown.clone()));
    tasks.spawn(follow_requests(shared.clone(), shutdown.clone()));
    tasks.spawn(decision_loop(shared.clone(), shutdown.clone()));
    tasks.spawn(crate::telemetry::export_loop(
        shared.clone(),
        shutdown.clone(),
    ));
    info!(watcher = %me, nodes = config.nodes.len(), api = ?addr, "ha watcher started");
    Ok(Watcher {
        shared,
        addr,
        tasks,
    })
}

/// Runs a watcher until `shutdown`.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), HaError> {
    start(bus, config, shutdown).await?.wait().await;
    Ok(())
}

/// Sleeps `d`; false if `shutdown` fired first.
pub(crate) async fn pause(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Checks node `i` every interval until shutdown.
async fn checker(shared: Arc<Shared>, i: usize, node: Node, shutdown: CancellationToken) {
    let c = &shared.config;
    loop {
        let stamp_to = {
            let inner = shared.lock();
            let n = &inner.nodes[i];
            match (inner.leader, inner.pointer()) {
                (true, Some(p))
                    if n.health != Health::Up || n.epoch.is_none_or(|e| e < p.epoch) =>
                {
                    Some(p.epoch)
                }
                _ => None,
            }
        };
        let started = Instant::now();
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = probe(&node.url, &c.checkpoint_name, stamp_to, c.check_timeout()) => r,
        };
        let took = started.elapsed();
        let end = shared.lock().stream;
        let cp = result.as_ref().ok().map(|p| p.checkpoint);
        let waiting = oldest_waiting(&shared.bus, end.as_ref(), cp).await;
        let changed = {
            let mut inner = shared.lock();
            let n = &mut inner.nodes[i];
            let changed = n.record(result, took, c.failures_before_down());
            if let Ok(waiting) = waiting {
                n.update_lag(end.as_ref(), waiting, c.lag_threshold());
            }
            if changed {
                match n.health {
                    Health::Down => warn!(reason = %n.down_reason(), "node down"),
                    _ => info!(checkpoint = ?n.checkpoint, epoch = ?n.epoch, "node up"),
                }
            }
            changed
        };
        if changed {
            shared.wake.notify_one();
        }
        if !pause(c.check_interval().saturating_sub(took), &shutdown).await {
            return;
        }
    }
}

/// Renews or takes the lease every interval; releases it at shutdown.
async fn lease_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let c = &shared.config;
    let mut lease = Lease::new(&lease_key(), &shared.me, c.lease(), c.check_interval());
    loop {
        let leader = match lease.tick(&shared.store).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot renew the watcher lease");
                lease.is_leader()
            }
        };
        let changed = {
            let mut i = shared.lock();
            let changed = i.leader != leader;
            i.leader = leader;
            i.holder = lease.holder().map(str::to_string);
            changed
        };
        if changed {
            shared.wake.notify_one();
        }
        if !pause(c.check_interval(), &shutdown).await {
            lease.release(&shared.store).await;
            return;
        }
    }
}

/// Reads the pointer again as soon as it changes (every watcher shows the current
/// primary within moments, not at its next round).
async fn follow_pointer(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut rx = shared.store.follow(POSTGRES, shutdown.child_token());
    while rx.changed().await.is_ok() {
        refresh_pointer(&shared).await;
        shared.wake.notify_one();
    }
}

/// Wakes the decision loop when a failover or consistency-check request is written
/// (from the CLI, the API, another watcher's API), so the lease holder answers it at
/// once, not at its next round. The rounds stay the safety net.
async fn follow_requests(shared: Arc<Shared>, shutdown: CancellationToken) {
    let keys = [FAILOVER_REQUEST_KEY.to_string(), sync_request_key()];
    let mut rewatch = Policy::fixed(shared.config.check_interval()).backoff();
    loop {
        match shared.store.kv().watch_many(keys.iter()).await {
            Ok(mut watch) => loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = watch.next() => next,
                };
                match next {
                    Some(Ok(e)) if e.operation == kv::Operation::Put => shared.wake.notify_one(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            },
            Err(e) => warn!(error = %e, "cannot watch the ha requests; answering them each round"),
        }
        if !rewatch.pause(&shutdown).await {
            return;
        }
    }
}
