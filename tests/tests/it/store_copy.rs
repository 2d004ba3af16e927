//! The store's copy path against a real nats-server and a local bucket: a blob the
//! download stage of the same process has just stored for the first time is written
//! without asking the bucket first; any other blob is looked up before it is written.

use std::sync::Arc;

use bytes::Bytes;
use imgcrawl_bus::blob::BlobStore;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::{FoundBy, ImageDownloaded, Sha256};
use imgcrawl_store::{copy_image, Bucket};
use imgcrawl_tests::nats::NatsServer;
use object_store::local::LocalFileSystem;

fn downloaded(body: &[u8]) -> ImageDownloaded {
    ImageDownloaded {
        job_id: uuid::Uuid::nil(),
        url: "https://a.test/x.png".into(),
        final_url: "https://a.test/x.png".into(),
        page_url: "https://a.test/".into(),
        alt: None,
        found_by: FoundBy::ImgSrc,
        sha256: Sha256::hex(body),
        bytes: body.len() as u64,
        format: "png".into(),
        width: 1,
        height: 1,
        content_type: "image/png".into(),
        occurred_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn only_a_blob_new_to_the_blob_store_skips_the_bucket_look_up() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    bus.recent_blobs.set_capacity(1 << 20);
    let blobs = BlobStore::open(&bus).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::new(
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        "images",
    );
    // an object of the right size is at each image's key already
    let place = |e: &ImageDownloaded| {
        let file = dir.path().join(bucket.key(&e.sha256, "png").unwrap());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, vec![0u8; e.bytes as usize]).unwrap();
        file
    };

    // new to the blob store, taken from memory: written without a look-up
    let new = Bytes::from(vec![1u8; 300]);
    let e = downloaded(&new);
    let file = place(&e);
    assert!(blobs
        .put_if_absent(&e.sha256, &new, "image/png")
        .await
        .unwrap());
    let copied = copy_image(&blobs, &bucket, &e, 7).await.unwrap();
    assert!(copied.wrote, "no look-up: written");
    assert_eq!(std::fs::read(&file).unwrap(), new.to_vec());

    // already in the blob store (another URL's download): looked up, not rewritten
    let known = Bytes::from(vec![2u8; 300]);
    let e = downloaded(&known);
    assert!(blobs
        .put_if_absent(&e.sha256, &known, "image/png")
        .await
        .unwrap());
    assert!(blobs.take_recent(&e.sha256).is_some_and(|r| r.new));
    assert!(!blobs
        .put_if_absent(&e.sha256, &known, "image/png")
        .await
        .unwrap());
    let file = place(&e);
    let copied = copy_image(&blobs, &bucket, &e, 8).await.unwrap();
    assert!(!copied.wrote, "looked up: an object of its size is there");
    assert_eq!(std::fs::read(&file).unwrap(), vec![0u8; 300]);

    // not in memory (another process stored it): looked up, read from the stream
    let e = downloaded(&new);
    let copied = copy_image(&blobs, &bucket, &e, 9).await.unwrap();
    assert!(!copied.wrote);
    std::fs::remove_file(dir.path().join(&copied.key)).unwrap();
    let copied = copy_image(&blobs, &bucket, &e, 10).await.unwrap();
    assert!(copied.wrote, "missing: read from the stream and written");
    assert_eq!(
        std::fs::read(dir.path().join(&copied.key)).unwrap(),
        new.to_vec()
    );
}
