//! Where the bucket is: the `target`, its S3 settings and the images' folder, with
//! the same field names as the store stage's settings (config files and environment
//! written for the store stage describe the same bucket here).

use serde::{Deserialize, Serialize};

use crate::bucket::Multipart;

/// The bucket images are written to and read from.
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: "file://./.imgcrawl/bucket".into(),
            s3: S3Config::default(),
            prefix: "images".into(),
        }
    }
}

/// S3 (and S3-compatible: MinIO, ...) settings. Every field is optional; what is set
/// here overrides the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` for a local MinIO.
    pub endpoint: Option<String>,
    /// Region (MinIO accepts any, e.g. `us-east-1`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow a plain-http endpoint.
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests (`bucket.host`) instead of path style (`host/bucket`).
    pub virtual_hosted_style: Option<bool>,
}

/// Settings a bucket is opened ([`open_store`](crate::open_store)) and laid out
/// ([`Bucket::from_config`](crate::Bucket::from_config)) from: [`Config`], and any
/// larger settings that embed its fields (the store stage's, which add the multipart
/// sizes).
pub trait BucketSettings {
    /// The `target` setting (see [`Config::target`]).
    fn target(&self) -> &str;
    /// The S3 settings.
    fn s3(&self) -> &S3Config;
    /// Folder under the target that holds the images.
    fn prefix(&self) -> &str;
    /// When images go up in parts (default: [`Multipart::default`]).
    fn multipart(&self) -> Multipart {
        Multipart::default()
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
        assert_eq!(c.prefix, "images");
        assert_eq!(c.multipart(), Multipart::default());
        assert!(serde_json::from_str::<Config>(r#"{"targte":"x"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"s3":{"endpoit":"x"}}"#).is_err());
    }
}
