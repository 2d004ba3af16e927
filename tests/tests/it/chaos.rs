//! The chaos suite's fast cases (the full suite is `just chaos`): a crawl on a 3-node
//! JetStream cluster at R3 with one process per stage, with no fault, with stage
//! processes killed every two seconds, and with the stream leader killed twice; every
//! image of the fixture site is indexed once, none lost, duplicated or unexpected, and
//! the index verifies against a fresh replay.

use imgcrawl_tests::chaos::{run, table, Scenario, Size};

async fn scenario(s: Scenario) {
    let report = run(s, &Size::fast()).await;
    eprintln!("{}", table(std::slice::from_ref(&report)));
    for n in &report.notes {
        eprintln!("{n}");
    }
    assert!(report.completed, "the crawl completed");
    assert!(report.settled, "every database node caught up");
    let c = &report.counts;
    assert_eq!((c.lost, c.duplicated, c.unexpected), (0, 0, 0), "{c:?}");
    assert_eq!(c.indexed, c.expected, "{c:?}");
    assert!(report.verified, "the index equals a fresh replay");
    if s != Scenario::NoFault {
        assert!(report.faults > 0, "faults were injected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault() {
    scenario(Scenario::NoFault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_processes_killed_every_second() {
    scenario(Scenario::StageKills).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_killed_twice() {
    scenario(Scenario::LeaderKill).await;
}
