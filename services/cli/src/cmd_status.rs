//! `imgcrawl status`: the stack, the stream, the consumers and their lag, dead
//! letters, the projection checkpoints and the latest jobs.

use anyhow::Result;
use futures::TryStreamExt;
use imgcrawl_readmodel::{checkpoint, jobs};

use crate::progress::human_bytes;
use crate::settings::Settings;
use crate::stack;

/// Runs `imgcrawl status`.
pub async fn status(settings: &Settings) -> Result<()> {
    if settings.is_local() {
        println!("local stack ({})", stack::home().display());
        for (name, up, where_) in stack::describe() {
            println!(
                "  {:<9} {:<8} {}",
                name,
                if up { "running" } else { "stopped" },
                where_
            );
        }
    }
    let bus = settings.connect_bus("imgcrawl-status").await?;
    let mut stream = bus.js.get_stream(&bus.config.stream).await?;
    let info = stream.info().await?.clone();
    let id = info
        .config
        .metadata
        .get(imgcrawl_bus::identity::STREAM_ID_KEY)
        .map_or("none", String::as_str);
    println!(
        "stream {} (id {id}): {} events, {}, sequences {}..{}",
        info.config.name,
        info.state.messages,
        human_bytes(info.state.bytes),
        info.state.first_sequence,
        info.state.last_sequence
    );
    if let Some(line) = cluster_line(&info) {
        println!("{line}");
    }
    let consumers: Vec<_> = stream.consumers().try_collect().await?;
    let mut consumers = consumers;
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let leaders: Vec<String> = consumers
        .iter()
        .filter(|c| c.config.durable_name.is_some())
        .filter_map(|c| {
            Some(format!(
                "{} on {}",
                c.name,
                c.cluster.as_ref()?.leader.as_ref()?
            ))
        })
        .collect();
    if info.config.num_replicas > 1 && !leaders.is_empty() {
        println!("  consumer leaders: {}", leaders.join(", "));
    }
    println!(
        "  {:<18} {:>10} {:>12} {:>12} {:>10}",
        "consumer", "pending", "in flight", "redelivered", "at seq"
    );
    for c in consumers {
        // The index reads with an ordered (ephemeral) consumer from its checkpoint.
        let index = c
            .config
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("imgcrawl index-"));
        let name = if c.config.durable_name.is_none() && index {
            "index (ordered)".to_string()
        } else {
            c.name.clone()
        };
        println!(
            "  {:<18} {:>10} {:>12} {:>12} {:>10}",
            name, c.num_pending, c.num_ack_pending, c.num_redelivered, c.delivered.stream_sequence
        );
    }
    let mut dead: Vec<(String, usize)> = stream
        .info_with_subjects("imgcrawl.dlq.>")
        .await?
        .try_collect()
        .await?;
    dead.sort();
    let total: usize = dead.iter().map(|(_, n)| n).sum();
    if total > 0 {
        println!(
            "  dead letters: {total} ({})",
            dead.iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        println!("  dead letters: none");
    }
    for line in crate::cmd_ha::status_lines(&bus).await {
        println!("{line}");
    }
    match settings.connect_db().await {
        Ok(db) => jobs(&db).await?,
        Err(e) => println!("index: {e}"),
    }
    Ok(())
}

async fn jobs(db: &sqlx::PgPool) -> Result<()> {
    let Ok(cps) = checkpoint::all(db).await else {
        println!("index: not initialised yet (start the workers: `imgcrawl up` or `imgcrawl run`)");
        return Ok(());
    };
    for (name, c) in cps {
        println!(
            "index checkpoint {name}: seq {} (epoch {})",
            c.last_seq, c.epoch
        );
    }
    let rows = jobs::list(db, None, 10).await?;
    if rows.is_empty() {
        println!("no jobs yet: `imgcrawl crawl URL --wait`");
        return Ok(());
    }
    println!(
        "  {:<36} {:<10} {:>11} {:>17} {:>10}  seed",
        "job", "status", "pages", "images (rej)", "bytes"
    );
    for r in rows {
        let pages = format!(
            "{}/{}",
            r.counters.pages_fetched + r.counters.pages_failed,
            r.counters.pages_discovered
        );
        let images = format!(
            "{}/{} ({})",
            r.counters.images_stored, r.counters.images_discovered, r.counters.images_rejected
        );
        println!(
            "  {:<36} {:<10} {:>11} {:>17} {:>10}  {}",
            r.job_id.to_string(),
            r.status,
            pages,
            images,
            human_bytes(r.counters.bytes_downloaded as u64),
            r.seeds.first().cloned().unwrap_or_default()
        );
    }
    Ok(())
}

/// The stream's replication: its leader and each replica's state (none on a single
/// server).
fn cluster_line(info: &async_nats::jetstream::stream::Info) -> Option<String> {
    let c = info.cluster.as_ref()?;
    let leader = c.leader.as_deref()?;
    let mut line = format!(
        "  cluster {}: R{}, stream leader {leader}",
        c.name.as_deref().unwrap_or("-"),
        info.config.num_replicas
    );
    for p in &c.replicas {
        let state = if p.offline {
            "offline".to_string()
        } else if p.current {
            "current".to_string()
        } else {
            format!("behind by {} operations", p.lag.unwrap_or(0))
        };
        line.push_str(&format!(
            "; replica {}: {state}, seen {:.1}s ago",
            p.name,
            p.active.as_secs_f64()
        ));
    }
    Some(line)
}
