//! Reading what the watcher does not measure itself into the shared state: the HA
//! pointer, the stream's end (and from it every node's lag), the object stores'
//! directories. Every round of the decision loop starts with it.

use chrono::{DateTime, Utc};
use imgcrawl_bus::ha::POSTGRES;
use imgcrawl_bus::position;
use imgcrawl_bus::{Bus, BusError};
use imgcrawl_readmodel::lag;
use tracing::warn;

use crate::health::StreamEnd;
use crate::objects;
use crate::state::Shared;

/// Reads the pointer and the stream's end into the shared state; recomputes lag.
pub(crate) async fn refresh(shared: &Shared) {
    refresh_pointer(shared).await;
    refresh_stream(shared).await;
}

pub(crate) async fn refresh_pointer(shared: &Shared) {
    match shared.store.pointer(POSTGRES).await {
        Ok(p) => {
            let mut i = shared.lock();
            let newer = match (&i.pointer, &p) {
                (Some((_, cur)), Some((_, new))) => new >= cur,
                _ => true,
            };
            if newer {
                i.pointer = p;
            }
        }
        Err(e) => warn!(error = %e, "cannot read the ha pointer"),
    }
}

async fn refresh_stream(shared: &Shared) {
    if let Ok(end) = position::stream_end(&shared.bus).await {
        let checkpoints: Vec<Option<u64>> = {
            let mut i = shared.lock();
            i.stream = Some(end);
            i.nodes.iter().map(|n| n.checkpoint).collect()
        };
        let threshold = shared.config.lag_threshold();
        for (k, cp) in checkpoints.into_iter().enumerate() {
            if let Ok(waiting) = oldest_waiting(&shared.bus, Some(&end), cp).await {
                shared.lock().nodes[k].update_lag(Some(&end), waiting, threshold);
            }
        }
    }
    let dirs: Vec<(usize, std::path::PathBuf)> = {
        let i = shared.lock();
        i.objects
            .iter()
            .enumerate()
            .filter_map(|(k, o)| Some((k, o.dir()?)))
            .collect()
    };
    for (k, dir) in dirs {
        let r = tokio::task::spawn_blocking(move || objects::check_dir(&dir))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        shared.lock().objects[k].record(r);
    }
}

/// When the stream stored the oldest event above checkpoint `cp` that the index
/// applies (none when nothing waits); an error leaves the lag as last measured.
pub(crate) async fn oldest_waiting(
    bus: &Bus,
    end: Option<&StreamEnd>,
    cp: Option<u64>,
) -> Result<Option<DateTime<Utc>>, BusError> {
    match (end, cp) {
        (Some(end), Some(cp)) if lag::behind(cp, end.last_seq) => {
            let found = position::oldest_after(bus, &lag::applied_subjects(), cp).await?;
            Ok(found.map(|(_, at)| at))
        }
        _ => Ok(None),
    }
}
