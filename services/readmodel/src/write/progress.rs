//! Job counters, state transitions and the completion rule (pure).
//!
//! Counters move only on real state transitions reported back by the statements
//! (`RETURNING`), so a duplicate or redelivered event never counts twice.
//!
//! **Completion.** A running or stopping job is complete when
//! `pages_discovered > 0`, `pages_discovered = pages_fetched + pages_failed` and
//! `images_discovered = images_rejected + images_stored`.
//!
//! **completed_at is independent of batch boundaries.** Applied one event at a time,
//! the job completes at the first event E* after which the counts balance, and
//! `completed_at` is E*'s `occurred_at`. A batch finds the same E*: it knows the
//! counters before the batch (after minus the batch's deltas) and each real transition
//! with its sequence, so it replays the transitions in sequence order and stops at the
//! first balanced moment. Using "the job's last event in the batch" instead would move
//! `completed_at` with the batch split (a duplicate or a stop after E* is an event of
//! the job too). The crawl stage publishes every child of a page (page.discovered,
//! image.discovered) before that page's outcome, so for a well-behaved producer the
//! first balanced moment is final and E* is the job's last transition; the replay
//! makes the result exact even if a producer breaks that rule.
//!
//! **Stops.** A stop counts only if it precedes E* (sequentially, a stop after
//! completion is a no-op); a job with an effective stop ends `stopped`, otherwise
//! `completed`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use crate::counters::Counters;

/// A job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Crawling.
    Running,
    /// A stop was applied; in-flight work drains.
    Stopping,
    /// Drained without a stop.
    Completed,
    /// Drained after a stop.
    Stopped,
}

impl JobStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Stopping => "stopping",
            JobStatus::Completed => "completed",
            JobStatus::Stopped => "stopped",
        }
    }

    /// Parses a column value.
    pub fn parse(s: &str) -> Option<JobStatus> {
        [
            JobStatus::Running,
            JobStatus::Stopping,
            JobStatus::Completed,
            JobStatus::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Running or stopping: may still complete.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Stopping)
    }
}

/// One real transition: the event's sequence, time and effect on the counters.
pub(crate) type Transition = (u64, DateTime<Utc>, Counters);

/// The transitions of one job in a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct JobProgress {
    /// The sum of all transitions.
    pub delta: Counters,
    /// Every transition, in the order recorded.
    pub transitions: Vec<Transition>,
}

/// Transitions per job, in job id order (so statements are built deterministically).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub jobs: BTreeMap<Uuid, JobProgress>,
}

impl Progress {
    /// Records that the event at `seq` made a real transition of `job`.
    pub(crate) fn record(
        &mut self,
        job: Uuid,
        seq: u64,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut Counters),
    ) {
        let p = self.jobs.entry(job).or_default();
        let mut d = Counters::default();
        f(&mut d);
        p.delta = p.delta.plus(&d);
        p.transitions.push((seq, at, d));
    }

    /// The transitions of `job`, if any.
    pub(crate) fn get(&self, job: &Uuid) -> Option<&JobProgress> {
        self.jobs.get(job)
    }
}

/// The moment a job completes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Completion {
    /// Sequence of the completing transition.
    pub seq: u64,
    /// Its occurred_at: the job's `completed_at`.
    pub at: DateTime<Utc>,
    /// The counters right after it (what `crawl.completed` reports).
    pub counters: Counters,
}

/// What a batch does to a job's status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The job completes.
    pub complete: Option<Completion>,
    /// An effective stop (before completion, if any): its occurred_at.
    pub stop_at: Option<DateTime<Utc>>,
}

/// Decides completion and stop for a job whose status before the batch's status
/// update is `status`, whose counters after the batch are `after`, and whose
/// transitions in the batch are `transitions`.
pub(crate) fn decide(
    status: JobStatus,
    after: &Counters,
    transitions: &[Transition],
    first_stop: Option<(u64, DateTime<Utc>)>,
) -> Option<Decision> {
    if !status.is_active() {
        return None;
    }
    let mut ordered: Vec<&Transition> = transitions.iter().collect();
    ordered.sort_by_key(|t| t.0);
    let total = ordered
        .iter()
        .fold(Counters::default(), |acc, t| acc.plus(&t.2));
    let mut running = after.minus(&total);
    let complete = ordered.into_iter().find_map(|(seq, at, d)| {
        running = running.plus(d);
        running.balanced().then_some(Completion {
            seq: *seq,
            at: *at,
            counters: running,
        })
    });
    let stop_at = first_stop
        .filter(|(s, _)| complete.is_none_or(|c| *s < c.seq))
        .map(|(_, at)| at);
    (complete.is_some() || stop_at.is_some()).then_some(Decision { complete, stop_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).single().unwrap()
    }
    fn counters(pd: i64, pf: i64, pl: i64, id: i64, ir: i64, is: i64) -> Counters {
        Counters {
            pages_discovered: pd,
            pages_fetched: pf,
            pages_failed: pl,
            images_discovered: id,
            images_rejected: ir,
            images_stored: is,
            ..Counters::default()
        }
    }

    #[test]
    fn balance_needs_every_page_and_image_settled() {
        assert!(counters(3, 2, 1, 4, 1, 3).balanced());
        assert!(
            !counters(3, 2, 0, 4, 1, 3).balanced(),
            "a page is still open"
        );
        assert!(
            !counters(3, 2, 1, 4, 1, 2).balanced(),
            "an image is still downloading or storing"
        );
        assert!(
            !counters(0, 0, 0, 0, 0, 0).balanced(),
            "nothing discovered yet is not done"
        );
        assert!(counters(1, 0, 1, 0, 0, 0).balanced());
    }

    /// A seed page discovered (1), an image found on it (2), the page fetched (3),
    /// the image stored (4).
    fn seed_with_image() -> Vec<Transition> {
        vec![
            (1, t(1), counters(1, 0, 0, 0, 0, 0)),
            (2, t(2), counters(0, 0, 0, 1, 0, 0)),
            (3, t(3), counters(0, 1, 0, 0, 0, 0)),
            (4, t(4), counters(0, 0, 0, 0, 0, 1)),
        ]
    }

    #[test]
    fn a_balanced_job_completes_at_the_first_balanced_transition() {
        let all = seed_with_image();
        let after = counters(1, 1, 0, 1, 0, 1);
        let d = decide(JobStatus::Running, &after, &all, None).unwrap();
        assert_eq!(
            d,
            Decision {
                complete: Some(Completion {
                    seq: 4,
                    at: t(4),
                    counters: after
                }),
                stop_at: None
            }
        );
        // Split: the first two transitions were in an earlier batch.
        let d = decide(JobStatus::Running, &after, &all[2..], None).unwrap();
        assert_eq!(d.complete.map(|c| (c.seq, c.at)), Some((4, t(4))));
        assert_eq!(
            decide(
                JobStatus::Running,
                &counters(1, 1, 0, 1, 0, 0),
                &all[..3],
                None
            ),
            None
        );
        assert_eq!(
            decide(JobStatus::Completed, &after, &all, Some((10, t(10)))),
            None
        );
        assert_eq!(
            decide(JobStatus::Running, &after, &[], None),
            None,
            "no transition here: not this batch's completion"
        );
    }

    #[test]
    fn completion_is_the_first_balanced_moment_even_if_more_follows() {
        // Balanced after seq 3 (page fetched, no images), then a late image (seq 5).
        let ts = vec![
            (1, t(1), counters(1, 0, 0, 0, 0, 0)),
            (3, t(3), counters(0, 1, 0, 0, 0, 0)),
            (5, t(5), counters(0, 0, 0, 1, 0, 0)),
        ];
        let after = counters(1, 1, 0, 1, 0, 0);
        let c = decide(JobStatus::Running, &after, &ts, None)
            .unwrap()
            .complete
            .unwrap();
        assert_eq!((c.seq, c.at), (3, t(3)));
        assert_eq!(
            c.counters,
            counters(1, 1, 0, 0, 0, 0),
            "counters as of the completion, not the batch end"
        );
    }

    #[test]
    fn a_stop_counts_only_before_completion() {
        let all = seed_with_image();
        let done = counters(1, 1, 0, 1, 0, 1);
        let before = decide(JobStatus::Running, &done, &all, Some((2, t(2)))).unwrap();
        assert_eq!(before.stop_at, Some(t(2)));
        let after = decide(JobStatus::Running, &done, &all, Some((12, t(12)))).unwrap();
        assert_eq!(
            (after.complete.map(|c| c.seq), after.stop_at),
            (Some(4), None)
        );
        let open = decide(
            JobStatus::Running,
            &counters(1, 1, 0, 1, 0, 0),
            &all[..3],
            Some((12, t(12))),
        )
        .unwrap();
        assert_eq!(
            open,
            Decision {
                complete: None,
                stop_at: Some(t(12))
            }
        );
        let stopping = decide(JobStatus::Stopping, &done, &all, None).unwrap();
        assert_eq!(stopping.complete.map(|c| c.seq), Some(4));
    }

    #[test]
    fn progress_records_every_transition() {
        let mut p = Progress::default();
        let j = Uuid::from_u128(1);
        p.record(j, 7, t(7), |d| d.pages_discovered += 1);
        p.record(j, 3, t(3), |d| d.pages_failed += 1);
        let got = p.get(&j).unwrap();
        assert_eq!(got.transitions.len(), 2);
        assert_eq!((got.delta.pages_discovered, got.delta.pages_failed), (1, 1));
        assert_eq!(
            counters(1, 2, 3, 4, 5, 6).minus(&counters(1, 1, 1, 1, 1, 1)),
            counters(0, 1, 2, 3, 4, 5)
        );
        assert_eq!(JobStatus::parse("stopping"), Some(JobStatus::Stopping));
        assert_eq!(JobStatus::parse("nope"), None);
    }
}
