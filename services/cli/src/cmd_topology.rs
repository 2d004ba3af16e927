//! `imgcrawl topology show|apply`: the operator's view of the JetStream topology (the
//! stream, the KV buckets, the object store) and the only command that changes what
//! exists. A starting process creates what is missing and never changes the rest.
//!
//! `apply --dry-run` prints, per stream or bucket, what differs from the configuration
//! (`[bus]`, `IMGCRAWL_NATS_*`, `--nats-replicas`/`--nats-storage`) and changes
//! nothing; `apply` makes the changes a stream update can make and prints them.
//! Changes that weaken (fewer replicas, a shorter age or dedup window, a size limit)
//! need `--allow-weaker`; storage cannot change in place.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use imgcrawl_bus::identity::StreamIdentity;
use imgcrawl_bus::topology_admin::{self, Report};
use imgcrawl_bus::topology_diff::{self, Change, Verdict};

use crate::progress::human_bytes;
use crate::settings::Settings;

/// Arguments of `imgcrawl topology`.
#[derive(Debug, Args)]
pub struct TopologyArgs {
    #[command(subcommand)]
    cmd: TopologyCmd,
    /// A TOML file with a `[bus]` section: the same file `imgcrawl run --config` reads.
    #[arg(long, env = "IMGCRAWL_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TopologyCmd {
    /// Print the stream and buckets as they are (replicas, storage, limits, cluster).
    Show,
    /// Make existing topology what the configuration says (print the differences first).
    Apply {
        /// Print the differences, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also make changes that weaken the topology: fewer replicas, a shorter max
        /// age or dedup window, a smaller size limit (events may be dropped).
        #[arg(long)]
        allow_weaker: bool,
    },
}

/// Runs `imgcrawl topology`.
pub async fn topology(settings: &Settings, args: TopologyArgs) -> Result<()> {
    let cfg = settings.bus_with(args.config.as_deref(), "imgcrawl-topology")?;
    // no Bus::connect: that would create what is missing
    let client = imgcrawl_bus::connect::client(&cfg).await?;
    let js = imgcrawl_bus::jetstream_context(&client, &cfg);
    match args.cmd {
        TopologyCmd::Show => {
            for r in topology_admin::inspect(&js, &cfg).await? {
                show(&r);
            }
        }
        TopologyCmd::Apply {
            dry_run: true,
            allow_weaker,
        } => {
            for r in topology_admin::inspect(&js, &cfg).await? {
                println!("{}", heading(&r.target));
                match &r.current {
                    None => println!("  missing: would be created"),
                    Some(_) if r.changes.is_empty() => println!("  up to date"),
                    Some(_) => {
                        for c in &r.changes {
                            println!("  {} ({})", change(c), would(c, allow_weaker));
                        }
                    }
                }
            }
            println!("dry run: nothing changed");
        }
        TopologyCmd::Apply {
            dry_run: false,
            allow_weaker,
        } => {
            let mut refused = 0;
            for a in topology_admin::apply(&js, &cfg, allow_weaker).await? {
                println!("{}", heading(&a.target));
                if a.created {
                    println!("  created");
                } else if a.applied.is_empty() && a.skipped.is_empty() && a.refused.is_empty() {
                    println!("  up to date");
                }
                for c in &a.applied {
                    println!("  changed {}", change(c));
                }
                for c in &a.skipped {
                    println!("  left {} ({})", change(c), would(c, allow_weaker));
                }
                for c in &a.refused {
                    println!(
                        "  not changed {}: the server kept {} (replicas need a cluster of that many servers)",
                        change(c),
                        c.current
                    );
                    refused += 1;
                }
            }
            if refused > 0 {
                anyhow::bail!("the server did not make {refused} change(s) it accepted");
            }
        }
    }
    client.flush().await.ok();
    Ok(())
}

fn heading(t: &topology_diff::Target) -> String {
    match t.stream == t.name {
        true => format!("{} {}", t.kind, t.name),
        false => format!("{} {} (stream {})", t.kind, t.name, t.stream),
    }
}

fn change(c: &Change) -> String {
    format!("{}: {} -> {}", c.field, c.current, c.wanted)
}

/// What apply does (or did not do) with a change.
fn would(c: &Change, allow_weaker: bool) -> String {
    match c.verdict {
        Verdict::Apply => "apply changes it".into(),
        Verdict::Weakens if allow_weaker => "weakens; apply --allow-weaker changes it".into(),
        Verdict::Weakens => "weakens: only with --allow-weaker".into(),
        Verdict::CannotChange(why) => why.into(),
    }
}

fn show(r: &Report) {
    let Some(info) = &r.current else {
        println!(
            "{}: missing (created by the next start)",
            heading(&r.target)
        );
        return;
    };
    let c = &info.config;
    println!("{}", heading(&r.target));
    let replicas = match topology_admin::standalone(info) {
        true => "1 (standalone server)".to_string(),
        false => c.num_replicas.max(1).to_string(),
    };
    println!(
        "  storage {}, replicas {replicas}, {} messages, {}",
        topology_diff::storage(c.storage),
        info.state.messages,
        human_bytes(info.state.bytes)
    );
    println!(
        "  duplicate_window {}s, max_age {}, max_bytes {}",
        c.duplicate_window.as_secs(),
        topology_diff::age(c.max_age),
        topology_diff::bytes(c.max_bytes)
    );
    if let Some(id) = StreamIdentity::of(info) {
        println!("  id {}", id.id);
    }
    if let Some(cl) = info.cluster.as_ref().filter(|c| c.name.is_some()) {
        let peers: Vec<String> = cl
            .replicas
            .iter()
            .map(|p| {
                let state = match (p.offline, p.current) {
                    (true, _) => "offline",
                    (false, true) => "current",
                    (false, false) => "catching up",
                };
                format!("{} ({state})", p.name)
            })
            .collect();
        println!(
            "  cluster {}, leader {}{}{}",
            cl.name.as_deref().unwrap_or_default(),
            cl.leader.as_deref().unwrap_or("none"),
            if peers.is_empty() { "" } else { ", replicas " },
            peers.join(", ")
        );
    }
    if !r.changes.is_empty() {
        println!(
            "  differs from the configuration in {}: see `imgcrawl topology apply --dry-run`",
            r.changes
                .iter()
                .map(|c| c.field.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
