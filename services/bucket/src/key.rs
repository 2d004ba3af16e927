//! The key layout: `<prefix>/<sha[0..2]>/<sha>.<ext>` ([`Layout::Flat`], every new
//! bucket), or `<prefix>/<sha[0..2]>/<sha[2..4]>/<sha>.<ext>` ([`Layout::Nested`], the
//! layout of buckets written before issue 19, kept for them).
//!
//! The key depends only on the bytes: an image is stored once however many URLs share
//! it, and a retry rewrites the same object. 256 folders keep listings browsable (about
//! 4,000 objects a folder per million images). The nested layout's 65,536 leaf folders
//! made the local filesystem create a directory for nearly every image of a crawl (an
//! inode allocation each; the store stage's largest cost after the file itself).
//! A bucket says which layout it has by its keys ([`Layout::of_key`]): see
//! [`Bucket::detect_layout`](crate::Bucket::detect_layout).

use imgcrawl_events::{Format, Sha256};

/// File extensions the stage writes, for deleting an image whose format is unknown:
/// every [`Format`]'s extension, and `bin`.
pub const EXTENSIONS: [&str; 11] = {
    let mut out = ["bin"; 11];
    let mut i = 0;
    while i < Format::EXTENSIONS.len() {
        out[i] = Format::EXTENSIONS[i];
        i += 1;
    }
    out
};

/// The file extension for a format name (`jpeg`, `png`, ...) as `image.downloaded`
/// carries it, falling back to the content type, then to `bin`.
pub fn extension(format: &str, content_type: &str) -> &'static str {
    Format::from_name(format)
        .or_else(|| Format::from_content_type(content_type))
        .map_or("bin", Format::extension)
}

/// Whether `sha` is 64 lowercase hex digits.
pub fn is_sha256(sha: &str) -> bool {
    Sha256::is_valid(sha)
}

/// How image keys are sharded into folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `<prefix>/<aa>/<sha>.<ext>`: 256 folders (every new bucket).
    #[default]
    Flat,
    /// `<prefix>/<aa>/<bb>/<sha>.<ext>`: 65,536 folders (buckets of earlier versions).
    Nested,
}

impl Layout {
    /// The folder holding the images of `sha` (no trailing `/`), or `None` when `sha` is
    /// not a lowercase hex SHA-256.
    pub fn folder(self, prefix: &str, sha: &str) -> Option<String> {
        if !is_sha256(sha) {
            return None;
        }
        let prefix = prefix.trim_matches('/');
        let shard = match self {
            Layout::Flat => sha[0..2].to_string(),
            Layout::Nested => format!("{}/{}", &sha[0..2], &sha[2..4]),
        };
        Some(if prefix.is_empty() {
            shard
        } else {
            format!("{prefix}/{shard}")
        })
    }

    /// The object key of an image, or `None` when `sha` is not a lowercase hex SHA-256.
    pub fn key(self, prefix: &str, sha: &str, ext: &str) -> Option<String> {
        Some(format!("{}/{sha}.{ext}", self.folder(prefix, sha)?))
    }

    /// The layout of an image key found under `prefix`: the folders between the prefix
    /// and a `<sha>.<ext>` file; `None` for anything else (the bucket's own files).
    pub fn of_key(prefix: &str, key: &str) -> Option<Layout> {
        let prefix = prefix.trim_matches('/');
        let rest = match prefix.is_empty() {
            true => key,
            false => key.strip_prefix(prefix)?.strip_prefix('/')?,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (file, folders) = parts.split_last()?;
        let sha = file.split_once('.').map_or(*file, |(s, _)| s);
        if !is_sha256(sha) {
            return None;
        }
        match folders {
            [aa] if *aa == &sha[0..2] => Some(Layout::Flat),
            [aa, bb] if *aa == &sha[0..2] && *bb == &sha[2..4] => Some(Layout::Nested),
            _ => None,
        }
    }

    /// The same image's key in the other layout (`key` as [`Layout::key`] makes it under
    /// `prefix`): where to look for an object that a bucket rebuilt in the other layout
    /// holds under a key an earlier event recorded.
    pub fn other_key(prefix: &str, key: &str) -> Option<String> {
        let layout = Layout::of_key(prefix, key)?;
        let file = key.rsplit('/').next()?;
        let (sha, ext) = file.split_once('.')?;
        let other = match layout {
            Layout::Flat => Layout::Nested,
            Layout::Nested => Layout::Flat,
        };
        other.key(prefix, sha, ext)
    }
}

/// The object key of an image in a new bucket ([`Layout::Flat`]):
/// `<prefix>/<sha[0..2]>/<sha>.<ext>`, or `None` when `sha` is not a lowercase hex
/// SHA-256.
pub fn object_key(prefix: &str, sha: &str, ext: &str) -> Option<String> {
    Layout::Flat.key(prefix, sha, ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn new_keys_shard_by_the_first_two_hex_digits() {
        let want = format!("images/ba/{SHA}.jpg");
        assert_eq!(object_key("images", SHA, "jpg"), Some(want.clone()));
        assert_eq!(object_key("/images/", SHA, "jpg"), Some(want));
        assert_eq!(object_key("", SHA, "png"), Some(format!("ba/{SHA}.png")));
        assert_eq!(
            object_key("a/b", SHA, "gif"),
            Some(format!("a/b/ba/{SHA}.gif"))
        );
        assert_eq!(
            Layout::Flat.folder("images", SHA).as_deref(),
            Some("images/ba")
        );
    }

    #[test]
    fn nested_keys_shard_by_the_first_four_hex_digits() {
        let want = format!("images/ba/78/{SHA}.jpg");
        assert_eq!(Layout::Nested.key("/images/", SHA, "jpg"), Some(want));
        assert_eq!(
            Layout::Nested.key("", SHA, "png"),
            Some(format!("ba/78/{SHA}.png"))
        );
        assert_eq!(
            Layout::Nested.folder("images", SHA).as_deref(),
            Some("images/ba/78")
        );
    }

    #[test]
    fn a_key_tells_its_layout_and_maps_to_the_other() {
        let flat = format!("images/ba/{SHA}.jpg");
        let nested = format!("images/ba/78/{SHA}.jpg");
        assert_eq!(Layout::of_key("images", &flat), Some(Layout::Flat));
        assert_eq!(Layout::of_key("/images/", &nested), Some(Layout::Nested));
        assert_eq!(
            Layout::of_key("", &format!("ba/{SHA}.png")),
            Some(Layout::Flat)
        );
        assert_eq!(Layout::other_key("images", &flat), Some(nested.clone()));
        assert_eq!(Layout::other_key("images", &nested), Some(flat));
        for not_an_image in [
            "_imgcrawl/replay-checkpoint.json".to_string(),
            format!("images/ab/{SHA}.jpg"),
            format!("images/ba/79/{SHA}.jpg"),
            format!("other/ba/{SHA}.jpg"),
            format!("images/{SHA}.jpg"),
            "images/ba/78/short.jpg".to_string(),
        ] {
            assert_eq!(
                Layout::of_key("images", &not_an_image),
                None,
                "{not_an_image}"
            );
        }
    }

    #[test]
    fn keys_refuse_anything_but_a_sha256() {
        assert_eq!(object_key("images", &SHA.to_uppercase(), "jpg"), None);
        assert_eq!(object_key("images", "../../etc/passwd", "jpg"), None);
        assert_eq!(object_key("images", &SHA[..63], "jpg"), None);
        assert_eq!(object_key("images", "", "jpg"), None);
    }

    #[test]
    fn extensions_come_from_the_format_then_the_content_type() {
        assert_eq!(extension("jpeg", "image/jpeg"), "jpg");
        assert_eq!(extension("tiff", ""), "tif");
        assert_eq!(extension("svg", "text/plain"), "svg");
        assert_eq!(extension("", "image/webp; charset=binary"), "webp");
        assert_eq!(extension("mystery", "application/octet-stream"), "bin");
        for ext in [
            extension("avif", ""),
            extension("heif", ""),
            extension("bmp", ""),
            extension("ico", ""),
        ] {
            assert!(EXTENSIONS.contains(&ext), "{ext}");
        }
    }
}
