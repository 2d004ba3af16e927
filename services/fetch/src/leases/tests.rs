//! Host leases between "processes" (several [`Leases`] on one in-memory store), in
//! real time with short timings.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::lease_store::MemoryLeaseStore;
use crate::politeness::{BackoffConfig, Health};

const CFG: LeaseConfig = LeaseConfig {
    ttl: Duration::from_millis(600),
    margin: Duration::from_millis(100),
    idle_release: Duration::from_millis(80),
    max_hold: Duration::from_millis(300),
    poll: Duration::from_millis(5),
};

fn process(store: &MemoryLeaseStore, name: &str) -> (Leases, Politeness) {
    let store: Arc<dyn LeaseStore> = Arc::new(store.clone());
    (Leases::new(store, name, CFG), Politeness::default())
}

/// Sends `n` requests of `took` each to `host` through `p`'s lease and gate; returns
/// (start, end) of each.
async fn requests(
    p: (Leases, Politeness),
    host: &'static str,
    n: usize,
    took: Duration,
) -> Vec<(Instant, Instant)> {
    let (leases, politeness) = p;
    let mut out = Vec::new();
    for _ in 0..n {
        let (_permit, _hold) = leases
            .slot(host, &politeness, 4, Duration::ZERO)
            .await
            .expect("slot");
        let start = Instant::now();
        tokio::time::sleep(took).await;
        out.push((start, Instant::now()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_have_requests_in_flight_to_one_host_at_once() {
    let store = MemoryLeaseStore::default();
    let a = tokio::spawn(requests(
        process(&store, "a"),
        "h.test",
        30,
        Duration::from_millis(20),
    ));
    let b = tokio::spawn(requests(
        process(&store, "b"),
        "h.test",
        30,
        Duration::from_millis(20),
    ));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for (s, e) in &a {
        for (t, f) in &b {
            assert!(
                e <= t || f <= s,
                "a's request overlapped b's: a {:?}..{:?}, b {:?}..{:?}",
                s.elapsed(),
                e.elapsed(),
                t.elapsed(),
                f.elapsed()
            );
        }
    }
    // both got the host: the lease was handed over while the other waited
    let first_b = b.iter().map(|x| x.0).min().unwrap();
    let last_a = a.iter().map(|x| x.1).max().unwrap();
    assert!(
        first_b < last_a,
        "b waited for a to finish everything: no hand-over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_are_not_held_up() {
    let store = MemoryLeaseStore::default();
    let (leases, politeness) = process(&store, "a");
    let _busy = leases
        .slot("h.test", &politeness, 4, Duration::ZERO)
        .await
        .unwrap();
    let other = process(&store, "b");
    let t0 = Instant::now();
    let _free = other
        .0
        .slot("g.test", &other.1, 4, Duration::ZERO)
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_taken_over_when_it_expires() {
    let store = MemoryLeaseStore::default();
    // a holder that died just now: its record stays until the lease expires
    let dead = Record {
        holder: Some("dead".into()),
        until_ms: now_ms() + ms(CFG.ttl),
        ..Default::default()
    };
    store.create(&key_of("h.test"), dead.bytes()).await.unwrap();
    let (leases, politeness) = process(&store, "b");
    let t0 = Instant::now();
    let _slot = leases
        .slot("h.test", &politeness, 4, Duration::ZERO)
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took >= CFG.ttl - Duration::from_millis(50) && took < CFG.ttl * 2,
        "taken over after {took:?} (ttl {:?})",
        CFG.ttl
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_holder_keeps_the_interval_and_the_backoff() {
    let store = MemoryLeaseStore::default();
    let (a, pa) = process(&store, "a");
    let backoff = BackoffConfig {
        base: Duration::from_millis(400),
        max: Duration::from_secs(5),
    };
    {
        let _s = a.slot("h.test", &pa, 4, Duration::ZERO).await.unwrap();
        pa.observe("h.test", Health::SlowDown(None), Instant::now(), backoff);
    }
    // a releases when idle; b takes over and must wait out a's back-off
    let (b, pb) = process(&store, "b");
    let (_permit, _hold) = b.slot("h.test", &pb, 4, Duration::ZERO).await.unwrap();
    let (_, seeded) = pb.timing("h.test");
    assert_eq!(
        seeded,
        Duration::from_millis(400),
        "the back-off travels with the lease"
    );
    let record = Record::parse(&store.get(&key_of("h.test")).await.unwrap().unwrap().0);
    assert_eq!(record.holder.as_deref(), Some("b"));
    assert_eq!(record.backoff_ms, 400);
    assert!(record.next_at_ms > 0);
}

#[test]
fn host_keys_are_store_safe() {
    assert_eq!(key_of("images.example.com"), "host.images.example.com");
    assert_eq!(key_of("::1"), "hex.3a3a31");
    assert_eq!(key_of("a b"), "hex.612062");
}
