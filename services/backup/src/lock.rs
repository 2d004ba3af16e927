//! One archiver per target: a lease in KV `imgcrawl-partitions` (the bus's leases,
//! [`imgcrawl_bus::ownership`], with one partition named after the target).
//!
//! Two archivers writing one target would both rewrite its manifest, each dropping the
//! other's segments from it. [`ArchiverLease::take`] holds the target's lease for the
//! archive's lifetime: a one-shot pass (`backup_once`) that finds it held fails at once
//! with who holds it; the continuous archive waits as a standby and starts (reading the
//! manifest afresh) when the holder stops or its lease expires. A holder that loses
//! its lease (another archiver took it after a long stall) stops with an error.

use std::time::Duration;

use imgcrawl_bus::ownership::Ownership;
use imgcrawl_bus::Bus;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::BackupError;

/// The lease's stage name for a target: `backup-<first 16 hex digits of its SHA-256>`.
pub fn lease_name(target: &str) -> String {
    let digest = Sha256::digest(target.as_bytes());
    format!("backup-{}", &hex::encode(digest)[..16])
}

/// The held lease of one target; renewed in the background until dropped or released.
pub struct ArchiverLease {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ArchiverLease {
    /// Takes the lease of `target`. With `wait` false, fails if another archiver holds
    /// it; with `wait`, waits until it is free (or `shutdown`, then `Ok(None)`). While
    /// held, `lost` is cancelled if the lease is lost.
    pub async fn take(
        bus: &Bus,
        target: &str,
        ttl: Duration,
        wait: bool,
        shutdown: &CancellationToken,
        lost: CancellationToken,
    ) -> Result<Option<ArchiverLease>, BackupError> {
        let kv = imgcrawl_bus::ownership::open(bus).await?;
        let me = uuid::Uuid::new_v4().simple().to_string();
        let ttl = ttl.max(Duration::from_secs(1));
        let mut own = Ownership::new(kv, &lease_name(target), &me, 1, ttl);
        let mut announced = false;
        loop {
            let changes = own.tick().await?;
            if changes.acquired.contains(&0) {
                break;
            }
            if !wait {
                return Err(BackupError::Locked(format!(
                    "another imgcrawl backup is archiving to {target}; one archiver per target \
                     (its lease expires {} s after it stops renewing it)",
                    ttl.as_secs()
                )));
            }
            if !announced {
                info!(%target, "another archiver holds this target; waiting as a standby");
                announced = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(own.period()) => {}
            }
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep(own, stop.clone(), lost, target.to_string()));
        Ok(Some(ArchiverLease {
            stop,
            task: Some(task),
        }))
    }

    /// Frees the lease at once (a standby takes over at its next tick).
    pub async fn release(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ArchiverLease {
    /// Dropped without [`ArchiverLease::release`] (the archive's future dropped, as in
    /// a crash): renewals stop and the lease expires after its time to live.
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Renews the lease every period until `stop`; cancels `lost` if it is lost.
async fn keep(
    mut own: Ownership,
    stop: CancellationToken,
    lost: CancellationToken,
    target: String,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(own.period()) => {}
        }
        match own.tick().await {
            Ok(c) if c.lost.contains(&0) => {
                warn!(%target, "the archiver lease was taken by another archiver; stopping");
                lost.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => warn!(%target, error = %e, "archiver lease renewal failed; retrying"),
        }
    }
    own.release_all().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_distinct_stable_lease_names() {
        let a = lease_name("/var/backups/imgcrawl");
        assert_eq!(a, lease_name("/var/backups/imgcrawl"));
        assert_ne!(a, lease_name("s3://bucket/imgcrawl"));
        assert!(a.starts_with("backup-") && a.len() == "backup-".len() + 16);
    }
}
