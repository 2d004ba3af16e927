//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the bodies' `ToSchema` derives, served at `/api/openapi.json`.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{content, crawl, failover, ha, health, images};

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgcrawl",
        description = "Start, watch and stop crawls; browse and delete images; see the HA state. \
                       Reads come from the primary index; writes are events on the stream. \
                       Mutating endpoints need `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0")
    ),
    paths(
        crawl::start, crawl::list, crawl::status, crawl::stop,
        images::list, images::get, images::delete,
        content::content, content::thumbnail,
        ha::status, ha::sync_status, failover::failover,
        health::healthz, health::readyz,
        crate::gallery::page, openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "crawl", description = "Jobs: start, status, stop"),
        (name = "images", description = "Indexed images: list, detail, bytes, thumbnails, deletion"),
        (name = "ha", description = "Database nodes, primary, replication lag, failover"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "gallery", description = "The web gallery and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the mutating endpoints name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "gallery",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    ))]
pub async fn openapi_json() -> Response {
    let mut res = document().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_endpoint_and_the_bearer_scheme() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for p in [
            "/api/crawl/start",
            "/api/images/{id}/content",
            "/api/ha-status",
            "/readyz",
            "/",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p}");
        }
        assert_eq!(
            doc["paths"]["/api/crawl/start"]["post"]["security"][0]["bearer"],
            serde_json::json!([])
        );
        let schemas = &doc["components"]["schemas"];
        for field in ["reads_from", "pointer", "nodes", "epoch"] {
            assert!(
                schemas["HaStatus"]["properties"].get(field).is_some(),
                "{field}"
            );
        }
        for field in ["url", "healthy", "epoch", "lag_events"] {
            assert!(
                schemas["HaNode"]["properties"].get(field).is_some(),
                "{field}"
            );
        }
        assert!(schemas["Ready"]["properties"].get("primary").is_some());
        for field in ["primary", "epoch", "reason", "watcher"] {
            let done = &schemas["FailoverDone"]["properties"];
            assert!(done.get(field).is_some(), "{field}");
        }
        assert!(schemas["FailoverRequest"]["properties"]
            .get("force")
            .is_some());
        let answers = &doc["paths"]["/api/ha/failover"]["post"]["responses"];
        for status in ["200", "409", "422", "503"] {
            assert!(answers.get(status).is_some(), "failover {status}");
        }
    }
}
