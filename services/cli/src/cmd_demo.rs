//! `imgcrawl demo`: bring up the local stack, serve the built-in demo site on
//! loopback, crawl it end to end, and compare the index with the site's ground truth.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use imgcrawl_events::{CrawlRequested, Event};
use imgcrawl_readmodel::sources;
use uuid::Uuid;

use imgcrawl_events::redact;

use crate::settings::Settings;
use crate::{cmd_crawl, stack};

/// Arguments of `imgcrawl demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the demo site (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Runs `imgcrawl demo`.
pub async fn demo(settings: &Settings, args: DemoArgs) -> Result<()> {
    if settings.is_local() {
        eprintln!(
            "starting the local stack in {} ...",
            stack::home().display()
        );
        stack::up(&stack::UpOptions {
            workers: true,
            allow_loopback: true,
            nodes: None,
            nats_nodes: None,
            nats_sync_always: None,
            prometheus: false,
            backup: false,
        })
        .await?;
    } else {
        eprintln!(
            "using the configured NATS and PostgreSQL; their workers must allow loopback targets"
        );
    }
    let site = Arc::new(imgcrawl_sitegen::try_demo().context("generate the demo site")?);
    let server =
        imgcrawl_sitegen::serve(site.clone(), SocketAddr::from(([127, 0, 0, 1], args.port)))
            .await?;
    let seed = server.seed_url();
    eprintln!("demo site: {seed}");

    let job_id = Uuid::now_v7();
    let req = CrawlRequested {
        job_id: Some(job_id),
        url: Some(seed.clone()),
        label: Some("demo".into()),
        occurred_at: Some(Utc::now()),
        ..Default::default()
    };
    let bus = settings.connect_bus("imgcrawl-demo").await?;
    bus.publisher().publish(&Event::CrawlRequested(req)).await?;
    let db = settings.connect_db().await?;
    let summary = cmd_crawl::follow(&db, job_id, Duration::from_secs(args.timeout), true).await?;
    summary.print(job_id);

    // Compare with the ground truth: every expected image URL indexed with its sha256.
    let expected: BTreeSet<(String, String)> = site
        .expected
        .images
        .iter()
        .map(|i| {
            (
                server_url(&server, i.alt_host, &i.url_path),
                i.sha256.clone(),
            )
        })
        .collect();
    let rows = sources::stored_of_job(&db, job_id).await?;
    let got: BTreeSet<(String, String)> = rows
        .into_iter()
        .map(|(url, sha256)| (url, sha256.unwrap_or_default()))
        .collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&expected).collect();
    println!(
        "ground truth: {} of {} expected image URLs indexed with the right sha256, {} unexpected",
        expected.len() - missing.len(),
        expected.len(),
        unexpected.len()
    );
    for (u, _) in &missing {
        println!("  missing     {u}");
    }
    for (u, _) in &unexpected {
        println!("  unexpected  {u}");
    }
    println!();
    println!("where to look:");
    println!("  images      imgcrawl images --job {job_id} --jsonl");
    println!("  status      imgcrawl status");
    println!("  bucket      {}", settings.bucket()?);
    println!("  database    psql {}", redact(&settings.database_url()));
    println!(
        "  events      nats stream view IMGCRAWL --server {}",
        settings.nats_url()
    );
    println!("  stop stack  imgcrawl down");
    server.shutdown().await;
    if !missing.is_empty() || !unexpected.is_empty() {
        bail!("the demo crawl does not match the site's ground truth");
    }
    Ok(())
}

fn server_url(server: &imgcrawl_sitegen::SiteServer, alt: bool, path: &str) -> String {
    if alt {
        server.alt_url(path)
    } else {
        server.url(path)
    }
}
