//! imgcrawl's index stage: the PostgreSQL projection of the event stream.
//!
//! * [`apply_batch`] applies a batch of [`Sourced`] events in one transaction, skipping
//!   everything at or below the projection's checkpoint and advancing it in the same
//!   transaction: exactly-once effect. Batches are applied with one multi-row
//!   statement per event group, and the result equals applying the events one at a
//!   time, for any split of the stream into batches (see the `batch` and `progress`
//!   modules for the grouping, the counters and the completion rule).
//! * Rows are deterministic: timestamps come from the events, ids from stream
//!   sequences, never from `now()` or a serial, so two replays of one stream (or two
//!   database nodes) hold identical rows and can be compared by digest.
//! * [`run`] is the live stage: an in-order reader from the checkpoint on
//!   (the `source` module), batches committed then announced (`images.indexed`,
//!   `crawl.completed`), dead letters for poison, retries while the database is down.
//! * [`replay`] rebuilds a projection from the stream with the same loop (the `stage`
//!   module), publishing nothing, in large batches, up to the stream's end or `until`.
//! * Every database records the stream it projects (`projection_meta`: the stream's
//!   id, see [`StreamIdentity`]); the live stage and replays refuse a database of another
//!   stream ([`IndexError::ForeignStream`]).
//! * HA: [`run_nodes`] runs one writer per PostgreSQL node, each following the HA
//!   pointer; only the primary's writer publishes, and every transaction is fenced by
//!   the writer's epoch (see [`Fence`] and `imgcrawl_readmodel::checkpoint::stamp`).
//! * [`verify`] compares two projections at one checkpoint (counts, latest record, id
//!   range, content digest per table), or a projection with a fresh replay.
//!
//! * Metrics and readiness (the `telemetry` module): batch size, commit time,
//!   checkpoint and lag per projection; `projection/<name>` and its database probe on
//!   `/readyz`.
//!
//! The schema, the statements that apply a batch and every other query belong to the
//! read model (`imgcrawl-readmodel`); this crate is the stage around it.

mod commit;
mod config;
mod db;
mod error;
mod fencing;
mod meta;
mod mode;
mod nodes;
mod replay;
mod republish;
mod source;
mod stage;
mod telemetry;
pub mod verify;

pub use config::Config;
pub use db::{
    apply_batch, apply_batch_through, apply_batch_with, connect, migrate, read_checkpoint,
    Checkpoint, MIGRATOR,
};
pub use error::IndexError;
pub use fencing::Fence;
pub use imgcrawl_bus::identity::StreamIdentity;
pub use imgcrawl_readmodel::meta::RecordedStream;
pub use imgcrawl_readmodel::write::{
    filename, Applied, BatchEffects, Counters, Invalid, JobStatus, Sourced, MAX_URL_BYTES,
};
pub use meta::{recorded_stream, stream_position, StreamPosition};
pub use nodes::{run_fenced, run_node, run_nodes};
pub use replay::{replay, ReplayOptions, ReplayProgress};
pub use republish::recent_completions;
pub use source::consumed_subjects;
pub use stage::run;
