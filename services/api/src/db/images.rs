//! Images through the read model (`imgcrawl_readmodel::images` and `sources`), in
//! the API's vocabulary: its sort and cursor, its source and page types. No SQL here.

use imgcrawl_readmodel::images::{self as rm, After, Order};
use imgcrawl_readmodel::sources;
use imgcrawl_readmodel::ReadModelError;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::cursor::Cursor;
use crate::model::images::{ImageSource, PageRef, Sort};

pub use imgcrawl_readmodel::images::{ImageFilter, ImageRow};
pub use imgcrawl_readmodel::sources::MAX_SOURCES;

/// The read model's order for an API sort.
fn order(sort: Sort) -> Order {
    match sort {
        Sort::Newest => Order::Newest,
        Sort::Oldest => Order::Oldest,
        Sort::Largest => Order::Largest,
        Sort::Smallest => Order::Smallest,
    }
}

fn after(c: Option<Cursor>) -> Option<After> {
    c.map(|c| After {
        bytes: c.bytes,
        id: c.id,
    })
}

/// The statement of a listing page ([`rm::list_query`]) for an API sort and cursor.
pub fn list_query<'a>(
    prefix: &str,
    filter: &'a ImageFilter,
    sort: Sort,
    cursor: Option<Cursor>,
    limit: u32,
) -> QueryBuilder<'a, Postgres> {
    rm::list_query(prefix, filter, order(sort), after(cursor), limit)
}

/// One page of live, stored images after `cursor`, and whether more follow.
pub async fn list(
    db: &PgPool,
    filter: &ImageFilter,
    sort: Sort,
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<(Vec<ImageRow>, bool), ReadModelError> {
    rm::list(db, filter, order(sort), after(cursor), limit).await
}

/// The image with `id`, deleted or not.
pub async fn get(db: &PgPool, id: i64) -> Result<Option<ImageRow>, ReadModelError> {
    rm::get(db, id).await
}

/// How many live, stored images the index holds.
pub async fn count(db: &PgPool) -> Result<i64, ReadModelError> {
    rm::count_live(db).await
}

/// The image's downloaded sources, oldest first, at most [`MAX_SOURCES`] + 1.
pub async fn sources(db: &PgPool, sha256: &str) -> Result<Vec<ImageSource>, ReadModelError> {
    let rows = sources::of_image(db, sha256).await?;
    Ok(rows
        .into_iter()
        .map(|r| ImageSource {
            job_id: r.job_id,
            url: r.url,
            final_url: r.final_url,
            page_url: r.page_url,
            alt: r.alt,
            found_by: r.found_by,
            status: r.status,
            discovered_at: r.discovered_at,
            downloaded_at: r.downloaded_at,
            stored_at: r.stored_at,
        })
        .collect())
}

/// The pages the image's sources were found on (at most [`MAX_SOURCES`]).
pub async fn pages(db: &PgPool, sha256: &str) -> Result<Vec<PageRef>, ReadModelError> {
    let rows = sources::pages_of_image(db, sha256).await?;
    Ok(rows
        .into_iter()
        .map(|r| PageRef {
            job_id: r.job_id,
            url: r.url,
            title: r.title,
            status: r.status,
            http_status: r.http_status,
            depth: r.depth,
        })
        .collect())
}
