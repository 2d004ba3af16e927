//! The reference of a consistency check: a database `imgcrawl_ha_reference` on the
//! server of the best healthy node, replayed from the stream with `until` = the
//! checkpoint of a node that is alone at it, then digested and compared. It only moves
//! forward (each check replays the events since the last one); a stream created again
//! makes it start over.

use imgcrawl_bus::ha::Node;
use imgcrawl_index::verify::ProjectionDigest;
use imgcrawl_index::{read_checkpoint, IndexError, ReplayOptions};
use imgcrawl_readmodel::admin;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use super::{compared, digest_of, NodeReport};
use crate::state::Shared;

/// Name of the reference database.
pub const REFERENCE_DB: &str = "imgcrawl_ha_reference";

/// Compares the nodes `alone` at their checkpoints with the reference, in ascending
/// checkpoint order.
pub(super) async fn compare(
    shared: &Shared,
    nodes: &[Node],
    digests: &[Option<ProjectionDigest>],
    alone: &[usize],
    reports: &mut [NodeReport],
    shutdown: &CancellationToken,
) {
    let mut order: Vec<usize> = alone.to_vec();
    order.sort_by_key(|&i| digests[i].as_ref().map_or(0, |d| d.checkpoint));
    let Some(home) = nodes.first() else { return };
    let url = match ensure_reference(&home.url).await {
        Ok(u) => u,
        Err(e) => {
            for &i in &order {
                reports[i].note = Some(format!("reference unavailable: {e}"));
            }
            return;
        }
    };
    for &i in &order {
        let Some(d) = &digests[i] else { continue };
        match reference_at(shared, &url, d.checkpoint, shutdown).await {
            Ok(Some(r)) => compared(&mut reports[i], "reference", d, &r),
            Ok(None) => {
                reports[i].note = Some("behind the reference; compared by a later check".into())
            }
            Err(e) => {
                if matches!(e, IndexError::ForeignStream { .. }) {
                    // The stream was created again: start the reference over next time.
                    let _ = drop_reference(&home.url).await;
                }
                reports[i].note = Some(format!("reference replay failed: {e}"));
            }
        }
    }
}

/// Drops the reference database beside `node_url`.
async fn drop_reference(node_url: &str) -> Result<(), String> {
    let mut c = admin::connect_server(node_url)
        .await
        .map_err(|e| e.to_string())?;
    admin::drop_database(&mut c, REFERENCE_DB)
        .await
        .map_err(|e| e.to_string())?;
    let _ = c.close().await;
    Ok(())
}

/// The reference replayed to `until` and digested; `None` if it is already past it.
async fn reference_at(
    shared: &Shared,
    url: &str,
    until: u64,
    shutdown: &CancellationToken,
) -> Result<Option<ProjectionDigest>, IndexError> {
    let name = &shared.config.checkpoint_name;
    let pool = imgcrawl_index::connect(url).await?;
    imgcrawl_index::migrate(&pool).await?;
    let at = read_checkpoint(&pool, name)
        .await?
        .map_or(0, |c| c.last_seq);
    pool.close().await;
    if at > until {
        return Ok(None);
    }
    let config = imgcrawl_index::Config {
        database_url: url.to_string(),
        checkpoint_name: name.clone(),
        ..Default::default()
    };
    let options = ReplayOptions {
        until: Some(until),
        follow: false,
    };
    let bus = shared.bus.clone();
    imgcrawl_index::replay(bus, config, options, None, shutdown.child_token()).await?;
    let d = digest_of(url, name).await?;
    Ok((d.checkpoint == until).then_some(d))
}

/// Creates the reference database beside `node_url` if needed; returns its URL.
async fn ensure_reference(node_url: &str) -> Result<String, String> {
    let mut url = url::Url::parse(node_url).map_err(|e| format!("node url: {e}"))?;
    url.set_path(&format!("/{REFERENCE_DB}"));
    let mut c = admin::connect_server(node_url)
        .await
        .map_err(|e| e.to_string())?;
    let exists = admin::database_exists(&mut c, REFERENCE_DB)
        .await
        .map_err(|e| e.to_string())?;
    if !exists {
        admin::create_database(&mut c, REFERENCE_DB)
            .await
            .map_err(|e| format!("create {REFERENCE_DB}: {e}"))?;
    }
    let _ = c.close().await;
    Ok(url.to_string())
}
