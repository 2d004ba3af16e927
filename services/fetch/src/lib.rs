//! Shared HTTP machinery for the crawl and download stages.
//!
//! * [`Fetcher`]: one reqwest client per process; [`Fetcher::get`] follows redirects by
//!   hand and checks every hop (scheme, [address guard](guard), scope, robots.txt,
//!   loops, cap), waiting for per-host politeness (concurrency and interval).
//! * [`Fetched::read_capped`]: streams a body under a byte cap.
//! * [`guard`]: which addresses may be connected to (private, loopback and link-local
//!   targets are refused unless the operator allows them).
//! * robots.txt is fetched, cached per origin and matched with `texting_robots`.

mod body;
mod config;
mod error;
mod fetcher;
pub mod guard;
mod hosts;
pub mod lease_store;
pub mod leases;
mod politeness;
mod robots;

pub use config::FetchConfig;
pub use error::{BodyError, FetchError};
pub use fetcher::{Fetched, Fetcher, RequestOptions};
pub use hosts::Hosts;
pub use lease_store::{KvLeaseStore, LeaseStore, MemoryLeaseStore};
pub use leases::{LeaseConfig, Leases};
pub use robots::RobotsRules;

#[cfg(test)]
mod tests;
