//! The object projection on a real S3 server (`s3s-fs` over HTTP with SigV4, see
//! `imgcrawl_tests::s3`): a crawl lands in the bucket with the right bytes,
//! Content-Type and user metadata under a browsable key layout; a 20 MiB image goes up
//! as a multipart upload through the store stage and comes back identical.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use imgcrawl_events::{Event, EventKind, FoundBy, ImageDownloaded};
use imgcrawl_store::bucket::Multipart;
use imgcrawl_store::{extension, open_store, Bucket, ImageObject};
use imgcrawl_tests::pipeline::{serve, RawEvent};
use imgcrawl_tests::{sitegen, wait_for, Pipeline, S3Server, Stage};
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A pipeline whose store stage writes to `s3://<bucket>/<prefix>` on `s3`.
async fn pipeline_on(s3: &S3Server, bucket: &str, prefix: &str, stages: &[Stage]) -> Pipeline {
    let mut p = Pipeline::start_without_stages().await;
    p.configs.store.target = format!("s3://{bucket}/{prefix}");
    p.configs.store.s3 = s3.s3_config();
    for s in stages {
        p.start_stage(*s);
    }
    p
}

/// The object store the stage writes to (same settings), for reading back.
fn reader(p: &Pipeline) -> Arc<dyn ObjectStore> {
    open_store(&p.configs.store).expect("open the s3 store")
}

/// Every `image.downloaded` of the stream with its sequence.
fn downloaded(events: &[RawEvent]) -> Vec<(u64, ImageDownloaded)> {
    events
        .iter()
        .filter(|e| e.subject == EventKind::ImageDownloaded.subject())
        .map(|e| {
            (
                e.seq,
                serde_json::from_slice(&e.payload).expect("image.downloaded"),
            )
        })
        .collect()
}

/// `object_key` of every `image.stored` by sha256.
fn stored_keys(events: &[RawEvent]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| e.subject == EventKind::ImageStored.subject())
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.payload).expect("image.stored");
            (
                v["sha256"].as_str().unwrap_or_default().to_string(),
                v["object_key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Waits until the stream holds `n` `image.stored` events.
async fn wait_stored(p: &Pipeline, n: usize) -> Vec<RawEvent> {
    let found = wait_for(Duration::from_secs(60), || async {
        let events = p.events().await;
        let stored = events
            .iter()
            .filter(|e| e.subject == EventKind::ImageStored.subject())
            .count();
        (stored >= n).then_some(events)
    })
    .await;
    found.unwrap_or_else(|| panic!("{n} image.stored events never appeared"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_is_projected_into_a_real_s3_bucket() {
    let s3 = S3Server::start().await;
    let bucket = s3.bucket().await;
    let p = pipeline_on(&s3, &bucket, "crawls/demo", &Stage::ALL).await;
    let site = serve(sitegen::demo()).await;
    let job = p.request(&site.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let expected = site.site().expected.clone();
    let events = wait_stored(&p, expected.images.len()).await;
    let keys = stored_keys(&events);
    let want: BTreeSet<&str> = expected.distinct_sha256();
    assert_eq!(
        keys.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want,
        "one object per distinct image"
    );
    let downloads = downloaded(&events);
    let store = reader(&p);

    for (sha, key) in &keys {
        let d = &downloads
            .iter()
            .find(|(_, d)| &d.sha256 == sha)
            .expect("downloaded")
            .1;
        assert_eq!(
            key,
            &format!(
                "images/{}/{sha}.{}",
                &sha[..2],
                extension(&d.format, &d.content_type)
            )
        );
        // The raw HEAD, as any S3 client (or the MinIO console) sees the object.
        let head = s3.head(&bucket, &format!("crawls/demo/{key}")).await;
        assert_eq!(head.status, 200, "{key}: {:?}", head.headers);
        assert_eq!(
            head.header("content-type"),
            Some(d.content_type.as_str()),
            "{key}"
        );
        assert_eq!(
            head.header("content-length"),
            Some(d.bytes.to_string().as_str()),
            "{key}"
        );
        assert_eq!(
            head.header("cache-control"),
            Some(imgcrawl_store::bucket::CACHE_CONTROL),
            "{key}"
        );
        assert_eq!(
            head.header("x-amz-meta-sha256"),
            Some(sha.as_str()),
            "{key}"
        );
        // Identical bytes at two URLs are one object: the metadata names one of them and
        // the sequence of exactly that URL's image.downloaded.
        let source = head
            .header("x-amz-meta-source-url")
            .expect("source-url metadata");
        let seq: u64 = head
            .header("x-amz-meta-stream-sequence")
            .and_then(|s| s.parse().ok())
            .expect("stream-sequence");
        assert!(
            downloads
                .iter()
                .any(|(s, d)| *s == seq && &d.sha256 == sha && d.url == source),
            "{key}: metadata ({source}, {seq}) matches no image.downloaded of its bytes"
        );
        // The same through object_store: a HEAD with attributes, then the bytes.
        let got = store
            .get_opts(
                &Path::from(key.as_str()),
                GetOptions {
                    head: true,
                    ..Default::default()
                },
            )
            .await
            .expect("head");
        let attr = |a: Attribute| got.attributes.get(&a).map(|v| v.as_ref().to_string());
        assert_eq!(
            attr(Attribute::ContentType).as_deref(),
            Some(d.content_type.as_str())
        );
        assert_eq!(
            attr(Attribute::Metadata("source-url".into())).as_deref(),
            Some(source)
        );
        assert_eq!(
            attr(Attribute::Metadata("stream-sequence".into())),
            Some(seq.to_string())
        );
        let body = store
            .get(&Path::from(key.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(sha256(&body), *sha, "{key} bytes");
    }

    // The layout browses as folders: images/ -> <aa>/ -> <sha>.<ext>, nothing else.
    let all: BTreeSet<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list everything");
    assert_eq!(
        all,
        keys.values().cloned().collect(),
        "the bucket holds exactly the image objects"
    );
    let top = store.list_with_delimiter(None).await.expect("list /");
    assert_eq!(top.common_prefixes, vec![Path::from("images")]);
    assert!(top.objects.is_empty());
    let level1 = store
        .list_with_delimiter(Some(&Path::from("images")))
        .await
        .expect("list images/");
    let want1: BTreeSet<String> = want.iter().map(|s| format!("images/{}", &s[..2])).collect();
    assert_eq!(
        level1
            .common_prefixes
            .iter()
            .map(|p| p.to_string())
            .collect::<BTreeSet<_>>(),
        want1
    );
    for (sha, key) in &keys {
        let leaf = format!("images/{}", &sha[..2]);
        let listing = store
            .list_with_delimiter(Some(&Path::from(leaf.as_str())))
            .await
            .expect("list leaf");
        assert!(
            listing.common_prefixes.is_empty(),
            "{leaf} has no sub-folders"
        );
        assert!(
            listing.objects.iter().any(|o| o.location.as_ref() == key),
            "{key} listed in {leaf}/"
        );
    }
    // A raw ListObjectsV2 with a delimiter, as a console asks for one folder.
    let raw = s3
        .request(
            "GET",
            &format!("/{bucket}"),
            &[
                ("list-type", "2"),
                ("prefix", "crawls/demo/images/"),
                ("delimiter", "/"),
            ],
            Vec::new(),
        )
        .await
        .expect("list objects v2");
    assert_eq!(raw.status, 200);
    let xml = String::from_utf8_lossy(&raw.body);
    for folder in &want1 {
        assert!(
            xml.contains(&format!("<Prefix>crawls/demo/{folder}/</Prefix>")),
            "{folder}/ in {xml}"
        );
    }
    p.shutdown().await;
}

/// A real 24-bit BMP of `width` x `height` (uncompressed: large files are easy to make).
fn bmp(width: u32, height: u32) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let pixels = row * height;
    let mut out = Vec::with_capacity(54 + pixels as usize);
    out.extend_from_slice(b"BM");
    for v in [54 + pixels, 0, 54, 40] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    for v in [0, pixels, 2835, 2835, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for y in 0..height {
        for x in 0..row {
            out.push((x.wrapping_mul(7) ^ y.wrapping_mul(13)) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_image_goes_up_in_parts_through_the_store_stage() {
    let s3 = S3Server::start().await;
    let bucket = s3.bucket().await;
    let p = pipeline_on(&s3, &bucket, "", &[Stage::Store]).await;
    assert_eq!(
        p.configs.store.multipart_threshold_bytes,
        8 << 20,
        "the default threshold"
    );
    let body = bmp(2048, 3414);
    assert!(body.len() > 20 << 20, "{} bytes", body.len());
    let sha = sha256(&body);
    let meta = async_nats::jetstream::object_store::ObjectMetadata {
        name: sha.clone(),
        ..Default::default()
    };
    p.bus
        .blobs
        .put(meta, &mut body.as_slice())
        .await
        .expect("put blob");
    let url = "http://images.test/huge.bmp".to_string();
    let event = Event::ImageDownloaded(ImageDownloaded {
        job_id: uuid::Uuid::now_v7(),
        url: url.clone(),
        final_url: url.clone(),
        page_url: "http://images.test/".into(),
        alt: None,
        found_by: FoundBy::ImgSrc,
        sha256: sha.clone(),
        bytes: body.len() as u64,
        format: "bmp".into(),
        width: 2048,
        height: 3414,
        content_type: "image/bmp".into(),
        occurred_at: Utc::now(),
    });
    p.bus
        .publisher()
        .publish(&event)
        .await
        .expect("publish image.downloaded");
    let events = wait_stored(&p, 1).await;
    let seq = events
        .iter()
        .find(|e| e.subject == EventKind::ImageDownloaded.subject())
        .expect("downloaded")
        .seq;
    let key = format!("images/{}/{sha}.bmp", &sha[..2]);
    assert_eq!(stored_keys(&events).get(&sha), Some(&key));

    let head = s3.head(&bucket, &key).await;
    assert_eq!(head.status, 200);
    // S3's multipart ETag: md5 of the parts' md5s, then "-<parts>" (8 MiB parts here).
    let etag = head
        .header("etag")
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(etag.ends_with("-3"), "a 3-part upload, got etag {etag}");
    assert_eq!(
        head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(head.header("content-type"), Some("image/bmp"));
    assert_eq!(head.header("x-amz-meta-source-url"), Some(url.as_str()));
    assert_eq!(
        head.header("x-amz-meta-stream-sequence"),
        Some(seq.to_string().as_str())
    );
    let got = reader(&p)
        .get(&Path::from(key.as_str()))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert!(
        got.len() == body.len() && sha256(&got) == sha,
        "the object is byte-identical"
    );
    p.shutdown().await;
}

fn obj<'a>(sha256: &'a str, ext: &'a str, content_type: &'a str) -> ImageObject<'a> {
    ImageObject {
        sha256,
        ext,
        content_type,
        source_url: "https://a.test/p?q=1&r=\u{e9}",
        stream_sequence: 42,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_on_s3_puts_once_splits_large_images_and_deletes() {
    let s3 = S3Server::start().await;
    let bucket = s3.bucket().await;
    let config = imgcrawl_store::Config {
        target: format!("s3://{bucket}"),
        s3: s3.s3_config(),
        ..Default::default()
    };
    let store = open_store(&config).expect("open");
    let b = Bucket::from_config(store.clone(), &config)
        .with_multipart(Multipart::new(6 << 20, 5 << 20));
    let small = Bytes::from_static(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    let large = Bytes::from(bmp(1024, 2200)); // ~6.4 MiB: two parts of 5 MiB and the rest
    let (small_sha, large_sha) = (sha256(&small), sha256(&large));
    let (small_key, wrote) = b
        .put_image(&obj(&small_sha, "gif", "image/gif"), small.clone())
        .await
        .expect("put small");
    assert!(wrote);
    let (large_key, _) = b
        .put_image(&obj(&large_sha, "bmp", "image/bmp"), large.clone())
        .await
        .expect("put large");
    let (_, again) = b
        .put_image(&obj(&small_sha, "gif", "image/gif"), small.clone())
        .await
        .expect("put again");
    assert!(!again, "an object already there is not rewritten");

    let small_head = s3.head(&bucket, &small_key).await;
    assert!(
        !small_head.header("etag").unwrap_or_default().contains('-'),
        "a single put: {:?}",
        small_head.header("etag")
    );
    assert_eq!(
        small_head.header("x-amz-meta-source-url"),
        Some("https://a.test/p?q=1&r=%C3%A9")
    );
    assert_eq!(small_head.header("x-amz-meta-stream-sequence"), Some("42"));
    let large_head = s3.head(&bucket, &large_key).await;
    assert!(
        large_head
            .header("etag")
            .unwrap_or_default()
            .trim_matches('"')
            .ends_with("-2"),
        "{:?}",
        large_head.headers
    );
    assert_eq!(large_head.header("content-type"), Some("image/bmp"));
    let got = store
        .get(&Path::from(large_key.as_str()))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert!(got == large, "multipart bytes identical");

    assert_eq!(b.delete_image(&large_sha).await.expect("delete"), 1);
    assert_eq!(s3.head(&bucket, &large_key).await.status, 404);
    assert_eq!(s3.head(&bucket, &small_key).await.status, 200);
    assert_eq!(b.delete_image(&large_sha).await.expect("delete again"), 0);
}

#[tokio::test]
async fn the_server_checks_signatures() {
    let s3 = S3Server::start().await;
    let bucket = s3.bucket().await;
    let mut config = imgcrawl_store::Config {
        target: format!("s3://{bucket}"),
        s3: s3.s3_config(),
        ..Default::default()
    };
    config.s3.secret_access_key = Some("wrong".into());
    let store = open_store(&config).expect("open");
    let err = store
        .put(&Path::from("x"), Bytes::from_static(b"x").into())
        .await
        .expect_err("a bad signature is refused");
    assert!(
        err.to_string().contains("403") || err.to_string().to_lowercase().contains("signature"),
        "{err}"
    );
    let missing = s3
        .request("PUT", &format!("/{bucket}"), &[], Vec::new())
        .await
        .expect("request");
    assert_eq!(
        missing.status,
        409,
        "bucket names are unique: {}",
        String::from_utf8_lossy(&missing.body)
    );
}
