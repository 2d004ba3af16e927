//! The worker loop's guarantees against a real nats-server: a panicking handler is
//! dead-lettered with the panic message, long work keeps its message through
//! in-progress acks, and a message whose dead letter is refused on its last delivery
//! is dead-lettered later from the server's max-deliveries advisory, never dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use imgcrawl_bus::dlq;

mod common;
use common::dead_letters;
use imgcrawl_bus::topology::ConsumerSpec;
use imgcrawl_bus::worker::{run_worker, Delivery, WorkerOptions};
use imgcrawl_bus::{Bus, BusConfig, Outcome};
use imgcrawl_events::{Event, EventKind, ImageDeleted};
use imgcrawl_tests::process::Proc;
use imgcrawl_tests::{free_port, nats::nats_binary, wait_for_tcp, wait_until, NatsServer};
use tokio_util::sync::CancellationToken;

fn deleted(sha: char) -> Event {
    Event::ImageDeleted(ImageDeleted {
        sha256: sha.to_string().repeat(64),
        reason: None,
        occurred_at: chrono::Utc::now(),
    })
}

fn sha_of(d: &Delivery) -> char {
    match &d.event {
        Event::ImageDeleted(e) => e.sha256.chars().next().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

fn spec(name: &str, ack_wait: Duration, max_deliver: i64) -> ConsumerSpec {
    let mut s = ConsumerSpec::new(name, [EventKind::ImageDeleted.subject()]);
    s.ack_wait = ack_wait;
    s.max_deliver = max_deliver;
    s
}

async fn publish(bus: &Bus, events: &[Event]) {
    bus.publisher().publish_all(events).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_dead_lettered_with_the_panic_message() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    publish(&bus, &[deleted('a'), deleted('b'), deleted('c')]).await;
    let done = Arc::new(AtomicUsize::new(0));
    let (d, stop) = (done.clone(), CancellationToken::new());
    let handler = move |delivery: Delivery| {
        let d = d.clone();
        async move {
            if sha_of(&delivery) == 'b' {
                panic!("boom on {}", delivery.stream_sequence);
            }
            d.fetch_add(1, Ordering::SeqCst);
            Outcome::Done
        }
    };
    let worker = tokio::spawn({
        let (bus, stop) = (bus.clone(), stop.clone());
        async move {
            let s = spec("panicky", Duration::from_secs(2), 4);
            run_worker(&bus, s, WorkerOptions::default(), handler, stop).await
        }
    });
    let dead = wait_until(Duration::from_secs(20), || async {
        dead_letters(&bus).await.len() == 1
    })
    .await;
    assert!(dead, "one dead letter");
    let dl = &dead_letters(&bus).await[0];
    assert_eq!(
        (dl.stage.as_str(), dl.stream_sequence, dl.delivered),
        ("panicky", 2, 1)
    );
    assert_eq!(dl.reason, "handler panicked: boom on 2");
    assert_eq!(done.load(Ordering::SeqCst), 2, "the others were handled");
    // terminated, not redelivered: nothing pending, nothing in flight
    let stream = bus.js.get_stream("IMGCRAWL").await.unwrap();
    let settled = wait_until(Duration::from_secs(10), || {
        let stream = stream.clone();
        async move {
            let mut c = stream
                .get_consumer::<jetstream::consumer::pull::Config>("panicky")
                .await
                .unwrap();
            let i = c.info().await.unwrap();
            i.num_ack_pending == 0 && i.num_pending == 0
        }
    })
    .await;
    assert!(settled);
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_work_keeps_its_message_with_in_progress_acks() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    publish(&bus, &[deleted('a')]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, stop) = (calls.clone(), CancellationToken::new());
    let handler = move |_d: Delivery| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            // three and a half times the ack wait
            tokio::time::sleep(Duration::from_millis(3500)).await;
            Outcome::Done
        }
    };
    let s = spec("slow", Duration::from_secs(1), 4);
    let worker = tokio::spawn({
        let (bus, stop) = (bus.clone(), stop.clone());
        async move { run_worker(&bus, s, WorkerOptions::default(), handler, stop).await }
    });
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "never redelivered while worked on"
    );
    assert!(dead_letters(&bus).await.is_empty());
    stop.cancel();
    worker.await.unwrap().unwrap();
}

/// A nats-server with two users: `worker` may not publish dead letters, `admin` may.
struct LockedServer {
    _dir: tempfile::TempDir,
    port: u16,
    _proc: Proc,
}

impl LockedServer {
    async fn start() -> LockedServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                r#"listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{}" }}
authorization {{
  users = [
    {{ user: worker, password: w, permissions: {{ publish: {{ allow: [">"], deny: ["imgcrawl.dlq.>"] }} }} }}
    {{ user: admin, password: a }}
  ]
}}
"#,
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new(nats_binary().unwrap());
        cmd.arg("-c").arg(&conf);
        let proc = Proc::spawn(&mut cmd, &dir.path().join("nats.log")).unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_tcp(addr, Duration::from_secs(10))
            .await
            .expect("nats-server listens");
        LockedServer {
            _dir: dir,
            port,
            _proc: proc,
        }
    }

    async fn bus(&self, user: &str, password: &str) -> Bus {
        let addr = format!("127.0.0.1:{}", self.port);
        let client =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
                .connect(addr.as_str())
                .await
                .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        let js = jetstream::new(client.clone());
        let config = BusConfig::with_url(format!("nats://{addr}"));
        let t = imgcrawl_bus::topology::ensure(&js, &config).await.unwrap();
        Bus {
            client,
            js,
            config,
            blobs: t.blobs,
            seen: imgcrawl_bus::seen::SeenSet::new(t.seen),
            jobs: imgcrawl_bus::jobs::JobStore::new(t.jobs),
            partitioning: t.partitioning,
            recent_blobs: Default::default(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_is_written_later_from_the_max_deliveries_advisory() {
    let server = LockedServer::start().await;
    let admin = server.bus("admin", "a").await;
    let worker_bus = server.bus("worker", "w").await;
    publish(&admin, &[deleted('a')]).await;
    let stop = CancellationToken::new();
    let handler = |_d: Delivery| async { Outcome::Poison("cannot be handled".into()) };
    let worker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let s = spec("refused", Duration::from_secs(1), 2);
            run_worker(&worker_bus, s, WorkerOptions::default(), handler, stop).await
        }
    });
    // both deliveries fail to dead-letter; the server gives up and says so
    let advisories = admin
        .js
        .get_stream(dlq::advisory_stream("IMGCRAWL"))
        .await
        .unwrap();
    let captured = wait_until(Duration::from_secs(60), || {
        let mut s = advisories.clone();
        async move { s.info().await.unwrap().state.messages == 1 }
    })
    .await;
    assert!(
        captured,
        "the max-deliveries advisory is kept in its stream"
    );
    assert!(
        dead_letters(&admin).await.is_empty(),
        "the worker may not write it"
    );

    // someone allowed to write dead letters handles the kept advisory
    let writer = tokio::spawn(dlq::run_advisories(
        admin.clone(),
        "refused".into(),
        vec!["refused".into()],
        stop.clone(),
    ));
    let written = wait_until(Duration::from_secs(30), || async {
        dead_letters(&admin).await.len() == 1
    })
    .await;
    assert!(written, "dead-lettered from the advisory");
    let dl = &dead_letters(&admin).await[0];
    assert_eq!((dl.stage.as_str(), dl.stream_sequence), ("refused", 1));
    assert!(dl.reason.contains("max deliveries"), "{}", dl.reason);
    assert!(
        dl.payload.contains(&"a".repeat(64)),
        "the original body: {}",
        dl.payload
    );
    stop.cancel();
    let _ = worker.await.unwrap();
    writer.await.unwrap().unwrap();
    // and the advisory was acked: a new reader of it finds nothing pending
    let mut c = advisories
        .get_consumer::<jetstream::consumer::pull::Config>("dlq-refused")
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

#[tokio::test]
async fn a_duplicate_publish_is_stored_once_and_counts_as_stored() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let e = deleted('d');
    bus.publisher()
        .publish_all(std::slice::from_ref(&e))
        .await
        .expect("first");
    bus.publisher()
        .publish_all(std::slice::from_ref(&e))
        .await
        .expect("a duplicate names the stored copy, which holds our message id");
    let stream = bus.js.get_stream(&bus.config.stream).await.unwrap();
    assert_eq!(stream.cached_info().state.messages, 1);
}
