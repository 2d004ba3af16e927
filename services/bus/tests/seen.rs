//! The seen-set against a real nats-server: first create wins, a redelivery sees its
//! own claim, and a page found again at a smaller depth takes its claim over (also
//! when several finders race for it), while a deeper or equal finder does not.

use std::collections::HashSet;

use imgcrawl_bus::seen::{Claim, SeenSet};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::NatsServer;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_depth_takes_the_claim_over_and_nothing_else_does() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let seen = &bus.seen;
    let key = SeenSet::key(Uuid::now_v7(), "page", "http://a.test/x");

    assert_eq!(
        seen.claim(&key, "seq:10", Some(5)).await.unwrap(),
        Claim::First
    );
    // the same message redelivered
    assert_eq!(
        seen.claim(&key, "seq:10", Some(5)).await.unwrap(),
        Claim::Mine
    );
    // found again at the same and at a greater depth: not ours
    assert_eq!(
        seen.claim(&key, "seq:11", Some(5)).await.unwrap(),
        Claim::Other
    );
    assert_eq!(
        seen.claim(&key, "seq:12", Some(6)).await.unwrap(),
        Claim::Other
    );
    // at a smaller depth: taken over
    assert_eq!(
        seen.claim(&key, "seq:13", Some(3)).await.unwrap(),
        Claim::Lowered
    );
    assert_eq!(
        seen.owner(&key).await.unwrap(),
        Some(("seq:13".into(), Some(3)))
    );
    // the first owner redelivered now sees another's (shallower) claim
    assert_eq!(
        seen.claim(&key, "seq:10", Some(5)).await.unwrap(),
        Claim::Other
    );
    // and the new owner redelivered sees its own
    assert_eq!(
        seen.claim(&key, "seq:13", Some(3)).await.unwrap(),
        Claim::Mine
    );

    // images have no depth: first create wins, nothing lowers them
    let image = SeenSet::key(Uuid::now_v7(), "image", "http://a.test/x.png");
    assert_eq!(
        seen.claim(&image, "seq:1", None).await.unwrap(),
        Claim::First
    );
    assert_eq!(
        seen.claim(&image, "seq:2", None).await.unwrap(),
        Claim::Other
    );
    // a claim without a depth (written before depths were recorded) is never lowered
    assert_eq!(
        seen.claim(&image, "seq:3", Some(0)).await.unwrap(),
        Claim::Other
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_finders_leave_the_smallest_depth_with_one_owner_per_depth_won() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let seen = bus.seen.clone();
    let key = SeenSet::key(Uuid::now_v7(), "page", "http://a.test/raced");
    assert_eq!(
        seen.claim(&key, "seq:1", Some(9)).await.unwrap(),
        Claim::First
    );
    // 24 finders at depths 1..=8, three per depth, all at once
    let finders: Vec<(String, u32)> = (0..24)
        .map(|i| (format!("seq:{}", 100 + i), 1 + (i % 8) as u32))
        .collect();
    let results = futures::future::join_all(finders.iter().map(|(owner, depth)| {
        let (seen, key) = (seen.clone(), key.clone());
        async move { seen.claim(&key, owner, Some(*depth)).await }
    }))
    .await;
    let mut lowered_depths = Vec::new();
    for ((owner, depth), r) in finders.iter().zip(results) {
        match r.unwrap_or_else(|e| panic!("{owner} at {depth}: {e}")) {
            Claim::Lowered => lowered_depths.push(*depth),
            Claim::Other => {}
            other => panic!("{owner} at {depth}: unexpected {other:?}"),
        }
    }
    let (holder, depth) = seen.owner(&key).await.unwrap().expect("claimed");
    assert_eq!(depth, Some(1), "the smallest depth holds the claim");
    // whoever holds it lowered it last, and a depth-1 finder did
    assert!(lowered_depths.contains(&1), "lowered at {lowered_depths:?}");
    let depth1: HashSet<String> = finders
        .iter()
        .filter(|(_, d)| *d == 1)
        .map(|(o, _)| o.clone())
        .collect();
    assert!(depth1.contains(&holder), "held by {holder}");
    // one winner per depth at most: a lowering always goes strictly down
    let mut sorted = lowered_depths.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), lowered_depths.len(), "{lowered_depths:?}");
}
