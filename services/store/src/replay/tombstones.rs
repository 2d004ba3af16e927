//! The tombstones: every image deleted by an `image.deleted` event up to the end.

use std::collections::HashSet;

use imgcrawl_bus::Bus;
use imgcrawl_events::{Event, EventKind};

use super::reader::Reader;
use crate::StoreError;

/// The SHA-256s of every image deleted at or before `end` (deletions are rare: the set
/// stays small).
pub(crate) async fn read(bus: &Bus, end: u64) -> Result<HashSet<String>, StoreError> {
    let mut reader = Reader::new(bus, vec![EventKind::ImageDeleted.subject()], 0, end);
    let mut out = HashSet::new();
    while let Some((_, event)) = reader.next().await? {
        if let Event::ImageDeleted(d) = event {
            out.insert(d.sha256);
        }
    }
    Ok(out)
}
