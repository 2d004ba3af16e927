//! Comparing a projection with a fresh replay of the stream: a scratch database on the
//! same server, replayed up to the projection's checkpoint, compared, dropped.

use imgcrawl_bus::Bus;
use imgcrawl_events::redact;
use imgcrawl_readmodel::{admin, ReadModelError};
use sqlx::Connection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{compared, digest, Comparison};
use crate::error::IndexError;
use crate::{connect, replay, Config, ReplayOptions, ReplayProgress};

/// A temporary database on the same server as another; drop it with
/// [`ScratchDatabase::drop`] (nothing drops it by itself).
#[derive(Debug)]
pub struct ScratchDatabase {
    beside: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates a new, empty database on the server of `beside` (a `postgres://` URL
    /// whose role may create databases).
    pub async fn create(beside: &str) -> Result<ScratchDatabase, IndexError> {
        let mut url = url::Url::parse(beside).map_err(|e| ReadModelError::Connect {
            url: redact(beside),
            source: sqlx::Error::Configuration(e.into()),
        })?;
        let name = format!("imgcrawl_verify_{}", uuid::Uuid::new_v4().simple());
        url.set_path(&format!("/{name}"));
        let mut c = admin::connect_server(beside).await?;
        admin::create_database(&mut c, &name).await?;
        let _ = c.close().await;
        Ok(ScratchDatabase {
            beside: beside.to_string(),
            name,
            url: url.to_string(),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops it (closing other sessions on it where the server can, PostgreSQL >= 13).
    pub async fn drop(self) -> Result<(), IndexError> {
        let mut c = admin::connect_server(&self.beside).await?;
        admin::drop_database(&mut c, &self.name).await?;
        let _ = c.close().await;
        Ok(())
    }
}

/// Compares the projection at `config.database_url` with a fresh replay of the stream
/// up to its checkpoint, in a scratch database on the same server that is dropped
/// afterwards. Returns the comparison and what the replay did.
pub async fn against_replay(
    bus: &Bus,
    config: &Config,
    progress: Option<watch::Sender<ReplayProgress>>,
    shutdown: CancellationToken,
) -> Result<(Comparison, ReplayProgress), IndexError> {
    let pool = connect(&config.database_url).await?;
    let left = digest(&pool, &config.checkpoint_name, None).await?;
    pool.close().await;
    let scratch = ScratchDatabase::create(&config.database_url).await?;
    let result =
        replay_and_digest(bus, config, &scratch, left.checkpoint, progress, shutdown).await;
    if let Err(e) = scratch.drop().await {
        warn!(error = %e, "cannot drop the scratch database");
    }
    let (right, replayed) = result?;
    Ok((compared(left, right, Vec::new())?, replayed))
}

async fn replay_and_digest(
    bus: &Bus,
    config: &Config,
    scratch: &ScratchDatabase,
    until: u64,
    progress: Option<watch::Sender<ReplayProgress>>,
    shutdown: CancellationToken,
) -> Result<(super::ProjectionDigest, ReplayProgress), IndexError> {
    let scratch_config = Config {
        database_url: scratch.url().to_string(),
        ..config.clone()
    };
    let options = ReplayOptions {
        until: Some(until),
        follow: false,
    };
    let replayed = replay(bus.clone(), scratch_config, options, progress, shutdown).await?;
    let pool = connect(scratch.url()).await?;
    let right = digest(&pool, &config.checkpoint_name, None).await;
    pool.close().await;
    Ok((right?, replayed))
}
