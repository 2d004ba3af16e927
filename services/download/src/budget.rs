//! The memory budget: bytes of image bodies held at once, across all handlers.
//!
//! A handler reserves its body cap before reading the body and releases it when the
//! blob is stored, so `concurrency` handlers can never hold more than the budget
//! however large the jobs' `max_bytes` are. Permits count KiB (a semaphore counts in
//! `u32`-sized units), rounded up.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A shared byte budget.
#[derive(Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

/// `bytes` in KiB, rounded up, at least 1, at most `cap`.
fn kib(bytes: u64, cap: u32) -> u32 {
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, cap.max(1))
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> Self {
        let total_kib = kib(
            bytes,
            (Semaphore::MAX_PERMITS as u64).min(u64::from(u32::MAX)) as u32,
        );
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` (capped at the whole budget) are free and holds them until
    /// the permit is dropped.
    pub async fn reserve(&self, bytes: u64) -> OwnedSemaphorePermit {
        let n = kib(bytes, self.total_kib);
        // The semaphore is never closed, so acquiring cannot fail.
        self.permits
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("memory budget semaphore is never closed")
    }

    /// KiB free right now.
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kib_rounds_up_and_clamps() {
        assert_eq!(kib(0, 10), 1);
        assert_eq!(kib(1, 10), 1);
        assert_eq!(kib(1025, 10), 2);
        assert_eq!(kib(u64::MAX, 10), 10);
    }

    #[tokio::test]
    async fn reservations_block_beyond_the_budget_and_release_on_drop() {
        let budget = MemoryBudget::new(100 * 1024);
        let a = budget.reserve(60 * 1024).await;
        assert_eq!(budget.available_kib(), 40);
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), budget.reserve(50 * 1024)).await;
        assert!(
            blocked.is_err(),
            "a reservation beyond the budget must wait"
        );
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(1), budget.reserve(50 * 1024))
            .await
            .expect("freed");
        let huge = tokio::time::timeout(Duration::from_millis(50), budget.reserve(u64::MAX)).await;
        assert!(
            huge.is_err(),
            "a huge reservation is capped at the whole budget, so it waits"
        );
        drop(b);
        let _all = tokio::time::timeout(Duration::from_secs(1), budget.reserve(u64::MAX))
            .await
            .expect("whole budget");
        assert_eq!(budget.available_kib(), 0);
    }
}
