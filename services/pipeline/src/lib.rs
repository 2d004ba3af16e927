//! The pipeline's stages in one place: which there are, what each is called, which
//! config section and consumer it has, and how to run one.
//!
//! `imgcrawl run`, the integration tests' in-process pipeline and the benchmarks all
//! start stages through [`Stage::run`] with one [`StagesConfig`], so adding a stage is
//! one variant here (plus its crate). Stages never depend on each other; this crate
//! sits above them.

mod config;
mod stage;

pub use config::StagesConfig;
pub use stage::{Stage, StageError, UnknownStage};
