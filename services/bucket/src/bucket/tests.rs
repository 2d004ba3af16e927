//! The bucket against real backends: the local filesystem in a tempdir and the
//! in-memory store (which, unlike the filesystem, keeps attributes).

use super::*;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/// Shares the folder `ba/78` with `SHA`.
const NEIGHBOUR: &str = "ba78000000000000000000000000000000000000000000000000000000000000";

fn image(sha: &'static str, ext: &'static str) -> ImageObject<'static> {
    ImageObject {
        sha256: sha,
        ext,
        content_type: "image/jpeg",
        source_url: "https://a.test/x.jpg",
        stream_sequence: 7,
    }
}

fn local() -> (tempfile::TempDir, Bucket) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
    (dir, Bucket::new(Arc::new(fs), "images"))
}

#[tokio::test]
async fn local_put_writes_once_at_the_sharded_key() {
    let (dir, bucket) = local();
    let (key, wrote) = bucket
        .put_image(&image(SHA, "jpg"), Bytes::from_static(b"jpeg bytes"))
        .await
        .expect("put");
    assert_eq!(
        (key.as_str(), wrote),
        (format!("images/ba/{SHA}.jpg").as_str(), true)
    );
    let file = dir.path().join(&key);
    assert_eq!(std::fs::read(&file).expect("file"), b"jpeg bytes");
    let (_, again) = bucket
        .put_image(&image(SHA, "jpg"), Bytes::from_static(b"jpeg bytes"))
        .await
        .expect("put again");
    assert!(!again, "an object of the same size is not rewritten");
    assert!(
        !bucket.attributes.load(Ordering::Relaxed),
        "the filesystem refused attributes once"
    );
}

#[tokio::test]
async fn a_partial_object_of_another_size_is_replaced() {
    let (dir, bucket) = local();
    let file = dir.path().join(format!("images/ba/{SHA}.jpg"));
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, b"jp").expect("partial");
    let (_, wrote) = bucket
        .put_image(&image(SHA, "jpg"), Bytes::from_static(b"jpeg bytes"))
        .await
        .expect("put");
    assert!(wrote);
    assert_eq!(std::fs::read(&file).expect("file"), b"jpeg bytes");
}

#[tokio::test]
async fn delete_removes_every_extension_of_one_hash_only() {
    for layout in [Layout::Flat, Layout::Nested] {
        let (dir, bucket) = local();
        let bucket = bucket.with_layout(layout);
        let file = |sha: &str, ext: &str| dir.path().join(layout.key("images", sha, ext).unwrap());
        for (sha, ext) in [(SHA, "jpg"), (SHA, "png"), (NEIGHBOUR, "jpg")] {
            bucket
                .put_image(&image(sha, ext), Bytes::from_static(b"x"))
                .await
                .expect("put");
            assert!(file(sha, ext).exists(), "{layout:?}");
        }
        assert_eq!(
            bucket.delete_image(SHA).await.expect("delete"),
            2,
            "{layout:?}"
        );
        assert!(!file(SHA, "jpg").exists());
        assert!(!file(SHA, "png").exists());
        assert!(file(NEIGHBOUR, "jpg").exists(), "{layout:?}");
        assert_eq!(bucket.delete_image(SHA).await.expect("delete again"), 0);
        let elsewhere = "00".repeat(32);
        assert_eq!(
            bucket
                .delete_image(&elsewhere)
                .await
                .expect("missing folder"),
            0
        );
    }
}

#[tokio::test]
async fn a_bucket_keeps_the_layout_its_images_are_in() {
    // new (empty, or only the bucket's own files): flat
    let (dir, bucket) = local();
    std::fs::create_dir_all(dir.path().join("images/_imgcrawl")).unwrap();
    std::fs::write(
        dir.path().join("images/_imgcrawl/replay-checkpoint.json"),
        b"{}",
    )
    .unwrap();
    let bucket = bucket
        .with_layout(Layout::Nested)
        .detect_layout()
        .await
        .expect("detect");
    assert_eq!(bucket.layout(), Layout::Flat);
    // written by an earlier version: nested, and new images join them there
    let (dir, bucket) = local();
    let old = dir.path().join(format!("images/ba/78/{NEIGHBOUR}.jpg"));
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"x").unwrap();
    let bucket = bucket.detect_layout().await.expect("detect");
    assert_eq!(bucket.layout(), Layout::Nested);
    let (key, _) = bucket
        .put_image(&image(SHA, "jpg"), Bytes::from_static(b"y"))
        .await
        .expect("put");
    assert_eq!(key, format!("images/ba/78/{SHA}.jpg"));
    // a flat bucket stays flat
    let (_dir, bucket) = local();
    bucket
        .put_image(&image(SHA, "png"), Bytes::from_static(b"z"))
        .await
        .expect("put");
    let bucket = bucket
        .with_layout(Layout::Nested)
        .detect_layout()
        .await
        .expect("detect");
    assert_eq!(bucket.layout(), Layout::Flat);
}

#[tokio::test]
async fn attributes_are_kept_where_the_backend_supports_them() {
    let store = Arc::new(InMemory::new());
    let bucket = Bucket::new(store.clone(), "/images/");
    let obj = ImageObject {
        source_url: "https://a.test/é x.jpg",
        ..image(SHA, "jpg")
    };
    let (key, _) = bucket
        .put_image(&obj, Bytes::from_static(b"jpeg"))
        .await
        .expect("put");
    let got = store
        .get(&Path::parse(&key).expect("path"))
        .await
        .expect("get");
    let attr = |a: Attribute| got.attributes.get(&a).map(|v| v.as_ref().to_string());
    assert_eq!(attr(Attribute::ContentType).as_deref(), Some("image/jpeg"));
    assert_eq!(
        attr(Attribute::CacheControl).as_deref(),
        Some(CACHE_CONTROL)
    );
    assert_eq!(
        attr(Attribute::Metadata("sha256".into())).as_deref(),
        Some(SHA)
    );
    assert_eq!(
        attr(Attribute::Metadata("stream-sequence".into())).as_deref(),
        Some("7")
    );
    assert_eq!(
        attr(Attribute::Metadata("source-url".into())).as_deref(),
        Some("https://a.test/%C3%A9%20x.jpg")
    );
    assert!(bucket.attributes.load(Ordering::Relaxed));
}

#[tokio::test]
async fn bad_hashes_never_become_keys() {
    let (_dir, bucket) = local();
    let err = bucket
        .put_image(&image("../../../etc/passwd", "jpg"), Bytes::new())
        .await
        .expect_err("bad sha");
    assert!(matches!(err, BucketError::InvalidSha(_)), "{err}");
    assert!(matches!(
        bucket.delete_image("nope").await,
        Err(BucketError::InvalidSha(_))
    ));
}

#[test]
fn header_values_are_ascii_and_capped() {
    assert_eq!(header_safe("a b\u{e9}", 100), "a%20b%C3%A9");
    let long = "x".repeat(5000);
    assert!(header_safe(&long, 1024).len() <= 1024);
}

/// `len` bytes that differ in every part (so a misordered part would show).
fn large_body(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn large_images_go_up_in_parts_with_their_attributes() {
    let store = Arc::new(InMemory::new());
    let bucket =
        Bucket::new(store.clone(), "images").with_multipart(Multipart::new(8 << 20, 5 << 20));
    let body = large_body((12 << 20) + 3);
    assert_eq!(bucket.multipart.part_size(body.len()), Some(5 << 20));
    let (key, wrote) = bucket
        .put_image(&image(SHA, "jpg"), body.clone())
        .await
        .expect("put");
    assert!(wrote);
    let got = store
        .get(&Path::parse(&key).expect("path"))
        .await
        .expect("get");
    let attr = |a: Attribute| got.attributes.get(&a).map(|v| v.as_ref().to_string());
    assert_eq!(attr(Attribute::ContentType).as_deref(), Some("image/jpeg"));
    assert_eq!(
        attr(Attribute::Metadata("stream-sequence".into())).as_deref(),
        Some("7")
    );
    assert!(got.bytes().await.expect("bytes") == body, "bytes differ");
}

#[tokio::test]
async fn large_images_reach_the_local_filesystem_in_parts_too() {
    let (dir, bucket) = local();
    let bucket = bucket.with_multipart(Multipart::new(0, 5 << 20));
    let body = large_body((10 << 20) + 1);
    let (key, _) = bucket
        .put_image(&image(SHA, "png"), body.clone())
        .await
        .expect("put");
    assert!(std::fs::read(dir.path().join(&key)).expect("file") == body);
    assert!(!bucket.attributes.load(Ordering::Relaxed));
}

#[test]
fn content_types_that_cannot_be_headers_are_left_out() {
    let get = |ct: &'static str| {
        attributes(&ImageObject {
            content_type: ct,
            ..image(SHA, "jpg")
        })
        .get(&Attribute::ContentType)
        .map(|v| v.as_ref().to_string())
    };
    assert_eq!(
        get(" image/svg+xml; charset=utf-8 ").as_deref(),
        Some("image/svg+xml; charset=utf-8")
    );
    assert_eq!(get(""), None);
    assert_eq!(get("image/png\r\nx-evil: 1"), None);
}
