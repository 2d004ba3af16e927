//! `imgcrawl images --job ID [--jsonl]`: one line per indexed image URL of a job.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use futures::TryStreamExt;
use serde_json::json;
use sqlx::Row;
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
    let mut rows = sqlx::query(
        "select s.url, s.page_url, i.sha256, i.bytes, i.width, i.height, i.format, i.object_key
         from image_sources s join images i on i.sha256 = s.sha256
         where s.job_id = $1 and s.status in ('downloaded', 'stored') and not i.deleted
         order by s.url",
    )
    .bind(args.job)
    .fetch(&db);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0u64;
    while let Some(r) = rows.try_next().await? {
        n += 1;
        let v = json!({
            "url": r.get::<String, _>("url"),
            "page_url": r.get::<Option<String>, _>("page_url"),
            "sha256": r.get::<String, _>("sha256"),
            "bytes": r.get::<i64, _>("bytes"),
            "width": r.get::<i32, _>("width"),
            "height": r.get::<i32, _>("height"),
            "format": r.get::<String, _>("format"),
            "object_key": r.get::<Option<String>, _>("object_key"),
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
