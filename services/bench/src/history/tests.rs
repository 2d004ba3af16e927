//! The history is valid (every event decodes back), causal per job, long enough, and
//! consistent with the blobs.

use std::collections::{HashMap, HashSet};

use imgcrawl_events::{decode, Event};

use super::*;
use crate::blobs::BlobSpec;

fn blobs(n: u64) -> Vec<BlobInfo> {
    let spec = BlobSpec {
        seed: 9,
        min_bytes: 100,
        max_bytes: 200,
    };
    (0..n).map(|i| spec.make(i).1).collect()
}

fn shape(events: u64) -> Shape {
    Shape {
        events,
        pages_per_job: 40,
        concurrent_jobs: 3,
        deletions_per_wave: 2,
        seed: 5,
    }
}

fn all(h: &mut History<'_>) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let w = h.next_wave();
        if w.is_empty() {
            return out;
        }
        out.extend(w);
    }
}

#[test]
fn the_history_is_long_enough_valid_and_counted() {
    let b = blobs(50);
    let mut h = History::new(shape(5_000), &b);
    let events = all(&mut h);
    assert!(events.len() >= 5_000);
    assert_eq!(h.total, events.len() as u64);
    assert_eq!(h.counts.values().sum::<u64>(), h.total);
    assert!(h.jobs() >= 3);
    for e in &events {
        let enc = e.encode();
        let back = decode(&enc.subject, Some(&enc.event_header), &enc.payload);
        assert_eq!(back.as_ref(), Ok(e), "{}", enc.subject);
    }
    let ids: HashSet<String> = events.iter().map(Event::msg_id).collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "no event is a duplicate of another"
    );
    for kind in [
        "image.deleted",
        "image.rejected",
        "page.failed",
        "crawl.completed",
    ] {
        assert!(h.counts.get(kind).copied().unwrap_or(0) > 0, "{kind}");
    }
    let again = all(&mut History::new(shape(5_000), &b));
    assert_eq!(again, events, "deterministic");
}

#[test]
fn every_event_follows_its_cause_and_downloads_match_their_blob() {
    let b = blobs(50);
    let by_sha: HashMap<&str, &BlobInfo> = b.iter().map(|x| (x.sha256.as_str(), x)).collect();
    let events = all(&mut History::new(shape(3_000), &b));
    let mut jobs = HashSet::new();
    let (mut pages, mut images, mut downloads) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut shas = HashSet::new();
    for e in &events {
        if let Some(j) = e.job_id() {
            if !matches!(e, Event::CrawlRequested(_)) {
                assert!(jobs.contains(&j), "event of a job before its request");
            }
        }
        match e {
            Event::CrawlRequested(r) => assert!(jobs.insert(r.job_id.unwrap())),
            Event::PageDiscovered(p) => assert!(pages.insert((p.job_id, p.url.clone()))),
            Event::PageFetched(p) => assert!(pages.contains(&(p.job_id, p.url.clone()))),
            Event::PageFailed(p) => assert!(pages.contains(&(p.job_id, p.url.clone()))),
            Event::ImageDiscovered(i) => assert!(images.insert((i.job_id, i.url.clone()))),
            Event::ImageRejected(i) => assert!(images.contains(&(i.job_id, i.url.clone()))),
            Event::ImageDownloaded(i) => {
                assert!(images.contains(&(i.job_id, i.url.clone())));
                let blob = by_sha[i.sha256.as_str()];
                assert_eq!((i.bytes, i.format.as_str()), (blob.size, blob.format));
                downloads.insert((i.job_id, i.url.clone()));
                shas.insert(i.sha256.clone());
            }
            Event::ImageStored(s) => assert!(downloads.contains(&(s.job_id, s.url.clone()))),
            Event::ImageDeleted(d) => {
                assert!(shas.contains(&d.sha256), "deleted before any download")
            }
            _ => {}
        }
    }
    assert!(shas.len() > 25, "downloads spread over the images");
}
