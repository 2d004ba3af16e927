//! Serves a [`Site`] on loopback with axum, recording every request for assertions.
//!
//! The server answers any `Host`, so a site served on `127.0.0.1:<port>` is also reachable
//! as `localhost:<port>`: the alternate, out-of-scope origin of the generated sites. It
//! stops when [`SiteServer::shutdown`] is awaited or when the handle is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::SiteError;
use crate::site::{Origins, Resource, Site};

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRequest {
    /// HTTP method.
    pub method: String,
    /// The `Host` header (empty when absent).
    pub host: String,
    /// Path and query as requested (percent-encoded).
    pub path: String,
    /// Status sent.
    pub status: u16,
}

/// State shared by the handler and the handle.
struct Shared {
    site: Arc<Site>,
    origins: Origins,
    log: Mutex<Vec<ServedRequest>>,
    faults: Mutex<HashMap<String, (usize, u16)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running site server; stops on drop.
pub struct SiteServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Serves `site` on `addr` (use port 0 for a free port) until shut down.
pub async fn serve(site: Arc<Site>, addr: SocketAddr) -> Result<SiteServer, SiteError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SiteError::Bind { addr, source })?;
    let mut local = listener
        .local_addr()
        .map_err(|source| SiteError::Bind { addr, source })?;
    if local.ip().is_unspecified() {
        local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let origins = match local.ip() {
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST => Origins::loopback(local.port()),
        ip => Origins {
            origin: format!("http://{}", SocketAddr::new(ip, local.port())),
            alt_origin: format!("http://localhost:{}", local.port()),
        },
    };
    let shared = Arc::new(Shared {
        site,
        origins,
        log: Mutex::new(Vec::new()),
        faults: Mutex::new(HashMap::new()),
    });
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let graceful = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::warn!(error = %e, "site server stopped with an error");
        }
    });
    tracing::debug!(addr = %local, "site server listening");
    Ok(SiteServer {
        addr: local,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

impl SiteServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's origin with a trailing slash, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> String {
        format!("{}/", self.shared.origins.origin)
    }

    /// The alternate (out-of-scope) origin with a trailing slash, e.g. `http://localhost:41234/`.
    pub fn alt_base_url(&self) -> String {
        format!("{}/", self.shared.origins.alt_origin)
    }

    /// The origins used to fill the site's placeholders.
    pub fn origins(&self) -> &Origins {
        &self.shared.origins
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        Site::url(&self.shared.origins.origin, path)
    }

    /// The absolute URL of `path` on the alternate origin.
    pub fn alt_url(&self, path: &str) -> String {
        Site::url(&self.shared.origins.alt_origin, path)
    }

    /// The seed URL of the site.
    pub fn seed_url(&self) -> String {
        self.url(&self.shared.site.seed_path)
    }

    /// The site being served.
    pub fn site(&self) -> &Arc<Site> {
        &self.shared.site
    }

    /// How many requests (any host, any method) asked for exactly `path` (path and query).
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<ServedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Answers the next `times` requests for `path` with `status` (e.g. 503) instead of
    /// the resource, to exercise retries.
    pub fn fail_next(&self, path: &str, times: usize, status: u16) {
        lock(&self.shared.faults).insert(path.into(), (times, status));
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SiteServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The status to answer `path` with if a fault is armed for it.
fn take_fault(shared: &Shared, path: &str) -> Option<u16> {
    let mut faults = lock(&shared.faults);
    let (left, status) = faults.get_mut(path)?;
    let status = *status;
    *left -= 1;
    if *left == 0 {
        faults.remove(path);
    }
    Some(status)
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let resource = match take_fault(&shared, &path) {
        Some(status) => Some(Resource::error(status)),
        None => shared
            .site
            .get(&path)
            .or_else(|| shared.site.get(req.uri().path()))
            .cloned(),
    };
    let response = match resource {
        Some(r) => respond(&r, &shared.origins),
        None => respond(&Resource::error(404), &shared.origins),
    };
    let status = response.status().as_u16();
    tracing::trace!(%host, %path, status, "served");
    lock(&shared.log).push(ServedRequest {
        method: req.method().to_string(),
        host,
        path,
        status,
    });
    response
}

fn respond(res: &Resource, origins: &Origins) -> Response {
    let (headers, body) = res.render(origins);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
