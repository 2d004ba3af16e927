//! Replicas on a real three-node JetStream cluster on loopback: a start with R3
//! configured leaves an R1 stream alone, `topology apply` makes it R3 (and back to R1
//! only with leave to weaken), and a client given every server's URL rides out the
//! loss of the server it was connected to.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use imgcrawl_bus::topology_admin::{apply, inspect};
use imgcrawl_bus::topology_diff::{Field, Verdict};
use imgcrawl_bus::{topology, Bus, BusConfig};
use imgcrawl_tests::cluster::{ClusterOptions, NatsCluster};
use imgcrawl_tests::wait_until;

async fn info(js: &jetstream::Context) -> stream::Info {
    topology::stream_info(js, "IMGCRAWL")
        .await
        .unwrap()
        .expect("stream exists")
}

/// Waits until the stream has `n` replicas, all current.
async fn all_current(js: &jetstream::Context, n: usize) {
    let ok = wait_until(Duration::from_secs(30), || async {
        let Ok(Some(i)) = topology::stream_info(js, "IMGCRAWL").await else {
            return false;
        };
        let peers = i.cluster.map(|c| c.replicas).unwrap_or_default();
        i.config.num_replicas == n && peers.len() == n - 1 && peers.iter().all(|p| p.current)
    })
    .await;
    assert!(ok, "R{n} current: {:?}", info(js).await.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_to_r3_by_an_operator_never_by_a_start() {
    let mut cluster = NatsCluster::start(3, ClusterOptions::default()).await;
    let r1 = BusConfig::with_url(cluster.urls());
    let bus = Bus::connect(r1.clone()).await.unwrap();
    let js = bus.js.clone();
    assert_eq!(info(&js).await.config.num_replicas, 1);

    let r3 = BusConfig {
        replicas: 3,
        ..r1.clone()
    };
    drop(Bus::connect(r3.clone()).await.unwrap());
    assert_eq!(
        info(&js).await.config.num_replicas,
        1,
        "a start changes nothing"
    );
    let reports = inspect(&js, &r3).await.unwrap();
    let c = &reports[0].changes;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].field, c[0].verdict),
        (Field::Replicas, Verdict::Apply)
    );

    let done = apply(&js, &r3, false).await.unwrap();
    assert!(done.iter().all(|a| a.refused.is_empty()), "{done:?}");
    all_current(&js, 3).await;
    for r in inspect(&js, &r3).await.unwrap() {
        assert!(r.changes.is_empty(), "{}: {:?}", r.target.name, r.changes);
    }

    // events published before a node dies are all there after it, through any server
    for i in 0..20 {
        js.publish(format!("imgcrawl.test.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let connected = bus.client.server_info().server_name;
    let victim = cluster
        .index_of(&connected)
        .expect("connected to one of the nodes");
    cluster.kill(victim);
    let ok = wait_until(Duration::from_secs(30), || async {
        match js.publish("imgcrawl.test.after", "y".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    assert!(ok, "the client reconnected to another server and publishes");
    assert_ne!(bus.client.server_info().server_name, connected);
    assert!(info(&js).await.state.messages >= 21);

    // back to R1 only with leave (and with the dead node restarted)
    cluster.start_again(victim).unwrap();
    cluster.wait_ready().await.unwrap();
    all_current(&js, 3).await;
    let back = apply(&js, &r1, false).await.unwrap();
    assert_eq!(back[0].skipped[0].verdict, Verdict::Weakens);
    assert_eq!(info(&js).await.config.num_replicas, 3);
    apply(&js, &r1, true).await.unwrap();
    assert_eq!(info(&js).await.config.num_replicas, 1);
}
