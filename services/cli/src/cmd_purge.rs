//! `imgcrawl purge SHA256`: take an image down for good: its bytes leave the blob
//! store, the bucket (through the store stage), the thumbnail cache named, and every
//! future backup segment and restore. See docs/backup.md, "Takedown".

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::settings::Settings;

/// Arguments of `imgcrawl purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The image's SHA-256 (lowercase hex).
    pub sha256: String,
    /// Why, for people (kept in the deletion event).
    #[arg(long)]
    pub reason: Option<String>,
    /// Also remove the image's thumbnails from this cache directory (the API's
    /// `thumbnails.cache_dir`).
    #[arg(long, value_name = "DIR")]
    pub thumbnails: Option<PathBuf>,
}

/// Runs `imgcrawl purge`.
pub async fn purge(settings: &Settings, args: PurgeArgs) -> Result<()> {
    let bus = settings.connect_bus("imgcrawl-purge").await?;
    let p = imgcrawl_backup::purge(&bus, &args.sha256, args.reason.clone()).await?;
    let mut thumbs = 0;
    if let Some(dir) = &args.thumbnails {
        let shard = dir.join(args.sha256.get(..2).unwrap_or("xx"));
        if let Ok(entries) = std::fs::read_dir(&shard) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&args.sha256) {
                    std::fs::remove_file(e.path())?;
                    thumbs += 1;
                }
            }
        }
    }
    println!(
        "purged {}: {}; deletion published (the store stage removes the bucket objects); {thumbs} thumbnail(s) removed",
        args.sha256,
        if p.blob_deleted {
            "bytes removed from the blob store"
        } else {
            "no bytes were in the blob store"
        }
    );
    Ok(())
}
