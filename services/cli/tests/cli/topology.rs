//! `imgcrawl topology` and the `[bus]` settings as a user runs them, against a real
//! nats-server: a worker start leaves a hand-made stream alone, `apply --dry-run`
//! lists the difference and changes nothing, `apply` changes it; a refused login
//! names what to check and never prints the secret.

use std::process::{Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use imgcrawl_bus::{topology, BusConfig};
use imgcrawl_tests::{wait_until, NatsServer};

use super::{imgcrawl, text, Reap, BIN};

async fn stream_config(js: &jetstream::Context) -> stream::Config {
    topology::stream_info(js, "IMGCRAWL")
        .await
        .unwrap()
        .expect("stream exists")
        .config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_start_keeps_a_hand_made_stream_and_topology_apply_changes_it() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    let mut made = topology::stream_config(&BusConfig::default());
    made.duplicate_window = Duration::from_secs(1200);
    js.create_stream(made).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imgcrawl.toml");
    std::fs::write(&file, "[bus]\nduplicate_window_secs = 1800\n").unwrap();
    let env = vec![
        ("NATS_URL", nats.url()),
        ("IMGCRAWL_CONFIG", file.display().to_string()),
    ];

    // a worker starts with the config and leaves the stream's settings alone
    let mut run = Command::new(BIN);
    run.args(["run", "--stage", "crawl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        run.env(k, v);
    }
    let worker = Reap(run.spawn().unwrap());
    let stream = js.get_stream("IMGCRAWL").await.unwrap();
    wait_until(Duration::from_secs(30), || {
        let s = stream.clone();
        async move { s.consumer_info(imgcrawl_crawl::CONSUMER).await.is_ok() }
    })
    .await;
    drop(worker);
    let before = stream_config(&js).await;
    assert_eq!(before.duplicate_window, Duration::from_secs(1200));

    let out = imgcrawl(&env, &["topology", "apply", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("duplicate_window: 1200s -> 1800s (apply changes it)"),
        "{shown}"
    );
    assert!(shown.contains("kv bucket imgcrawl-ha"), "{shown}");
    assert!(shown.contains("dry run: nothing changed"), "{shown}");
    assert_eq!(
        stream_config(&js).await,
        before,
        "a dry run changes nothing"
    );
    assert!(
        js.get_key_value("imgcrawl-ha").await.is_err(),
        "nor creates anything"
    );

    let out = imgcrawl(&env, &["topology", "apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = text(&out.stdout);
    assert!(
        done.contains("changed duplicate_window: 1200s -> 1800s"),
        "{done}"
    );
    let after = stream_config(&js).await;
    assert_eq!(after.duplicate_window, Duration::from_secs(1800));
    assert_eq!(after.metadata, before.metadata, "the stream id is kept");
    assert!(
        js.get_key_value("imgcrawl-ha").await.is_ok(),
        "missing ones created"
    );

    // a shorter window weakens: only with --allow-weaker
    let env_600 = [
        env.clone(),
        vec![("IMGCRAWL_NATS_DUPLICATE_WINDOW_SECS", "600".into())],
    ]
    .concat();
    let out = imgcrawl(&env_600, &["topology", "apply"]);
    assert!(
        text(&out.stdout).contains("only with --allow-weaker"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        stream_config(&js).await.duplicate_window,
        Duration::from_secs(1800)
    );
    let out = imgcrawl(&env_600, &["topology", "apply", "--allow-weaker"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        stream_config(&js).await.duplicate_window,
        Duration::from_secs(600)
    );

    let out = imgcrawl(&env, &["topology", "show"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("replicas 1 (standalone server)"), "{shown}");
    assert!(shown.contains("duplicate_window 600s"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_never_printed() {
    let token = "tok-cli-8e61f0";
    let nats =
        NatsServer::start_with_config(&format!("authorization {{ token: \"{token}\" }}")).await;
    let wrong = "tok-wrong-2b9d";
    let env = vec![
        ("NATS_URL", nats.url()),
        ("IMGCRAWL_NATS_TOKEN", wrong.to_string()),
        ("RUST_LOG", "trace".to_string()),
    ];
    // the token in the URL instead
    let in_url = vec![
        (
            "NATS_URL",
            format!("nats://{wrong}@127.0.0.1:{}", nats.port()),
        ),
        ("RUST_LOG", "trace".to_string()),
    ];
    let runs = [
        (&env, &["status"][..]),
        (&env, &["topology", "show"]),
        (&env, &["run", "--stage", "crawl"]),
        (&in_url, &["status"]),
        (&in_url, &["topology", "apply", "--dry-run"]),
    ];
    for (env, args) in runs {
        let out = imgcrawl(env, args);
        assert!(!out.status.success(), "{args:?}");
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert!(e.contains("check the credentials"), "{args:?}: {e}");
        for s in [token, wrong] {
            assert!(
                !o.contains(s) && !e.contains(s),
                "{args:?} printed a secret: {o}{e}"
            );
        }
    }
    let ok = vec![
        ("NATS_URL", nats.url()),
        ("IMGCRAWL_NATS_TOKEN", token.to_string()),
    ];
    let out = imgcrawl(&ok, &["topology", "apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(token));
}
