//! Host leases' bucket, KV `imgcrawl-hosts`: one record per host saying which process
//! may fetch from it now, when the host's next request may start and its back-off
//! (the records and their rules live in `imgcrawl_fetch::leases`). Opened (and
//! created) on first use by the fetching stages; entries never expire (a record is
//! small, and a free host's record keeps its next start and back-off).

use async_nats::jetstream::kv;

use crate::{Bus, BusError};

/// The bucket's name.
pub const HOSTS_BUCKET: &str = "imgcrawl-hosts";

/// The bucket's configuration (storage and replicas are set by
/// [`crate::topology::ensure_kv`]).
pub fn kv_config() -> kv::Config {
    kv::Config {
        bucket: HOSTS_BUCKET.into(),
        description: "host leases: which process fetches from a host, its next start and back-off"
            .into(),
        history: 1,
        ..Default::default()
    }
}

/// Opens the bucket, creating it if needed (idempotent).
pub async fn open(bus: &Bus) -> Result<kv::Store, BusError> {
    crate::patience::patiently("host leases", || {
        crate::topology::ensure_kv(&bus.js, &bus.config, kv_config())
    })
    .await
}
