//! Listing helpers: every image of a filtered listing page by page, ids, and the live
//! images of an index database.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;
use sqlx::PgPool;

use super::ApiServer;

/// Every image of a listing, following `next_cursor` pages of `limit`.
pub async fn traverse(api: &ApiServer, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/images?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get("/api/images", &path).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let page = r.json();
        let items = page["items"].as_array().unwrap().clone();
        assert!(items.len() <= limit as usize);
        out.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

pub fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

/// Ids of the live, stored images in the index.
pub async fn live_ids(db: &PgPool) -> BTreeSet<i64> {
    sqlx::query_scalar::<_, i64>(
        "select id from images where not deleted and object_key is not null",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

pub fn assert_unique(ids: &[i64], what: &str) {
    let set: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "{what}: an image was listed twice");
}
