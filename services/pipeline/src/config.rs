//! Every stage's configuration: the sections of the TOML file `imgcrawl run --config`
//! reads (plus `[telemetry]`, which every process of the file reads).

use serde::Deserialize;

/// Every stage's configuration, one section per stage (each the stage's documented
/// `Config`), plus NATS's and the HA watcher's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagesConfig {
    /// `[bus]`: NATS: servers, authentication, TLS, and the shape of what a start
    /// creates.
    pub bus: imgcrawl_bus::BusConfig,
    /// `[crawl]`: the crawl stage.
    pub crawl: imgcrawl_crawl::Config,
    /// `[download]`: the download stage.
    pub download: imgcrawl_download::Config,
    /// `[store]`: the store stage.
    pub store: imgcrawl_store::Config,
    /// `[index]`: the index stage.
    pub index: imgcrawl_index::Config,
    /// `[render]`: the render role (`imgcrawl run --stage render`).
    pub render: imgcrawl_render::Config,
    /// `[ha]`: the HA watcher (`imgcrawl ha`); its `nodes` also make the index run one
    /// writer per PostgreSQL node.
    pub ha: imgcrawl_ha::Config,
    /// `[telemetry]`: where `/metrics`, `/healthz` and `/readyz` are served, and the
    /// optional OTLP trace export.
    pub telemetry: imgcrawl_telemetry::Config,
}

impl StagesConfig {
    /// Lets the fetching stages (crawl, download) and the render role's browser reach
    /// loopback and/or private addresses, on top of what their sections say.
    pub fn allow_targets(&mut self, loopback: bool, private: bool) {
        for f in [&mut self.crawl.fetch, &mut self.download.fetch] {
            f.allow_loopback |= loopback;
            f.allow_private |= private;
        }
        self.render.allow_loopback |= loopback;
        self.render.allow_private |= private;
    }
}
