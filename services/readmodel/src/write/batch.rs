//! Splitting a batch into groups that can each be applied with one statement.
//!
//! Groups are applied in the fixed causal order requested -> page.discovered ->
//! page outcome -> image.discovered -> image outcome -> image.stored -> image.deleted
//! -> crawl.stopped. Within a group events are deduplicated by key, keeping the lowest
//! sequence (an `INSERT ... SELECT FROM UNNEST` cannot touch one row twice, and "first
//! wins" is what sequential application would do). The two outcomes of one key form
//! one group, so the first outcome wins whichever kind it is.
//!
//! Pages are the exception: a page found again at a smaller link depth is visited
//! again (see the seen-set), so its row follows its smallest depth and only an outcome
//! of the visit at that depth counts. Within a batch, page discoveries and outcomes
//! keep the smallest depth per key (the first among equals), which leaves the row as
//! applying them one at a time would.
//!
//! An event of a job is applied only if the job's request was applied at a lower
//! sequence; otherwise it is an orphan and ignored. Checking that after the requests
//! group gives the same answer as applying one event at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};
use imgcrawl_events::*;
use uuid::Uuid;

use super::clean::{key_ok, text};
use super::effects::Invalid;
use super::sourced::Sourced;

/// One event of a group with its sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<T> {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub ev: T,
}

/// A request resolved into a spec.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub seq: u64,
    pub spec: JobSpec,
}

/// The outcome of a page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PageOutcome<'a> {
    Fetched(&'a PageFetched),
    Failed(&'a PageFailed),
}

/// The outcome of an image URL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ImageOutcome<'a> {
    Downloaded(&'a ImageDownloaded),
    Rejected(&'a ImageRejected),
}

/// A batch split by group, deduplicated and filtered.
#[derive(Debug, Default)]
pub(crate) struct Groups<'a> {
    pub page_discovered: Vec<Item<&'a PageDiscovered>>,
    pub page_outcomes: Vec<Item<PageOutcome<'a>>>,
    pub image_discovered: Vec<Item<&'a ImageDiscovered>>,
    pub image_outcomes: Vec<Item<ImageOutcome<'a>>>,
    pub image_stored: Vec<Item<&'a ImageStored>>,
    pub deleted: Vec<Item<&'a ImageDeleted>>,
    pub stops: Vec<Item<&'a CrawlStopped>>,
    /// Per job, the highest sequence (and its time) among the job's applied events
    /// other than its request.
    pub job_last: BTreeMap<Uuid, (u64, DateTime<Utc>)>,
    /// Events of jobs not requested before them.
    pub orphans: usize,
    /// The index's own outputs (`images.indexed`, `crawl.completed`), never applied.
    pub outputs: usize,
}

/// Keeps the first item per key; `items` are in sequence order.
pub(crate) fn first_by<T, K: Eq + Hash>(
    items: Vec<Item<T>>,
    key: impl Fn(&T) -> K,
) -> Vec<Item<T>> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(key(&i.ev)))
        .collect()
}

/// Keeps, per key, the item with the smallest `depth` (the first of those); `items` are
/// in sequence order and keep it.
pub(crate) fn shallowest_by<T, K: Eq + Hash>(
    items: Vec<Item<T>>,
    key: impl Fn(&T) -> K,
    depth: impl Fn(&T) -> u32,
) -> Vec<Item<T>> {
    let mut best: HashMap<K, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        best.entry(key(&item.ev))
            .and_modify(|b| {
                if depth(&item.ev) < depth(&items[*b].ev) {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    let keep: HashSet<usize> = best.into_values().collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, item)| item)
        .collect()
}

/// The requests of a batch resolved into specs, first per job id; unusable requests
/// are reported in `invalid`.
pub(crate) fn requests(events: &[&Sourced], invalid: &mut Vec<Invalid>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::new();
    let mut seen = HashSet::new();
    for s in events {
        let Event::CrawlRequested(r) = &s.event else {
            continue;
        };
        if r.job_id.is_none() {
            invalid.push(Invalid {
                seq: s.seq,
                reason: "crawl request without job id (build it with Sourced::new)".into(),
            });
            continue;
        }
        match JobSpec::resolve(r, "", s.seq, s.published) {
            Ok(spec) if seen.insert(spec.job_id) => out.push(Request { seq: s.seq, spec }),
            Ok(_) => {}
            Err(e) => invalid.push(Invalid {
                seq: s.seq,
                reason: e.to_string(),
            }),
        }
    }
    out
}

/// The URL an event is keyed by, if it is keyed by one.
fn key_url(e: &Event) -> Option<&str> {
    Some(match e {
        Event::PageDiscovered(e) => &e.url,
        Event::PageFetched(e) => &e.url,
        Event::PageFailed(e) => &e.url,
        Event::ImageDiscovered(e) => &e.url,
        Event::ImageDownloaded(e) => &e.url,
        Event::ImageRejected(e) => &e.url,
        Event::ImageStored(e) => &e.url,
        _ => return None,
    })
}

impl<'a> Groups<'a> {
    /// Splits `events` (sequence order, all above the checkpoint); `known` maps the
    /// jobs that exist to their request sequence.
    pub(crate) fn build(
        events: &[&'a Sourced],
        known: &HashMap<Uuid, u64>,
        invalid: &mut Vec<Invalid>,
    ) -> Self {
        let mut g = Groups::default();
        for s in events {
            let (seq, at) = (s.seq, s.occurred_at());
            if s.event.kind().is_index_output() {
                g.outputs += 1;
                continue;
            }
            match &s.event {
                Event::CrawlRequested(_) | Event::HaFailover(_) => continue,
                Event::ImageDeleted(e) => {
                    g.deleted.push(Item { seq, at, ev: e });
                    continue;
                }
                Event::CrawlStopped(e) => g.stops.push(Item { seq, at, ev: e }),
                other => {
                    if key_url(other).is_some_and(|u| !key_ok(u)) {
                        invalid.push(Invalid {
                            seq,
                            reason: format!(
                                "url longer than {} bytes",
                                super::clean::MAX_URL_BYTES
                            ),
                        });
                        continue;
                    }
                    let job = other.job_id().unwrap_or_default();
                    if known.get(&job).is_none_or(|&rs| rs >= seq) {
                        g.orphans += 1;
                        continue;
                    }
                    g.push(seq, at, other);
                }
            }
            if let Some(job) = s.event.job_id() {
                g.job_last.insert(job, (seq, at));
            }
        }
        g.dedupe();
        g
    }

    fn push(&mut self, seq: u64, at: DateTime<Utc>, e: &'a Event) {
        match e {
            Event::PageDiscovered(e) => self.page_discovered.push(Item { seq, at, ev: e }),
            Event::PageFetched(e) => self.page_outcomes.push(Item {
                seq,
                at,
                ev: PageOutcome::Fetched(e),
            }),
            Event::PageFailed(e) => self.page_outcomes.push(Item {
                seq,
                at,
                ev: PageOutcome::Failed(e),
            }),
            Event::ImageDiscovered(e) => self.image_discovered.push(Item { seq, at, ev: e }),
            Event::ImageDownloaded(e) => self.image_outcomes.push(Item {
                seq,
                at,
                ev: ImageOutcome::Downloaded(e),
            }),
            Event::ImageRejected(e) => self.image_outcomes.push(Item {
                seq,
                at,
                ev: ImageOutcome::Rejected(e),
            }),
            Event::ImageStored(e) => self.image_stored.push(Item { seq, at, ev: e }),
            _ => {}
        }
    }

    /// Keeps the first event per key in every group.
    fn dedupe(&mut self) {
        self.page_discovered = shallowest_by(
            std::mem::take(&mut self.page_discovered),
            |e| (e.job_id, text(&e.url)),
            |e| e.depth,
        );
        self.page_outcomes = shallowest_by(
            std::mem::take(&mut self.page_outcomes),
            |o| o.key(),
            |o| o.depth(),
        );
        self.image_discovered = first_by(std::mem::take(&mut self.image_discovered), |e| {
            (e.job_id, text(&e.url))
        });
        self.image_outcomes = first_by(std::mem::take(&mut self.image_outcomes), |o| o.key());
        self.image_stored = first_by(std::mem::take(&mut self.image_stored), |e| {
            (e.job_id, text(&e.url))
        });
        self.deleted = first_by(std::mem::take(&mut self.deleted), |e| e.sha256.clone());
        self.stops = first_by(std::mem::take(&mut self.stops), |e| e.job_id);
    }
}

impl PageOutcome<'_> {
    /// `(job_id, url)`.
    pub(crate) fn key(&self) -> (Uuid, String) {
        match self {
            PageOutcome::Fetched(e) => (e.job_id, text(&e.url)),
            PageOutcome::Failed(e) => (e.job_id, text(&e.url)),
        }
    }

    /// The link depth of the visit this is the outcome of.
    pub(crate) fn depth(&self) -> u32 {
        match self {
            PageOutcome::Fetched(e) => e.depth,
            PageOutcome::Failed(e) => e.depth,
        }
    }
}

impl ImageOutcome<'_> {
    /// `(job_id, url)`.
    pub(crate) fn key(&self) -> (Uuid, String) {
        match self {
            ImageOutcome::Downloaded(e) => (e.job_id, text(&e.url)),
            ImageOutcome::Rejected(e) => (e.job_id, text(&e.url)),
        }
    }
}

/// Job ids mentioned by any event of the batch.
pub(crate) fn job_ids(events: &[&Sourced]) -> Vec<Uuid> {
    let set: std::collections::BTreeSet<Uuid> =
        events.iter().filter_map(|s| s.event.job_id()).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).single().unwrap()
    }
    fn at(seq: u64, event: Event) -> Sourced {
        Sourced {
            seq,
            published: t(seq as i64),
            event,
        }
    }
    const J: Uuid = Uuid::from_u128(1);
    fn page(url: &str, seq: i64) -> Event {
        Event::PageDiscovered(PageDiscovered {
            job_id: J,
            url: url.into(),
            depth: 0,
            referrer: None,
            occurred_at: t(seq),
        })
    }
    fn failed(url: &str) -> Event {
        Event::PageFailed(PageFailed {
            job_id: J,
            url: url.into(),
            depth: 0,
            reason: PageFailure::Network,
            detail: "x".into(),
            http_status: None,
            occurred_at: t(0),
        })
    }
    fn fetched(url: &str) -> Event {
        Event::PageFetched(PageFetched {
            job_id: J,
            url: url.into(),
            final_url: url.into(),
            depth: 0,
            status: 200,
            bytes: 1,
            title: None,
            links_found: 0,
            pages_discovered: 0,
            images_found: 0,
            images_discovered: 0,
            render: None,
            occurred_at: t(0),
        })
    }
    fn stop(job: Uuid) -> Event {
        Event::CrawlStopped(CrawlStopped {
            job_id: job,
            reason: None,
            occurred_at: t(0),
        })
    }
    fn refs(v: &[Sourced]) -> Vec<&Sourced> {
        v.iter().collect()
    }

    #[test]
    fn groups_keep_the_first_event_per_key_and_outcomes_share_a_key() {
        let evs = vec![
            at(2, page("http://a/1", 2)),
            at(3, page("http://a/1", 3)),
            at(4, failed("http://a/1")),
            at(5, fetched("http://a/1")),
        ];
        let known = HashMap::from([(J, 1)]);
        let g = Groups::build(&refs(&evs), &known, &mut Vec::new());
        assert_eq!(g.page_discovered.len(), 1);
        assert_eq!(g.page_discovered[0].seq, 2);
        assert_eq!(g.page_discovered[0].at, t(2));
        assert_eq!(g.page_outcomes.len(), 1);
        assert!(
            matches!(g.page_outcomes[0].ev, PageOutcome::Failed(_)),
            "the first outcome wins, whatever its kind"
        );
        assert_eq!(g.job_last.get(&J), Some(&(5, t(0))));
    }

    #[test]
    fn events_before_their_request_are_orphans_but_stops_are_kept() {
        let other = Uuid::from_u128(2);
        let evs = vec![
            at(3, page("http://a/1", 3)),
            at(4, stop(other)),
            at(5, page("http://a/2", 5)),
            at(6, page("http://a/3", 6)),
        ];
        let known = HashMap::from([(J, 4)]);
        let g = Groups::build(&refs(&evs), &known, &mut Vec::new());
        assert_eq!(g.orphans, 1);
        assert_eq!(
            g.page_discovered.iter().map(|i| i.seq).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!(
            g.stops.len(),
            1,
            "a stop of a job not requested yet is recorded"
        );
    }

    #[test]
    fn outputs_and_overlong_urls_are_not_applied() {
        let long = format!(
            "http://a/{}",
            "x".repeat(crate::write::clean::MAX_URL_BYTES)
        );
        let done = Event::CrawlCompleted(CrawlCompleted {
            job_id: J,
            status: CompletionStatus::Completed,
            pages_fetched: 0,
            pages_failed: 0,
            images_stored: 0,
            images_rejected: 0,
            bytes: 0,
            occurred_at: t(0),
        });
        let evs = vec![at(2, page(&long, 2)), at(3, done)];
        let mut invalid = Vec::new();
        let g = Groups::build(&refs(&evs), &HashMap::from([(J, 1)]), &mut invalid);
        assert_eq!((g.outputs, g.page_discovered.len()), (1, 0));
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].seq, 2);
        assert!(
            g.job_last.is_empty(),
            "neither counts as an applied event of the job"
        );
    }

    #[test]
    fn requests_resolve_first_per_job_and_report_unusable_ones() {
        let req = |url: Option<&str>, id: Option<Uuid>| {
            Event::CrawlRequested(CrawlRequested {
                job_id: id,
                url: url.map(Into::into),
                ..Default::default()
            })
        };
        let evs = vec![
            at(1, req(Some("http://a/"), Some(J))),
            at(2, req(Some("http://b/"), Some(J))),
            at(3, req(None, Some(Uuid::from_u128(3)))),
            at(4, req(Some("http://c/"), None)),
        ];
        let mut invalid = Vec::new();
        let r = requests(&refs(&evs), &mut invalid);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].seq, r[0].spec.seeds.clone()),
            (1, vec!["http://a/".to_string()])
        );
        assert_eq!(
            r[0].spec.requested_at,
            t(1),
            "a request without occurred_at takes the publish time"
        );
        assert_eq!(
            invalid.iter().map(|i| i.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }
}
