//! Reading a response body under a byte cap, without buffering past it.

use futures::StreamExt;

use crate::{error, BodyError, Fetched};

impl Fetched {
    /// Streams the body into memory, failing with [`BodyError::TooLarge`] as soon as
    /// more than `max_bytes` arrive (a larger `Content-Length` fails before reading).
    /// Never buffers beyond the cap.
    pub async fn read_capped(self, max_bytes: u64) -> Result<bytes::Bytes, BodyError> {
        read_capped(self.response, max_bytes).await
    }
}

/// [`Fetched::read_capped`] on a bare response.
pub(crate) async fn read_capped(
    response: reqwest::Response,
    max_bytes: u64,
) -> Result<bytes::Bytes, BodyError> {
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(BodyError::TooLarge { limit: max_bytes });
    }
    let initial = response
        .content_length()
        .unwrap_or(0)
        .min(max_bytes)
        .min(1 << 20);
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
    let mut stream = response.bytes_stream();
    let read = &imgcrawl_telemetry::metrics().fetched_bytes;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| error::body_from_reqwest(&e))?;
        read.inc_by(chunk.len() as u64);
        if (buf.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
            return Err(BodyError::TooLarge { limit: max_bytes });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
