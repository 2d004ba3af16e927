//! Writing and deleting content-addressed image objects in an `object_store` backend:
//! a single PUT, or a multipart upload for large images (see [`Multipart`]), with
//! Content-Type, Cache-Control and user metadata where the backend keeps them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore};

use crate::key::{Layout, EXTENSIONS};
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
    /// How keys are sharded: [`Layout::Flat`] until [`Bucket::detect_layout`] finds the
    /// bucket's images in another.
    layout: Layout,
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
            layout: Layout::default(),
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

    /// The same bucket with its keys in `layout`.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The layout of the bucket's keys.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The same bucket in the layout its images are in: that of the first image key
    /// listed under the prefix, [`Layout::Flat`] for a bucket with none (a new one).
    /// So a bucket written by an earlier version keeps its nested keys, and every
    /// writer and reader of one bucket agrees. Costs one listing request.
    pub async fn detect_layout(self) -> Result<Self, BucketError> {
        /// Keys looked at before a bucket of other files counts as new.
        const LOOK_AT: usize = 1_000;
        let mut found = None;
        let mut keys = self.keys().take(LOOK_AT);
        while let Some(key) = keys.next().await {
            if let Some(layout) = Layout::of_key(&self.prefix, &key?) {
                found = Some(layout);
                break;
            }
        }
        drop(keys);
        Ok(self.with_layout(found.unwrap_or_default()))
    }

    /// The object key of an image.
    pub fn key(&self, sha256: &str, ext: &str) -> Result<String, BucketError> {
        self.layout
            .key(&self.prefix, sha256, ext)
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
        if self.present(&key, body.len() as u64).await? {
            return Ok((key, false));
        }
        self.write_image(obj, body).await.map(|key| (key, true))
    }

    /// Puts the image without looking first (what is at its key is replaced: for the
    /// same bytes, harmlessly), in parts if it is large; returns the key. For a caller
    /// that knows the object is not there, or has just looked.
    pub async fn write_image(
        &self,
        obj: &ImageObject<'_>,
        body: Bytes,
    ) -> Result<String, BucketError> {
        let key = self.key(obj.sha256, obj.ext)?;
        let location = path(&key)?;
        let parts = self.multipart.part_size(body.len());
        let store = self.store.as_ref();
        if self.attributes.load(Ordering::Relaxed) {
            match upload::write(store, &location, body.clone(), attributes(obj), parts).await {
                Ok(()) => return Ok(key),
                Err(object_store::Error::NotImplemented) => {
                    self.attributes.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(object_err(&key, e)),
            }
        }
        upload::write(store, &location, body, Attributes::new(), parts)
            .await
            .map_err(|e| object_err(&key, e))?;
        Ok(key)
    }

    /// Deletes every object of `sha256` (whatever its extension), found by listing its
    /// folder in the nested layout (a few objects), by looking up each possible key in
    /// the flat one (its folder holds 1/256 of the bucket). Returns how many were
    /// deleted; deleting what is not there is not an error.
    pub async fn delete_image(&self, sha256: &str) -> Result<usize, BucketError> {
        let found = match self.layout {
            Layout::Flat => self.find_image(sha256).await?,
            Layout::Nested => self.list_image(sha256).await?,
        };
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

    /// The objects of `sha256` at its flat keys, one per extension.
    async fn find_image(&self, sha256: &str) -> Result<Vec<Path>, BucketError> {
        let mut found = Vec::new();
        for ext in EXTENSIONS {
            let location = path(&self.key(sha256, ext)?)?;
            match self.store.head(&location).await {
                Ok(_) => found.push(location),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(object_err(location.as_ref(), e)),
            }
        }
        Ok(found)
    }

    /// The objects of `sha256` in its nested folder.
    async fn list_image(&self, sha256: &str) -> Result<Vec<Path>, BucketError> {
        let dir = Layout::Nested
            .folder(&self.prefix, sha256)
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
        Ok(found)
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
