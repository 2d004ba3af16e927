//! The checker, in the style of Jepsen's queue checker: every image of the fixture
//! site's ground truth is classified as indexed once, lost, duplicated or unexpected,
//! from the index (what users query) and from the stream (what was recorded).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use futures::StreamExt;
use imgcrawl_bus::Bus;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Images in the ground truth.
    pub expected: usize,
    /// Expected images indexed once, with the right bytes.
    pub indexed: usize,
    /// Expected images not indexed (or indexed with other bytes).
    pub lost: usize,
    /// Images whose download outcome was recorded more than once in the stream (a
    /// duplicate that escaped message-id deduplication).
    pub duplicated: usize,
    /// Indexed images the ground truth does not have.
    pub unexpected: usize,
    /// Dead letters in the stream.
    pub dead_letters: usize,
    /// Pages found again nearer the seed than their first discovery, and so visited
    /// again (see the seen-set's depth rule): the price of order-independent depth.
    pub revisited: usize,
    /// What became of the first lost images (url: what the index and the stream say).
    pub lost_detail: Vec<String>,
}

/// (url, sha256) a correct crawl stores, against what `db` holds for `job`, and the
/// stream's outcome events for `job`.
///
/// When images are lost, `lost_detail` also says which of the `pages` a correct crawl
/// fetches never reached the stream, and who holds their seen-set claims.
pub async fn check(
    db: &PgPool,
    bus: &Bus,
    job: Uuid,
    want: &BTreeSet<(String, String)>,
    pages: &[String],
) -> Counts {
    let rows = sqlx::query(
        "select url, sha256 from image_sources where job_id = $1 and status = 'stored'",
    )
    .bind(job)
    .fetch_all(db)
    .await
    .expect("read the index");
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get("url"),
                r.get::<Option<String>, _>("sha256").unwrap_or_default(),
            )
        })
        .collect();
    let Scan {
        outcomes,
        dead_letters,
        pages: trails,
    } = scan(bus, job).await;
    let mut lost_detail = Vec::new();
    for (url, sha) in want.difference(&got).take(10) {
        let row =
            sqlx::query("select status, sha256 from image_sources where job_id = $1 and url = $2")
                .bind(job)
                .bind(url)
                .fetch_optional(db)
                .await
                .ok()
                .flatten();
        let rejected: Option<String> =
            sqlx::query_scalar("select reason from rejections where job_id = $1 and url = $2")
                .bind(job)
                .bind(url)
                .fetch_optional(db)
                .await
                .ok()
                .flatten();
        let index = match row {
            None => "never discovered".to_string(),
            Some(r) => format!(
                "{} (sha256 {}, want {sha})",
                r.get::<String, _>("status"),
                r.get::<Option<String>, _>("sha256").unwrap_or_default()
            ),
        };
        lost_detail.push(format!(
            "lost {url}: index {index}; rejection {rejected:?}; outcomes in the stream {}",
            outcomes.get(url.as_str()).copied().unwrap_or(0)
        ));
    }
    if want.difference(&got).next().is_some() {
        lost_detail.extend(trails.anomalies());
        lost_detail.extend(missing_pages(bus, job, &trails, pages).await);
    }
    Counts {
        expected: want.len(),
        indexed: want.intersection(&got).count(),
        lost: want.difference(&got).count(),
        duplicated: outcomes.values().filter(|n| **n > 1).count(),
        unexpected: got.difference(want).count(),
        dead_letters,
        revisited: trails.0.values().filter(|t| t.discovered > 1).count(),
        lost_detail,
    }
}

/// For each expected page the stream has no `page.discovered` for: who holds its
/// seen-set claim, and what that claimant's message was (read back by sequence). A
/// claim held by a message that never published the page is where a lost page went.
async fn missing_pages(
    bus: &Bus,
    job: Uuid,
    discovered: &Pages,
    expected: &[String],
) -> Vec<String> {
    let mut lines = Vec::new();
    let stream = match bus.js.get_stream(&bus.config.stream).await {
        Ok(s) => s,
        Err(e) => return vec![format!("missing pages: cannot open the stream: {e}")],
    };
    for url in expected {
        if discovered.0.get(url).is_some_and(|t| t.discovered > 0) {
            continue;
        }
        let key = imgcrawl_bus::seen::SeenSet::key(job, "page", url);
        let owner = bus.seen.owner(&key).await;
        let claimant = match owner
            .as_ref()
            .ok()
            .and_then(|o| o.as_ref()?.0.strip_prefix("seq:")?.parse::<u64>().ok())
        {
            Some(seq) => match stream.get_raw_message(seq).await {
                Ok(m) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&m.payload).unwrap_or_default();
                    format!("{} {}", m.subject, v["url"].as_str().unwrap_or_default())
                }
                Err(e) => format!("unreadable: {e}"),
            },
            None => "-".into(),
        };
        let trail = discovered.0.get(url);
        lines.push(format!(
            "missing page {url}: claim {owner:?}, claimant {claimant}; trail {trail:?}"
        ));
        if lines.len() >= 10 {
            break;
        }
    }
    lines
}

/// What the stream recorded for a job, per page: how often it was discovered, fetched
/// or failed, how many images its fetch reported and how many `image.discovered`
/// events name it. A lost image's page shows where the chain broke.
#[derive(Debug, Default)]
struct Pages(BTreeMap<String, PageTrail>);

#[derive(Debug, Default)]
struct PageTrail {
    discovered: usize,
    fetched: usize,
    failed: usize,
    /// The most images one fetch of it reported (before de-duplication).
    images_found: u64,
    /// `image.discovered` events naming it as their page.
    images_published: u64,
    /// `page.discovered` events this page's fetches reported (a page found again at a
    /// smaller depth is visited again: per depth, the largest report), and those naming
    /// it as referrer.
    pages_reported: BTreeMap<u64, u64>,
    pages_published: u64,
}

impl Pages {
    fn page(&mut self, url: &str) -> &mut PageTrail {
        self.0.entry(url.to_string()).or_default()
    }

    /// Lines for the pages whose trail is incomplete, then the totals.
    fn anomalies(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .0
            .iter()
            .filter(|(_, t)| {
                t.discovered == 0
                    || t.fetched + t.failed != t.discovered
                    || (t.fetched > 0 && t.images_found != t.images_published)
                    || (t.fetched > 0
                        && t.pages_reported.values().sum::<u64>() != t.pages_published)
            })
            .take(10)
            .map(|(url, t)| format!("page {url}: {t:?}"))
            .collect();
        let fetched = self.0.values().filter(|t| t.fetched > 0).count();
        lines.push(format!(
            "pages in the stream: {} named, {} discovered, {fetched} fetched, {} visited again at a smaller depth",
            self.0.len(),
            self.0.values().filter(|t| t.discovered > 0).count(),
            self.0.values().filter(|t| t.discovered > 1).count()
        ));
        lines
    }
}

/// What [`scan`] read.
struct Scan {
    outcomes: BTreeMap<String, usize>,
    dead_letters: usize,
    pages: Pages,
}

/// Reads the whole stream: per image URL of `job`, how many download outcomes
/// (`image.downloaded` or `image.rejected`) were recorded; the dead letters; and each
/// page's trail.
///
/// Right after a leader kill an ordered consumer can be created on a replica that
/// then stays silent (the same stall the index's reader bounds by re-opening): a
/// reader that hears nothing for [`SCAN_IDLE`] is re-created after the last sequence
/// it read, at most [`SCAN_REOPENS`] times, so a stall costs seconds, never a
/// verdict, and a stream that stays unreadable still fails the check.
async fn scan(bus: &Bus, job: Uuid) -> Scan {
    let mut outcomes = BTreeMap::new();
    let mut dead = 0;
    let mut pages = Pages::default();
    let job = job.to_string();
    let mut read = 0u64; // the last stream sequence read
    for attempt in 0..=SCAN_REOPENS {
        // right after a leader kill the stream may still be electing: retried, not fatal
        let stream = imgcrawl_bus::patience::patiently("chaos scan", || async {
            let r = bus.js.get_stream(&bus.config.stream).await;
            r.map_err(|e| imgcrawl_bus::BusError::Topology(format!("get stream: {e}")))
        })
        .await
        .expect("stream");
        let last = stream.cached_info().state.last_sequence;
        if read >= last {
            return Scan {
                outcomes,
                dead_letters: dead,
                pages,
            };
        }
        let Ok(consumer) = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: read + 1,
                },
                ..Default::default()
            })
            .await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await; // re-asked after a pause
            continue;
        };
        let Ok(mut messages) = consumer.messages().await else {
            continue;
        };
        loop {
            let Ok(Some(Ok(msg))) = tokio::time::timeout(SCAN_IDLE, messages.next()).await else {
                eprintln!("chaos scan: no message after sequence {read} for {SCAN_IDLE:?}; re-opening (attempt {attempt})");
                break;
            };
            let seq = msg.info().expect("jetstream message").stream_sequence;
            if seq <= read {
                continue; // an ordered consumer re-created by the client from an earlier point
            }
            read = seq;
            // a routed kind's partition subject counts as its kind's
            let routed = imgcrawl_events::EventKind::from_subject(msg.subject.as_str())
                .map(imgcrawl_events::EventKind::subject);
            let subject = routed.as_deref().unwrap_or(msg.subject.as_str());
            if subject.starts_with("imgcrawl.dlq.") {
                dead += 1;
            } else if subject == "imgcrawl.image.downloaded" || subject == "imgcrawl.image.rejected"
            {
                let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
                if v["job_id"].as_str() == Some(job.as_str()) {
                    let url = v["url"].as_str().unwrap_or_default().to_string();
                    *outcomes.entry(url).or_insert(0) += 1;
                }
            } else if subject.starts_with("imgcrawl.page.")
                || subject == "imgcrawl.image.discovered"
            {
                let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
                if v["job_id"].as_str() == Some(job.as_str()) {
                    let url = v["url"].as_str().unwrap_or_default();
                    match subject {
                        "imgcrawl.page.discovered" => {
                            pages.page(url).discovered += 1;
                            if let Some(r) = v["referrer"].as_str() {
                                pages.page(r).pages_published += 1;
                            }
                        }
                        "imgcrawl.page.fetched" => {
                            let t = pages.page(url);
                            t.fetched += 1;
                            // the largest of its fetches (a redelivered page is fetched again)
                            let found = v["images_found"].as_u64().unwrap_or(0);
                            t.images_found = t.images_found.max(found);
                            let reported = v["pages_discovered"].as_u64().unwrap_or(0);
                            let depth = v["depth"].as_u64().unwrap_or(0);
                            let r = t.pages_reported.entry(depth).or_default();
                            *r = (*r).max(reported);
                        }
                        "imgcrawl.page.failed" => pages.page(url).failed += 1,
                        "imgcrawl.image.discovered" => {
                            let page = v["page_url"].as_str().unwrap_or_default();
                            pages.page(page).images_published += 1;
                        }
                        _ => {}
                    }
                }
            }
            if seq >= last {
                return Scan {
                    outcomes,
                    dead_letters: dead,
                    pages,
                };
            }
        }
    }
    panic!("the stream stayed unreadable after sequence {read} through {SCAN_REOPENS} re-opened readers");
}

/// How long the scan waits for a message before it re-opens its reader.
const SCAN_IDLE: Duration = Duration::from_secs(10);
/// How many times the scan re-opens its reader before it gives up.
const SCAN_REOPENS: u32 = 8;
