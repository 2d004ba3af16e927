//! Every integration test of the harness in one binary (one link instead of twenty on
//! two cores), a module per area. The shared helpers are modules here too: `common`
//! (ground-truth checks), `api_common` (an API server per test), `index_common` (index
//! fixtures). Run one area with `cargo nextest run -p imgcrawl-tests --test it api_db::`.

mod api_common;
mod common;
mod index_common;

mod api;
mod api_bench;
mod api_contract;
mod api_db;
mod api_delete;
mod api_gallery;
mod api_ha;
mod api_images;
mod api_paging;
mod backup;
mod backup_damage;
mod chaos;
mod crawl_stage;
mod deploy;
mod deploy_run;
mod e2e_demo;
mod e2e_failures;
mod extract;
mod ha;
mod ha_bench;
mod harness;
mod index_live;
mod index_projection;
mod observability_e2e;
mod observability_rules;
mod politeness;
mod purge;
mod render;
mod replay;
mod s3;
mod security_api;
mod security_ha;
mod security_pg;
mod store_copy;
