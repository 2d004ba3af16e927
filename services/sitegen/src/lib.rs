//! Deterministic test websites and a loopback server for them.
//!
//! * [`demo`]: a small site exercising every image-extraction rule and every failure the
//!   pipeline handles (robots, redirects, loops, scope, broken images, ...).
//! * [`synthetic`]: large sites for benchmarks, writable to a directory for nginx.
//! * [`serve`]: an axum server on loopback that records what it served.
//!
//! Every image is real (encoded by the `image` crate or hand-written SVG) and seeded,
//! so a site is byte-identical across runs and machines; each [`Site`] carries its
//! ground truth ([`Expected`]) to compare an index against.

mod builder;
pub mod demo;
pub mod error;
pub mod expected;
pub mod html;
pub mod images;
pub mod pad;
pub mod rng;
pub mod server;
pub mod site;
pub mod synthetic;

pub use demo::{demo, try_demo};
pub use error::SiteError;
pub use expected::{Expected, ExpectedImage, ExpectedPage, ExpectedPageFailure, ExpectedRejection};
pub use images::{render, Format, Image, ImageSpec};
pub use server::{serve, ServedRequest, SiteServer};
pub use site::{Origins, Resource, Site, WriteSummary, ALT_ORIGIN, ORIGIN};
pub use synthetic::{synthetic, synthetic_with, SyntheticSpec};
