//! The integration-test harness: real components per test, on free loopback ports, in
//! temp dirs, cleaned up on drop.
//!
//! * [`NatsServer`]: `nats-server -js` (>= 2.10); kill, restart, pause for crash tests.
//! * [`Postgres`]: a PostgreSQL server from a cached `initdb` template; `fresh_db()` per
//!   test; kill, stop, start again, pause for failover tests. Works as root (the server
//!   runs as an unprivileged user).
//! * [`S3Server`]: a real S3-compatible server (`s3s-fs`) with SigV4 auth; `bucket()`.
//! * [`certs`]: a throwaway CA, server and client certificates (made with `openssl`).
//! * [`wait`]: free ports and polling helpers.
//! * [`sitegen`]: the generated websites and their server (re-exported).

pub mod certs;
pub mod chaos;
pub mod cluster;
mod error;
pub mod nats;
pub mod netns;
pub mod nodes;
pub mod pg_setup;
pub mod pipeline;
pub mod postgres;
pub mod process;
pub mod s3;
pub mod wait;

pub use certs::TestCerts;
pub use error::HarnessError;
pub use imgcrawl_sitegen as sitegen;
pub use nats::NatsServer;
pub use nodes::pg_nodes;
pub use pipeline::{Pipeline, Stage};
pub use postgres::Postgres;
pub use process::{target_dir, workspace_root};
pub use s3::S3Server;
pub use wait::{free_port, wait_for, wait_for_tcp, wait_until};
