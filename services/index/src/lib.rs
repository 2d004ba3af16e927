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
//!   (the `source` module), batches committed then announced (`image.indexed`,
//!   `crawl.completed`), dead letters for poison, retries while the database is down.
//! * [`replay`] rebuilds a projection from the stream with the same loop (the `stage`
//!   module), publishing nothing, in large batches, up to the stream's end or `until`.
//! * Every database records the stream it projects (`projection_meta`: the stream's
//!   id, see [`StreamIdentity`]); the live stage and replays refuse a database of another
//!   stream ([`IndexError::ForeignStream`]).
//! * HA: [`run_nodes`] runs one writer per PostgreSQL node, each following the HA
//!   pointer; only the primary's writer publishes, and every transaction is fenced by
//!   the writer's epoch (see [`Fence`] and [`stamp`]).
//! * [`verify`] compares two projections at one checkpoint (counts, latest record, id
//!   range, content digest per table), or a projection with a fresh replay.
//!
//! The schema lives in `migrations/` and is embedded ([`MIGRATOR`]).

mod apply;
mod batch;
mod clean;
mod commit;
mod config;
mod db;
mod effects;
mod error;
mod fencing;
mod meta;
mod mode;
mod nodes;
mod progress;
mod replay;
mod republish;
mod source;
mod sourced;
mod stage;
pub mod verify;

pub use apply::checkpoint::Checkpoint;
pub use apply::{apply_batch, apply_batch_through};
pub use clean::{filename, MAX_URL_BYTES};
pub use config::Config;
pub use db::{connect, migrate, read_checkpoint, MIGRATOR};
pub use effects::{Applied, BatchEffects, Invalid};
pub use error::IndexError;
pub use fencing::{stamp, Fence};
pub use imgcrawl_bus::identity::StreamIdentity;
pub use meta::{recorded_stream, stream_position, RecordedStream, StreamPosition};
pub use nodes::{run_fenced, run_node, run_nodes};
pub use progress::{Counters, JobStatus};
pub use replay::{replay, ReplayOptions, ReplayProgress};
pub use republish::recent_completions;
pub use source::consumed_subjects;
pub use sourced::Sourced;
pub use stage::run;
