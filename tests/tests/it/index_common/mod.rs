//! Helpers of the index projection tests: a migrated
//! database per test on the harness's [`Postgres`], and a synthetic event stream with
//! known answers ([`stream`]).

pub mod stream;

use imgcrawl_tests::Postgres;
use sqlx::PgPool;

/// A fresh database on `pg` with the index schema migrated.
pub async fn fresh_pool(pg: &Postgres) -> PgPool {
    let pool = imgcrawl_index::connect(&pg.fresh_db().await)
        .await
        .expect("connect");
    imgcrawl_index::migrate(&pool).await.expect("migrate");
    pool
}
