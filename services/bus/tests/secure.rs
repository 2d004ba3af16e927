//! Connecting to a secured nats-server started by the test: TLS with a private CA,
//! mutual TLS, user and password, token, NKey, and a server list whose first server
//! is dead. Secrets never appear in errors.

use imgcrawl_bus::config::Secret;
use imgcrawl_bus::{Bus, BusConfig, BusError};
use imgcrawl_tests::{free_port, NatsServer, TestCerts};

/// The config for `nats` with the given changes, failing fast.
fn cfg(url: String) -> BusConfig {
    BusConfig {
        connect_attempts: 1,
        connect_timeout_secs: 3,
        ..BusConfig::with_url(url)
    }
}

/// Connects and proves JetStream answers (the topology was created).
async fn works(c: BusConfig) {
    let bus = Bus::connect(c).await.expect("connect");
    bus.js.query_account().await.expect("jetstream answers");
    assert!(bus.js.get_stream("IMGCRAWL").await.is_ok());
}

async fn refused(c: BusConfig, secrets: &[&str]) -> String {
    let shown = format!("{c:?}");
    let e = match Bus::connect(c).await {
        Ok(_) => panic!("connected but should not"),
        Err(e) => e,
    };
    let msg = e.to_string();
    for s in secrets {
        assert!(!msg.contains(s), "the error shows a secret: {msg}");
        assert!(
            !shown.contains(s),
            "the config's Debug shows a secret: {shown}"
        );
    }
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let nats = NatsServer::start_with_config(&certs.nats_tls_block(true)).await;
    let full = BusConfig {
        tls_ca_file: Some(certs.ca.clone()),
        tls_cert_file: Some(certs.client_cert.clone()),
        tls_key_file: Some(certs.client_key.clone()),
        ..cfg(nats.url())
    };
    works(full.clone()).await;
    // tls:// URLs work the same
    works(BusConfig {
        nats_url: nats.url().replace("nats://", "tls://"),
        ..full.clone()
    })
    .await;

    // no client certificate: the server refuses
    let no_cert = BusConfig {
        tls_cert_file: None,
        tls_key_file: None,
        ..full.clone()
    };
    let msg = refused(no_cert, &[]).await;
    assert!(msg.contains("tls settings"), "{msg}");
    // the system roots do not know the test CA
    let no_ca = BusConfig {
        tls_ca_file: None,
        ..full.clone()
    };
    let msg = refused(no_ca, &[]).await;
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    // a missing file is named, clearly, before any connection
    let missing = BusConfig {
        tls_ca_file: Some(dir.path().join("nope.pem")),
        ..full
    };
    let e = Bus::connect(missing).await.err().expect("refused");
    assert!(matches!(e, BusError::Config(_)), "{e}");
    assert!(e.to_string().contains("nope.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_a_plain_server() {
    let nats = NatsServer::start().await;
    let c = BusConfig {
        tls_required: true,
        ..cfg(nats.url())
    };
    refused(c, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let pw = "pw-3f9a1c7e";
    let nats = NatsServer::start_with_config(&format!(
        "authorization {{ user: alice, password: \"{pw}\" }}"
    ))
    .await;
    let good = BusConfig {
        user: Some("alice".into()),
        password: Some(Secret::new(pw)),
        ..cfg(nats.url())
    };
    works(good.clone()).await;
    let wrong = BusConfig {
        password: Some(Secret::new("wrong-9d2b")),
        ..good.clone()
    };
    let msg = refused(wrong, &["wrong-9d2b", pw]).await;
    assert!(
        msg.contains("authorization") && msg.contains("credentials"),
        "{msg}"
    );
    // credentials in the URL are redacted in the error
    let in_url = cfg(format!("nats://alice:wrong-77aa@127.0.0.1:{}", nats.port()));
    refused(in_url, &["wrong-77aa"]).await;
    refused(cfg(nats.url()), &[pw]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    let token = "tok-51e0b6d2a4";
    let nats =
        NatsServer::start_with_config(&format!("authorization {{ token: \"{token}\" }}")).await;
    works(BusConfig {
        token: Some(Secret::new(token)),
        ..cfg(nats.url())
    })
    .await;
    refused(
        BusConfig {
            token: Some(Secret::new("tok-wrong-0c1d")),
            ..cfg(nats.url())
        },
        &["tok-wrong-0c1d", token],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_seed_file() {
    let user = nkeys::KeyPair::new_user();
    let nats = NatsServer::start_with_config(&format!(
        "authorization {{ users: [ {{ nkey: {} }} ] }}",
        user.public_key()
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("user.nk");
    let seed = user.seed().unwrap();
    std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
    works(BusConfig {
        nkey_seed_file: Some(seed_file),
        ..cfg(nats.url())
    })
    .await;
    let other = nkeys::KeyPair::new_user();
    let other_file = dir.path().join("other.nk");
    let other_seed = other.seed().unwrap();
    std::fs::write(&other_file, &other_seed).unwrap();
    refused(
        BusConfig {
            nkey_seed_file: Some(other_file),
            ..cfg(nats.url())
        },
        &[&other_seed, &seed],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_list_whose_first_server_is_dead() {
    let nats = NatsServer::start().await;
    let dead = format!("nats://127.0.0.1:{}", free_port());
    for _ in 0..4 {
        // the client shuffles the list: try it a few times
        works(cfg(format!("{dead}, {}", nats.url()))).await;
    }
    let e = Bus::connect(cfg(format!("{dead},{dead}")))
        .await
        .err()
        .expect("no server");
    assert!(e.to_string().contains("cannot connect to nats"), "{e}");
}
