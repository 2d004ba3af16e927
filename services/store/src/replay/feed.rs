//! The events to copy, read ahead of the copies: a task reads `image.downloaded`
//! events in chunks into a bounded queue, so reading the stream and copying images
//! overlap (the first chunks of a history need many copies, the later ones mostly
//! repeat images already copied and are read as fast as the stream delivers them).

use imgcrawl_events::{Event, ImageDownloaded};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reader::Reader;
use crate::StoreError;

/// Events copied between two checkpoint writes at most.
pub(crate) const CHUNK: usize = 512;
/// Chunks read ahead at most (about 16,000 events: a few MB).
const AHEAD: usize = 32;

/// A chunk of `image.downloaded` events with their sequences.
pub(crate) type Chunk = Vec<(u64, ImageDownloaded)>;

/// The reading task and its queue; the task stops when this is dropped.
pub(crate) struct Feed {
    rx: mpsc::Receiver<Result<Chunk, StoreError>>,
    task: JoinHandle<()>,
}

impl Feed {
    /// Starts reading with `reader`.
    pub(crate) fn start(mut reader: Reader) -> Feed {
        let (tx, rx) = mpsc::channel(AHEAD);
        let task = tokio::spawn(async move {
            loop {
                let chunk = next_chunk(&mut reader).await;
                let end = chunk.as_ref().map_or(true, Vec::is_empty);
                if tx.send(chunk).await.is_err() || end {
                    return;
                }
            }
        });
        Feed { rx, task }
    }

    /// The next chunk, empty at the end; `None` once `shutdown` fired.
    pub(crate) async fn next(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Chunk>, StoreError> {
        tokio::select! {
            _ = shutdown.cancelled() => Ok(None),
            c = self.rx.recv() => match c {
                Some(chunk) => chunk.map(Some),
                None => Err(StoreError::Stream("the event reader stopped".into())),
            },
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Up to [`CHUNK`] `image.downloaded` events; empty at the end.
async fn next_chunk(reader: &mut Reader) -> Result<Chunk, StoreError> {
    let mut chunk = Vec::with_capacity(CHUNK);
    while chunk.len() < CHUNK {
        match reader.next().await? {
            Some((seq, Event::ImageDownloaded(e))) => chunk.push((seq, e)),
            Some(_) => {}
            None => break,
        }
    }
    Ok(chunk)
}
