//! The blob store's fast paths against a real nats-server: what they write, the object
//! store client reads (digest checked), and the other way round.

use bytes::Bytes;
use imgcrawl_bus::blob::{BlobStore, CHUNK_BYTES};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::nats::NatsServer;
use tokio::io::AsyncReadExt;

fn sha(body: &[u8]) -> String {
    imgcrawl_events::Sha256::hex(body)
}

async fn read_with_client(bus: &Bus, name: &str) -> Vec<u8> {
    let mut obj = bus.blobs.get(name).await.expect("get blob");
    let mut buf = Vec::new();
    obj.read_to_end(&mut buf)
        .await
        .expect("read blob (digest checked)");
    buf
}

#[tokio::test]
async fn blobs_round_trip_between_the_fast_paths_and_the_client() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let blobs = BlobStore::open(&bus).await.unwrap();
    let small = Bytes::from(vec![7u8; 5000]);
    let large: Bytes = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
    for body in [&small, &large, &Bytes::new()] {
        let name = sha(body);
        assert_eq!(blobs.read(&name).await.unwrap(), None);
        assert!(blobs.put_if_absent(&name, body, "image/png").await.unwrap());
        let info = blobs.info(&name).await.unwrap().expect("info");
        assert_eq!(
            (info.size, info.chunks),
            (body.len(), body.len().div_ceil(CHUNK_BYTES))
        );
        assert_eq!(info.metadata["content-type"], "image/png");
        assert_eq!(read_with_client(&bus, &name).await, body.to_vec());
        assert_eq!(blobs.read(&name).await.unwrap().as_ref(), Some(body));
        assert!(
            !blobs.put_if_absent(&name, body, "image/png").await.unwrap(),
            "already there"
        );
    }
    // Written by the client, read by the fast path.
    let other = Bytes::from(vec![9u8; 3000]);
    let name = sha(&other);
    let mut reader = &other[..];
    bus.blobs.put(name.as_str(), &mut reader).await.unwrap();
    assert_eq!(blobs.read(&name).await.unwrap(), Some(other));
    // A deleted blob reads as absent and is written again (through the replacing path).
    let name = sha(&small);
    bus.blobs.delete(&name).await.unwrap();
    assert_eq!(blobs.read(&name).await.unwrap(), None);
    assert!(blobs
        .put_if_absent(&name, &small, "image/png")
        .await
        .unwrap());
    assert_eq!(read_with_client(&bus, &name).await, small.to_vec());
    assert_eq!(blobs.read(&name).await.unwrap(), Some(small));
}

/// Messages stored in the blob stream so far.
async fn stored(bus: &Bus) -> u64 {
    let mut stream = bus
        .js
        .get_stream(format!("OBJ_{}", bus.config.blob_bucket))
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_one_chunk_blob_is_written_without_a_lookup_and_once() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let blobs = BlobStore::open(&bus).await.unwrap();
    let chunk_of = |name: &str| format!("$O.{}.C.{name}", bus.config.blob_bucket);

    // new: chunk on the hash's subject, then the info; a second put stores nothing
    let body = Bytes::from(vec![3u8; 4000]);
    let name = sha(&body);
    assert!(blobs
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(blobs.info(&name).await.unwrap().unwrap().nuid, name);
    assert_eq!(stored(&bus).await, 2);
    assert!(!blobs
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(stored(&bus).await, 2, "a refused chunk is not stored");
    assert_eq!(read_with_client(&bus, &name).await, body.to_vec());

    // a writer that stopped between its chunk and its info: the next put completes it
    let body = Bytes::from(vec![4u8; 4000]);
    let name = sha(&body);
    bus.js
        .publish(chunk_of(&name), body.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(blobs.info(&name).await.unwrap().is_none());
    assert!(blobs
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(read_with_client(&bus, &name).await, body.to_vec());

    // stored by an earlier version (a random nuid): left as it is, the new chunk purged
    let body = Bytes::from(vec![5u8; 4000]);
    let name = sha(&body);
    let mut reader = &body[..];
    bus.blobs.put(name.as_str(), &mut reader).await.unwrap();
    let before = blobs.info(&name).await.unwrap().unwrap();
    assert_ne!(before.nuid, name);
    assert!(!blobs
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(blobs.info(&name).await.unwrap().unwrap().nuid, before.nuid);
    let stream = bus
        .js
        .get_stream(format!("OBJ_{}", bus.config.blob_bucket))
        .await
        .unwrap();
    assert!(
        stream
            .get_last_raw_message_by_subject(&chunk_of(&name))
            .await
            .is_err(),
        "no orphan chunk"
    );
    assert_eq!(read_with_client(&bus, &name).await, body.to_vec());
}

#[tokio::test]
async fn racing_writers_of_new_bytes_both_succeed_and_the_blob_reads_back() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let blobs = BlobStore::open(&bus).await.unwrap();
    for i in 0..20u8 {
        let body = Bytes::from(vec![i; 1000 + usize::from(i)]);
        let name = sha(&body);
        let puts = (0..4).map(|_| blobs.put_if_absent(&name, &body, "image/png"));
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
        assert_eq!(read_with_client(&bus, &name).await, body.to_vec());
        assert_eq!(blobs.info(&name).await.unwrap().unwrap().nuid, name);
    }
}

#[tokio::test]
async fn a_reader_in_the_writing_process_takes_the_bytes_from_memory_once() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    // as a download and a store stage of one process: two handles, one bus
    let (writer, reader) = (
        BlobStore::open(&bus).await.unwrap(),
        BlobStore::open(&bus).await.unwrap(),
    );
    let body = Bytes::from(vec![3u8; 18_000]);
    let name = sha(&body);

    // off (no store stage turned it on): the read goes to the stream
    assert!(writer
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(reader.read(&name).await.unwrap(), Some(body.clone()));
    assert_eq!(bus.recent_blobs.stats(), (0, 0));

    bus.recent_blobs.set_capacity(1 << 20);
    let other = Bytes::from(vec![4u8; 18_000]);
    let other_name = sha(&other);
    assert!(writer
        .put_if_absent(&other_name, &other, "image/png")
        .await
        .unwrap());
    // already stored: kept too, the store stage still needs it
    assert!(!writer
        .put_if_absent(&name, &body, "image/png")
        .await
        .unwrap());
    assert_eq!(reader.read(&other_name).await.unwrap(), Some(other.clone()));
    assert_eq!(reader.read(&name).await.unwrap(), Some(body.clone()));
    assert_eq!(bus.recent_blobs.stats(), (2, 0), "both from memory");
    // handed out once: a retry reads the stream, which has the same bytes
    assert_eq!(reader.read(&other_name).await.unwrap(), Some(other));
    assert_eq!(bus.recent_blobs.stats(), (2, 1));
    // the stream is the truth: the bytes are there for another process
    assert_eq!(read_with_client(&bus, &name).await, body.to_vec());
}
