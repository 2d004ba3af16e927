//! Which streams a backup holds: the event stream, the blob store's stream and the KV
//! buckets whose state matters after a restore (job specs and run state, the URL
//! seen-set, tombstones, the HA pointer and epochs, purged images).

use imgcrawl_bus::Bus;

use crate::manifest::Role;
use crate::segment::Record;
use crate::Config;

/// KV bucket of purged images (key: SHA-256; written by `imgcrawl purge`).
pub const PURGED_BUCKET: &str = "imgcrawl-purged";

/// The streams to archive, by name, with their role.
pub fn archived_streams(bus: &Bus, config: &Config) -> Vec<(String, Role)> {
    let c = &bus.config;
    let mut out = vec![
        (c.stream.clone(), Role::Events),
        (format!("OBJ_{}", c.blob_bucket), Role::Blobs),
    ];
    let mut kv = vec![
        c.jobs_bucket.clone(),
        c.seen_bucket.clone(),
        imgcrawl_bus::tombstones::TOMBSTONE_BUCKET.to_string(),
        imgcrawl_bus::ha::HA_BUCKET.to_string(),
        PURGED_BUCKET.to_string(),
    ];
    kv.extend(config.extra_kv_buckets.iter().cloned());
    kv.dedup();
    out.extend(kv.into_iter().map(|b| (format!("KV_{b}"), Role::Kv)));
    out
}

/// The SHA-256 a record of the purged-images bucket names, if it is a purge (a put).
pub fn purged_sha(r: &Record) -> Option<String> {
    let key = r.subject.strip_prefix(&format!("$KV.{PURGED_BUCKET}."))?;
    let deleted = r
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("KV-Operation") && v != "PUT");
    (!deleted).then(|| key.to_string())
}
