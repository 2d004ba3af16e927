//! Body caps: announced by Content-Length, and streamed without one.

use super::*;

fn chunks(n: usize) -> Body {
    let s = futures::stream::iter(
        (0..n).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b'x'; 1024]))),
    );
    Body::from_stream(s)
}

fn site() -> Router {
    Router::new()
        .route("/sized", get(|| async { vec![b'x'; 10_000] }))
        .route("/stream", get(|| async { chunks(10) }))
        .route(
            "/endless",
            get(|| async {
                let s = futures::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b'x'; 1024]))
                });
                Body::from_stream(s)
            }),
        )
}

#[tokio::test]
async fn content_length_over_the_cap_fails_before_reading() {
    let addr = serve(site()).await;
    let f = fetcher(loopback_config());
    let got = fetch(&f, &url(addr, "/sized"), false).await.unwrap();
    assert_eq!(got.response.content_length(), Some(10_000));
    assert_eq!(
        got.read_capped(9_999).await,
        Err(BodyError::TooLarge { limit: 9_999 })
    );
    let got = fetch(&f, &url(addr, "/sized"), false).await.unwrap();
    assert_eq!(got.read_capped(10_000).await.unwrap().len(), 10_000);
}

#[tokio::test]
async fn streamed_bodies_are_cut_at_the_cap() {
    let addr = serve(site()).await;
    let f = fetcher(loopback_config());
    let got = fetch(&f, &url(addr, "/stream"), false).await.unwrap();
    assert_eq!(
        got.response.content_length(),
        None,
        "chunked, no length announced"
    );
    assert_eq!(
        got.read_capped(5_000).await,
        Err(BodyError::TooLarge { limit: 5_000 })
    );
    let got = fetch(&f, &url(addr, "/stream"), false).await.unwrap();
    assert_eq!(got.read_capped(10_240).await.unwrap().len(), 10_240);
    let endless = fetch(&f, &url(addr, "/endless"), false).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), endless.read_capped(64 * 1024)).await;
    assert_eq!(
        r.expect("an endless body stops at the cap"),
        Err(BodyError::TooLarge { limit: 64 * 1024 })
    );
}
