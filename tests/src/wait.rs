//! Ports and polling: a free loopback port, waiting for a TCP listener, waiting for a
//! condition.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// A loopback TCP port that was free a moment ago (the OS picks it; another process may
/// still take it before you bind, so starters retry on a new port).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), HarnessError> {
    let ready = wait_until(timeout, || async move {
        matches!(
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr)
            )
            .await,
            Ok(Ok(_))
        )
    })
    .await;
    if ready {
        Ok(())
    } else {
        Err(HarnessError::NotReady {
            what: addr.to_string(),
            detail: format!("no tcp listener after {timeout:?}"),
        })
    }
}

/// Polls `condition` (every 20 ms at first, backing off to 250 ms) until it is true or
/// `timeout` passes; returns whether it became true. The condition runs at least once.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `probe` like [`wait_until`] until it yields a value, or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn wait_until_sees_a_condition_turn_true_and_gives_up_on_false() {
        let n = AtomicUsize::new(0);
        assert!(
            wait_until(Duration::from_secs(5), || async {
                n.fetch_add(1, Ordering::SeqCst) >= 3
            })
            .await
        );
        assert_eq!(n.load(Ordering::SeqCst), 4);
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(200), || async { false }).await);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn wait_for_tcp_finds_a_listener_and_times_out_without_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_tcp(addr, Duration::from_secs(2)).await.unwrap();
        drop(listener);
        let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        assert!(wait_for_tcp(closed, Duration::from_millis(300))
            .await
            .is_err());
    }
}
