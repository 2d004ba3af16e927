//! Injecting each scenario's faults while the crawl runs, watching the crawl, and
//! settling afterwards (a returning database must catch up by itself).

use std::time::{Duration, Instant};

use imgcrawl_bus::ha::{current_primary, POSTGRES};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::rig::{Rig, Shared};
use super::{Scenario, Size};

/// Stored images of `job` and whether it completed, from whichever database answers.
pub(super) async fn observe(rig: &Rig, job: Uuid) -> (i64, bool) {
    let (mut count, mut done) = (0i64, false);
    for i in 0..rig.dbs.len() {
        let Some(pool) = rig.pool(i).await else {
            continue;
        };
        let n: Option<i64> = sqlx::query_scalar(
            "select count(*) from image_sources where job_id = $1 and status = 'stored'",
        )
        .bind(job)
        .fetch_one(&pool)
        .await
        .ok();
        let status: Option<String> =
            sqlx::query_scalar("select status from jobs where job_id = $1")
                .bind(job)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        count = count.max(n.unwrap_or(0));
        done |= status.as_deref() == Some("completed");
        pool.close().await;
    }
    (count, done)
}

/// Waits until the crawl is `fraction` done (false if it ended first).
async fn at(
    progress: &mut watch::Receiver<f64>,
    done: &watch::Receiver<bool>,
    fraction: f64,
) -> bool {
    loop {
        if *done.borrow() {
            return false;
        }
        if *progress.borrow_and_update() >= fraction {
            return true;
        }
        if tokio::time::timeout(Duration::from_secs(1), progress.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            return false;
        }
    }
}

/// Sleeps `d` unless the crawl ends first.
async fn hold(d: Duration, done: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(d, done.wait_for(|d| *d)).await;
}

/// The node leading the event stream.
async fn stream_leader(rig: &Rig) -> Option<usize> {
    let mut s = rig.bus.js.get_stream(&rig.bus.config.stream).await.ok()?;
    let info = s.info().await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    rig.cluster.index_of(&leader)
}

/// Injects `scenario`'s faults until they are all done or the crawl ends; returns how
/// many and what happened.
pub(super) async fn inject(
    scenario: Scenario,
    size: Size,
    rig: Shared,
    mut progress: watch::Receiver<f64>,
    mut done: watch::Receiver<bool>,
) -> (usize, Vec<String>) {
    let mut notes = Vec::new();
    let mut faults = 0;
    let t0 = Instant::now();
    let mut note = |s: String| notes.push(format!("{:>6.1}s {s}", t0.elapsed().as_secs_f64()));
    match scenario {
        Scenario::NoFault => {}
        Scenario::LeaderKill => {
            let mut first = None;
            for fraction in [0.2, 0.5] {
                if !at(&mut progress, &done, fraction).await {
                    break;
                }
                let mut r = rig.lock().await;
                let leader = stream_leader(&r).await.unwrap_or(0);
                let victim = match first {
                    Some(f) if f == leader => (leader + 1) % r.cluster.len(),
                    _ => leader,
                };
                r.cluster.kill(victim);
                faults += 1;
                first = Some(victim);
                note(format!(
                    "kill -9 {} (stream leader: {})",
                    r.cluster.name(victim),
                    r.cluster.name(leader)
                ));
                drop(r);
                hold(size.nats_down, &mut done).await;
                let mut r = rig.lock().await;
                r.cluster.start_again(victim).expect("restart nats node");
                note(format!("{} restarted", r.cluster.name(victim)));
            }
        }
        Scenario::StageKills => {
            let mut seed = 0x9e37_79b9_u64;
            while !*done.borrow() {
                hold(size.kill_every, &mut done).await;
                if *done.borrow() {
                    break;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut r = rig.lock().await;
                let i = (seed % r.workers.len() as u64) as usize;
                r.kill_worker(i);
                faults += 1;
                note(format!("kill -9 {}", r.workers[i].name));
                tokio::time::sleep(Duration::from_millis(300)).await;
                r.start_worker(i);
            }
        }
        Scenario::NatsPause => {
            if at(&mut progress, &done, 0.2).await {
                let r = rig.lock().await;
                let leader = stream_leader(&r).await.unwrap_or(0);
                r.cluster.pause(leader);
                faults += 1;
                note(format!(
                    "SIGSTOP {} (stream leader) for {:?}",
                    r.cluster.name(leader),
                    size.pause
                ));
                drop(r);
                tokio::time::sleep(size.pause).await;
                rig.lock().await.cluster.resume(leader);
                note("SIGCONT".into());
            }
        }
        Scenario::PgFailover => {
            if at(&mut progress, &done, 0.3).await {
                rig.lock().await.pgs[0].kill();
                faults += 1;
                note(format!(
                    "kill -9 of pg1's postmaster (down for {:?})",
                    size.pg_down
                ));
                tokio::time::sleep(size.pg_down).await;
                let mut r = rig.lock().await;
                r.pgs[0].start_again().await.expect("restart pg1");
                r.pg_returned = Some(Instant::now());
                note("pg1 answers again".into());
            }
        }
        Scenario::Partition => {
            if at(&mut progress, &done, 0.2).await {
                let r = rig.lock().await;
                let leader = stream_leader(&r).await.unwrap_or(0);
                r.cluster.partition(leader).expect("partition");
                faults += 1;
                note(format!(
                    "{} (stream leader) cut off from the other nodes for {:?}",
                    r.cluster.name(leader),
                    size.partition
                ));
                drop(r);
                tokio::time::sleep(size.partition).await;
                rig.lock().await.cluster.heal(leader).expect("heal");
                note("healed".into());
            }
        }
    }
    (faults, notes)
}

/// The last applied sequence of database `i` (none if it does not answer).
async fn checkpoint(rig: &Rig, i: usize) -> Option<i64> {
    let pool = rig.pool(i).await?;
    let seq = sqlx::query_scalar("select max(last_seq) from projection_checkpoint")
        .fetch_one(&pool)
        .await
        .ok()
        .flatten();
    pool.close().await;
    seq
}

/// After the crawl: the database to check (the primary with HA: its index and a pool),
/// whether every node
/// caught up, and notes. With HA, waits for the returning node to catch up with the
/// primary and compares the two.
pub(super) async fn settle(scenario: Scenario, rig: &Rig) -> (usize, PgPool, bool, Vec<String>) {
    let mut notes = Vec::new();
    let mut settled = true;
    let mut primary = 0;
    if scenario == Scenario::PgFailover {
        let pointer = current_primary(&rig.bus, POSTGRES).await.ok().flatten();
        primary = match pointer.as_ref().map(|p| p.primary.as_str()) {
            Some("pg2") => 1,
            _ => 0,
        };
        notes.push(format!("primary after the crawl: pg{}", primary + 1));
        let other = 1 - primary;
        let start = Instant::now();
        let mut caught_up = None;
        let mut seen = (None, None);
        while start.elapsed() < Duration::from_secs(120) {
            let (a, b) = (checkpoint(rig, primary).await, checkpoint(rig, other).await);
            seen = (a, b);
            if a.is_some() && a == b {
                caught_up = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        match (caught_up, rig.pg_returned) {
            (Some(at), Some(back)) => notes.push(format!(
                "pg{} caught up with the primary {:.1}s after it answered again",
                other + 1,
                at.saturating_duration_since(back).as_secs_f64()
            )),
            (Some(_), None) => notes.push(format!("pg{} caught up", other + 1)),
            (None, _) => {
                settled = false;
                notes.push(format!(
                    "pg{} did NOT catch up within 120 s (checkpoints: primary {:?}, pg{} {:?})\n--- index.log\n{}",
                    other + 1,
                    seen.0,
                    other + 1,
                    seen.1,
                    rig.log("index")
                ));
            }
        }
        let out = rig.imgcrawl(&[
            "verify",
            "--database-url",
            &rig.dbs[primary],
            "--against-database-url",
            &rig.dbs[other],
        ]);
        notes.push(format!(
            "pg{} against the primary: {}",
            other + 1,
            if out.status.success() {
                "identical"
            } else {
                "DIFFERS"
            }
        ));
    }
    let pool = rig.pool(primary).await.expect("the primary answers");
    (primary, pool, settled, notes)
}
