//! The API's security controls on a real server: HTTPS with a certificate made by the
//! test, token scopes (read, admin) on every mutation and, when reads are not public,
//! on reads; `X-Forwarded-For` believed only from trusted proxies, so one client behind
//! a proxy cannot spend or reset another's rate limit.

use crate::api_common::{config, ApiServer, TOKEN};

use imgcrawl_api::{Scope, TlsConfig, TokenSource};
use imgcrawl_tests::{Pipeline, TestCerts};
use serde_json::json;

const READ_TOKEN: &str = "read-token-0123456789abcdef";

/// A token file in `dir`.
fn token_file(dir: &std::path::Path, name: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("write token file");
    path
}

async fn server(
    p: &Pipeline,
    tweak: impl FnOnce(&mut imgcrawl_api::Config),
) -> (ApiServer, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("token dir");
    let read = token_file(secrets.path(), "read", READ_TOKEN);
    let cache = tempfile::tempdir().expect("cache dir");
    let mut c = config(&p.db_url, &p.configs.store, cache.path());
    c.tokens = vec![TokenSource {
        name: "dashboards".into(),
        scope: Scope::Read,
        file: Some(read),
        env: None,
    }];
    tweak(&mut c);
    (ApiServer::start(p.bus.clone(), c, cache).await, secrets)
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn every_mutation_needs_an_admin_token_and_a_read_token_is_not_one() {
    let p = Pipeline::start_without_stages().await;
    let (api, _secrets) = server(&p, |_| {}).await;
    let http = client();
    let job = uuid::Uuid::nil();
    for (method, path) in [
        (reqwest::Method::POST, "/api/crawl/start".to_string()),
        (reqwest::Method::POST, "/api/crawl/stop".to_string()),
        (reqwest::Method::DELETE, "/api/images/1".to_string()),
        (reqwest::Method::POST, "/api/ha/failover".to_string()),
    ] {
        let url = format!("{}{path}", api.base);
        let (code, body) = send(&http, method.clone(), &url, None, &[]).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (code, body) = send(&http, method.clone(), &url, Some(READ_TOKEN), &[]).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}"
        );
        let (code, body) = send(
            &http,
            method.clone(),
            &url,
            Some("unknown-token-0123456789"),
            &[],
        )
        .await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
        // the admin token gets past the guard (whatever the handler then says)
        let (code, _) = send(&http, method, &url, Some(TOKEN), &[]).await;
        assert!(code != 401 && code != 403, "{path}: {code}");
    }
    // reads are public by default
    let (code, _) = send(
        &http,
        reqwest::Method::GET,
        &format!("{}/api/crawl/status/{job}", api.base),
        None,
        &[],
    )
    .await;
    assert_ne!(code, 401);
}

#[tokio::test]
async fn private_reads_need_a_read_token_and_the_probes_never_do() {
    let p = Pipeline::start_without_stages().await;
    let (api, _secrets) = server(&p, |c| c.public_reads = false).await;
    let http = client();
    let images = format!("{}/api/images", api.base);
    let (code, body) = send(&http, reqwest::Method::GET, &images, None, &[]).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    for token in [READ_TOKEN, TOKEN] {
        let (code, _) = send(&http, reqwest::Method::GET, &images, Some(token), &[]).await;
        assert!(code != 401 && code != 403, "{code}");
    }
    let (code, _) = send(
        &http,
        reqwest::Method::GET,
        &format!("{}/", api.base),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 401, "the gallery is a read");
    for probe in ["/healthz", "/readyz"] {
        let (code, _) = send(
            &http,
            reqwest::Method::GET,
            &format!("{}{probe}", api.base),
            None,
            &[],
        )
        .await;
        assert!(code == 200 || code == 503, "{probe}: {code}");
    }
}

#[tokio::test]
async fn forwarded_for_is_only_believed_from_trusted_proxies() {
    let p = Pipeline::start_without_stages().await;
    let limited = |trusted: Vec<String>| {
        move |c: &mut imgcrawl_api::Config| {
            c.rate_limit.per_second = 0.01;
            c.rate_limit.burst = 2;
            c.trusted_proxies = trusted;
        }
    };
    let http = client();
    let get = |base: String, who: &'static str| {
        let http = http.clone();
        async move {
            let url = format!("{base}/api/openapi.json");
            send(
                &http,
                reqwest::Method::GET,
                &url,
                None,
                &[("x-forwarded-for", who)],
            )
            .await
            .0
        }
    };

    // behind a trusted proxy (the test is it, on loopback): one bucket per real client
    let (api, _s) = server(&p, limited(vec!["127.0.0.0/8".into()])).await;
    let base = api.base.clone();
    assert_eq!(get(base.clone(), "203.0.113.1").await, 200);
    assert_eq!(get(base.clone(), "203.0.113.1").await, 200);
    assert_eq!(get(base.clone(), "203.0.113.1").await, 429);
    assert_eq!(
        get(base.clone(), "203.0.113.2").await,
        200,
        "another client is not limited"
    );
    // a client cannot pick its own key by writing the header itself: the proxy appends
    assert_eq!(get(base.clone(), "198.51.100.9, 203.0.113.1").await, 429);

    // no trusted proxy: the header is ignored and the peer address is the client (whose
    // first cell `ApiServer::start` spent fetching the document)
    let (api, _s) = server(&p, limited(Vec::new())).await;
    let base = api.base.clone();
    assert_eq!(get(base.clone(), "203.0.113.1").await, 200);
    assert_eq!(
        get(base.clone(), "203.0.113.2").await,
        429,
        "spoofed headers must not buy new buckets"
    );
}

#[tokio::test]
async fn the_api_serves_https_with_the_configured_certificate() {
    let p = Pipeline::start_without_stages().await;
    let dir = tempfile::tempdir().expect("cert dir");
    let certs = TestCerts::generate(dir.path()).expect("certificates");
    let cache = tempfile::tempdir().expect("cache dir");
    let mut c = config(&p.db_url, &p.configs.store, cache.path());
    c.tls = Some(TlsConfig {
        cert: certs.server_cert.clone(),
        key: certs.server_key.clone(),
    });
    let server = imgcrawl_api::Server::bind(p.bus.clone(), c)
        .await
        .expect("bind");
    assert!(server.is_https());
    let addr = server.local_addr().expect("addr");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(server.serve(shutdown.clone()));

    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).expect("ca")).expect("ca pem");
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let (code, _) = send(
        &trusting,
        reqwest::Method::GET,
        &format!("https://127.0.0.1:{}/healthz", addr.port()),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200);
    let body = json!({"url": "http://127.0.0.1:9/"});
    let started = trusting
        .post(format!("https://localhost:{}/api/crawl/start", addr.port()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post over https");
    assert_eq!(started.status().as_u16(), 202, "{:?}", started.text().await);
    // a client that does not trust the CA, and plain http, get nothing
    let untrusting = client();
    assert!(untrusting
        .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await
        .is_err());
    let plain = untrusting
        .get(format!("http://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    drop((trusting, untrusting));
    shutdown.cancel();
    serving.await.expect("join").expect("served until shutdown");
}
