//! The API server of `imgcrawl-api` for integration tests, and a client that checks
//! every answer against the served OpenAPI document: the status must be documented
//! for the operation, and a JSON body must validate against the documented schema
//! (made strict: no undocumented properties). Error bodies must not leak internals.
#![allow(dead_code)]

pub mod listing;
pub mod synthetic;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use imgcrawl_api::{Config, Server};
use imgcrawl_bus::Bus;
use imgcrawl_tests::Pipeline;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The token the test servers accept.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Which `Authorization` header a call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// The right bearer token.
    Good,
    /// Another bearer token.
    Bad,
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The error code of an error answer.
    pub fn code(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Asserts an answer's status and error code (the body is shown if not).
pub fn expect(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.code(), code, "{}", String::from_utf8_lossy(&r.body));
}

/// A running API server.
pub struct ApiServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The served OpenAPI document.
    pub doc: Value,
    /// Thumbnail cache dir.
    pub cache: tempfile::TempDir,
    /// (method, path template, status) of every checked answer.
    pub checked: Mutex<BTreeSet<(String, String, u16)>>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

/// A config for tests: a free port, no rate limit, loopback crawls allowed.
pub fn config(db_url: &str, store: &imgcrawl_store::Config, cache: &std::path::Path) -> Config {
    let mut c = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db_url.to_string(),
        token: Some(TOKEN.into()),
        allow_loopback: true,
        store: store.bucket(),
        ..Config::default()
    };
    c.rate_limit.per_second = 0.0;
    c.thumbnails.cache_dir = cache.to_path_buf();
    c
}

/// Adds `additionalProperties: false` to every object schema that lists properties.
fn strict(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(strict);
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

impl ApiServer {
    /// Starts a server with `config` on `bus`.
    pub async fn start(bus: Bus, config: Config, cache: tempfile::TempDir) -> ApiServer {
        let server = Server::bind(bus, config).await.expect("bind api");
        let addr = server.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let sd = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve(sd).await {
                eprintln!("api server failed: {e}");
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let base = format!("http://{addr}");
        let doc: Value = serde_json::from_slice(
            &http
                .get(format!("{base}/api/openapi.json"))
                .send()
                .await
                .expect("get doc")
                .bytes()
                .await
                .expect("doc"),
        )
        .expect("doc is json");
        ApiServer {
            base,
            doc,
            cache,
            checked: Mutex::default(),
            http,
            shutdown,
            task,
        }
    }

    /// Starts a server on a pipeline's bus, database and bucket, tweaked.
    pub async fn for_pipeline(p: &Pipeline, tweak: impl FnOnce(&mut Config)) -> ApiServer {
        let cache = tempfile::tempdir().expect("cache dir");
        let mut c = config(&p.db_url, &p.configs.store, cache.path());
        tweak(&mut c);
        ApiServer::start(p.bus.clone(), c, cache).await
    }

    /// Sends a request; checks the answer against the document for `template` (empty:
    /// not checked, for paths that are not routes).
    pub async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        auth: Auth,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        req = match auth {
            Auth::None => req,
            Auth::Good => req.bearer_auth(TOKEN),
            Auth::Bad => req.bearer_auth("not-the-token-0123456789"),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let resp = Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.expect("body"),
        };
        if !template.is_empty() {
            self.check(method, template, &resp);
        }
        resp
    }

    /// Sends a raw body with a content type (good token), checked like [`Self::call`].
    pub async fn raw(
        &self,
        method: &str,
        template: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let resp = Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.expect("body"),
        };
        self.check(method, template, &resp);
        resp
    }

    /// `POST /api/crawl/start` with `body`.
    pub async fn start_crawl(&self, auth: Auth, body: Value) -> Resp {
        let path = "/api/crawl/start";
        self.call("POST", path, path, auth, Some(body), &[]).await
    }

    /// `GET path` (route `template`) without a token.
    pub async fn get(&self, template: &str, path: &str) -> Resp {
        self.call("GET", template, path, Auth::None, None, &[])
            .await
    }

    /// Checks an answer against the document.
    pub fn check(&self, method: &str, template: &str, resp: &Resp) {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        let documented = &op["responses"][resp.status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {} which the document does not list: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        self.checked.lock().unwrap().insert((
            method.to_string(),
            template.to_string(),
            resp.status,
        ));
        let is_json = resp
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        if !is_json {
            return;
        }
        let body = resp.json();
        if resp.status >= 400 {
            let msg = body["error"]["message"].as_str().unwrap_or_default();
            for leak in [
                "SELECT",
                "INSERT",
                "sqlx",
                "panicked",
                "backtrace",
                ".rs:",
                "postgres://",
            ] {
                assert!(
                    !msg.contains(leak),
                    "{method} {path} error leaks {leak:?}: {msg}",
                    path = template
                );
            }
        }
        let Some(schema) = documented["content"]["application/json"].get("schema") else {
            panic!(
                "{method} {template} {} answers JSON but documents no JSON schema",
                resp.status
            );
        };
        let mut components = self.doc["components"].clone();
        strict(&mut components);
        let mut target = schema.clone();
        strict(&mut target);
        let root = json!({"components": components, "allOf": [target]});
        let validator = jsonschema::validator_for(&root).expect("valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {}: body violates the document: {errors:#?}\n{body:#}",
            resp.status
        );
    }
}
