//! Per-host state shared by every [`Fetcher`](crate::Fetcher) of a process: the
//! politeness gates (concurrency, interval, back-off) and the robots.txt cache.
//!
//! Before this was shared, the crawl and download stages of one process each had their
//! own gate and their own robots.txt cache: a host saw page and image requests from
//! two independent gates (interleaved, so twice the allowed rate) and two robots.txt
//! fetches. The stage registry hands one `Hosts` to both fetching stages. Across
//! processes, [host leases](crate::leases) make one process at a time a host's
//! fetcher.

use std::sync::{Arc, OnceLock};

use crate::leases::Leases;
use crate::politeness::Politeness;
use crate::robots::RobotsCache;

/// Per-host state (cheap to clone: clones share it).
#[derive(Clone, Default)]
pub struct Hosts {
    pub(crate) politeness: Politeness,
    pub(crate) robots: RobotsCache,
    leases: Arc<OnceLock<Leases>>,
}

impl Hosts {
    /// Makes every request of this process to a host wait for the host's lease
    /// ([`crate::leases`]): politeness across processes. The first call wins; returns
    /// the leases in force.
    pub fn use_leases(&self, leases: Leases) -> &Leases {
        self.leases.get_or_init(|| leases)
    }

    /// The host leases, when requests wait for them.
    pub fn leases(&self) -> Option<&Leases> {
        self.leases.get()
    }

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
