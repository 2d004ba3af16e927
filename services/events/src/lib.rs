//! The imgcrawl event vocabulary.
//!
//! Every fact the pipeline knows is one of the [`Event`] variants, published as a JSON
//! body on its own subject under `imgcrawl.` with three headers: `Nats-Msg-Id`
//! (deterministic, see [`Event::msg_id`]), `Imgcrawl-Event` (type and schema version, see
//! [`EventKind::header_value`]) and `traceparent` (W3C trace context whose trace id is the
//! job id, so one crawl can be followed across stages).
//!
//! This crate is pure data: no I/O, no NATS. It also holds the one [`redact`] (URLs
//! printed without credentials), the lowest place every crate can reach. Stages depend on it and on `imgcrawl-bus`.

mod codec;
mod format;
mod ids;
mod job;
mod kinds;
mod redact;
mod render;
mod sha256;
mod types;

pub use codec::{
    decode, DecodeError, EncodedEvent, HEADER_EVENT, HEADER_MSG_ID, HEADER_STORED_AT,
    HEADER_TRACEPARENT,
};
pub use format::Format;
pub use ids::{job_id_from_sequence, traceparent, url_key};
pub use job::{ImageFilters, JobSpec, Politeness, Scope};
pub use kinds::{EventKind, SCHEMA_VERSION, SUBJECT_PREFIX};
pub use redact::{redact, redact_list, UNPARSABLE};
pub use render::{RenderReply, RenderRequest, RENDER_QUEUE, RENDER_SUBJECT};
pub use sha256::{InvalidSha256, Sha256};
pub use types::*;
