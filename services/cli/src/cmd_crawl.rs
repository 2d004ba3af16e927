//! `imgcrawl crawl URL [--wait]` and `imgcrawl stop JOB`: publish a request (or a
//! stop), optionally follow the job live and print a summary.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use imgcrawl_events::{
    CrawlRequested, CrawlStopped, Event, ImageFilters, JobSpec, Politeness, Scope,
};
use uuid::Uuid;

use crate::progress::{JobCounters, Progress};
use crate::settings::Settings;

/// Arguments of `imgcrawl crawl`.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Seed URL(s).
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Follow the job until it completes, with live progress.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (the job goes on).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Link depth from the seeds.
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Most pages.
    #[arg(long)]
    pub max_pages: Option<u64>,
    /// Most image URLs.
    #[arg(long)]
    pub max_images: Option<u64>,
    /// Hosts in scope (repeatable; default: the seeds' hosts).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Also crawl subdomains of the hosts in scope.
    #[arg(long)]
    pub subdomains: bool,
    /// Only crawl pages whose path matches (repeatable; `*` wildcard, `$` end).
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip pages whose path matches (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Also render the pages of these hosts in headless Chromium (repeatable; `*` every
    /// host, `*.example.org` a domain); needs a render process (`run --stage render`).
    #[arg(long = "render")]
    pub render: Vec<String>,
    /// Ignore robots.txt (be sure you may).
    #[arg(long)]
    pub ignore_robots: bool,
    /// Minimum milliseconds between requests to one host.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Smallest accepted image width.
    #[arg(long)]
    pub min_width: Option<u32>,
    /// Smallest accepted image height.
    #[arg(long)]
    pub min_height: Option<u32>,
    /// A label for listings.
    #[arg(long)]
    pub label: Option<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl CrawlArgs {
    /// The request these arguments describe, validated.
    pub fn request(&self, job_id: Uuid) -> Result<CrawlRequested> {
        let mut scope = Scope::default();
        if let Some(d) = self.max_depth {
            scope.max_depth = d;
        }
        if let Some(p) = self.max_pages {
            scope.max_pages = p;
        }
        if let Some(i) = self.max_images {
            scope.max_images = i;
        }
        scope.hosts = self.hosts.clone();
        scope.subdomains = self.subdomains;
        scope.include = self.include.clone();
        scope.exclude = self.exclude.clone();
        scope.render = self.render.clone();
        let mut politeness = Politeness {
            obey_robots: !self.ignore_robots,
            ..Default::default()
        };
        if let Some(d) = self.delay_ms {
            politeness.delay_ms = d;
        }
        let mut images = ImageFilters::default();
        if let Some(w) = self.min_width {
            images.min_width = w;
        }
        if let Some(h) = self.min_height {
            images.min_height = h;
        }
        let req = CrawlRequested {
            job_id: Some(job_id),
            url: None,
            urls: self.urls.clone(),
            scope: Some(scope),
            politeness: Some(politeness),
            images: Some(images),
            label: self.label.clone(),
            occurred_at: Some(Utc::now()),
        };
        // The same resolution the pipeline does: refuses bad URLs before publishing.
        JobSpec::resolve(&req, "check", 0, Utc::now()).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(req)
    }
}

/// Runs `imgcrawl crawl`.
pub async fn crawl(settings: &Settings, args: CrawlArgs) -> Result<()> {
    let job_id = Uuid::now_v7();
    let req = args.request(job_id)?;
    let bus = settings.connect_bus("imgcrawl-cli").await?;
    bus.publisher()
        .publish(&Event::CrawlRequested(req))
        .await
        .context("publish crawl request")?;
    if !args.wait {
        println!("{job_id}");
        eprintln!("crawl requested; follow it with `imgcrawl status` or `imgcrawl images --job {job_id} --jsonl`");
        return Ok(());
    }
    let db = settings.connect_db().await?;
    let summary = follow(&db, job_id, Duration::from_secs(args.timeout), !args.json).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary.to_json(job_id))?
        );
    } else {
        summary.print(job_id);
    }
    Ok(())
}

/// Polls the index until the job is completed or stopped, drawing progress.
pub async fn follow(
    db: &sqlx::PgPool,
    job_id: Uuid,
    timeout: Duration,
    draw: bool,
) -> Result<JobCounters> {
    let start = Instant::now();
    let progress = Progress::new(draw);
    loop {
        let counters = JobCounters::load(db, job_id).await?;
        if let Some(c) = &counters {
            progress.update(c, start.elapsed());
            if c.is_finished() {
                progress.finish();
                let mut c = c.clone();
                c.wall = start.elapsed();
                return Ok(c);
            }
        } else {
            progress.waiting();
        }
        if start.elapsed() > timeout {
            progress.finish();
            bail!("job {job_id} did not finish within {timeout:?} (it goes on; see `imgcrawl status`)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Arguments of `imgcrawl stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The job to stop.
    pub job: Uuid,
    /// Why, for people.
    #[arg(long)]
    pub reason: Option<String>,
}

/// Runs `imgcrawl stop`.
pub async fn stop(settings: &Settings, args: StopArgs) -> Result<()> {
    let bus = settings.connect_bus("imgcrawl-cli").await?;
    let ev = Event::CrawlStopped(CrawlStopped {
        job_id: args.job,
        reason: args.reason,
        occurred_at: Utc::now(),
    });
    bus.publisher()
        .publish(&ev)
        .await
        .context("publish crawl stop")?;
    eprintln!("stop requested for {}; in-flight work drains", args.job);
    Ok(())
}
