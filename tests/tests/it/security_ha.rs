//! The HA watcher's API is guarded like the main API: the same error shape, an admin
//! token for every mutation (failover, sync), a read token for reads when they are
//! not public, bounded inputs (a huge `timeout_secs` is a 422, not a panic), and
//! HTTPS with a certificate made by the test.

use std::path::PathBuf;

use imgcrawl_api::{Scope, TlsConfig, TokenSource};
use imgcrawl_ha::Watcher;
use imgcrawl_tests::{pg_nodes, Pipeline, TestCerts};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "ha-admin-token-0123456789";
const READ: &str = "ha-read-token-0123456789";

struct Rig {
    _p: Pipeline,
    _dir: tempfile::TempDir,
    certs: TestCerts,
    shutdown: CancellationToken,
    watcher: Watcher,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn write(dir: &std::path::Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("write token");
    path
}

async fn rig(tweak: impl FnOnce(&mut imgcrawl_ha::Config, &TestCerts)) -> Rig {
    let p = Pipeline::start_without_stages().await;
    let dir = tempfile::tempdir().expect("dir");
    let certs = TestCerts::generate(dir.path()).expect("certificates");
    let mut ha = imgcrawl_ha::Config {
        nodes: pg_nodes(&[
            p.db_url.clone(),
            "postgres://imgcrawl@127.0.0.1:9/none".into(),
        ]),
        check_interval_ms: 200,
        consistency_interval_secs: 0,
        listen: "127.0.0.1:0".into(),
        request_timeout_ms: 1000,
        token_file: Some(write(dir.path(), "admin", ADMIN)),
        tokens: vec![TokenSource {
            name: "grafana".into(),
            scope: Scope::Read,
            file: Some(write(dir.path(), "read", READ)),
            env: None,
        }],
        ..Default::default()
    };
    tweak(&mut ha, &certs);
    let shutdown = CancellationToken::new();
    let watcher = imgcrawl_ha::start(p.bus.clone(), ha, shutdown.clone())
        .await
        .expect("start watcher");
    Rig {
        _p: p,
        _dir: dir,
        certs,
        shutdown,
        watcher,
    }
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = match method {
        "POST" => http.post(url),
        _ => http.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

#[tokio::test]
async fn ha_mutations_need_an_admin_token_and_inputs_are_bounded() {
    let rig = rig(|_, _| {}).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let base = format!("http://{}", rig.watcher.api_addr().expect("api"));
    let failover = format!("{base}/api/failover");
    let sync = format!("{base}/api/sync");
    for url in [&failover, &sync] {
        let (s, b) = call(&http, "POST", url, None, None).await;
        assert_eq!((s, code(&b)), (401, Some("unauthorized")), "{url}: {b}");
        let (s, b) = call(&http, "POST", url, Some(READ), None).await;
        assert_eq!(
            (s, code(&b)),
            (403, Some("insufficient_scope")),
            "{url}: {b}"
        );
        let (s, b) = call(&http, "POST", url, Some("wrong-token-0123456789"), None).await;
        assert_eq!((s, code(&b)), (403, Some("forbidden")), "{url}: {b}");
    }
    // the shared checks, with the main API's error shape
    let (s, b) = call(
        &http,
        "POST",
        &failover,
        Some(ADMIN),
        Some(r#"{"target":"nope"}"#),
    )
    .await;
    assert_eq!(
        (s, code(&b), b["error"]["field"].as_str()),
        (404, Some("not_found"), Some("target")),
        "{b}"
    );
    let (s, b) = call(&http, "POST", &failover, Some(ADMIN), Some("{not json")).await;
    assert_eq!((s, code(&b)), (400, Some("malformed_json")), "{b}");
    // a timeout that would overflow an Instant is refused, not a panic
    for t in ["18446744073709551615", "0", "3601"] {
        let url = format!("{sync}?wait=true&timeout_secs={t}");
        let (s, b) = call(&http, "POST", &url, Some(ADMIN), None).await;
        assert_eq!(
            (s, code(&b), b["error"]["field"].as_str()),
            (422, Some("invalid_timeout"), Some("timeout_secs")),
            "{t}: {b}"
        );
    }
    let (s, b) = call(
        &http,
        "POST",
        &format!("{sync}?timeout_secs=soon"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((s, code(&b)), (400, Some("bad_query")), "{b}");
    let (s, b) = call(&http, "POST", &sync, Some(ADMIN), None).await;
    assert_eq!(s, 202, "{b}");
    // the server is still up, and reads are public by default
    let (s, _) = call(&http, "GET", &format!("{base}/api/status"), None, None).await;
    assert_eq!(s, 200);
    let (s, b) = call(&http, "GET", &format!("{base}/api/nope"), None, None).await;
    assert_eq!((s, code(&b)), (404, Some("no_route")));
}

#[tokio::test]
async fn the_ha_api_serves_https_and_private_reads_need_a_token() {
    let rig = rig(|c, certs| {
        c.tls = Some(TlsConfig {
            cert: certs.server_cert.clone(),
            key: certs.server_key.clone(),
        });
        c.public_reads = false;
    })
    .await;
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&rig.certs.ca).expect("ca")).expect("pem");
    let http = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let port = rig.watcher.api_addr().expect("api").port();
    let base = format!("https://127.0.0.1:{port}");
    let (s, _) = call(&http, "GET", &format!("{base}/api/health"), None, None).await;
    assert!(s == 200 || s == 503, "the probe is open: {s}");
    let (s, b) = call(&http, "GET", &format!("{base}/api/status"), None, None).await;
    assert_eq!((s, code(&b)), (401, Some("unauthorized")), "{b}");
    for token in [READ, ADMIN] {
        let (s, b) = call(
            &http,
            "GET",
            &format!("{base}/api/sync-status"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    assert!(
        plain
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_err(),
        "unknown ca"
    );
    let http_only = plain
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await;
    assert!(http_only
        .map(|r| r.status().as_u16() >= 400)
        .unwrap_or(true));
}
