//! Putting validated bytes into the blob store, once per SHA-256.

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectMetadata, ObjectStore};
use std::collections::HashMap;

/// Stores `body` under `sha` unless an object of that name and size is already there.
/// Returns whether it wrote. Two racing writers of the same bytes are harmless: the
/// content is identical, and the later put replaces the earlier one.
pub async fn put_if_absent(
    blobs: &ObjectStore,
    sha: &str,
    body: &[u8],
    content_type: &str,
) -> Result<bool, String> {
    match blobs.info(sha).await {
        Ok(info) if !info.deleted && info.size == body.len() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == InfoErrorKind::NotFound => {}
        Err(e) => return Err(format!("blob info {sha}: {e}")),
    }
    let meta = ObjectMetadata {
        name: sha.to_string(),
        metadata: HashMap::from([("content-type".to_string(), content_type.to_string())]),
        ..Default::default()
    };
    let mut reader = body;
    blobs
        .put(meta, &mut reader)
        .await
        .map_err(|e| format!("blob put {sha}: {e}"))?;
    Ok(true)
}

/// Lowercase hex SHA-256 of `body`.
pub fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
