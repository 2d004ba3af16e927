//! `imgcrawl images --job ID [--jsonl]`: one line per indexed image URL of a job.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use futures::TryStreamExt;
use imgcrawl_readmodel::sources;
use serde_json::json;
use uuid::Uuid;

use crate::settings::Settings;

/// Arguments of `imgcrawl images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The job.
    #[arg(long)]
    pub job: Uuid,
    /// One JSON object per line (url, page_url, sha256, bytes, width, height, format, object_key).
    #[arg(long)]
    pub jsonl: bool,
}

/// Runs `imgcrawl images`.
pub async fn images(settings: &Settings, args: ImagesArgs) -> Result<()> {
    let db = settings.connect_db().await?;
    let mut rows = std::pin::pin!(sources::of_job(&db, args.job));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0u64;
    while let Some(r) = rows.try_next().await? {
        n += 1;
        let v = json!({
            "url": r.url,
            "page_url": r.page_url,
            "sha256": r.sha256,
            "bytes": r.bytes,
            "width": r.width,
            "height": r.height,
            "format": r.format,
            "object_key": r.object_key,
        });
        let line = if args.jsonl {
            v.to_string()
        } else {
            let sha = v["sha256"].as_str().unwrap_or("");
            format!(
                "{}  {:>5}x{:<5} {:<5} {}",
                &sha[..sha.len().min(12)],
                v["width"],
                v["height"],
                v["format"].as_str().unwrap_or(""),
                v["url"].as_str().unwrap_or("")
            )
        };
        if let Err(e) = writeln!(out, "{line}") {
            // A closed pipe (`| head`) ends the listing quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    if n == 0 {
        eprintln!(
            "no indexed images for job {} (unknown job, or still running: `imgcrawl status`)",
            args.job
        );
    }
    Ok(())
}
