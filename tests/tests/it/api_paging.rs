//! Keyset pagination while a crawl is writing: traversals of `GET /api/images` in
//! several orders, run again and again during a crawl of a synthetic site, never list
//! an image twice and never skip one that was there before the first page.

use crate::api_common;

use std::collections::BTreeSet;
use std::time::Duration;

use api_common::listing::{assert_unique, ids, live_ids, traverse};
use api_common::ApiServer;
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::sitegen::{self, SyntheticSpec};
use imgcrawl_tests::{wait_until, Pipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_never_repeat_or_skip_while_a_crawl_is_writing() {
    let p = Pipeline::start().await;
    let spec = SyntheticSpec {
        pages: 60,
        links_per_page: 4,
        images_per_page: 6,
        distinct_images: 300,
        seed: 7,
        min_side: 16,
        max_side: 40,
        threads: 1,
        bytes: None,
    };
    let server = serve(sitegen::synthetic_with(&spec).unwrap()).await;
    let job = p
        .request(&server.seed_url(), |r| {
            r.politeness = Some(imgcrawl_events::Politeness {
                delay_ms: 15,
                ..Default::default()
            });
        })
        .await;
    let db = p.db().await;
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let known = wait_until(Duration::from_secs(30), || async {
        sqlx::query("select 1 from jobs where job_id = $1")
            .bind(job)
            .fetch_optional(&db)
            .await
            .is_ok_and(|r| r.is_some())
    })
    .await;
    assert!(known, "the index applied the request");
    let running = || async {
        let s: Option<String> = sqlx::query_scalar("select status from jobs where job_id = $1")
            .bind(job)
            .fetch_optional(&db)
            .await
            .unwrap();
        s.is_none_or(|s| s == "running")
    };
    let (mut traversals, mut concurrent) = (0, 0);
    while running().await || traversals < 3 {
        for sort in ["newest", "oldest", "largest"] {
            let before = live_ids(&db).await;
            let got = ids(&traverse(&api, &format!("&sort={sort}"), 17).await);
            let after = live_ids(&db).await;
            assert_unique(&got, sort);
            let got: BTreeSet<i64> = got.into_iter().collect();
            let missing: Vec<_> = before.difference(&got).collect();
            assert!(
                missing.is_empty(),
                "{sort}: images there before the first page were skipped: {missing:?}"
            );
            assert!(got.is_subset(&after), "{sort}: only live images are listed");
            traversals += 1;
            concurrent += usize::from(after.len() > before.len());
        }
    }
    eprintln!("{traversals} traversals, {concurrent} while the crawl added images");
    assert!(
        concurrent > 0,
        "the crawl wrote while pages were read ({traversals} traversals)"
    );
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let got: BTreeSet<i64> = ids(&traverse(&api, "", 17).await).into_iter().collect();
    assert_eq!(got, live_ids(&db).await);
    assert_eq!(got.len(), server.site().expected.distinct_sha256().len());
}
