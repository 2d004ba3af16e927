//! Blobs this process has just stored, handed once to a reader in the same process.
//!
//! When the download and store stages run in one process (`imgcrawl run`, the default),
//! the store stage would read back from the blob stream the bytes the download stage
//! wrote a moment before: two direct gets (the info, the chunk) per image, answered by
//! the stream's server. [`RecentBlobs`] keeps what [`crate::blob::BlobStore`] wrote
//! and gives each one to the first read of its name, so the stream stays the truth
//! (the bytes are in it before the event that names them is published) and a miss
//! (another process, a blob not kept, a retry) reads the stream as before. Off
//! (capacity 0) until a store stage in the process turns it on, so a download-only
//! process keeps nothing.
//!
//! **When full, new blobs are not kept** (rather than the oldest dropped): the store
//! stage takes blobs in about the order they were written, so when it runs behind by
//! more than the capacity, dropping the oldest would drop exactly the ones it reads
//! next and nearly every read would miss (measured: about half the reads missed at 16
//! MiB). Blobs nobody took within [`MAX_AGE`] (a failed store, another replica took
//! the event) are dropped to make room.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long a blob nobody took is kept before it may be dropped for a new one.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// The blobs, newest last (with when they were kept), and their total size.
#[derive(Default)]
struct Kept {
    by_name: HashMap<String, RecentBlob>,
    order: VecDeque<(String, Instant)>,
    bytes: usize,
}

/// A kept blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentBlob {
    /// Its bytes: the very bytes the writer hashed to name it.
    pub body: Bytes,
    /// Whether the writer stored it (false: the blob store had it already), so that no
    /// projection of the blob store can have it yet unless an earlier copy was lost.
    pub new: bool,
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
        while kept.bytes > bytes && drop_oldest(&mut kept) {}
    }

    /// Keeps `body` as blob `name`, if there is room: when full, blobs older than
    /// [`MAX_AGE`] make room, newer ones are never dropped for it. A blob of more than
    /// a quarter of the capacity is not kept.
    /// `new`: the writer stored it now (see [`RecentBlob::new`]).
    pub fn keep(&self, name: &str, body: &Bytes, new: bool) {
        self.keep_at(name, body, new, Instant::now());
    }

    fn keep_at(&self, name: &str, body: &Bytes, new: bool, now: Instant) {
        let cap = self.capacity.load(Ordering::Relaxed);
        if cap == 0 || body.len() > cap / 4 {
            return;
        }
        let mut kept = self.kept.lock().expect("recent blobs lock");
        if kept.by_name.contains_key(name) {
            return; // the same bytes (the name is their hash)
        }
        while kept.bytes + body.len() > cap
            && kept
                .order
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at) >= MAX_AGE)
        {
            drop_oldest(&mut kept);
        }
        if kept.bytes + body.len() > cap {
            return;
        }
        let blob = RecentBlob {
            body: body.clone(),
            new,
        };
        kept.by_name.insert(name.to_string(), blob);
        kept.order.push_back((name.to_string(), now));
        kept.bytes += body.len();
    }

    /// Takes blob `name` if it is kept (each is handed out once).
    pub fn take(&self, name: &str) -> Option<RecentBlob> {
        if self.capacity.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut kept = self.kept.lock().expect("recent blobs lock");
        let found = kept.by_name.remove(name);
        match &found {
            Some(blob) => {
                kept.bytes -= blob.body.len();
                if let Some(i) = kept.order.iter().position(|(n, _)| n == name) {
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

/// Drops the oldest blob; false when there is none.
fn drop_oldest(kept: &mut Kept) -> bool {
    let Some((name, _)) = kept.order.pop_front() else {
        return false;
    };
    if let Some(blob) = kept.by_name.remove(&name) {
        kept.bytes -= blob.body.len();
    }
    true
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
        r.keep("a", &blob(10), true);
        assert_eq!(r.take("a"), None, "off: nothing kept");
        r.set_capacity(100);
        r.keep("a", &blob(10), true);
        let kept = r.take("a").expect("kept");
        assert_eq!((kept.body, kept.new), (blob(10), true));
        r.keep("b", &blob(10), false);
        assert!(
            !r.take("b").expect("kept").new,
            "a blob the store had already"
        );
        assert_eq!(r.take("a"), None, "handed out once");
        assert_eq!(r.stats(), (2, 1));
    }

    #[test]
    fn when_full_new_blobs_wait_and_only_stale_ones_make_room() {
        let r = RecentBlobs::default();
        r.set_capacity(100);
        let t0 = Instant::now();
        for name in ["a", "b", "c", "d", "e"] {
            r.keep_at(name, &blob(25), true, t0);
        }
        assert_eq!(r.take("e"), None, "full: the newest is not kept");
        assert!(
            r.take("a").is_some(),
            "the oldest, read next, is still there"
        );
        r.keep_at("f", &blob(25), true, t0);
        assert!(r.take("f").is_some(), "room again after a take");
        // b, c, d were never taken: once stale they make room for new blobs
        r.keep_at("f", &blob(25), true, t0);
        r.keep_at("g", &blob(25), true, t0 + MAX_AGE);
        assert_eq!(r.take("b"), None, "stale, dropped for g");
        assert!(r.take("g").is_some() && r.take("c").is_some());
        r.keep_at("big", &blob(26), true, t0);
        assert_eq!(r.take("big"), None, "over a quarter of the capacity");
        // the same name kept twice counts once
        r.keep_at("x", &blob(20), true, t0);
        r.keep_at("x", &blob(20), true, t0);
        assert!(r.take("x").is_some() && r.take("x").is_none());
        r.set_capacity(0);
        assert_eq!(r.take("d"), None, "turned off: dropped");
    }
}
