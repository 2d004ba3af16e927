//! Images through the HTTP API against the real stack: listing by every filter and
//! sort, complete keyset pages, one image with its sources and pages, its bytes
//! (Content-Type, ETag, ranges, 304, 416) and thumbnails. Answers are checked against
//! the OpenAPI document (see `api_common`).

use crate::api_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use api_common::listing::{assert_unique, ids, live_ids, traverse};
use api_common::{ApiServer, Auth};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, Pipeline};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_listed_filtered_paged_and_served() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let db = p.db().await;
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let expected = server.site().expected.clone();
    let all = live_ids(&db).await;
    assert_eq!(all.len(), expected.distinct_sha256().len());

    // pages of 3, in every order: complete, unique, ordered
    for (sort, key) in [
        ("newest", "id"),
        ("oldest", "id"),
        ("largest", "bytes"),
        ("smallest", "bytes"),
    ] {
        let items = traverse(&api, &format!("&sort={sort}"), 3).await;
        let got = ids(&items);
        assert_unique(&got, sort);
        assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), all, "{sort}");
        let keys: Vec<(i64, i64)> = items
            .iter()
            .map(|i| (i[key].as_i64().unwrap(), i["id"].as_i64().unwrap()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if matches!(sort, "newest" | "largest") {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort} order");
    }

    // filters, each compared with what the ground truth says
    let shas = |items: &[Value]| {
        items
            .iter()
            .map(|i| i["sha256"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    let want = |f: &dyn Fn(&sitegen::ExpectedImage) -> bool| {
        expected
            .images
            .iter()
            .filter(|i| f(i))
            .map(|i| i.sha256.clone())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        shas(&traverse(&api, &format!("&job={job}"), 50).await),
        want(&|_| true)
    );
    assert!(
        traverse(&api, &format!("&job={}", uuid::Uuid::now_v7()), 50)
            .await
            .is_empty()
    );
    assert_eq!(
        shas(&traverse(&api, "&format=png", 50).await),
        want(&|i| i.format.name() == "png")
    );
    assert_eq!(
        shas(&traverse(&api, "&format=JPG,webp", 50).await),
        want(&|i| matches!(i.format.name(), "jpeg" | "webp"))
    );
    assert_eq!(
        shas(&traverse(&api, "&host=localhost", 50).await),
        want(&|i| i.alt_host)
    );
    assert_eq!(
        shas(&traverse(&api, "&host=127.0.0.1", 50).await),
        want(&|i| !i.alt_host)
    );
    assert_eq!(
        shas(&traverse(&api, "&min_width=200", 50).await),
        want(&|i| i.width >= 200)
    );
    assert_eq!(
        shas(&traverse(&api, "&max_height=100&min_height=64", 50).await),
        want(&|i| (64..=100).contains(&i.height))
    );
    assert_eq!(
        shas(&traverse(&api, "&min_bytes=2000&max_bytes=20000", 50).await),
        want(&|i| (2000..=20000).contains(&i.bytes))
    );
    assert_eq!(
        traverse(&api, "&since=2000-01-01T00:00:00Z", 50)
            .await
            .len(),
        all.len()
    );
    assert!(traverse(&api, "&until=2000-01-01T00:00:00Z", 50)
        .await
        .is_empty());

    // bad filters, limits and cursors are 400 with the parameter named
    let first = api.get("/api/images", "/api/images?limit=2").await.json();
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    for (q, code) in [
        ("min_width=abc", "bad_query"),
        ("colour=red", "bad_query"),
        ("format=pdf", "bad_filter"),
        ("min_width=300&max_width=200", "bad_filter"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "bad_filter",
        ),
        ("limit=0", "bad_filter"),
        ("limit=501", "bad_filter"),
        ("cursor=zz", "bad_cursor"),
        (&format!("sort=largest&cursor={cursor}"), "bad_cursor"),
    ] {
        let r = api.get("/api/images", &format!("/api/images?{q}")).await;
        assert_eq!((r.status, r.code().as_str()), (400, code), "{q}");
    }

    // one image: metadata, every source, the pages
    let (dup_sha, dup_sources) = expected
        .sources_by_sha256()
        .into_iter()
        .find(|(_, v)| v.len() > 1)
        .unwrap();
    let dup_id: i64 = sqlx::query_scalar("select id from images where sha256 = $1")
        .bind(dup_sha)
        .fetch_one(&db)
        .await
        .unwrap();
    let d = api
        .get("/api/images/{id}", &format!("/api/images/{dup_id}"))
        .await
        .json();
    assert_eq!(d["image"]["sha256"], dup_sha);
    assert_eq!(d["sources"].as_array().unwrap().len(), dup_sources.len());
    assert!(!d["pages"].as_array().unwrap().is_empty());
    assert!(d["pages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "fetched"));
    let r = api.get("/api/images/{id}", "/api/images/999999999").await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = api.get("/api/images/{id}", "/api/images/abc").await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_path"));

    // the bytes of every image: hash, type, length, etag
    let items = traverse(&api, "", 100).await;
    for i in &items {
        let id = i["id"].as_i64().unwrap();
        let r = api
            .get(
                "/api/images/{id}/content",
                &format!("/api/images/{id}/content"),
            )
            .await;
        assert_eq!(r.status, 200);
        let sha = i["sha256"].as_str().unwrap();
        assert_eq!(hex::encode(Sha256::digest(&r.body)), sha);
        assert_eq!(
            r.header("content-type").as_deref(),
            i["content_type"].as_str()
        );
        assert_eq!(r.header("etag"), Some(format!("\"{sha}\"")));
        assert_eq!(r.header("content-length"), Some(i["bytes"].to_string()));
        assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
        if i["format"] == "svg" {
            assert!(r
                .header("content-security-policy")
                .unwrap()
                .contains("sandbox"));
        }
    }

    // ranges and conditional requests on one image
    let i = &items[0];
    let (id, sha) = (i["id"].as_i64().unwrap(), i["sha256"].as_str().unwrap());
    let path = format!("/api/images/{id}/content");
    let t = "/api/images/{id}/content";
    let full = api.get(t, &path).await.body;
    let len = full.len();
    let ranged = |range: String| {
        let (api, path) = (&api, path.clone());
        async move {
            api.call(
                "GET",
                t,
                &path,
                Auth::None,
                None,
                &[("range", range.as_str())],
            )
            .await
        }
    };
    let r = ranged("bytes=0-9".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &full[..10]);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-9/{len}")));
    let r = ranged("bytes=-5".into()).await;
    assert_eq!((r.status, &r.body[..]), (206, &full[len - 5..]));
    let r = ranged(format!("bytes={}-", len - 3)).await;
    assert_eq!((r.status, &r.body[..]), (206, &full[len - 3..]));
    let r = ranged(format!("bytes={len}-")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (416, "range_not_satisfiable")
    );
    assert_eq!(r.header("content-range"), Some(format!("bytes */{len}")));
    assert_eq!(
        ranged("bytes=0-1,4-5".into()).await.status,
        200,
        "several ranges: the whole image"
    );
    let etag = format!("\"{sha}\"");
    let r = api
        .call(
            "GET",
            t,
            &path,
            Auth::None,
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.clone()));
    let r = api
        .call(
            "GET",
            t,
            &path,
            Auth::None,
            None,
            &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!(
        (r.status, r.body.len()),
        (200, len),
        "If-Range that does not match: the whole image"
    );

    // thumbnails: small, cached, conditional
    let thumbs_of = |items: Vec<Value>| {
        let api = &api;
        async move {
            for i in &items {
                let id = i["id"].as_i64().unwrap();
                let r = api
                    .get(
                        "/api/images/{id}/thumbnail",
                        &format!("/api/images/{id}/thumbnail"),
                    )
                    .await;
                assert_eq!(r.status, 200, "thumbnail of {id}");
                let ct = r.header("content-type").unwrap();
                if matches!(i["format"].as_str(), Some("jpeg" | "png" | "gif" | "webp")) {
                    assert_eq!(ct, "image/jpeg");
                    let size = imagesize::blob_size(&r.body).unwrap();
                    let (w, h) = (
                        i["width"].as_u64().unwrap() as usize,
                        i["height"].as_u64().unwrap() as usize,
                    );
                    assert_eq!(
                        size.width.max(size.height),
                        w.max(h).min(256),
                        "thumbnail of {w}x{h}"
                    );
                } else {
                    assert!(ct.starts_with("image/"), "{ct}");
                }
            }
        }
    };
    let cold = Instant::now();
    thumbs_of(items.clone()).await;
    let cold = cold.elapsed();
    let cached = std::fs::read_dir(api.cache.path()).unwrap().count();
    assert!(cached > 0, "thumbnails are cached on disk");
    let warm = Instant::now();
    thumbs_of(items.clone()).await;
    let warm = warm.elapsed();
    eprintln!("{} thumbnails: {cold:?} cold, {warm:?} warm", items.len());
    assert!(
        warm < Duration::from_secs(3),
        "a warm grid loads fast: {warm:?}"
    );
    let etag = api
        .get(
            "/api/images/{id}/thumbnail",
            &format!("/api/images/{id}/thumbnail"),
        )
        .await
        .header("etag")
        .unwrap();
    let r = api
        .call(
            "GET",
            "/api/images/{id}/thumbnail",
            &format!("/api/images/{id}/thumbnail"),
            Auth::None,
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, 304);
}
