//! The image bucket, shared by the store stage (which writes it) and the HTTP API
//! (which reads it): where it is ([`Config`]: a local directory or any S3 endpoint,
//! opened by [`open_store`]), the content-addressed key layout ([`Layout`]:
//! `<prefix>/<sha[0..2]>/<sha>.<ext>` in a new bucket, the nested layout of earlier
//! versions in theirs), and [`Bucket`], which writes, reads, lists and deletes image
//! objects under its bucket's layout.
//!
//! No NATS and no event handling: this crate knows objects only (it takes `Format` and
//! `Sha256` from the `imgcrawl-events` vocabulary).

pub mod bucket;
mod config;
mod error;
pub mod key;
pub mod target;

pub use bucket::{Bucket, ImageObject, Multipart, StoredObject, CACHE_CONTROL};
pub use config::{BucketSettings, Config, S3Config};
pub use error::BucketError;
pub use key::{extension, object_key, Layout};
pub use target::{open_store, Target};
