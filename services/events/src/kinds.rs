//! Event kinds, their subjects and their `Imgcrawl-Event` header values.

use std::fmt;

/// Every subject the pipeline uses starts with this prefix; the stream captures `imgcrawl.>`.
pub const SUBJECT_PREFIX: &str = "imgcrawl";

/// The schema version this build writes and the only one it accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// The kind of an event: one subject and one JSON schema each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A job: seeds and scope rules.
    CrawlRequested,
    /// Stop a job: in-flight work drains, nothing new starts.
    CrawlStopped,
    /// The frontier: an in-scope page seen for the first time in a job.
    PageDiscovered,
    /// A page was fetched and parsed.
    PageFetched,
    /// A page could not be fetched (or was skipped: robots, stopped job).
    PageFailed,
    /// An image URL found on a page.
    ImageDiscovered,
    /// Validated image bytes are in the blob store.
    ImageDownloaded,
    /// An image URL was not accepted, with the reason.
    ImageRejected,
    /// The image is in the object projection (bucket).
    ImageStored,
    /// The image is queryable in PostgreSQL (legacy: decoded, no longer published).
    ImageIndexed,
    /// A committed batch of the index made these images queryable.
    ImagesIndexed,
    /// Tombstone: projections drop the image.
    ImageDeleted,
    /// The job's frontier and downloads have drained.
    CrawlCompleted,
    /// The HA watcher changed a projection target's primary (the failover history).
    HaFailover,
}

impl EventKind {
    /// All kinds, in the order a projection applies a batch's groups.
    pub const ALL: [EventKind; 14] = [
        EventKind::CrawlRequested,
        EventKind::PageDiscovered,
        EventKind::PageFetched,
        EventKind::PageFailed,
        EventKind::ImageDiscovered,
        EventKind::ImageDownloaded,
        EventKind::ImageRejected,
        EventKind::ImageStored,
        EventKind::ImageIndexed,
        EventKind::ImagesIndexed,
        EventKind::ImageDeleted,
        EventKind::CrawlStopped,
        EventKind::CrawlCompleted,
        EventKind::HaFailover,
    ];

    /// The dotted name, e.g. `image.downloaded`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CrawlRequested => "crawl.requested",
            EventKind::CrawlStopped => "crawl.stopped",
            EventKind::PageDiscovered => "page.discovered",
            EventKind::PageFetched => "page.fetched",
            EventKind::PageFailed => "page.failed",
            EventKind::ImageDiscovered => "image.discovered",
            EventKind::ImageDownloaded => "image.downloaded",
            EventKind::ImageRejected => "image.rejected",
            EventKind::ImageStored => "image.stored",
            EventKind::ImageIndexed => "image.indexed",
            EventKind::ImagesIndexed => "images.indexed",
            EventKind::ImageDeleted => "image.deleted",
            EventKind::CrawlCompleted => "crawl.completed",
            EventKind::HaFailover => "ha.failover",
        }
    }

    /// The subject this kind is published on, e.g. `imgcrawl.image.downloaded`.
    pub fn subject(self) -> String {
        format!("{SUBJECT_PREFIX}.{}", self.name())
    }

    /// The `Imgcrawl-Event` header value, e.g. `image.downloaded.v1`.
    pub fn header_value(self) -> String {
        format!("{}.v{SCHEMA_VERSION}", self.name())
    }

    /// Whether the index publishes events of this kind (its announcements), so that no
    /// projection applies them: `images.indexed`, the legacy `image.indexed` and
    /// `crawl.completed`.
    pub fn is_index_output(self) -> bool {
        matches!(
            self,
            EventKind::ImageIndexed | EventKind::ImagesIndexed | EventKind::CrawlCompleted
        )
    }

    /// Whether events of this kind are split by host into partitions, each on its own
    /// subject `<subject>.p<n>` (the frontier and the download queue; see
    /// `imgcrawl_bus::partitions`).
    pub fn is_routed(self) -> bool {
        matches!(self, EventKind::PageDiscovered | EventKind::ImageDiscovered)
    }

    /// The subject filters that capture every event of this kind: its subject, and for
    /// a routed kind its partitions' too (`imgcrawl.image.discovered.*`).
    pub fn filters(self) -> Vec<String> {
        let subject = self.subject();
        match self.is_routed() {
            true => vec![format!("{subject}.*"), subject],
            false => vec![subject],
        }
    }

    /// The kind published on `subject`, if any: its own subject, or for a routed kind
    /// one of its partitions' (`imgcrawl.image.discovered.p7`).
    pub fn from_subject(subject: &str) -> Option<EventKind> {
        let name = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
        if let Some(kind) = Self::from_name(name) {
            return Some(kind);
        }
        let (name, partition) = name.rsplit_once('.')?;
        let digits = partition.strip_prefix('p')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::from_name(name).filter(|k| k.is_routed())
    }

    /// The kind with dotted name `name`, if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_subject(&k.subject()), Some(k));
        }
        assert_eq!(EventKind::from_subject("imgcrawl.dlq.crawl"), None);
        assert_eq!(
            EventKind::from_subject("imgcrawl.image.discovered.p12"),
            Some(EventKind::ImageDiscovered)
        );
        assert_eq!(
            EventKind::from_subject("imgcrawl.page.discovered.p0"),
            Some(EventKind::PageDiscovered)
        );
        assert_eq!(EventKind::from_subject("imgcrawl.image.stored.p1"), None);
        assert_eq!(
            EventKind::PageDiscovered.filters(),
            vec!["imgcrawl.page.discovered.*", "imgcrawl.page.discovered"]
        );
        assert_eq!(
            EventKind::ImageStored.filters(),
            vec!["imgcrawl.image.stored"]
        );
        assert_eq!(
            EventKind::from_subject("imgcrawl.image.discovered.px"),
            None
        );
        assert_eq!(EventKind::from_subject("imgcrawl.image.discovered.p"), None);
        assert_eq!(EventKind::from_subject("other.page.fetched"), None);
    }
}
