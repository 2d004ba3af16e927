//! Per-host state shared by every [`Fetcher`](crate::Fetcher) of a process: the
//! politeness gates (concurrency, interval, back-off) and the robots.txt cache.
//!
//! Before this was shared, the crawl and download stages of one process each had their
//! own gate and their own robots.txt cache: a host saw page and image requests from
//! two independent gates (interleaved, so twice the allowed rate) and two robots.txt
//! fetches. The stage registry hands one `Hosts` to both fetching stages.

use crate::politeness::Politeness;
use crate::robots::RobotsCache;

/// Per-host state (cheap to clone: clones share it).
#[derive(Clone, Default)]
pub struct Hosts {
    pub(crate) politeness: Politeness,
    pub(crate) robots: RobotsCache,
}

impl Hosts {
    /// Whether `self` and `other` are the same shared state.
    pub fn same_as(&self, other: &Hosts) -> bool {
        self.politeness.same_as(&other.politeness)
    }
}

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hosts { .. }")
    }
}

/// Not a setting: every `Hosts` compares equal, so configs compare by their settings.
impl PartialEq for Hosts {
    fn eq(&self, _: &Hosts) -> bool {
        true
    }
}
