//! imgcrawl's HA watcher (design §5): health checks of the PostgreSQL nodes, election
//! of the primary, the `imgcrawl-ha` pointer with its fencing epoch, consistency
//! checks, and the HA HTTP API.
//!
//! Every PostgreSQL node is its own projection of the stream, fed by its own index
//! writer (`imgcrawl_index::run_nodes`), so a standby is warm and a failover is a
//! redirect, not a copy. The watcher:
//!
//! * checks every node every `check_interval` (the `health` module): down after
//!   `failures_before_down` failures in a row or one check slower than `check_timeout`;
//!   lag in stream sequences and seconds from each node's checkpoint;
//! * while holding the lease (the `lease` module; run several watchers, one acts),
//!   elects the best healthy node when the primary is down or lagging, or when asked
//!   (the `election` module), writes `{primary, epoch, reason, at}` to KV with
//!   compare-and-set, stamps epochs on the nodes (fencing) and publishes
//!   `imgcrawl.ha.failover` (the `failover` module);
//! * compares the nodes at a common checkpoint every `consistency_interval`, after
//!   each failover and on demand, with the index's `verify` library (the
//!   `consistency` module);
//! * serves `GET /api/status`, `GET /api/health`, `POST /api/failover`, `POST
//!   /api/sync`, `GET /api/sync-status` (the `api` module);
//! * exports its view as metrics (node health, primary, lag, epoch, lease,
//!   failovers) and marks itself ready (the `telemetry` module).
//!
//! See `docs/ha.md` for the definitions (writer, role, epoch, fencing) and the
//! guarantees.

mod api;
mod config;
mod consistency;
mod election;
mod error;
mod failover;
mod health;
mod lease;
mod objects;
mod refresh;
mod report;
mod rounds;
mod state;
mod telemetry;
mod watcher;

pub use config::{Config, ObjectStoreNode, TOKEN_ENV};
pub use consistency::REFERENCE_DB;
pub use election::{candidates, check_manual, decide, next_epoch, Decision, Manual};
pub use error::HaError;
pub use health::{probe, Health, NodeState, Probe, ProbeError, StreamEnd};
pub use imgcrawl_bus::ha_requests::{FailoverRequest, FailoverResult};
pub use lease::{Lease, LeaseRecord};
pub use objects::ObjectState;
pub use report::{Diff, NodeReport, Report, SyncRequest};
pub use state::{NodeView, Status};
pub use watcher::{run, start, Watcher};
