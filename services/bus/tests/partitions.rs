//! Host-partitioned work against a real nats-server: routed events land on their
//! partition's subject, each partition is pulled by one replica at a time, a replica
//! that joins gets its share, and the partitions of a replica that dies are taken over
//! once their leases expire, with every event handled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgcrawl_bus::partitions::PartitionBy;
use imgcrawl_bus::topology::ConsumerSpec;
use imgcrawl_bus::worker::{run_work, Delivery, Work, WorkerOptions};
use imgcrawl_bus::{Bus, BusConfig, Outcome};
use imgcrawl_events::{Event, EventKind, FoundBy, ImageDiscovered};
use imgcrawl_tests::{wait_until, NatsServer};
use tokio_util::sync::CancellationToken;

mod common;
use common::dead_letters;
use uuid::Uuid;

const PARTITIONS: u16 = 8;
const TTL_MS: u64 = 1_500;

fn image(host: usize, i: usize) -> Event {
    Event::ImageDiscovered(ImageDiscovered {
        job_id: Uuid::nil(),
        url: format!("http://h{host}.test/{i}.png"),
        page_url: format!("http://h{host}.test/"),
        alt: None,
        found_by: FoundBy::ImgSrc,
        occurred_at: chrono::Utc::now(),
    })
}

fn config(url: &str) -> BusConfig {
    BusConfig {
        partitions: PARTITIONS,
        partition_by: PartitionBy::Host,
        partition_lease_ttl_ms: TTL_MS,
        ..BusConfig::with_url(url)
    }
}

fn work() -> Work {
    let mut spec = ConsumerSpec::new("fetchers", [EventKind::ImageDiscovered.subject()]);
    // a message a handing-over replica received after its last read comes back after this
    spec.ack_wait = Duration::from_secs(3);
    Work {
        stage: "fetchers".into(),
        shared: Some(spec.clone()),
        partitioned: Some(spec),
    }
}

/// Who handled what: (replica, url, subject, when).
type Log = Arc<Mutex<Vec<(usize, String, String, Instant)>>>;

/// A running replica: its stop token, its task, its connection.
struct Replica {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    client: async_nats::Client,
}

impl Replica {
    /// Dies: no clean release, its connection gone.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = self.client.drain().await;
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// Starts replica `id` on its own connection.
async fn replica(url: &str, id: usize, log: Log) -> Replica {
    let bus = Bus::connect(config(url)).await.unwrap();
    let client = bus.client.clone();
    let stop = CancellationToken::new();
    let handler = move |d: Delivery| {
        let log = log.clone();
        async move {
            if let Event::ImageDiscovered(e) = &d.event {
                log.lock()
                    .unwrap()
                    .push((id, e.url.clone(), d.subject.clone(), Instant::now()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Outcome::Done
        }
    };
    let opts = WorkerOptions {
        concurrency: 4,
        ..Default::default()
    };
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { run_work(&bus, work(), opts, handler, stop).await.unwrap() }
    });
    Replica { stop, task, client }
}

fn host_of(url: &str) -> String {
    url.split('/').nth(2).unwrap().to_string()
}

/// Replicas that handled each partition subject among log entries after `since`.
fn owners(log: &Log, since: Instant) -> BTreeMap<String, BTreeSet<usize>> {
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (id, _, subject, at) in log.lock().unwrap().iter() {
        if *at >= since {
            out.entry(subject.clone()).or_default().insert(*id);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_owned_once_rebalanced_on_join_and_taken_over_on_death() {
    let nats = NatsServer::start().await;
    let publisher = Bus::connect(config(&nats.url())).await.unwrap();
    assert_eq!(publisher.partitioning.count, PARTITIONS);
    let log: Log = Log::default();

    // one replica takes every partition
    let r0 = replica(&nats.url(), 0, log.clone()).await;
    let batch: Vec<Event> = (0..40)
        .flat_map(|h| (0..5).map(move |i| image(h, i)))
        .collect();
    publisher.publisher().publish_all(&batch).await.unwrap();
    let all_done = |n: usize| {
        let log = log.clone();
        move || {
            let log = log.clone();
            async move {
                let urls: BTreeSet<String> =
                    log.lock().unwrap().iter().map(|e| e.1.clone()).collect();
                urls.len() >= n
            }
        }
    };
    assert!(wait_until(Duration::from_secs(30), all_done(200)).await);
    {
        let log = log.lock().unwrap();
        // routed by host: one host, one partition subject
        let mut subject_of_host: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (_, url, subject, _) in log.iter() {
            subject_of_host
                .entry(host_of(url))
                .or_default()
                .insert(subject.clone());
        }
        assert_eq!(subject_of_host.len(), 40);
        for (host, subjects) in &subject_of_host {
            assert_eq!(subjects.len(), 1, "{host}: {subjects:?}");
            let s = subjects.iter().next().unwrap();
            assert!(s.starts_with("imgcrawl.image.discovered.p"), "{s}");
        }
    }

    // two more join while replica 0 is busy: it hands partitions over with messages
    // in hand, which go back to the stream without spending their deliveries
    let batch: Vec<Event> = (0..40)
        .flat_map(|h| (5..10).map(move |i| image(h, i)))
        .collect();
    publisher.publisher().publish_all(&batch).await.unwrap();
    let r1 = replica(&nats.url(), 1, log.clone()).await;
    let r2 = replica(&nats.url(), 2, log.clone()).await;
    assert!(wait_until(Duration::from_secs(30), all_done(400)).await);
    tokio::time::sleep(Duration::from_millis(4 * TTL_MS)).await;
    assert_eq!(
        dead_letters(&publisher).await.len(),
        0,
        "a handover dead-letters nothing"
    );

    // settled: the partitions spread out, each pulled by one replica
    let since = Instant::now();
    let batch: Vec<Event> = (0..40)
        .flat_map(|h| (10..15).map(move |i| image(h, i)))
        .collect();
    publisher.publisher().publish_all(&batch).await.unwrap();
    assert!(wait_until(Duration::from_secs(30), all_done(600)).await);
    let after_join = owners(&log, since);
    let mut per_replica: BTreeMap<usize, usize> = BTreeMap::new();
    for (subject, ids) in &after_join {
        assert_eq!(ids.len(), 1, "{subject} pulled by {ids:?} at once");
        *per_replica.entry(*ids.iter().next().unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_replica.len(),
        3,
        "every replica works some partitions: {per_replica:?}"
    );

    // replica 0 dies (no clean release): its partitions come back after the lease
    r0.kill().await;
    let died = Instant::now();
    let dead_subjects: BTreeSet<String> = after_join
        .iter()
        .filter(|(_, ids)| ids.contains(&0))
        .map(|(s, _)| s.clone())
        .collect();
    assert!(!dead_subjects.is_empty());
    let batch: Vec<Event> = (0..40)
        .flat_map(|h| (15..20).map(move |i| image(h, i)))
        .collect();
    publisher.publisher().publish_all(&batch).await.unwrap();
    assert!(wait_until(Duration::from_secs(30), all_done(800)).await);
    let taken_over = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.3 >= died && dead_subjects.contains(&e.2))
        .map(|e| e.3.duration_since(died))
        .min()
        .unwrap();
    eprintln!("takeover of a dead replica's partitions: {taken_over:?} (lease ttl {TTL_MS} ms)");
    assert!(
        taken_over >= Duration::from_millis(TTL_MS / 2)
            && taken_over <= Duration::from_millis(TTL_MS + TTL_MS / 3 + 1_000),
        "taken over within a lease plus a tick: {taken_over:?}"
    );
    assert!(
        log.lock().unwrap().iter().all(|e| e.3 < died || e.0 != 0),
        "nothing handled by the dead replica"
    );
    r1.stop().await;
    r2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrouted_event_is_still_handled_by_the_shared_consumer() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(config(&nats.url())).await.unwrap();
    let log: Log = Log::default();
    let r = replica(&nats.url(), 0, log.clone()).await;
    // as a release before partitions (or `nats pub`) would publish it
    let e = image(1, 1);
    let enc = e.encode();
    imgcrawl_bus::publish::Publisher::new(bus.js.clone())
        .send_raw(
            &enc.subject,
            imgcrawl_bus::publish::headers(&enc),
            enc.payload.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    bus.publisher().publish(&image(1, 2)).await.unwrap();
    let seen = wait_until(Duration::from_secs(20), || async {
        log.lock().unwrap().len() == 2
    })
    .await;
    assert!(seen, "both handled: {:?}", log.lock().unwrap());
    let subjects: BTreeSet<String> = log.lock().unwrap().iter().map(|e| e.2.clone()).collect();
    assert!(
        subjects.contains("imgcrawl.image.discovered"),
        "{subjects:?}"
    );
    assert_eq!(subjects.len(), 2, "one routed, one not: {subjects:?}");
    r.stop().await;
}
