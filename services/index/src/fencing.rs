//! HA: the index writer of one node, its role, and fencing by epoch.
//!
//! **Writer.** With HA, every PostgreSQL node has its own index writer: the projection
//! loop of this crate pointed at that node, reading the stream from the node's own
//! checkpoint. A writer has a *role* that it derives from the HA pointer (KV
//! `imgcrawl-ha`, key `postgres`, see `imgcrawl_bus::ha`) it follows: **primary** when
//! the pointer names its node, **standby** otherwise. Both roles apply every event (a
//! standby is a warm copy a few events behind); only the primary publishes what
//! batches produce (`images.indexed`, `crawl.completed`, dead letters), and it does so
//! after the commit of a batch it applied while the pointer named its node.
//!
//! **Fencing.** A writer holds the epoch of the pointer it last saw. Inside every
//! projection transaction, before any row is written, [`check`] compares it with the
//! epoch recorded in the node's checkpoint row: if the node has seen a newer epoch the
//! transaction fails ([`IndexError::Fenced`]) and nothing is committed; otherwise the
//! node records the writer's epoch. The watcher stamps the current epoch on every
//! node it can reach (`imgcrawl_readmodel::checkpoint::stamp`), first on a node that
//! returns, so a writer that missed a failover can no longer commit there. Epochs only grow, on nodes and in the pointer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use imgcrawl_bus::ha::Pointer;
use sqlx::PgConnection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use imgcrawl_bus::Bus;
use imgcrawl_events::{Event, EventKind};
use imgcrawl_readmodel::checkpoint;

use crate::error::IndexError;
use crate::BatchEffects;

/// What an HA writer knows: its node and the pointer it follows.
#[derive(Clone)]
pub struct Fence {
    node: String,
    pointer: watch::Receiver<Option<Pointer>>,
    /// The role at the last [`Fence::promoted`] call.
    was_primary: bool,
    /// What batches applied as a standby would have announced, newest last, for at
    /// most [`STASH_WINDOW`] and [`STASH_MAX`] events.
    stash: VecDeque<(Instant, Event)>,
}

/// How long a standby keeps what it did not announce: longer than any detection time.
const STASH_WINDOW: Duration = Duration::from_secs(120);
/// At most this many unannounced events are kept (about 30 MB).
const STASH_MAX: usize = 100_000;

impl Fence {
    /// A fence for the writer of `node`, following `pointer`.
    pub fn new(node: impl Into<String>, pointer: watch::Receiver<Option<Pointer>>) -> Fence {
        // Not primary yet: a writer that starts as primary republishes recent
        // completions with its first batch, as the plain stage does at start.
        Fence {
            node: node.into(),
            pointer,
            was_primary: false,
            stash: VecDeque::new(),
        }
    }

    /// A fence that never learns anything after `pointer` (tests, and to show what a
    /// writer cut off from the pointer can and cannot do).
    pub fn fixed(node: impl Into<String>, pointer: Pointer) -> Fence {
        // The sender is dropped: the receiver keeps the last value forever.
        let (_, rx) = watch::channel(Some(pointer));
        Fence::new(node, rx)
    }

    /// The node this writer projects into.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The epoch of the pointer last seen (0 before the first election).
    pub fn epoch(&self) -> u64 {
        self.pointer.borrow().as_ref().map_or(0, |p| p.epoch)
    }

    /// Whether the pointer last seen names this writer's node.
    pub fn is_primary(&self) -> bool {
        self.pointer
            .borrow()
            .as_ref()
            .is_some_and(|p| p.primary == self.node)
    }

    /// After [`IndexError::Fenced`]: waits (at most a second, or until `shutdown`) for
    /// a pointer newer than the epoch the fenced attempt held.
    pub(crate) async fn wait_newer(&self, fenced: &IndexError, shutdown: &CancellationToken) {
        let IndexError::Fenced { writer, .. } = fenced else {
            return;
        };
        let mut rx = self.pointer.clone();
        let newer = async {
            while rx.borrow_and_update().as_ref().map_or(0, |p| p.epoch) <= *writer {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::timeout(Duration::from_secs(1), newer) => {}
        }
    }

    /// True once each time the writer becomes primary (to publish what it applied as
    /// a standby and the old primary may not have announced).
    pub(crate) fn promoted(&mut self) -> bool {
        let now = self.is_primary();
        let promoted = now && !self.was_primary;
        self.was_primary = now;
        promoted
    }
}

/// The role for the next batch, `(primary, promoted)`: without HA a writer is always
/// primary; with HA, as the pointer says, and `promoted` once per promotion.
pub(crate) fn role(fence: Option<&mut Fence>) -> (bool, bool) {
    match fence {
        None => (true, false),
        Some(f) => {
            let promoted = f.promoted();
            (f.is_primary(), promoted)
        }
    }
}

/// A standby keeps what a batch would have announced: if it is promoted soon, the
/// old primary may have died before announcing the same rows.
pub(crate) fn stash(fence: Option<&mut Fence>, effects: &BatchEffects, with_indexed: bool) {
    let Some(f) = fence else { return };
    let now = Instant::now();
    f.stash
        .extend(effects.events(with_indexed).into_iter().map(|e| (now, e)));
    while f.stash.len() > STASH_MAX
        || f.stash
            .front()
            .is_some_and(|(t, _)| t.elapsed() > STASH_WINDOW)
    {
        f.stash.pop_front();
    }
}

/// What the writer stashed as a standby, to announce now that it is primary (message
/// ids make the stream drop what the old primary did announce).
pub(crate) fn backlog(fence: Option<&mut Fence>) -> Vec<Event> {
    match fence {
        Some(f) if !f.stash.is_empty() => {
            info!(
                events = f.stash.len(),
                "promoted: announcing what was applied as a standby"
            );
            f.stash.drain(..).map(|(_, e)| e).collect()
        }
        _ => Vec::new(),
    }
}

/// The part of a promoted writer's `backlog` that the old primary did not announce.
/// `crawl.completed` keeps its per-job message id, which the stream deduplicates. An
/// `images.indexed` is named by its batch's checkpoint, and the two writers cut their
/// batches differently, so ids cannot tell: the old primary announced its batches in
/// order, so every source stored at or below the checkpoint of the last announcement in
/// the stream (`announced`) was announced, and only sources above it are kept.
pub(crate) fn unannounced(backlog: Vec<Event>, announced: Option<u64>) -> Vec<Event> {
    let Some(announced) = announced else {
        return backlog;
    };
    backlog
        .into_iter()
        .filter_map(|e| match e {
            Event::ImagesIndexed(mut a) => {
                a.images.retain(|i| i.seq > announced);
                (!a.images.is_empty()).then_some(Event::ImagesIndexed(a))
            }
            other => Some(other),
        })
        .collect()
}

/// The checkpoint of the last `images.indexed` in the stream, `None` if there is none or
/// it cannot be read (then nothing is filtered: a duplicate is better than a loss).
pub(crate) async fn last_announced(bus: &Bus) -> Option<u64> {
    let stream = bus.js.get_stream(&bus.config.stream).await.ok()?;
    let subject = EventKind::ImagesIndexed.subject();
    let msg = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .ok()?;
    match imgcrawl_events::decode(&subject, None, &msg.payload) {
        Ok(Event::ImagesIndexed(a)) => Some(a.checkpoint),
        _ => None,
    }
}

/// Inside a projection transaction: fails with [`IndexError::Fenced`] if the node's
/// checkpoint row records an epoch above `epoch`; otherwise records `epoch` there (the
/// row stays locked until the transaction ends).
pub(crate) async fn check(
    c: &mut PgConnection,
    checkpoint_name: &str,
    epoch: u64,
) -> Result<(), IndexError> {
    match checkpoint::raise_epoch(c, checkpoint_name, epoch).await? {
        None => Ok(()),
        Some(node) => Err(IndexError::Fenced {
            writer: epoch,
            node,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr(primary: &str, epoch: u64) -> Pointer {
        Pointer {
            primary: primary.into(),
            epoch,
            reason: String::new(),
            at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            previous: None,
        }
    }

    #[test]
    fn the_role_follows_the_pointer_and_promotion_is_seen_once() {
        let (tx, rx) = watch::channel(Some(ptr("a", 1)));
        let mut f = Fence::new("b", rx);
        assert!(!f.is_primary());
        assert_eq!(f.epoch(), 1);
        assert!(!f.promoted());
        assert_eq!(role(None), (true, false));
        tx.send_replace(Some(ptr("b", 2)));
        assert!(f.is_primary());
        assert_eq!(f.epoch(), 2);
        assert!(f.promoted());
        assert!(!f.promoted());
        tx.send_replace(Some(ptr("a", 3)));
        assert!(!f.promoted());
        let fixed = Fence::fixed("a", ptr("a", 7));
        assert!(fixed.is_primary());
        assert_eq!(fixed.epoch(), 7);
    }

    #[test]
    fn a_promoted_writer_announces_only_sources_above_the_last_announcement() {
        use imgcrawl_events::{CompletionStatus, CrawlCompleted, ImagesIndexed, IndexedImage};
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let img = |seq: u64| IndexedImage {
            seq,
            job_id: uuid::Uuid::nil(),
            url: format!("http://a.test/{seq}.png"),
            sha256: format!("{seq:064x}"),
            image_id: seq as i64,
            stored_at: at,
        };
        let batch = |cp: u64, seqs: &[u64]| {
            let images: Vec<_> = seqs.iter().map(|s| img(*s)).collect();
            Event::ImagesIndexed(ImagesIndexed::parts(cp, &images, at).remove(0))
        };
        let done = Event::CrawlCompleted(CrawlCompleted {
            job_id: uuid::Uuid::nil(),
            status: CompletionStatus::Completed,
            pages_fetched: 0,
            pages_failed: 0,
            images_stored: 0,
            images_rejected: 0,
            bytes: 0,
            occurred_at: at,
        });
        // the standby cut its batches at 12 and 20; the old primary announced up to 15
        let backlog = vec![batch(12, &[10, 12]), batch(20, &[14, 16, 20]), done.clone()];
        let seqs = |events: &[Event]| -> Vec<u64> {
            events
                .iter()
                .flat_map(|e| match e {
                    Event::ImagesIndexed(a) => a.images.iter().map(|i| i.seq).collect(),
                    _ => vec![0],
                })
                .collect()
        };
        let kept = unannounced(backlog.clone(), Some(15));
        assert_eq!(seqs(&kept), [16, 20, 0], "the first batch is dropped whole");
        assert!(matches!(&kept[0], Event::ImagesIndexed(a) if a.checkpoint == 20));
        assert_eq!(
            unannounced(backlog.clone(), None),
            backlog,
            "nothing known: all kept"
        );
        assert_eq!(
            seqs(&unannounced(backlog, Some(20))),
            [0],
            "completions stay"
        );
    }
}
