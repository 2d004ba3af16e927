//! How far a projection is behind the stream: the one definition of index lag, used
//! by the API, the gallery, `imgcrawl status` and the HA watcher.
//!
//! * **Events**: the stream's last sequence minus the checkpoint, while an event the
//!   index applies is waiting above the checkpoint; 0 otherwise. The index does not
//!   apply its own outputs (`images.indexed`, `crawl.completed`), which usually end the
//!   stream, so a caught-up projection has lag 0 even though its checkpoint is below
//!   the stream's last sequence.
//! * **Seconds**: the age of the oldest event waiting above the checkpoint that the
//!   index applies (now minus the time the stream stored it); 0 when none waits. It
//!   says how stale the projection is: one event behind that arrived a second ago is
//!   a second of lag, however long the stream was idle before it.
//!
//! The stream is read by the caller (`imgcrawl_bus::position`): its last sequence,
//! and the oldest event above the checkpoint on [`applied_subjects`]. This module
//! only combines them, so every reader computes the same numbers.

use chrono::{DateTime, Utc};
use imgcrawl_events::EventKind;

/// A projection's lag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// The projection's checkpoint.
    pub checkpoint: u64,
    /// The stream's last sequence.
    pub stream_last_seq: u64,
    /// Stream sequences between the checkpoint and the stream's end, while an applied
    /// event waits (else 0).
    pub events: u64,
    /// Age in seconds of the oldest applied event waiting (else 0).
    pub seconds: f64,
}

/// Whether the index applies events of `kind`: every kind but its own outputs.
pub fn applies(kind: EventKind) -> bool {
    !kind.is_index_output()
}

/// Whether the index applies what arrives on `subject` (a routed kind's partition
/// subjects included; dead letters and the index's own outputs are not).
pub fn applies_subject(subject: &str) -> bool {
    EventKind::from_subject(subject).is_some_and(applies)
}

/// The subject filters of what the index applies (the routed kinds' partition
/// subjects included).
pub fn applied_subjects() -> Vec<String> {
    EventKind::ALL
        .into_iter()
        .filter(|k| applies(*k))
        .flat_map(EventKind::filters)
        .collect()
}

/// Whether the oldest waiting event must be looked up: only a checkpoint below the
/// stream's end can have one.
pub fn behind(checkpoint: u64, stream_last_seq: u64) -> bool {
    checkpoint < stream_last_seq
}

/// The lag of a projection at `checkpoint` when the stream ends at `stream_last_seq`
/// and the oldest event on [`applied_subjects`] above the checkpoint was stored at
/// `oldest_waiting` (none: nothing the index applies is waiting), measured at `now`.
pub fn lag(
    checkpoint: u64,
    stream_last_seq: u64,
    oldest_waiting: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Lag {
    let waiting = oldest_waiting.filter(|_| behind(checkpoint, stream_last_seq));
    Lag {
        checkpoint,
        stream_last_seq,
        events: if waiting.is_some() {
            stream_last_seq - checkpoint
        } else {
            0
        },
        seconds: waiting.map_or(0.0, |t| {
            ((now - t).num_milliseconds().max(0) as f64) / 1000.0
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_outputs_are_not_waited_for() {
        let s = applied_subjects();
        assert_eq!(
            s.len(),
            EventKind::ALL.len() - 3 + 2,
            "two routed kinds: two filters each"
        );
        assert!(s.contains(&"imgcrawl.image.discovered.*".to_string()));
        assert!(applies_subject("imgcrawl.page.discovered.p3"));
        assert!(applies_subject("imgcrawl.image.deleted"));
        assert!(!applies_subject("imgcrawl.image.indexed"));
        assert!(!applies_subject("imgcrawl.images.indexed"));
        assert!(!applies_subject("imgcrawl.dlq.crawl"));
        assert!(!s.contains(&EventKind::ImageIndexed.subject()));
        assert!(!s.contains(&EventKind::ImagesIndexed.subject()));
        assert!(!s.contains(&EventKind::CrawlCompleted.subject()));
        assert!(s.contains(&EventKind::ImageDeleted.subject()));
    }

    #[test]
    fn lag_is_the_distance_to_the_end_and_the_age_of_the_oldest_waiting_event() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let now = t0 + chrono::Duration::seconds(70);
        let l = lag(40, 100, Some(t0), now);
        assert_eq!((l.events, l.seconds), (60, 70.0));
        // only the index's outputs above the checkpoint: caught up
        let l = lag(40, 100, None, now);
        assert_eq!((l.events, l.seconds), (0, 0.0));
        assert_eq!((l.checkpoint, l.stream_last_seq), (40, 100));
        // at the end: nothing can wait
        assert_eq!(lag(100, 100, Some(t0), now).events, 0);
        // a clock behind the stream's never makes a negative age
        assert_eq!(lag(1, 2, Some(now), t0).seconds, 0.0);
    }
}
