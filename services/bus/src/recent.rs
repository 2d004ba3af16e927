//! Blobs this process has just stored, handed once to a reader in the same process.
//!
//! When the download and store stages run in one process (`imgcrawl run`, the default),
//! the store stage would read back from the blob stream the bytes the download stage
//! wrote a moment before: two direct gets (the info, the chunk) per image, answered by
//! the stream's server. [`RecentBlobs`] keeps what [`crate::blob::BlobStore`] wrote
//! (bounded by bytes, oldest dropped first) and gives each one to the first read of
//! its name, so the stream stays the truth (the bytes are in it before the event that
//! names them is published) and a miss (another process, an evicted entry, a retry)
//! reads the stream as before. Off (capacity 0) until a store stage in the process
//! turns it on, so a download-only process keeps nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// The blobs, newest last, and their total size.
#[derive(Default)]
struct Kept {
    by_name: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Recently stored blobs by name; shared by every [`crate::blob::BlobStore`] opened
/// from one [`crate::Bus`].
#[derive(Default)]
pub struct RecentBlobs {
    kept: Mutex<Kept>,
    capacity: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl RecentBlobs {
    /// Keeps up to `bytes` of blobs from now on (0 turns it off and drops what is kept).
    pub fn set_capacity(&self, bytes: usize) {
        self.capacity.store(bytes, Ordering::Relaxed);
        let mut kept = self.kept.lock().expect("recent blobs lock");
        evict(&mut kept, bytes);
    }

    /// Keeps `body` as blob `name` (a blob of more than a quarter of the capacity is
    /// not kept: it would push out many small ones).
    pub fn keep(&self, name: &str, body: &Bytes) {
        let cap = self.capacity.load(Ordering::Relaxed);
        if cap == 0 || body.len() > cap / 4 {
            return;
        }
        let mut kept = self.kept.lock().expect("recent blobs lock");
        if let Some(old) = kept.by_name.insert(name.to_string(), body.clone()) {
            kept.bytes -= old.len();
        } else {
            kept.order.push_back(name.to_string());
        }
        kept.bytes += body.len();
        evict(&mut kept, cap);
    }

    /// Takes blob `name` if it is kept (each is handed out once).
    pub fn take(&self, name: &str) -> Option<Bytes> {
        if self.capacity.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut kept = self.kept.lock().expect("recent blobs lock");
        let found = kept.by_name.remove(name);
        match &found {
            Some(body) => {
                kept.bytes -= body.len();
                if let Some(i) = kept.order.iter().position(|n| n == name) {
                    kept.order.remove(i);
                }
                self.hits.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
        }
        found
    }

    /// Reads answered from here and reads that went to the stream, since the start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Drops the oldest blobs until `kept` holds at most `cap` bytes.
fn evict(kept: &mut Kept, cap: usize) {
    while kept.bytes > cap {
        let Some(name) = kept.order.pop_front() else {
            break;
        };
        if let Some(body) = kept.by_name.remove(&name) {
            kept.bytes -= body.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn off_until_turned_on_then_each_blob_is_handed_out_once() {
        let r = RecentBlobs::default();
        r.keep("a", &blob(10));
        assert_eq!(r.take("a"), None, "off: nothing kept");
        r.set_capacity(100);
        r.keep("a", &blob(10));
        assert_eq!(r.take("a"), Some(blob(10)));
        assert_eq!(r.take("a"), None, "handed out once");
        assert_eq!(r.stats(), (1, 1));
    }

    #[test]
    fn the_oldest_go_first_and_big_ones_are_not_kept() {
        let r = RecentBlobs::default();
        r.set_capacity(100);
        for name in ["a", "b", "c", "d", "e"] {
            r.keep(name, &blob(25));
        }
        assert_eq!(r.take("a"), None, "evicted: 125 bytes over a 100-byte cap");
        assert!(r.take("b").is_some() && r.take("e").is_some());
        r.keep("big", &blob(26));
        assert_eq!(r.take("big"), None, "over a quarter of the capacity");
        // the same name kept twice counts once
        r.keep("x", &blob(20));
        r.keep("x", &blob(20));
        r.keep("y", &blob(20));
        r.keep("z", &blob(20));
        r.keep("w", &blob(20));
        assert!(r.take("x").is_some(), "still within the cap");
        r.set_capacity(0);
        assert_eq!(r.take("y"), None, "turned off: dropped");
    }
}
