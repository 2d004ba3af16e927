//! Manual failover requests against a real nats-server, with a stand-in for the
//! watcher holding the lease: answers come back by id, refusals carry the reason, and a
//! request nobody answers times out and is withdrawn, unless a newer one replaced it.

use std::time::{Duration, Instant};

use chrono::Utc;
use imgcrawl_bus::ha::{HaStore, Pointer};
use imgcrawl_bus::ha_requests::{
    request_failover, send_failover_request, FailoverRequest, FailoverResult, FAILOVER_REQUEST_KEY,
    FAILOVER_RESULT_KEY,
};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::nats::NatsServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Answers every new request once, as the lease holder does: `pg2` is promoted, any
/// other node refused.
async fn stand_in_watcher(store: HaStore, stop: CancellationToken) {
    let mut epoch = 1;
    let mut handled = None;
    while !stop.is_cancelled() {
        let pending = store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await;
        if let Ok(Some((req, _))) = pending {
            if handled != Some(req.id) {
                handled = Some(req.id);
                let ok = req.target == "pg2";
                epoch += u64::from(ok);
                let result = FailoverResult {
                    id: req.id,
                    ok,
                    error: (!ok).then(|| format!("node {} is down", req.target)),
                    pointer: ok.then(|| Pointer {
                        primary: req.target.clone(),
                        epoch,
                        reason: req.reason.clone().unwrap_or_default(),
                        at: Utc::now(),
                        previous: Some("pg1".into()),
                    }),
                    by: "stand-in".into(),
                };
                store.put(FAILOVER_RESULT_KEY, &result).await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn failover_requests_are_answered_by_id_or_withdrawn() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let store = HaStore::open(&bus).await.unwrap();

    // nobody answers (an old answer to another request does not count)
    let old = FailoverResult {
        id: Uuid::now_v7(),
        ok: true,
        error: None,
        pointer: None,
        by: "gone".into(),
    };
    store.put(FAILOVER_RESULT_KEY, &old).await.unwrap();
    let start = Instant::now();
    let r = request_failover(&store, "pg2", None, false, Duration::from_millis(300))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r, None);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let pending = store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await;
    assert!(
        pending.unwrap().is_none(),
        "the unanswered request is withdrawn"
    );

    // a newer request replacing ours is left alone
    let asking = {
        let store = store.clone();
        tokio::spawn(async move {
            request_failover(&store, "pg2", None, false, Duration::from_millis(400)).await
        })
    };
    // once our request is in the bucket, a newer one replaces it
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(
        store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await,
        Ok(Some((FailoverRequest { ref target, .. }, _))) if target == "pg2"
    ) {
        assert!(
            Instant::now() < deadline,
            "our request never reached the bucket"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let newer = FailoverRequest::new("pg3", None, false);
    send_failover_request(&store, &newer).await.unwrap();
    assert_eq!(asking.await.unwrap().unwrap(), None);
    let (still, _) = store
        .get::<FailoverRequest>(FAILOVER_REQUEST_KEY)
        .await
        .unwrap()
        .expect("the newer request stays");
    assert_eq!(still.id, newer.id);

    // a watcher answers: promoted, then refused with its reason
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(stand_in_watcher(store.clone(), stop.clone()));
    let wait = Duration::from_secs(5);
    let done = request_failover(&store, "pg2", Some("test".into()), true, wait)
        .await
        .unwrap()
        .expect("answered");
    assert!(done.ok, "{done:?}");
    let p = done.pointer.expect("the new pointer");
    assert_eq!(
        (p.primary.as_str(), p.epoch, p.reason.as_str()),
        ("pg2", 2, "test")
    );
    let refused = request_failover(&store, "pg9", None, false, wait)
        .await
        .unwrap()
        .expect("answered");
    assert!(!refused.ok);
    assert_eq!(refused.error.as_deref(), Some("node pg9 is down"));
    assert_ne!(refused.id, done.id);
    stop.cancel();
    watcher.await.unwrap();
}
