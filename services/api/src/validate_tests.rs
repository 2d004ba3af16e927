//! Tests of crawl-request validation (no network: IP literals only).

use super::*;

fn start(json: &str) -> StartCrawl {
    serde_json::from_str(json).unwrap()
}

async fn check(json: &str, config: &Config) -> Result<(CrawlRequested, Vec<String>), HttpError> {
    crawl_request(start(json), config, Uuid::nil(), Utc::now()).await
}

#[tokio::test]
async fn a_public_seed_becomes_a_request_with_every_default() {
    let (req, seeds) = check(
        r#"{"url":"http://93.184.215.14/a#frag"}"#,
        &Config::default(),
    )
    .await
    .unwrap();
    assert_eq!(seeds, vec!["http://93.184.215.14/a".to_string()]);
    assert_eq!(req.job_id, Some(Uuid::nil()));
    assert_eq!(req.scope, Some(Scope::default()));
    assert_eq!(req.images, Some(ImageFilters::default()));
}

#[tokio::test]
async fn refusals_name_their_code_and_field() {
    let c = Config::default();
    let cases = [
        (r#"{}"#, "missing_url", "url"),
        (r#"{"url":"not a url"}"#, "invalid_url", "url"),
        (
            r#"{"urls":["http://93.184.215.14/","ftp://x/"]}"#,
            "invalid_url",
            "urls[1]",
        ),
        (
            r#"{"url":"http://user:pw@93.184.215.14/"}"#,
            "invalid_url",
            "url",
        ),
        (r#"{"url":"http://10.1.2.3/"}"#, "blocked_address", "url"),
        (
            r#"{"url":"http://127.0.0.1:8080/"}"#,
            "blocked_address",
            "url",
        ),
        (r#"{"url":"http://[::1]/"}"#, "blocked_address", "url"),
        (
            r#"{"url":"http://169.254.169.254/latest"}"#,
            "blocked_address",
            "url",
        ),
        (
            r#"{"url":"http://93.184.215.14/","images":{"formats":["png","bogus"]}}"#,
            "invalid_filter",
            "images.formats[1]",
        ),
        (
            r#"{"url":"http://93.184.215.14/","scope":{"max_pages":0}}"#,
            "invalid_scope",
            "scope.max_pages",
        ),
        (
            r#"{"url":"http://93.184.215.14/","scope":{"hosts":["a b"]}}"#,
            "invalid_scope",
            "scope.hosts[0]",
        ),
        (
            r#"{"url":"http://93.184.215.14/","politeness":{"per_host_concurrency":0}}"#,
            "invalid_politeness",
            "politeness.per_host_concurrency",
        ),
    ];
    for (json, code, field) in cases {
        let e = check(json, &c).await.unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (code, Some(field)),
            "{json}: {}",
            e.message
        );
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn the_operator_may_allow_loopback_and_private_targets_but_never_link_local() {
    let c = Config {
        allow_loopback: true,
        allow_private: true,
        ..Config::default()
    };
    assert!(check(r#"{"url":"http://127.0.0.1:8080/"}"#, &c)
        .await
        .is_ok());
    assert!(check(r#"{"url":"http://10.1.2.3/"}"#, &c).await.is_ok());
    let e = check(r#"{"url":"http://169.254.169.254/"}"#, &c)
        .await
        .unwrap_err();
    assert_eq!(e.code, "blocked_address");
}

#[test]
fn format_names_are_read_like_people_write_them() {
    assert_eq!(format_name("JPG"), Some("jpeg"));
    assert_eq!(format_name("image/png"), Some("png"));
    assert_eq!(format_name(".tif"), Some("tiff"));
    assert_eq!(format_name("svg+xml"), Some("svg"));
    assert_eq!(format_name("pdf"), None);
}

#[test]
fn format_names_take_the_download_stage_aliases() {
    assert_eq!(format_name("apng"), Some("png"));
    assert_eq!(format_name("image/pjpeg"), Some("jpeg"));
    assert_eq!(format_name("image/x-ms-bmp"), Some("bmp"));
}

#[test]
fn unknown_request_fields_are_refused() {
    assert!(
        serde_json::from_str::<StartCrawl>(r#"{"url":"http://a/","scope":{"max_dpth":1}}"#)
            .is_err()
    );
    assert!(serde_json::from_str::<StartCrawl>(r#"{"uri":"http://a/"}"#).is_err());
}

#[test]
fn reasons_are_counted_in_characters_and_capped() {
    assert!(reason(None).is_ok());
    assert!(
        reason(Some(&"é".repeat(MAX_REASON))).is_ok(),
        "500 two-byte characters"
    );
    let err = reason(Some(&"x".repeat(MAX_REASON + 1))).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err.code, "invalid_reason");
}
