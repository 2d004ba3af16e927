//! A job's counters: what the index counts per job (pages and image URLs by outcome,
//! bytes), read back by the API, the gallery and the CLI, and moved by the writer.
//! One definition, so a new counter is one field here and one column.

/// A job's counters (or a change to them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Counters {
    /// Pages discovered (rows in `pages`).
    pub pages_discovered: i64,
    /// Pages fetched.
    pub pages_fetched: i64,
    /// Pages failed or skipped.
    pub pages_failed: i64,
    /// Image URLs discovered (rows in `image_sources`).
    pub images_discovered: i64,
    /// Image URLs downloaded (including those since stored).
    pub images_downloaded: i64,
    /// Image URLs rejected.
    pub images_rejected: i64,
    /// Image URLs whose bytes are stored.
    pub images_stored: i64,
    /// Bytes of the downloaded image URLs.
    pub bytes_downloaded: i64,
}

impl Counters {
    fn zip(&self, o: &Counters, f: impl Fn(i64, i64) -> i64) -> Counters {
        Counters {
            pages_discovered: f(self.pages_discovered, o.pages_discovered),
            pages_fetched: f(self.pages_fetched, o.pages_fetched),
            pages_failed: f(self.pages_failed, o.pages_failed),
            images_discovered: f(self.images_discovered, o.images_discovered),
            images_downloaded: f(self.images_downloaded, o.images_downloaded),
            images_rejected: f(self.images_rejected, o.images_rejected),
            images_stored: f(self.images_stored, o.images_stored),
            bytes_downloaded: f(self.bytes_downloaded, o.bytes_downloaded),
        }
    }

    /// The sum of two sets of counters (saturating).
    pub fn plus(&self, o: &Counters) -> Counters {
        self.zip(o, i64::saturating_add)
    }

    /// The difference of two sets of counters (saturating).
    pub fn minus(&self, o: &Counters) -> Counters {
        self.zip(o, i64::saturating_sub)
    }

    /// Pages discovered without an outcome yet.
    pub fn pages_pending(&self) -> i64 {
        (self.pages_discovered - self.pages_fetched - self.pages_failed).max(0)
    }

    /// Image URLs discovered that are neither stored nor rejected yet.
    pub fn images_pending(&self) -> i64 {
        (self.images_discovered - self.images_stored - self.images_rejected).max(0)
    }

    /// Whether the job has drained: pages discovered and every page and image URL has
    /// its outcome (the completion rule of [`crate::write`]).
    pub fn balanced(&self) -> bool {
        self.pages_discovered > 0
            && self.pages_discovered == self.pages_fetched + self.pages_failed
            && self.images_discovered == self.images_rejected + self.images_stored
    }
}
