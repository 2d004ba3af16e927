//! Prometheus for the local stack (`imgcrawl up --prometheus`, when Debian's
//! `prometheus` is on the `PATH`): scrapes the stack's workers, its HA watcher and an
//! API on `127.0.0.1:19466`, with the project's alert rules, its data under the home.
//! The rules are the ones in `infra/observability/prometheus/rules/`, built in.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::proc::{live_pid, port_open, spawn_detached, terminate};

/// The alert rules, as in `infra/observability/prometheus/rules/imgcrawl.rules.yml`.
const RULES: &str =
    include_str!("../../../../infra/observability/prometheus/rules/imgcrawl.rules.yml");

/// Prometheus's port: `IMGCRAWL_PROMETHEUS_PORT`, default 19090.
pub fn port() -> u16 {
    super::port_from_env("IMGCRAWL_PROMETHEUS_PORT", 19090)
}

/// The scrape configuration for the stack's ports.
fn config(rules: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n\
         \x20 - job_name: imgcrawl-workers\n    static_configs:\n      - targets: [\"127.0.0.1:{w}\"]\n\
         \x20 - job_name: imgcrawl-ha\n    static_configs:\n      - targets: [\"127.0.0.1:{h}\"]\n\
         \x20 - job_name: imgcrawl-api\n    static_configs:\n      - targets: [\"127.0.0.1:19466\"]\n",
        rules = rules.display(),
        w = super::metrics_port(),
        h = super::ha_metrics_port(),
    )
}

/// Is it running?
pub fn running(home: &Path) -> bool {
    live_pid(&home.join("prometheus.pid")).is_some()
}

/// Starts Prometheus unless it runs; an error if `prometheus` is not installed.
pub async fn up(home: &Path) -> Result<()> {
    if running(home) {
        return Ok(());
    }
    let dir = home.join("prometheus");
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("create {}", dir.display()))?;
    let rules = dir.join("imgcrawl.rules.yml");
    std::fs::write(&rules, RULES)?;
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config(&rules))?;
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", port()));
    let pid = spawn_detached(cmd, &home.join("prometheus.log"))
        .context("start prometheus (Debian's package `prometheus`)")?;
    std::fs::write(home.join("prometheus.pid"), pid.to_string())?;
    for _ in 0..100 {
        if port_open(port()) {
            return Ok(());
        }
        if !running(home) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "prometheus did not start; see {}",
        home.join("prometheus.log").display()
    )
}

/// Stops Prometheus (its data is kept).
pub async fn down(home: &Path) {
    if let Some(pid) = live_pid(&home.join("prometheus.pid")) {
        terminate(pid, Duration::from_secs(10)).await;
    }
    let _ = std::fs::remove_file(home.join("prometheus.pid"));
}

/// Its line in `imgcrawl up`'s listing, when it was started.
pub fn describe(home: &Path) -> Option<(String, bool, String)> {
    home.join("prometheus").is_dir().then(|| {
        (
            "prometheus".into(),
            running(home),
            format!(
                "http://127.0.0.1:{}/ (log {})",
                port(),
                home.join("prometheus.log").display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_scrapes_the_stack_and_loads_the_rules() {
        let c = config(Path::new("/h/prometheus/imgcrawl.rules.yml"));
        assert!(c.contains("- /h/prometheus/imgcrawl.rules.yml"), "{c}");
        for job in ["imgcrawl-workers", "imgcrawl-ha", "imgcrawl-api"] {
            assert!(c.contains(&format!("job_name: {job}")), "{c}");
        }
        assert!(c.contains(&format!("127.0.0.1:{}", super::super::metrics_port())));
        assert!(RULES.contains("ImgcrawlDatabaseDown"));
    }
}
