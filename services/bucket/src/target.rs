//! Where the bucket lives: parsing the `target` setting and opening the backend.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

use crate::{BucketError, BucketSettings};

/// A parsed `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// An S3 bucket, with an optional key prefix from the URL path.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
        prefix: String,
    },
    /// An in-process store that forgets everything on exit (tests, dry runs).
    Memory,
}

impl Target {
    /// Parses `file:///abs/path`, `file://./relative`, a bare path, `s3://bucket/prefix`
    /// or `memory://`.
    pub fn parse(target: &str) -> Result<Target, BucketError> {
        let bad = |detail: &str| BucketError::Target {
            target: target.to_string(),
            detail: detail.to_string(),
        };
        let t = target.trim();
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(rest) = t.strip_prefix("file://") {
            if rest.starts_with('/') {
                let url = url::Url::parse(t).map_err(|e| bad(&e.to_string()))?;
                return url
                    .to_file_path()
                    .map(Target::Local)
                    .map_err(|()| bad("not a local file path"));
            }
            if rest.is_empty() {
                return Err(bad("empty path"));
            }
            return Ok(Target::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = t.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name"));
            }
            return Ok(Target::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if t == "memory://" || t == "memory:" {
            return Ok(Target::Memory);
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?} (use file://, s3:// or a path)"
            )));
        }
        Ok(Target::Local(PathBuf::from(t)))
    }

    /// Whether the backend stores Content-Type and user metadata (the local
    /// filesystem does not).
    pub fn supports_attributes(&self) -> bool {
        !matches!(self, Target::Local(_))
    }
}

/// Opens the bucket the `target` setting names. S3 settings missing from the `s3`
/// settings come from the `AWS_*` environment variables. The returned store is rooted
/// at the target (an `s3://bucket/prefix` URL's prefix included); image keys from
/// [`object_key`](crate::object_key) are relative to it.
pub fn open_store<C: BucketSettings + ?Sized>(
    config: &C,
) -> Result<Arc<dyn ObjectStore>, BucketError> {
    let target = config.target();
    let open_err = |e: &dyn std::fmt::Display| BucketError::Open {
        target: target.to_string(),
        detail: e.to_string(),
    };
    match Target::parse(target)? {
        Target::Local(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| open_err(&format!("create {}: {e}", dir.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| open_err(&e))?
                .with_automatic_cleanup(true);
            Ok(Arc::new(fs))
        }
        Target::S3 { bucket, prefix } => {
            let s3 = config.s3();
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(v) = &s3.endpoint {
                b = b.with_endpoint(v);
            }
            if let Some(v) = &s3.region {
                b = b.with_region(v);
            }
            if let Some(v) = &s3.access_key_id {
                b = b.with_access_key_id(v);
            }
            if let Some(v) = &s3.secret_access_key {
                b = b.with_secret_access_key(v);
            }
            if let Some(v) = s3.allow_http {
                b = b.with_allow_http(v);
            }
            if let Some(v) = s3.virtual_hosted_style {
                b = b.with_virtual_hosted_style_request(v);
            }
            let store = b.build().map_err(|e| open_err(&e))?;
            Ok(if prefix.is_empty() {
                Arc::new(store)
            } else {
                Arc::new(PrefixStore::new(store, prefix.as_str()))
            })
        }
        Target::Memory => Ok(Arc::new(InMemory::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("file://./.imgcrawl/bucket").unwrap(),
            Target::Local("./.imgcrawl/bucket".into())
        );
        assert_eq!(
            Target::parse("file:///srv/img%20bucket").unwrap(),
            Target::Local("/srv/img bucket".into())
        );
        assert_eq!(
            Target::parse("relative/dir").unwrap(),
            Target::Local("relative/dir".into())
        );
        assert_eq!(
            Target::parse("/abs/dir").unwrap(),
            Target::Local("/abs/dir".into())
        );
        assert_eq!(
            Target::parse("s3://imgs").unwrap(),
            Target::S3 {
                bucket: "imgs".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Target::parse("s3://imgs/a/b/").unwrap(),
            Target::S3 {
                bucket: "imgs".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(Target::parse("memory://").unwrap(), Target::Memory);
        for bad in ["", "  ", "s3://", "s3:///x", "gs://bucket", "file://"] {
            assert!(
                matches!(Target::parse(bad), Err(BucketError::Target { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn local_targets_are_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b");
        let config = Config {
            target: format!("file://{}", path.display()),
            ..Config::default()
        };
        open_store(&config).expect("open");
        assert!(path.is_dir());
    }

    #[test]
    fn s3_targets_open_without_network() {
        let mut config = Config {
            target: "s3://imgs/pre".into(),
            ..Config::default()
        };
        config.s3.endpoint = Some("http://127.0.0.1:9".into());
        config.s3.region = Some("us-east-1".into());
        config.s3.allow_http = Some(true);
        let store = open_store(&config).expect("open");
        assert_eq!(store.to_string(), "PrefixObjectStore(pre)");
        config.target = "s3://imgs".into();
        let store = open_store(&config).expect("open");
        assert!(store.to_string().contains("imgs"), "{store}");
    }
}
