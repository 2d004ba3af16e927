//! The stage registry: [`Stage`] names every stage, its config section and its
//! consumer, and runs it.

use imgcrawl_bus::ha::Node;
use imgcrawl_bus::Bus;
use tokio_util::sync::CancellationToken;

use crate::StagesConfig;

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Pages, links and image URLs.
    Crawl,
    /// Fetch, validate and hash images.
    Download,
    /// Bytes into the bucket.
    Store,
    /// Metadata into PostgreSQL.
    Index,
    /// Pages rendered in headless Chromium for the crawl stage (jobs with
    /// `scope.render`); opt-in: not in [`Stage::ALL`], started by name.
    Render,
}

/// A stage failed (its own error, as text: each stage has its own error type).
#[derive(Debug, thiserror::Error)]
#[error("stage {stage} failed: {detail}")]
pub struct StageError {
    /// Which stage.
    pub stage: Stage,
    /// The stage's error.
    pub detail: String,
}

/// A stage name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("unknown stage {0:?} (one of crawl, download, store, index, render)")]
pub struct UnknownStage(pub String);

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Crawl, Stage::Download, Stage::Store, Stage::Index];

    /// Every stage that can be started by name: [`Stage::ALL`] and the opt-in render
    /// role (a browser per process: run it where rendering is wanted).
    pub const KNOWN: [Stage; 5] = [
        Stage::Crawl,
        Stage::Download,
        Stage::Store,
        Stage::Index,
        Stage::Render,
    ];

    /// Its name: on the command line (`--stage`), in logs, and its config section.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Crawl => "crawl",
            Stage::Download => "download",
            Stage::Store => "store",
            Stage::Index => "index",
            Stage::Render => "render",
        }
    }

    /// The durable consumer its replicas share; none for the index, which reads with
    /// an ordered consumer from its own checkpoint (one writer per database), nor for
    /// the render role, which answers core NATS requests in a queue group.
    pub fn consumer(self) -> Option<&'static str> {
        match self {
            Stage::Crawl => Some(imgcrawl_crawl::CONSUMER),
            Stage::Download => Some(imgcrawl_download::CONSUMER),
            Stage::Store => Some(imgcrawl_store::CONSUMER),
            Stage::Index | Stage::Render => None,
        }
    }

    /// Runs the stage with its section of `config` until `shutdown`. The crawl and
    /// download stages run from one `config` share its per-host state (politeness
    /// gates and robots.txt cache): a host sees one gate per process. With HA `nodes`,
    /// the index runs one writer per PostgreSQL node.
    pub async fn run(
        self,
        bus: Bus,
        config: &StagesConfig,
        nodes: &[Node],
        shutdown: CancellationToken,
    ) -> Result<(), StageError> {
        let fail = |e: &dyn std::fmt::Display| StageError {
            stage: self,
            detail: e.to_string(),
        };
        match self {
            Stage::Crawl => imgcrawl_crawl::run(bus, config.crawl.clone(), shutdown)
                .await
                .map_err(|e| fail(&e)),
            Stage::Download => {
                // one host table for the fetching stages of a process: the crawl
                // section's (see imgcrawl_fetch::Hosts)
                let mut download = config.download.clone();
                download.fetch.hosts = config.crawl.fetch.hosts.clone();
                imgcrawl_download::run(bus, download, shutdown)
                    .await
                    .map_err(|e| fail(&e))
            }
            Stage::Store => imgcrawl_store::run(bus, config.store.clone(), shutdown)
                .await
                .map_err(|e| fail(&e)),
            Stage::Index if nodes.is_empty() => {
                imgcrawl_index::run(bus, config.index.clone(), shutdown)
                    .await
                    .map_err(|e| fail(&e))
            }
            Stage::Index => imgcrawl_index::run_nodes(bus, config.index.clone(), nodes, shutdown)
                .await
                .map_err(|e| fail(&e)),
            Stage::Render => imgcrawl_render::run(bus, config.render.clone(), shutdown)
                .await
                .map_err(|e| fail(&e)),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Stage, UnknownStage> {
        Stage::KNOWN
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_consumers_are_the_stages_own() {
        for s in Stage::KNOWN {
            assert_eq!(s.name().parse::<Stage>().unwrap(), s);
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!(" Download ".parse::<Stage>().unwrap(), Stage::Download);
        let err = "paint".parse::<Stage>().unwrap_err().to_string();
        assert!(err.contains("unknown stage \"paint\""), "{err}");
        assert!(!Stage::ALL.contains(&Stage::Render), "rendering is opt-in");
        assert_eq!(Stage::Crawl.consumer(), Some("crawl"));
        assert_eq!(Stage::Download.consumer(), Some("download"));
        assert_eq!(Stage::Store.consumer(), Some("store"));
        assert_eq!(Stage::Index.consumer(), None);
        assert_eq!(Stage::Render.consumer(), None);
    }
}
