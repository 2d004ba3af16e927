//! The request extractors whose rejections are our JSON errors, shared with the HA API
//! (`imgcrawl_web::extract`).

pub use imgcrawl_web::extract::{JsonBody, PathParams, QueryParams, RawBody};
