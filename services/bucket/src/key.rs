//! The key layout: `<prefix>/<sha[0..2]>/<sha[2..4]>/<sha>.<ext>`.
//!
//! Two levels of 256 folders keep every folder small enough to browse (in the MinIO
//! console, `ls`, ...), and the key depends only on the bytes: an image is stored once
//! however many URLs share it, and a retry rewrites the same object.

/// File extensions the stage writes, for deleting an image whose format is unknown.
pub const EXTENSIONS: [&str; 11] = [
    "jpg", "png", "gif", "webp", "svg", "avif", "heif", "bmp", "ico", "tif", "bin",
];

/// The file extension for a format name (`jpeg`, `png`, ...) as `image.downloaded`
/// carries it, falling back to the content type, then to `bin`.
pub fn extension(format: &str, content_type: &str) -> &'static str {
    let from_format = match format.trim().to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" => Some("jpg"),
        "png" => Some("png"),
        "gif" => Some("gif"),
        "webp" => Some("webp"),
        "svg" => Some("svg"),
        "avif" => Some("avif"),
        "heif" | "heic" => Some("heif"),
        "bmp" => Some("bmp"),
        "ico" => Some("ico"),
        "tiff" | "tif" => Some("tif"),
        _ => None,
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    from_format
        .or(match essence.as_str() {
            "image/jpeg" => Some("jpg"),
            "image/png" => Some("png"),
            "image/gif" => Some("gif"),
            "image/webp" => Some("webp"),
            "image/svg+xml" => Some("svg"),
            "image/avif" => Some("avif"),
            "image/heif" | "image/heic" => Some("heif"),
            "image/bmp" => Some("bmp"),
            "image/x-icon" | "image/vnd.microsoft.icon" => Some("ico"),
            "image/tiff" => Some("tif"),
            _ => None,
        })
        .unwrap_or("bin")
}

/// Whether `sha` is 64 lowercase hex digits.
pub fn is_sha256(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
