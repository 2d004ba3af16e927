//! imgcrawl's telemetry, shared by every long-running process (workers, the HA
//! watcher, the API):
//!
//! * [`metrics`]: every metric the project exports, defined in one place on
//!   `prometheus-client` (the Prometheus project's own Rust client: typed families, no
//!   global recorder magic, no HTTP stack of its own), rendered in the Prometheus
//!   text format;
//! * [`ready`]: the readiness checks a process registers (NATS connected, consumers
//!   bound, database reachable) and the `/readyz` report built from them;
//! * [`http`]: the API's request metrics middleware (route template, not path);
//! * [`server`]: the separate listener serving `/metrics`, `/healthz` and `/readyz`;
//! * [`trace`]: W3C trace context (`traceparent`), and the context of the delivery a
//!   task is handling, which the next published event carries; [`slot`]: that
//!   delivery's handler slot, given back while it only waits (a host's gate);
//! * [`logs`] and [`json`]: the log subscriber (`text` or `json` with stable field
//!   names, and the delivery's job id and trace id on every line);
//! * [`otlp`]: the optional OTLP/HTTP (JSON) export of delivery spans;
//! * [`config`]: the `[telemetry]` settings.
//!
//! Names follow Prometheus conventions: the `imgcrawl_` prefix, base units (seconds,
//! bytes), `_total` on counters, and no per-URL or per-host label. The list with the
//! meaning of each is `docs/observability.md`; a test keeps the two in step.

pub mod config;
pub mod error;
pub mod http;
pub mod json;
pub mod labels;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod ready;
pub mod server;
pub mod slot;
pub mod trace;

pub use config::{Config, LogFormat};
pub use error::TelemetryError;
pub use metrics::metrics;
pub use ready::Readiness;
pub use trace::TraceContext;
