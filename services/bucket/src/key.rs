//! The key layout: `<prefix>/<sha[0..2]>/<sha[2..4]>/<sha>.<ext>`.
//!
//! Two levels of 256 folders keep every folder small enough to browse (in the MinIO
//! console, `ls`, ...), and the key depends only on the bytes: an image is stored once
//! however many URLs share it, and a retry rewrites the same object.

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

/// The folder holding the images of `sha`: `<prefix>/<aa>/<bb>` (no trailing `/`), or
/// `None` when `sha` is not a lowercase hex SHA-256.
pub fn folder(prefix: &str, sha: &str) -> Option<String> {
    if !is_sha256(sha) {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let shard = format!("{}/{}", &sha[0..2], &sha[2..4]);
    Some(if prefix.is_empty() {
        shard
    } else {
        format!("{prefix}/{shard}")
    })
}

/// The object key of an image: `<prefix>/<sha[0..2]>/<sha[2..4]>/<sha>.<ext>`, or `None`
/// when `sha` is not a lowercase hex SHA-256.
pub fn object_key(prefix: &str, sha: &str, ext: &str) -> Option<String> {
    Some(format!("{}/{sha}.{ext}", folder(prefix, sha)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn keys_shard_by_the_first_four_hex_digits() {
        let want = format!("images/ba/78/{SHA}.jpg");
        assert_eq!(object_key("images", SHA, "jpg"), Some(want.clone()));
        assert_eq!(object_key("/images/", SHA, "jpg"), Some(want));
        assert_eq!(object_key("", SHA, "png"), Some(format!("ba/78/{SHA}.png")));
        assert_eq!(
            object_key("a/b", SHA, "gif"),
            Some(format!("a/b/ba/78/{SHA}.gif"))
        );
        assert_eq!(folder("images", SHA).as_deref(), Some("images/ba/78"));
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
