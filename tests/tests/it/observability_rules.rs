//! `infra/observability/` checked with the real tools: the alert rules' unit tests
//! (`promtool test rules`), the scrape configs and rules (`promtool check`), the
//! Alertmanager example (`amtool check-config`), and every `imgcrawl_` metric that a
//! rule or the Grafana dashboard queries exists in the registry (a renamed metric
//! would otherwise leave an alert that never fires). promtool and amtool come from
//! Debian's `prometheus` and `prometheus-alertmanager` (`infra/scripts/bootstrap.sh`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use imgcrawl_tests::workspace_root;

fn dir() -> PathBuf {
    workspace_root().join("infra/observability")
}

/// Runs a tool in `cwd`, asserting it succeeds; returns its output.
fn run(cwd: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("run {program} ({e}); install it with infra/scripts/bootstrap.sh")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let out = run(
        &dir().join("prometheus"),
        "promtool",
        &["test", "rules", "tests/imgcrawl.rules.test.yml"],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn scrape_configs_rules_and_alertmanager_config_are_valid() {
    let prom = dir().join("prometheus");
    for config in ["prometheus.local.yml", "prometheus.cluster.yml"] {
        run(&prom, "promtool", &["check", "config", config]);
    }
    let out = run(
        &prom,
        "promtool",
        &["check", "rules", "rules/imgcrawl.rules.yml"],
    );
    assert!(out.contains("9 rules found"), "{out}");
    run(
        &dir(),
        "amtool",
        &["check-config", "alertmanager/alertmanager.yml"],
    );
}

/// The `imgcrawl_` metric names in a PromQL text (histogram series suffixes removed).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = promql;
    while let Some(i) = rest.find("imgcrawl_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if base.ends_with("_seconds") || base.ends_with("_events") {
                    name = base;
                }
            }
        }
        out.insert(name.to_string());
        rest = &tail[end..];
    }
    out
}

fn unknown(used: &BTreeSet<String>) -> Vec<String> {
    let known = imgcrawl_telemetry::metrics::names();
    used.iter()
        .filter(|n| !known.iter().any(|k| k == *n))
        .cloned()
        .collect()
}

#[test]
fn rules_and_dashboard_query_only_metrics_that_exist() {
    let rules = std::fs::read_to_string(dir().join("prometheus/rules/imgcrawl.rules.yml"))
        .expect("rules file");
    let used = metric_names(&rules);
    assert!(used.len() >= 7, "{used:?}");
    assert_eq!(unknown(&used), Vec::<String>::new(), "rules");

    let text =
        std::fs::read_to_string(dir().join("grafana/dashboards/imgcrawl.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is json");
    assert_eq!(dash["uid"], "imgcrawl");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = String::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "panel ids unique"
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty(),
            "panel {} queries something",
            p["title"]
        );
        for t in targets {
            let e = t["expr"].as_str().expect("expr");
            exprs.push_str(e);
            exprs.push('\n');
        }
    }
    let used = metric_names(&exprs);
    assert!(
        used.len() >= 25,
        "the dashboard shows most metrics: {used:?}"
    );
    assert_eq!(unknown(&used), Vec::<String>::new(), "dashboard");
}

#[test]
fn metric_names_are_found_in_promql() {
    let got = metric_names(
        "histogram_quantile(0.9, rate(imgcrawl_delivery_duration_seconds_bucket[5m])) \
         / imgcrawl_index_batch_events_count + imgcrawl_fetched_bytes_total",
    );
    let want: BTreeSet<String> = [
        "imgcrawl_delivery_duration_seconds",
        "imgcrawl_index_batch_events",
        "imgcrawl_fetched_bytes_total",
    ]
    .map(String::from)
    .into();
    assert_eq!(got, want);
}
