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
}

/// (url, sha256) a correct crawl stores, against what `db` holds for `job`, and the
/// stream's outcome events for `job`.
pub async fn check(db: &PgPool, bus: &Bus, job: Uuid, want: &BTreeSet<(String, String)>) -> Counts {
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
    let (outcomes, dead_letters) = scan(bus, job).await;
    Counts {
        expected: want.len(),
        indexed: want.intersection(&got).count(),
        lost: want.difference(&got).count(),
        duplicated: outcomes.values().filter(|n| **n > 1).count(),
        unexpected: got.difference(want).count(),
        dead_letters,
    }
}

/// Reads the whole stream: per image URL of `job`, how many download outcomes
/// (`image.downloaded` or `image.rejected`) were recorded; and the dead letters.
async fn scan(bus: &Bus, job: Uuid) -> (BTreeMap<String, usize>, usize) {
    // right after a leader kill the stream may still be electing: retried, not fatal
    let stream = imgcrawl_bus::patience::patiently("chaos scan", || async {
        let r = bus.js.get_stream(&bus.config.stream).await;
        r.map_err(|e| imgcrawl_bus::BusError::Topology(format!("get stream: {e}")))
    })
    .await
    .expect("stream");
    let last = stream.cached_info().state.last_sequence;
    let mut outcomes = BTreeMap::new();
    let mut dead = 0;
    if last == 0 {
        return (outcomes, dead);
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered reader");
    let mut messages = consumer.messages().await.expect("messages");
    let job = job.to_string();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("the stream is readable")
            .expect("more messages")
            .expect("a message");
        let seq = msg.info().expect("jetstream message").stream_sequence;
        let subject = msg.subject.as_str();
        if subject.starts_with("imgcrawl.dlq.") {
            dead += 1;
        } else if subject == "imgcrawl.image.downloaded" || subject == "imgcrawl.image.rejected" {
            let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            if v["job_id"].as_str() == Some(job.as_str()) {
                let url = v["url"].as_str().unwrap_or_default().to_string();
                *outcomes.entry(url).or_insert(0) += 1;
            }
        }
        if seq >= last {
            return (outcomes, dead);
        }
    }
}
