//! `imgcrawl`: one binary for the local stack, the pipeline workers, crawls, status
//! and images. See `imgcrawl --help`.

mod cmd_backup;
mod cmd_crawl;
mod cmd_demo;
mod cmd_events;
mod cmd_ha;
mod cmd_images;
mod cmd_purge;
mod cmd_replay;
mod cmd_restore;
mod cmd_run;
mod cmd_serve;
mod cmd_status;
mod cmd_topology;
mod cmd_verify;
mod progress;
mod settings;
mod signals;
mod stack;
mod telemetry;

use anyhow::Result;
use clap::{Parser, Subcommand};

use settings::Settings;

/// imgcrawl: an event-sourced image crawler over NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "imgcrawl", version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the local stack: nats-server, PostgreSQL, a bucket directory, and the workers.
    Up {
        /// Only the infrastructure, no background workers.
        #[arg(long)]
        no_workers: bool,
        /// Refuse loopback targets in the workers (the local stack allows them by default).
        #[arg(long)]
        no_loopback: bool,
        /// PostgreSQL nodes: 2 or more adds standbys on the next ports and an HA watcher.
        #[arg(long)]
        nodes: Option<usize>,
        /// nats-server nodes: 3 or more make a JetStream cluster on the next ports, with
        /// the stream, buckets and blob store at R3 (chosen at a home's first `up`).
        #[arg(long)]
        nats_nodes: Option<usize>,
        /// `always`: every nats node fsyncs each write (JetStream's `sync_interval`);
        /// `default`: the server's periodic fsync.
        #[arg(long, value_parser = ["always", "default"])]
        nats_sync: Option<String>,
        /// Also start Prometheus (Debian's `prometheus`, when installed) scraping the
        /// stack on 127.0.0.1:19090, with the alert rules.
        #[arg(long)]
        prometheus: bool,
        /// Also start the continuous archive of the stream (`imgcrawl backup` into the
        /// home's `backup/`, or `IMGCRAWL_BACKUP_TARGET`).
        #[arg(long)]
        backup: bool,
    },
    /// Stop the local stack (data is kept).
    Down,
    /// Run the pipeline stages in this process (all, or `--stage NAME` repeated).
    Run(cmd_run::RunArgs),
    /// Request a crawl of URL(s); `--wait` follows it to the end.
    Crawl(cmd_crawl::CrawlArgs),
    /// Stop a job: in-flight work drains, nothing new starts.
    Stop(cmd_crawl::StopArgs),
    /// Show the stack, the stream, consumer lag, dead letters and jobs.
    Status,
    /// View or follow the event stream (the source of truth), filtered by subject, job
    /// or sequence range, as readable lines or JSON.
    Events(cmd_events::EventsArgs),
    /// List a job's indexed images.
    Images(cmd_images::ImagesArgs),
    /// Bring up the stack, crawl the built-in demo site end to end, print the summary.
    Demo(cmd_demo::DemoArgs),
    /// Rebuild the PostgreSQL projection or the bucket from the stream (resumable).
    Replay(cmd_replay::ReplayArgs),
    /// Compare two projections (or one with a fresh replay) and check a bucket; exit 1 if
    /// anything differs.
    Verify(cmd_verify::VerifyArgs),
    /// Run the HA watcher (health checks, failover, fencing, consistency checks, HA
    /// API); `ha failover NODE`, `ha sync`, `ha status` ask the running one.
    Ha(cmd_ha::HaArgs),
    /// Serve the HTTP API and the web gallery (port 8000 by default).
    Serve(cmd_serve::ServeArgs),
    /// Show the JetStream topology, or change existing topology to match the
    /// configuration (`apply [--dry-run]`): the only command that changes it.
    Topology(cmd_topology::TopologyArgs),
    /// Archive the stream, its blobs and KV state continuously into a directory or S3
    /// bucket (`--once`: what is there now); `backup verify`, `snapshot`, `prune`.
    Backup(cmd_backup::BackupArgs),
    /// Rebuild the stream, blobs and KV state from a backup into an empty JetStream,
    /// at the original sequences (then `replay` the projections).
    Restore(cmd_restore::RestoreArgs),
    /// Take an image down for good: blob store, bucket, thumbnails, future backups.
    Purge(cmd_purge::PurgeArgs),
}

/// Runs the command; on failure prints `error: <reason>` on one line (the whole cause
/// chain) and exits 1. A backtrace only when asked for with `IMGCRAWL_BACKTRACE=1`.
fn main() -> std::process::ExitCode {
    let backtrace = std::env::var_os("IMGCRAWL_BACKTRACE").is_some_and(|v| v != "0");
    // anyhow captures a backtrace when RUST_LIB_BACKTRACE (or RUST_BACKTRACE) says so:
    // only when the user asked us for one. Set before any thread exists.
    std::env::set_var("RUST_LIB_BACKTRACE", if backtrace { "1" } else { "0" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_cli()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            if backtrace {
                eprintln!("{}", e.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error chain on one line (a cause may carry newlines of its own).
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    let (s, t) = (cli.settings, cli.telemetry);
    // Logs to stderr (text or JSON), filtered by `RUST_LOG` else these defaults.
    let serving = "info,async_nats=warn,sqlx=warn";
    match cli.cmd {
        Cmd::Run(args) => {
            let tc = t.config(args.config.as_deref())?;
            t.init_logs(serving, &tc, "imgcrawl-run")?;
            cmd_run::run(&s, args, &tc).await
        }
        Cmd::Serve(args) => {
            let tc = t.config(None)?;
            t.init_logs(serving, &tc, "imgcrawl-api")?;
            cmd_serve::serve(&s, args, &tc).await
        }
        Cmd::Backup(args) if args.action.is_none() && !args.once => {
            let tc = t.config(None)?;
            t.init_logs(serving, &tc, "imgcrawl-backup")?;
            cmd_backup::backup(&s, args).await
        }
        Cmd::Ha(args) => {
            let tc = t.config(args.config.as_deref())?;
            t.init_logs(serving, &tc, "imgcrawl-ha")?;
            cmd_ha::ha(&s, args, &tc).await
        }
        cmd => {
            t.init_logs("warn,async_nats=error", &Default::default(), "imgcrawl")?;
            match cmd {
                Cmd::Up {
                    no_workers,
                    no_loopback,
                    nodes,
                    nats_nodes,
                    nats_sync,
                    prometheus,
                    backup,
                } => {
                    stack::up(&stack::UpOptions {
                        workers: !no_workers,
                        allow_loopback: !no_loopback,
                        nodes,
                        nats_nodes,
                        nats_sync_always: nats_sync.map(|s| s == "always"),
                        prometheus,
                        backup,
                    })
                    .await?;
                    for (name, up, where_) in stack::describe() {
                        println!(
                            "{:<9} {:<8} {}",
                            name,
                            if up { "running" } else { "stopped" },
                            where_
                        );
                    }
                    Ok(())
                }
                Cmd::Down => {
                    stack::down().await?;
                    println!(
                        "local stack stopped (data kept in {})",
                        stack::home().display()
                    );
                    Ok(())
                }
                Cmd::Crawl(args) => cmd_crawl::crawl(&s, args).await,
                Cmd::Stop(args) => cmd_crawl::stop(&s, args).await,
                Cmd::Status => cmd_status::status(&s).await,
                Cmd::Images(args) => cmd_images::images(&s, args).await,
                Cmd::Events(args) => cmd_events::events(&s, args).await,
                Cmd::Demo(args) => cmd_demo::demo(&s, args).await,
                Cmd::Replay(args) => cmd_replay::replay(&s, args).await,
                Cmd::Verify(args) => cmd_verify::verify(&s, args).await,
                Cmd::Topology(args) => cmd_topology::topology(&s, args).await,
                Cmd::Backup(args) => cmd_backup::backup(&s, args).await,
                Cmd::Restore(args) => cmd_restore::restore(&s, args).await,
                Cmd::Purge(args) => cmd_purge::purge(&s, args).await,
                Cmd::Run(_) => unreachable!("handled above"),
                Cmd::Ha(_) => unreachable!("handled above"),
                Cmd::Serve(_) => unreachable!("handled above"),
            }
        }
    }
}
