//! The handler slot of the delivery a task is handling, and giving it back while the
//! handler only waits.
//!
//! A worker runs at most `concurrency` handlers at once. A handler that waits for
//! something outside the process (a host's politeness gate, its lease) does no work
//! meanwhile; holding its slot then starves the deliveries behind it, whose hosts may
//! be free (head-of-line blocking: a replica's slots all waiting on one busy host).
//! [`idle`] runs a wait with the slot given back and takes a slot again afterwards.
//! The worker bounds what it admits separately (a window of several times its
//! concurrency), so giving slots back does not pull the whole queue into memory.
//!
//! It lives here, beside [`crate::trace`]'s delivery context, because both the worker
//! loop (which owns the slots) and the fetcher (which knows when a request waits for
//! its host) depend on this crate and on nothing else in common.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slot of one delivery: the pool it came from and the permit while held.
struct Cell {
    pool: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    static SLOT: Arc<Cell>;
}

/// Runs `f` (a delivery's handling) holding `permit`, a slot of `pool`, so that
/// [`idle`] inside it can give the slot back. The slot is released when `f` ends.
pub async fn scope<F: Future>(
    pool: Arc<Semaphore>,
    permit: OwnedSemaphorePermit,
    f: F,
) -> F::Output {
    let cell = Arc::new(Cell {
        pool,
        held: Mutex::new(Some(permit)),
    });
    SLOT.scope(cell, f).await
}

/// Runs `wait` with the current delivery's slot given back, then takes a slot again
/// (waiting for one if all are busy). Outside a delivery's [`scope`], just `wait`.
pub async fn idle<F: Future>(wait: F) -> F::Output {
    let Ok(cell) = SLOT.try_with(Arc::clone) else {
        return wait.await;
    };
    let given = cell.held.lock().expect("slot lock").take();
    let gave = given.is_some();
    drop(given);
    let out = wait.await;
    if gave {
        let permit = cell
            .pool
            .clone()
            .acquire_owned()
            .await
            .expect("the slot pool is never closed");
        *cell.held.lock().expect("slot lock") = Some(permit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_idle_wait_lends_the_slot_to_another_delivery() {
        let pool = Arc::new(Semaphore::new(1));
        let first = pool.clone().acquire_owned().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = tokio::spawn(scope(pool.clone(), first, async move {
            // waits for the other delivery, which needs the only slot
            idle(rx).await.unwrap();
            "done"
        }));
        let second = tokio::time::timeout(Duration::from_secs(5), pool.clone().acquire_owned())
            .await
            .expect("the idle delivery gave its slot back")
            .unwrap();
        tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "it takes a slot again before going on"
        );
        drop(second);
        assert_eq!(waiter.await.unwrap(), "done");
        assert_eq!(pool.available_permits(), 1, "released at the end");
    }

    #[tokio::test]
    async fn outside_a_delivery_idle_just_waits() {
        assert_eq!(idle(async { 7 }).await, 7);
    }
}
