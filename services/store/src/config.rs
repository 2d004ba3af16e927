//! Settings of the store stage: where the bucket is (the fields of
//! [`imgcrawl_bucket::Config`], same names) and how the stage writes to it.

use imgcrawl_bucket::{BucketSettings, Multipart, S3Config};
use serde::{Deserialize, Serialize};

/// Where images are projected, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The bucket: `file:///abs/path`, `file://./relative/path`, a bare path,
    /// `s3://bucket/optional/prefix`, or `memory://` (in-process, for tests).
    pub target: String,
    /// S3 connection settings; unset fields fall back to the standard `AWS_*`
    /// environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...).
    pub s3: S3Config,
    /// Folder under the target that holds the images (empty = the target's root).
    pub prefix: String,
    /// Messages handled at once (each holds one image in memory).
    pub concurrency: usize,
    /// Seconds JetStream waits for an ack before redelivering to another replica (a
    /// slow put keeps its message with in-progress acks every third of this).
    pub ack_wait_secs: u64,
    /// Images of at least this many bytes go up as a multipart upload (parts in
    /// parallel; S3 refuses single PUTs over 5 GiB). On a local directory the parts
    /// go into one staged file that is renamed into place when complete.
    pub multipart_threshold_bytes: u64,
    /// Part size of multipart uploads, kept within S3's limits (5 MiB to 5 GiB).
    pub multipart_part_bytes: u64,
    /// Bytes of just-downloaded images kept in memory for this stage when the download
    /// stage runs in the same process, so it does not read them back from the blob
    /// stream (0: always read the stream). See `imgcrawl_bus::recent`.
    pub recent_blob_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        let bucket = imgcrawl_bucket::Config::default();
        Config {
            target: bucket.target,
            s3: bucket.s3,
            prefix: bucket.prefix,
            concurrency: 16,
            ack_wait_secs: 30,
            multipart_threshold_bytes: 8 << 20,
            multipart_part_bytes: 8 << 20,
            recent_blob_bytes: 16 << 20,
        }
    }
}

impl Config {
    /// The worker loop's options: `concurrency` handlers at once, the bus's defaults
    /// otherwise.
    pub fn worker_options(&self) -> imgcrawl_bus::worker::WorkerOptions {
        imgcrawl_bus::worker::WorkerOptions {
            concurrency: self.concurrency.max(1),
            ..Default::default()
        }
    }

    /// The bucket these settings write to (target, S3 settings, prefix), for readers
    /// of the same bucket.
    pub fn bucket(&self) -> imgcrawl_bucket::Config {
        imgcrawl_bucket::Config {
            target: self.target.clone(),
            s3: self.s3.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

impl BucketSettings for Config {
    fn target(&self) -> &str {
        &self.target
    }

    fn s3(&self) -> &S3Config {
        &self.s3
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn multipart(&self) -> Multipart {
        Multipart::new(self.multipart_threshold_bytes, self.multipart_part_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields_and_typos_are_refused() {
        let c: Config = serde_json::from_str(
            r#"{"target":"s3://b/p","s3":{"endpoint":"http://127.0.0.1:9000","allow_http":true}}"#,
        )
        .expect("config");
        assert_eq!(c.target, "s3://b/p");
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.s3.allow_http, Some(true));
        assert_eq!(c.s3.region, None);
        assert_eq!((c.prefix.as_str(), c.concurrency), ("images", 16));
        assert_eq!(c.multipart_threshold_bytes, 8 << 20);
        assert_eq!(c.multipart(), Multipart::new(8 << 20, 8 << 20));
        assert_eq!(c.bucket().target, "s3://b/p");
        assert!(serde_json::from_str::<Config>(r#"{"targte":"x"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"s3":{"endpoit":"x"}}"#).is_err());
    }
}
