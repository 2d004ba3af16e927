//! A synthetic event stream with known answers, shared by the projection tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use imgcrawl_events::*;
use imgcrawl_index::Sourced;
use uuid::Uuid;

pub const STREAM: &str = "IMGCRAWL";
pub const A: Uuid = Uuid::from_u128(0xA);
pub const D: Uuid = Uuid::from_u128(0xD);
pub const E: Uuid = Uuid::from_u128(0xE);
pub const C: Uuid = Uuid::from_u128(0xC);
pub const F: Uuid = Uuid::from_u128(0xF);
pub const X: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const Y: &str = "2222222222222222222222222222222222222222222222222222222222222222";
pub const Z: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// The occurred_at of the event at `seq`.
pub fn t(seq: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seq as i64 * 10, 0)
        .single()
        .unwrap()
}

/// The publish time of the event at `seq` (a little after it occurred).
pub fn published(seq: u64) -> DateTime<Utc> {
    t(seq) + Duration::milliseconds(250)
}

/// Job B's id: its request was published without one, at sequence 8.
pub fn b() -> Uuid {
    job_id_from_sequence(STREAM, 8)
}

fn req(job: Option<Uuid>, url: &str, at: Option<DateTime<Utc>>) -> Event {
    Event::CrawlRequested(CrawlRequested {
        job_id: job,
        url: Some(url.into()),
        label: job.map(|j| format!("job {j}")),
        occurred_at: at,
        ..Default::default()
    })
}
fn page(job: Uuid, url: &str, depth: u32, referrer: Option<&str>, s: u64) -> Event {
    Event::PageDiscovered(PageDiscovered {
        job_id: job,
        url: url.into(),
        depth,
        referrer: referrer.map(Into::into),
        occurred_at: t(s),
    })
}
fn fetched(job: Uuid, url: &str, images: u32, s: u64) -> Event {
    fetched_at(job, url, 0, images, s)
}
fn fetched_at(job: Uuid, url: &str, depth: u32, images: u32, s: u64) -> Event {
    Event::PageFetched(PageFetched {
        job_id: job,
        url: url.into(),
        final_url: url.into(),
        depth,
        status: 200,
        bytes: 5120,
        title: Some("Home\0".into()),
        links_found: 3,
        pages_discovered: 1,
        images_found: images + 1,
        images_discovered: images,
        render: None,
        occurred_at: t(s),
    })
}
fn failed(job: Uuid, url: &str, depth: u32, reason: PageFailure, s: u64) -> Event {
    Event::PageFailed(PageFailed {
        job_id: job,
        url: url.into(),
        depth,
        reason,
        detail: "no".into(),
        http_status: Some(404),
        occurred_at: t(s),
    })
}
fn image(job: Uuid, url: &str, page: &str, s: u64) -> Event {
    Event::ImageDiscovered(ImageDiscovered {
        job_id: job,
        url: url.into(),
        page_url: page.into(),
        alt: Some("alt".into()),
        found_by: FoundBy::ImgSrc,
        occurred_at: t(s),
    })
}
fn downloaded(job: Uuid, url: &str, page: &str, sha: &str, s: u64) -> Event {
    Event::ImageDownloaded(ImageDownloaded {
        job_id: job,
        url: url.into(),
        final_url: url.into(),
        page_url: page.into(),
        alt: None,
        found_by: FoundBy::Srcset,
        sha256: sha.into(),
        bytes: 1000,
        format: "jpeg".into(),
        width: 10,
        height: 20,
        content_type: "image/jpeg".into(),
        occurred_at: t(s),
    })
}
fn rejected(job: Uuid, url: &str, page: &str, s: u64) -> Event {
    Event::ImageRejected(ImageRejected {
        job_id: job,
        url: url.into(),
        page_url: page.into(),
        reason: RejectReason::NotAnImage,
        detail: "html".into(),
        http_status: Some(200),
        occurred_at: t(s),
    })
}
fn stored(job: Uuid, url: &str, sha: &str, s: u64) -> Event {
    Event::ImageStored(ImageStored {
        job_id: job,
        url: url.into(),
        sha256: sha.into(),
        object_key: format!("images/{sha}.jpg"),
        bytes: 1000,
        content_type: "image/jpeg".into(),
        occurred_at: t(s),
    })
}
fn stop(job: Uuid, s: u64) -> Event {
    Event::CrawlStopped(CrawlStopped {
        job_id: job,
        reason: Some("enough".into()),
        occurred_at: t(s),
    })
}
fn delete(sha: &str, s: u64) -> Event {
    Event::ImageDeleted(ImageDeleted {
        sha256: sha.into(),
        reason: None,
        occurred_at: t(s),
    })
}

const A0: &str = "https://a.test/";
const A1: &str = "https://a.test/about";
const ONE: &str = "https://a.test/img/one.jpg";
const COPY: &str = "https://cdn.test/x/one%20copy.jpg";
const BROKEN: &str = "https://a.test/img/broken.png";

/// The events at sequences 1..=40, in order.
pub fn events() -> Vec<Event> {
    let b = b();
    vec![
        req(Some(A), A0, Some(t(1))),                                    // 1
        page(A, A0, 0, None, 2),                                         // 2
        image(A, ONE, A0, 3),                                            // 3
        image(A, COPY, A0, 4),                                           // 4: same bytes as ONE
        image(A, BROKEN, A0, 5),                                         // 5
        page(A, A1, 1, Some(A0), 6),                                     // 6
        fetched(A, A0, 3, 7),                                            // 7
        req(None, "https://b.test/", None),                              // 8: hand-published
        downloaded(A, ONE, A0, X, 9),                                    // 9: images X gets id 9
        downloaded(A, COPY, A0, X, 10),                                  // 10
        rejected(A, BROKEN, A0, 11),                                     // 11
        page(b, "https://b.test/", 0, None, 12),                         // 12
        stored(A, ONE, X, 13),                                           // 13: indexed
        page(A, A1, 1, Some(A0), 14),                                    // 14: duplicate discovery
        image(b, "https://b.test/y.png", "https://b.test/", 15),         // 15
        fetched(b, "https://b.test/", 1, 16),                            // 16
        failed(A, A1, 1, PageFailure::HttpStatus, 17),                   // 17
        downloaded(b, "https://b.test/y.png", "https://b.test/", Y, 18), // 18
        stop(b, 19),                                                     // 19
        stored(A, COPY, X, 20),                                          // 20: indexed; A completes
        downloaded(A, ONE, A0, X, 21),                                   // 21: duplicate outcome
        Event::ImageIndexed(ImageIndexed {
            job_id: A,
            url: ONE.into(),
            sha256: X.into(),
            image_id: 9,
            occurred_at: t(22),
        }), // 22: output
        delete(Y, 23),                                                   // 23: before Y is stored
        stored(b, "https://b.test/y.png", Y, 24), // 24: not indexed; B stopped
        page(C, "https://c.test/", 0, None, 25),  // 25: orphan
        Event::CrawlCompleted(CrawlCompleted {
            job_id: A,
            status: CompletionStatus::Completed,
            pages_fetched: 1,
            pages_failed: 1,
            images_stored: 2,
            images_rejected: 1,
            bytes: 2000,
            occurred_at: t(26),
        }), // 26
        delete(X, 27),                            // 27
        req(Some(D), "https://d.test/", Some(t(28))), // 28
        stop(A, 29),                              // 29: after completion: no-op
        page(D, "https://d.test/", 0, None, 30),  // 30
        image(D, "https://d.test/one.jpg", "https://d.test/", 31), // 31
        fetched(D, "https://d.test/", 1, 32),     // 32
        downloaded(D, "https://d.test/one.jpg", "https://d.test/", X, 33), // 33: re-download of a deleted image
        stored(D, "https://d.test/one.jpg", X, 34), // 34: not indexed; D completes
        stop(E, 35),                                // 35: before E's request
        req(Some(E), "https://e.test/", Some(t(36))), // 36
        page(E, "https://e.test/", 0, None, 37),    // 37
        failed(E, "https://e.test/", 0, PageFailure::Stopped, 38), // 38: E ends stopped
        downloaded(D, "https://d.test/late.png", "https://d.test/", Z, 39), // 39: never discovered, after D completed
        rejected(A, COPY, A0, 40), // 40: second outcome: ignored
        req(Some(F), "https://f.test/", Some(t(41))), // 41
        page(F, "https://f.test/", 0, None, 42), // 42
        image(F, "https://f.test/a.png", "https://f.test/", 43), // 43: first discovery wins
        image(F, "https://f.test/a.png", "https://f.test/b", 44), // 44: duplicate discovery
        rejected(F, "https://f.test/a.png", "https://f.test/", 45), // 45: its outcome
    ]
}

/// Job G: a page first found deep and visited, then found again nearer the seed.
pub const G: Uuid = Uuid::from_u128(0x6);
pub const G0: &str = "https://g.test/";
pub const GX: &str = "https://g.test/x";
pub const GY: &str = "https://g.test/y";

/// Job G's events at sequences 1..=11, in order: `GX` is found at depth 4 and fetched,
/// then found at depth 1 (visited again), and the deep visit's outcome arrives twice.
pub fn revisit_events() -> Vec<Event> {
    vec![
        req(Some(G), G0, Some(t(1))),                  // 1
        page(G, G0, 0, None, 2),                       // 2
        page(G, GX, 4, Some(G0), 3),                   // 3: first found deep
        fetched_at(G, GX, 4, 0, 4),                    // 4: the deep visit
        page(G, GX, 1, Some(G0), 5),                   // 5: found again nearer: re-opened
        page(G, GX, 2, Some(G0), 6),                   // 6: not nearer than 1: nothing
        fetched_at(G, GX, 4, 0, 7),                    // 7: the deep visit's outcome again: ignored
        page(G, GY, 2, Some(GX), 8),                   // 8: the near visit's child
        fetched_at(G, G0, 0, 0, 9),                    // 9: the seed: G still has GX and GY open
        failed(G, GY, 2, PageFailure::HttpStatus, 10), // 10
        fetched_at(G, GX, 1, 0, 11),                   // 11: the near visit: G completes
    ]
}

/// The stream as the stage reads it.
pub fn stream() -> Vec<Sourced> {
    events()
        .into_iter()
        .enumerate()
        .map(|(i, e)| sourced(i as u64 + 1, e))
        .collect()
}

/// `e` read at `seq`.
pub fn sourced(seq: u64, e: Event) -> Sourced {
    Sourced::new(STREAM, seq, published(seq), e)
}

/// A small deterministic pseudo-random generator (xorshift64).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// `events` cut into random batches of 1..=max events.
pub fn random_split(events: &[Sourced], seed: u64, max: u64) -> Vec<Vec<Sourced>> {
    let mut rng = Rng(seed.max(1));
    let mut out = Vec::new();
    let mut rest = events;
    while !rest.is_empty() {
        let n = (1 + rng.below(max) as usize).min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    out
}
