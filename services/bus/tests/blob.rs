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
