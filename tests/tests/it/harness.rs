//! Tests of the harness itself: real nats-server and PostgreSQL start, serve, survive
//! a crash, and are cleaned up.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use imgcrawl_tests::{wait_until, NatsServer, Postgres};
use sqlx::{Connection, PgConnection};

async fn stream_messages(js: &jetstream::Context) -> u64 {
    js.get_stream("T")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn nats_publishes_to_a_stream_and_keeps_it_across_a_crash() {
    let mut nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    js.create_stream(stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..3 {
        js.publish(format!("t.{i}"), "hello".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(stream_messages(&js).await, 3);
    let port = nats.port();

    nats.restart().await;
    assert_eq!(nats.port(), port);
    let js = jetstream::new(nats.client().await);
    assert_eq!(
        stream_messages(&js).await,
        3,
        "acked messages survive a kill -9"
    );

    let store = nats.store_dir();
    assert!(store.exists());
    drop(nats);
    assert!(!store.exists(), "store removed on drop");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "server gone on drop"
    );
}

#[tokio::test]
async fn nats_is_new_enough_for_the_bus_topology() {
    let nats = NatsServer::start().await;
    let bus = imgcrawl_bus::Bus::connect(imgcrawl_bus::BusConfig::with_url(nats.url())).await;
    assert!(bus.is_ok(), "topology on the test server: {:?}", bus.err());
}

#[tokio::test]
async fn nats_pause_stalls_requests_until_resume() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    nats.pause();
    let stalled = tokio::time::timeout(Duration::from_millis(500), js.query_account()).await;
    assert!(
        stalled.is_err() || stalled.unwrap().is_err(),
        "a paused server must not answer"
    );
    nats.resume();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            js.query_account().await.is_ok()
        })
        .await
    );
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

async fn exec(url: &str, sql: &str) {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
}

#[tokio::test]
async fn postgres_gives_isolated_fresh_databases() {
    let pg = Postgres::start().await;
    let (a, b) = (pg.fresh_db().await, pg.fresh_db().await);
    assert_ne!(a, b);
    exec(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)").await;
    assert_eq!(count(&a, "SELECT count(*) FROM t").await, 2);
    let in_b = "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'";
    assert_eq!(count(&b, in_b).await, 0);
    let named = pg.create_db("named_db").await;
    assert!(named.ends_with("/named_db"));
    assert_eq!(count(&named, "SELECT (41 + 1)::bigint").await, 42);
    assert!(pg.try_create_db("bad; name").await.is_err());
    let version = count(
        &pg.admin_url(),
        "SELECT current_setting('server_version_num')::bigint",
    )
    .await;
    assert!(version >= 120_000, "{version}");
    assert_eq!(
        count(&a, "SELECT (current_setting('fsync') = 'off')::int::bigint").await,
        1
    );
}

#[tokio::test]
async fn postgres_survives_kill_and_resumes_after_pause() {
    let mut pg = Postgres::start().await;
    let db = pg.fresh_db().await;
    exec(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)").await;
    pg.kill();
    assert!(!pg.is_running());
    assert!(PgConnection::connect(&db).await.is_err());
    pg.start_again().await.unwrap();
    assert_eq!(
        count(&db, "SELECT sum(x)::bigint FROM t").await,
        7,
        "committed rows survive a crash"
    );

    pg.pause();
    let stalled =
        tokio::time::timeout(Duration::from_millis(500), PgConnection::connect(&db)).await;
    assert!(stalled.is_err(), "a paused server must not answer");
    pg.resume();
    assert_eq!(count(&db, "SELECT count(*) FROM t").await, 1);

    pg.stop().await;
    assert!(!pg.is_running());
    pg.start_again().await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM t").await, 1);
    let data = pg.data_dir();
    drop(pg);
    assert!(!data.exists(), "data dir removed on drop");
}
