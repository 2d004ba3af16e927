//! Live job progress (pages, images, bytes, rate) and the final summary.

use std::time::Duration;

use imgcrawl_readmodel::{jobs, Counters, ReadModelError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use uuid::Uuid;

/// A job's counters as the index holds them.
#[derive(Debug, Clone, Default)]
pub struct JobCounters {
    /// running, stopping, completed or stopped.
    pub status: String,
    /// What the index counted.
    pub counters: Counters,
    /// Distinct images (by SHA-256) of the job.
    pub distinct_images: i64,
    /// Wall time seen by the follower.
    pub wall: Duration,
}

impl JobCounters {
    /// Loads the counters of `job` (None until the index has seen the request).
    pub async fn load(db: &sqlx::PgPool, job: Uuid) -> anyhow::Result<Option<JobCounters>> {
        let row = match jobs::get(db, job).await {
            Ok(r) => r,
            // The index creates its schema when it starts: until then the job is unknown.
            Err(e) if undefined_table(&e) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(r) = row else { return Ok(None) };
        let distinct_images = jobs::distinct_images(db, job).await?;
        Ok(Some(JobCounters {
            status: r.status,
            counters: r.counters,
            distinct_images,
            wall: Duration::ZERO,
        }))
    }

    /// Completed or stopped.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "stopped")
    }

    /// The summary as JSON.
    pub fn to_json(&self, job: Uuid) -> serde_json::Value {
        let c = &self.counters;
        json!({
            "job_id": job, "status": self.status,
            "pages": {"discovered": c.pages_discovered, "fetched": c.pages_fetched, "failed": c.pages_failed},
            "images": {"discovered": c.images_discovered, "downloaded": c.images_downloaded, "rejected": c.images_rejected,
                       "stored": c.images_stored, "distinct": self.distinct_images},
            "bytes": c.bytes_downloaded, "wall_seconds": self.wall.as_secs_f64(),
        })
    }

    /// Prints the summary for people.
    pub fn print(&self, job: Uuid) {
        let secs = self.wall.as_secs_f64().max(1e-3);
        let c = &self.counters;
        println!("job {job}: {}", self.status);
        println!(
            "  pages   {} fetched, {} failed or skipped ({} discovered)",
            c.pages_fetched, c.pages_failed, c.pages_discovered
        );
        println!(
            "  images  {} stored ({} distinct by sha256), {} rejected ({} discovered)",
            c.images_stored, self.distinct_images, c.images_rejected, c.images_discovered
        );
        println!("  bytes   {}", human_bytes(c.bytes_downloaded as u64));
        println!(
            "  time    {:.1} s, {:.1} images/s, {}/s",
            secs,
            c.images_stored as f64 / secs,
            human_bytes((c.bytes_downloaded as f64 / secs) as u64)
        );
    }
}

/// `12.3 MiB`.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A spinner line that redraws the counters (hidden when not drawing).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress line on stderr, or a hidden one.
    pub fn new(draw: bool) -> Self {
        let bar = if draw {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// Before the index has seen the job.
    pub fn waiting(&self) {
        self.bar
            .set_message("waiting for the pipeline to pick up the request...");
    }

    /// Redraws with new counters.
    pub fn update(&self, job: &JobCounters, elapsed: Duration) {
        let c = &job.counters;
        let secs = elapsed.as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{} | pages {}/{} | images {} stored, {} rejected, {} pending | {} | {:.0} img/s",
            job.status,
            c.pages_fetched + c.pages_failed,
            c.pages_discovered,
            c.images_stored,
            c.images_rejected,
            c.images_pending(),
            human_bytes(c.bytes_downloaded as u64),
            c.images_stored as f64 / secs
        ));
    }

    /// Clears the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Whether `e` says the schema is not there yet (`undefined_table`).
fn undefined_table(e: &ReadModelError) -> bool {
    matches!(e.sqlx(), Some(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01"))
}
