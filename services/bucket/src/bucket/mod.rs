//! Writing and deleting content-addressed image objects in an `object_store` backend:
//! a single PUT, or a multipart upload for large images (see [`Multipart`]), with
//! Content-Type, Cache-Control and user metadata where the backend keeps them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore};

use crate::key::{folder, object_key};
use crate::{BucketError, BucketSettings};

mod upload;

pub use read::StoredObject;
pub use upload::{Multipart, MAX_PART_BYTES, MIN_PART_BYTES};

/// `Cache-Control` of image objects: their content never changes under a key.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Longest `source-url` metadata value kept (S3 allows 2 KiB of user metadata in all).
const MAX_SOURCE_URL: usize = 1024;

/// Longest Content-Type value kept.
const MAX_CONTENT_TYPE: usize = 255;

/// What is written with an image besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ImageObject<'a> {
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: &'a str,
    /// File extension (see [`extension`](crate::extension)).
    pub ext: &'a str,
    /// Content-Type of the object.
    pub content_type: &'a str,
    /// The URL the bytes were first stored from (user metadata `source-url`).
    pub source_url: &'a str,
    /// Stream sequence of the event that stored it (user metadata `stream-sequence`).
    pub stream_sequence: u64,
}

/// An object store with the image key layout under `prefix`.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Cleared the first time the backend refuses attributes (the local filesystem).
    attributes: AtomicBool,
    /// When to upload in parts.
    multipart: Multipart,
}

fn object_err(key: &str, e: impl std::fmt::Display) -> BucketError {
    BucketError::Object {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

fn path(key: &str) -> Result<Path, BucketError> {
    Path::parse(key).map_err(|e| object_err(key, e))
}

/// `s` as a header-safe ASCII value: bytes outside `!`..`~` percent-encoded, capped.
fn header_safe(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for b in s.bytes() {
        if out.len() + 3 > max {
            break;
        }
        if (0x21..=0x7E).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Bucket {
    /// Images go under `prefix` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            attributes: AtomicBool::new(true),
            multipart: Multipart::default(),
        }
    }

    /// Images go under the configured prefix in `store`, with the configured multipart
    /// threshold and part size.
    pub fn from_config<C: BucketSettings + ?Sized>(
        store: Arc<dyn ObjectStore>,
        config: &C,
    ) -> Self {
        Bucket::new(store, config.prefix()).with_multipart(config.multipart())
    }

    /// The same bucket with another multipart threshold and part size.
    pub fn with_multipart(mut self, multipart: Multipart) -> Self {
        self.multipart = multipart;
        self
    }

    /// The object key of an image.
    pub fn key(&self, sha256: &str, ext: &str) -> Result<String, BucketError> {
        object_key(&self.prefix, sha256, ext)
            .ok_or_else(|| BucketError::InvalidSha(sha256.to_string()))
    }

    /// Puts the image unless an object of the same size is already at its key (a put of
    /// the same content would be harmless anyway), in parts if it is large. Returns the
    /// key and whether it wrote.
    pub async fn put_image(
        &self,
        obj: &ImageObject<'_>,
        body: Bytes,
    ) -> Result<(String, bool), BucketError> {
        let key = self.key(obj.sha256, obj.ext)?;
        let location = path(&key)?;
        match self.store.head(&location).await {
            Ok(meta) if meta.size == body.len() as u64 => return Ok((key, false)),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(object_err(&key, e)),
        }
        let parts = self.multipart.part_size(body.len());
        let store = self.store.as_ref();
        if self.attributes.load(Ordering::Relaxed) {
            match upload::write(store, &location, body.clone(), attributes(obj), parts).await {
                Ok(()) => return Ok((key, true)),
                Err(object_store::Error::NotImplemented) => {
                    self.attributes.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(object_err(&key, e)),
            }
        }
        upload::write(store, &location, body, Attributes::new(), parts)
            .await
            .map_err(|e| object_err(&key, e))?;
        Ok((key, true))
    }

    /// Deletes every object of `sha256` (whatever its extension) by listing its folder.
    /// Returns how many were deleted; deleting what is not there is not an error.
    pub async fn delete_image(&self, sha256: &str) -> Result<usize, BucketError> {
        let dir = folder(&self.prefix, sha256)
            .ok_or_else(|| BucketError::InvalidSha(sha256.to_string()))?;
        let name = format!("{sha256}.");
        let mut found = Vec::new();
        let mut listing = self.store.list(Some(&path(&dir)?));
        while let Some(item) = listing.next().await {
            match item {
                Ok(meta)
                    if meta
                        .location
                        .filename()
                        .is_some_and(|f| f.starts_with(&name)) =>
                {
                    found.push(meta.location)
                }
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(object_err(&dir, e)),
            }
        }
        let mut deleted = 0;
        for location in found {
            match self.store.delete(&location).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(object_err(location.as_ref(), e)),
            }
        }
        Ok(deleted)
    }
}

/// Content-Type, Cache-Control and user metadata of an image object.
fn attributes(obj: &ImageObject<'_>) -> Attributes {
    let mut a = Attributes::new();
    // A value that cannot be a header is left out (the backend's default applies)
    // rather than failing every retry.
    let content_type = obj.content_type.trim();
    if !content_type.is_empty()
        && content_type.len() <= MAX_CONTENT_TYPE
        && content_type.bytes().all(|b| (0x20..=0x7E).contains(&b))
    {
        a.insert(Attribute::ContentType, content_type.to_string().into());
    }
    a.insert(Attribute::CacheControl, CACHE_CONTROL.into());
    a.insert(
        Attribute::Metadata("source-url".into()),
        header_safe(obj.source_url, MAX_SOURCE_URL).into(),
    );
    a.insert(
        Attribute::Metadata("sha256".into()),
        obj.sha256.to_string().into(),
    );
    a.insert(
        Attribute::Metadata("stream-sequence".into()),
        obj.stream_sequence.to_string().into(),
    );
    a
}

mod read;

#[cfg(test)]
mod tests;
