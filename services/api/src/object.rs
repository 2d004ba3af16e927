//! Reading an image's object by the key its row records, in either bucket layout.
//!
//! A row's `object_key` comes from the `image.stored` event that stored it. A bucket
//! rebuilt by an object replay of a later version can have its images in the other
//! layout (`imgcrawl_bucket::Layout`: flat in a new bucket, nested in one written
//! before issue 19), so a read that finds nothing at the recorded key looks once more
//! at the same image's key in the other layout. Only a miss costs the second request.

use std::future::Future;

use imgcrawl_bucket::Layout;
use object_store::path::Path;

/// `read(path)` at `key`; when that object is missing, at the same image's key in the
/// other layout under `prefix`. Returns the key that answered with the result.
pub async fn read_either<T, F, Fut>(
    prefix: &str,
    key: &str,
    read: F,
) -> (String, Result<T, object_store::Error>)
where
    F: Fn(Path) -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let first = match Path::parse(key) {
        Ok(path) => read(path).await,
        Err(e) => return (key.to_string(), Err(e.into())),
    };
    let other = match first {
        Err(object_store::Error::NotFound { .. }) => Layout::other_key(prefix, key),
        _ => None,
    };
    match other.and_then(|k| Path::parse(&k).ok().map(|p| (k, p))) {
        Some((other, path)) => match read(path).await {
            Err(object_store::Error::NotFound { .. }) => (key.to_string(), first),
            found => (other, found),
        },
        None => (key.to_string(), first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    async fn get(store: &InMemory, key: &str) -> (String, Option<Bytes>) {
        let (at, got) = read_either("images", key, |p| async move {
            match store.get(&p).await {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            }
        })
        .await;
        (at, got.ok())
    }

    #[tokio::test]
    async fn a_missing_object_is_looked_up_in_the_other_layout() {
        let store = InMemory::new();
        let flat = format!("images/ba/{SHA}.jpg");
        let nested = format!("images/ba/78/{SHA}.jpg");
        store
            .put(
                &Path::parse(&flat).unwrap(),
                Bytes::from_static(b"flat").into(),
            )
            .await
            .unwrap();
        assert_eq!(
            get(&store, &flat).await,
            (flat.clone(), Some(Bytes::from_static(b"flat")))
        );
        assert_eq!(
            get(&store, &nested).await,
            (flat.clone(), Some(Bytes::from_static(b"flat")))
        );
        store.delete(&Path::parse(&flat).unwrap()).await.unwrap();
        assert_eq!(
            get(&store, &nested).await,
            (nested.clone(), None),
            "missing in both"
        );
        let other = "images/notes.txt";
        assert_eq!(get(&store, other).await, (other.to_string(), None));
    }
}
