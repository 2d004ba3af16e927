//! Events with their stream position: the input of the projection.

use chrono::{DateTime, Utc};
use imgcrawl_events::{job_id_from_sequence, Event};

/// One event as read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    /// Its stream sequence: the projection's clock and the source of every id.
    pub seq: u64,
    /// When the stream stored it; stands in for a hand-published request's missing
    /// `occurred_at`.
    pub published: DateTime<Utc>,
    /// The event.
    pub event: Event,
}

impl Sourced {
    /// Wraps an event read from `stream` at `seq`, resolving the job id of a request
    /// published without one exactly as the crawl stage does
    /// ([`job_id_from_sequence`]). Build every `Sourced` with this: `apply_batch`
    /// ignores (and reports as invalid) a request that still has no job id.
    pub fn new(stream: &str, seq: u64, published: DateTime<Utc>, mut event: Event) -> Sourced {
        if let Event::CrawlRequested(r) = &mut event {
            if r.job_id.is_none() {
                r.job_id = Some(job_id_from_sequence(stream, seq));
            }
        }
        Sourced {
            seq,
            published,
            event,
        }
    }

    /// When the event happened: its `occurred_at`, else the publish time.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.event.occurred_at().unwrap_or(self.published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgcrawl_events::CrawlRequested;

    #[test]
    fn id_less_requests_get_the_sequence_derived_id() {
        let t = Utc::now();
        let req = Event::CrawlRequested(CrawlRequested {
            url: Some("http://a/".into()),
            ..Default::default()
        });
        let s = Sourced::new("S", 9, t, req);
        assert_eq!(s.event.job_id(), Some(job_id_from_sequence("S", 9)));
        assert_eq!(s.occurred_at(), t);
    }
}
