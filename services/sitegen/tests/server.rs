//! The site server over real HTTP: placeholders, redirects, both hosts, request log,
//! injected faults, shutdown.

use std::sync::Arc;

use imgcrawl_sitegen::{demo, serve};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_the_demo_on_both_hosts_and_records_requests() {
    let server = serve(Arc::new(demo()), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = server.addr().port();
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}/"));
    let c = client();

    let home = c.get(server.seed_url()).send().await.unwrap();
    assert_eq!(home.headers()["content-type"], "text/html; charset=utf-8");
    let html = home.text().await.unwrap();
    assert!(html.contains(&format!("http://localhost:{port}/outside.html")));
    assert!(html.contains(&format!("content=\"http://127.0.0.1:{port}/img/og.png\"")));
    assert!(!html.contains("{{"));

    let moved = c.get(server.url("/r/middle")).send().await.unwrap();
    assert_eq!(moved.status(), 302);
    assert_eq!(
        moved.headers()["location"],
        format!("http://127.0.0.1:{port}/landing.html")
    );

    let img = c.get(server.alt_url("/img/hero.jpg")).send().await.unwrap();
    assert_eq!(img.headers()["content-type"], "image/jpeg");
    let bytes = img.bytes().await.unwrap();
    assert_eq!(bytes, server.site().get("/img/hero.jpg").unwrap().body);

    let fake = c.get(server.url("/img/fake.jpg")).send().await.unwrap();
    assert_eq!(fake.headers()["content-type"], "image/jpeg");
    assert_eq!(
        c.get(server.url("/img/gone.jpg"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(server.url("/img/with%20space.png"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    assert_eq!(server.hits("/"), 1);
    assert_eq!(server.hits("/img/hero.jpg"), 1);
    let served = server.served();
    assert!(served
        .iter()
        .any(|r| r.host == format!("localhost:{port}") && r.path == "/img/hero.jpg"));
    assert_eq!(server.requests()[0], "/");
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn injected_faults_then_recovery_and_shutdown_frees_the_port() {
    let server = serve(Arc::new(demo()), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = client();
    server.fail_next("/img/hero.jpg", 2, 503);
    for want in [503, 503, 200] {
        assert_eq!(
            c.get(server.url("/img/hero.jpg"))
                .send()
                .await
                .unwrap()
                .status(),
            want
        );
    }
    assert_eq!(server.hits("/img/hero.jpg"), 3);
    let head = c.head(server.url("/img/hero.jpg")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let addr = server.addr();
    drop(c);
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}
