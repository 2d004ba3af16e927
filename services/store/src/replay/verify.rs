//! Checking a bucket against the stream: every image an `image.downloaded` event up to
//! the end announces (and no tombstone deleted) is present under its key with bytes
//! hashing to its SHA-256 and, where the backend keeps it, the right Content-Type; and
//! nothing else is in the image folder (objects of later downloads are allowed).

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use imgcrawl_bus::Bus;
use imgcrawl_events::Sha256;
use imgcrawl_events::{Event, EventKind};

use super::reader::{stream_info, Reader};
use super::tombstones;
use crate::{extension, open_store, Bucket, Config, StoreError, Target};

/// Problems listed in a report at most (all are counted).
const MAX_LISTED: usize = 1000;

/// One thing wrong with the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketProblem {
    /// `missing`, `content`, `content-type` or `unexpected`.
    pub kind: &'static str,
    /// The object key.
    pub key: String,
    /// What was expected and what was found.
    pub detail: String,
}

/// The result of [`verify_bucket`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketReport {
    /// The events were read up to this sequence.
    pub end: u64,
    /// Objects the events say must be there.
    pub expected: u64,
    /// Of those, present and correct.
    pub ok: u64,
    /// Whether Content-Types were checked (the local filesystem keeps none).
    pub content_types_checked: bool,
    /// How many problems there are.
    pub problem_count: u64,
    /// The first problems (at most 1000).
    pub problems: Vec<BucketProblem>,
}

impl BucketReport {
    /// Whether the bucket is exactly what the events say.
    pub fn identical(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, kind: &'static str, key: &str, detail: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(BucketProblem {
                kind,
                key: key.to_string(),
                detail,
            });
        }
    }
}

/// What an object must be.
struct Want {
    sha256: String,
    content_type: String,
}

/// Checks the bucket `config` names against the events up to `until` (default: the
/// stream's last sequence now), `concurrency` objects at a time.
pub async fn verify_bucket(
    bus: &Bus,
    config: &Config,
    until: Option<u64>,
    concurrency: usize,
) -> Result<BucketReport, StoreError> {
    let bucket = Bucket::from_config(open_store(config)?, config)
        .detect_layout()
        .await?;
    let stream = stream_info(bus).await?;
    let end = until.unwrap_or(u64::MAX).min(stream.last_seq);
    let deleted = tombstones::read(bus, end).await?;
    let (expected, later) = expected_objects(bus, &bucket, &deleted, end, stream.last_seq).await?;
    let mut report = BucketReport {
        end,
        expected: expected.len() as u64,
        content_types_checked: Target::parse(&config.target)?.supports_attributes(),
        ..Default::default()
    };
    let check_types = report.content_types_checked;
    let mut checks = futures::stream::iter(expected.iter())
        .map(|(key, want)| {
            let bucket = &bucket;
            async move { (key, check(bucket, key, want, check_types).await) }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((key, found)) = checks.next().await {
        match found? {
            None => report.ok += 1,
            Some((kind, detail)) => report.problem(kind, key, detail),
        }
    }
    drop(checks);
    let mut keys = bucket.keys();
    while let Some(key) = keys.try_next().await? {
        if !expected.contains_key(&key) && !later.contains(&key) && !key.starts_with("_imgcrawl/") {
            let why = if deleted.iter().any(|sha| key.contains(sha.as_str())) {
                "the image was deleted (image.deleted)"
            } else {
                "no image.downloaded event announces it"
            };
            report.problem("unexpected", &key, why.to_string());
        }
    }
    Ok(report)
}

/// The objects the events up to `end` require (first download of a key wins), and the
/// keys of downloads after `end` (allowed, not required).
async fn expected_objects(
    bus: &Bus,
    bucket: &Bucket,
    deleted: &HashSet<String>,
    end: u64,
    last: u64,
) -> Result<(HashMap<String, Want>, HashSet<String>), StoreError> {
    let mut expected = HashMap::new();
    let mut later = HashSet::new();
    let mut reader = Reader::bulk(bus, vec![EventKind::ImageDownloaded.subject()], 0, last);
    while let Some((seq, event)) = reader.next().await? {
        let Event::ImageDownloaded(e) = event else {
            continue;
        };
        let Ok(key) = bucket.key(&e.sha256, extension(&e.format, &e.content_type)) else {
            continue;
        };
        if seq > end {
            later.insert(key);
        } else if !deleted.contains(&e.sha256) {
            expected.entry(key).or_insert(Want {
                sha256: e.sha256,
                content_type: e.content_type,
            });
        }
    }
    Ok((expected, later))
}

/// `None` if the object is right, else the problem's kind and detail.
async fn check(
    bucket: &Bucket,
    key: &str,
    want: &Want,
    check_types: bool,
) -> Result<Option<(&'static str, String)>, StoreError> {
    let Some(found) = bucket.get(key).await? else {
        return Ok(Some((
            "missing",
            format!("expected sha256 {}", want.sha256),
        )));
    };
    let actual = Sha256::hex(&found.body);
    if actual != want.sha256 {
        let detail = format!("expected sha256 {}, found {actual}", want.sha256);
        return Ok(Some(("content", detail)));
    }
    if check_types && found.content_type.as_deref() != Some(want.content_type.as_str()) {
        let found = found.content_type.unwrap_or_else(|| "none".into());
        let detail = format!("expected Content-Type {}, found {found}", want.content_type);
        return Ok(Some(("content-type", detail)));
    }
    Ok(None)
}
