//! Host-partitioned work: which partition a page or image URL belongs to, the subject
//! it is published on, and the per-partition consumers that take it.
//!
//! The frontier (`page.discovered`) and the download queue (`image.discovered`) are
//! split into `count` partitions by a stable hash of the URL's partition key (its host,
//! or its registrable domain: [`PartitionBy`]). An event of partition `p` is published
//! on `imgcrawl.<kind>.p<p>` and taken by the durable consumer `<stage>-p<p>`; each
//! partition is worked by one replica of the stage at a time ([`crate::ownership`]), so
//! a host's pages and images go to the replica that already holds its lease, its
//! robots.txt and its politeness gate.
//!
//! The count and the key are the stream's: written into its metadata when it is
//! created and read back by every process ([`Partitioning::from_metadata`]), so all
//! replicas route alike whatever their own configuration says. Changing them on a
//! stream that holds unconsumed work would strand that work on subjects no consumer
//! takes; it is not offered.

use std::collections::HashMap;

use imgcrawl_events::{Event, EventKind};
use serde::{Deserialize, Serialize};

/// Stream metadata key holding the partition count.
pub const PARTITIONS_KEY: &str = "imgcrawl.partitions";
/// Stream metadata key holding the partition key ([`PartitionBy`]).
pub const PARTITION_BY_KEY: &str = "imgcrawl.partition_by";
/// The most partitions a stream may have (each is a durable consumer per stage).
pub const MAX_PARTITIONS: u16 = 1024;

/// What part of a URL decides its partition (StormCrawler's `partition.url.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionBy {
    /// The host name (`img.example.org`): one gate per host, the finest split.
    #[default]
    Host,
    /// The registrable domain (`example.org` for `img.example.org`, by the public
    /// suffix list): every host of a site lands in one partition.
    Domain,
}

impl PartitionBy {
    /// Its name in settings and metadata.
    pub fn name(self) -> &'static str {
        match self {
            PartitionBy::Host => "host",
            PartitionBy::Domain => "domain",
        }
    }
}

impl std::str::FromStr for PartitionBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "host" => Ok(PartitionBy::Host),
            "domain" => Ok(PartitionBy::Domain),
            other => Err(format!("unknown partition key {other:?} (host or domain)")),
        }
    }
}

/// How work is split: how many partitions, by what key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitioning {
    /// Number of partitions (at least 1).
    pub count: u16,
    /// What decides a URL's partition.
    pub by: PartitionBy,
}

impl Partitioning {
    /// A partitioning, the count clamped to `1..=MAX_PARTITIONS`.
    pub fn new(count: u16, by: PartitionBy) -> Self {
        Partitioning {
            count: count.clamp(1, MAX_PARTITIONS),
            by,
        }
    }

    /// The stream's partitioning from its metadata; `fallback` for a stream made by a
    /// release without partitions (or metadata written by hand that does not parse).
    pub fn from_metadata(metadata: &HashMap<String, String>, fallback: Partitioning) -> Self {
        let count = metadata
            .get(PARTITIONS_KEY)
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(fallback.count);
        let by = metadata
            .get(PARTITION_BY_KEY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(fallback.by);
        Partitioning::new(count, by)
    }

    /// The metadata entries a new stream records.
    pub fn metadata(&self) -> [(String, String); 2] {
        [
            (PARTITIONS_KEY.into(), self.count.to_string()),
            (PARTITION_BY_KEY.into(), self.by.name().into()),
        ]
    }

    /// The partition key of `url`: its host or registrable domain, lowercase; the URL
    /// itself when it has no host (such URLs fail later, at their own stage).
    pub fn key(&self, url: &str) -> String {
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return url.to_string();
        };
        match self.by {
            PartitionBy::Host => host,
            PartitionBy::Domain => registrable_domain(&host).unwrap_or(host),
        }
    }

    /// The partition of `url`: FNV-1a (64 bit) of its key, modulo the count. Stable
    /// across processes, releases and platforms: it is part of the stream's layout.
    pub fn of_url(&self, url: &str) -> u16 {
        (fnv1a(self.key(url).as_bytes()) % u64::from(self.count)) as u16
    }

    /// The subject an event is published on: its kind's subject, with the partition
    /// appended for the routed kinds (`imgcrawl.image.discovered.p7`).
    pub fn subject_of(&self, event: &Event) -> String {
        let kind = event.kind();
        match routed_url(event) {
            Some(url) => partition_subject(kind, self.of_url(url)),
            None => kind.subject(),
        }
    }
}

/// The URL that routes an event, for the kinds that are partitioned.
fn routed_url(event: &Event) -> Option<&str> {
    match event {
        Event::PageDiscovered(e) => Some(&e.url),
        Event::ImageDiscovered(e) => Some(&e.url),
        _ => None,
    }
}

/// The subject of partition `p` of a routed kind.
pub fn partition_subject(kind: EventKind, p: u16) -> String {
    format!("{}.p{p}", kind.subject())
}

/// The durable consumer of partition `p` of `stage`'s work (`download-p7`).
pub fn consumer_name(stage: &str, p: u16) -> String {
    format!("{stage}-p{p}")
}

/// Whether the consumer `name` belongs to `stage`: its shared consumer or one of its
/// partitions'.
pub fn belongs_to(name: &str, stage: &str) -> bool {
    match name.strip_prefix(stage) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix("-p")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The registrable domain of a host name (public suffix plus one label), if it has one.
fn registrable_domain(host: &str) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    let d = psl::domain(host.as_bytes())?;
    std::str::from_utf8(d.as_bytes()).ok().map(str::to_string)
}

/// FNV-1a, 64 bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_is_one_partition_and_hosts_spread() {
        let p = Partitioning::new(16, PartitionBy::Host);
        let a = p.of_url("http://img.example.org/a.png");
        assert_eq!(p.of_url("https://IMG.example.org/b/c.jpg?x=1"), a);
        let mut used = std::collections::HashSet::new();
        for i in 0..200 {
            let q = p.of_url(&format!("http://h{i}.test/x.png"));
            assert!(q < 16);
            used.insert(q);
        }
        assert_eq!(used.len(), 16, "200 hosts reach every partition");
    }

    #[test]
    fn the_hash_is_pinned() {
        // Part of the stream's layout: a change would strand queued work.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let p = Partitioning::new(16, PartitionBy::Host);
        assert_eq!(
            p.of_url("http://127.0.0.1:8080/x"),
            (fnv1a(b"127.0.0.1") % 16) as u16
        );
    }

    #[test]
    fn domain_mode_groups_a_sites_hosts() {
        let p = Partitioning::new(64, PartitionBy::Domain);
        assert_eq!(p.key("http://img.example.co.uk/a"), "example.co.uk");
        assert_eq!(p.key("http://www.example.co.uk/"), "example.co.uk");
        assert_eq!(p.key("http://127.0.0.2:80/a"), "127.0.0.2");
        assert_eq!(p.key("http://[::1]:80/a"), "[::1]");
        assert_eq!(
            p.of_url("http://a.example.org/"),
            p.of_url("http://b.example.org/")
        );
        let h = Partitioning::new(64, PartitionBy::Host);
        assert_eq!(h.key("http://img.example.co.uk/a"), "img.example.co.uk");
        assert_eq!(h.key("not a url"), "not a url");
    }

    #[test]
    fn routed_kinds_get_a_partition_subject() {
        assert_eq!(
            partition_subject(EventKind::ImageDiscovered, 7),
            "imgcrawl.image.discovered.p7"
        );
        assert_eq!(consumer_name("download", 7), "download-p7");
        assert!(belongs_to("download", "download"));
        assert!(belongs_to("download-p12", "download"));
        assert!(!belongs_to("download-p", "download"));
        assert!(!belongs_to("downloader", "download"));
        assert!(!belongs_to("dlq-download", "download"));
    }

    #[test]
    fn metadata_round_trips_and_falls_back() {
        let p = Partitioning::new(8, PartitionBy::Domain);
        let md: HashMap<_, _> = p.metadata().into_iter().collect();
        let fallback = Partitioning::new(16, PartitionBy::Host);
        assert_eq!(Partitioning::from_metadata(&md, fallback), p);
        assert_eq!(
            Partitioning::from_metadata(&HashMap::new(), fallback),
            fallback
        );
        let bad: HashMap<_, _> = [(PARTITIONS_KEY.to_string(), "lots".to_string())].into();
        assert_eq!(Partitioning::from_metadata(&bad, fallback), fallback);
        assert_eq!(Partitioning::new(0, PartitionBy::Host).count, 1);
        assert_eq!("Domain".parse::<PartitionBy>(), Ok(PartitionBy::Domain));
        assert!("ip"
            .parse::<PartitionBy>()
            .unwrap_err()
            .contains("host or domain"));
    }
}
