//! Reading the bucket back: whether an image object is there, its bytes and
//! Content-Type, and every image key (for the object replay and `verify`).

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{Attribute, ObjectStore};

use super::{object_err, path, Bucket};
use crate::BucketError;

/// An image object as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its bytes.
    pub body: Bytes,
    /// Its Content-Type, where the backend keeps one.
    pub content_type: Option<String>,
}

impl Bucket {
    /// The store the bucket writes to.
    pub fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// The folder (key prefix) of the images, without slashes around it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether an object of `size` bytes is at `key`.
    pub async fn present(&self, key: &str, size: u64) -> Result<bool, BucketError> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(meta.size == size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object_err(key, e)),
        }
    }

    /// The object at `key`, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<StoredObject>, BucketError> {
        let got = match self.store.get(&path(key)?).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(object_err(key, e)),
        };
        let content_type = got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.to_string());
        let body = got.bytes().await.map_err(|e| object_err(key, e))?;
        Ok(Some(StoredObject { body, content_type }))
    }

    /// Every key under the image folder (an empty or missing folder lists nothing).
    pub fn keys(&self) -> BoxStream<'_, Result<String, BucketError>> {
        let prefix =
            (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
        self.store
            .list(prefix.as_ref())
            .map_ok(|meta| meta.location.to_string())
            .or_else(|e| async move {
                match e {
                    object_store::Error::NotFound { .. } => Ok(String::new()),
                    e => Err(object_err("(listing)", e)),
                }
            })
            .try_filter(|k| futures::future::ready(!k.is_empty()))
            .boxed()
    }
}
