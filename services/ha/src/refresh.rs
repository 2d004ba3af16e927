//! Reading what the watcher does not measure itself into the shared state: the HA
//! pointer, the stream's end (and from it every node's lag), the object stores'
//! directories. Every round of the decision loop starts with it.

use imgcrawl_bus::ha::POSTGRES;
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
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
    if let Some(end) = stream_end(&shared.bus).await {
        let mut i = shared.lock();
        i.stream = Some(end);
        let threshold = shared.config.lag_threshold();
        for n in &mut i.nodes {
            n.update_lag(Some(&end), threshold);
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

async fn stream_end(bus: &Bus) -> Option<StreamEnd> {
    let mut stream = bus.js.get_stream(&bus.config.stream).await.ok()?;
    let info = stream.info().await.ok()?;
    Some(StreamEnd {
        last_seq: info.state.last_sequence,
        last_at: to_chrono(info.state.last_timestamp),
        first_at: to_chrono(info.state.first_timestamp),
    })
}
