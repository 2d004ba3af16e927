//! Medians, targets, the printed summary and the JSON file.

use serde::Serialize;
use serde_json::{json, Value};

use crate::measure::Run;

/// PostgreSQL replay target on the 2-core reference machine, events/s.
pub const POSTGRES_TARGET_EVENTS_PER_SEC: f64 = 40_000.0;
/// The object replay must reach at least this fraction of the raw put throughput.
pub const OBJECTS_TARGET_RATIO: f64 = 0.5;
/// The PostgreSQL replay must reach at least this fraction of the plain `UNNEST`
/// insert ceiling measured in the same run (events/s against rows/s; `--ceilings`).
pub const POSTGRES_CEILING_TARGET_RATIO: f64 = 0.5;

/// The PostgreSQL replay's median events/s over the `UNNEST` insert ceiling's rows/s,
/// when `--ceilings` measured it.
pub fn ceiling_ratio(postgres: &Series, ceilings: &Value) -> Option<f64> {
    let ceiling = ceilings["unnest_insert_rows"]["per_sec"].as_f64()?;
    (ceiling > 0.0 && !postgres.runs.is_empty()).then(|| postgres.median_events_per_sec / ceiling)
}

/// The median of `v` (the mean of the middle two for an even count; 0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The runs of one measurement and their medians.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Every run, in order.
    pub runs: Vec<Run>,
    /// Median seconds.
    pub median_seconds: f64,
    /// Median events per second.
    pub median_events_per_sec: f64,
    /// Median megabytes per second.
    pub median_mb_per_sec: f64,
}

impl Series {
    /// The series of `runs`.
    pub fn of(runs: Vec<Run>) -> Series {
        let col = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        Series {
            median_seconds: col(|r| r.seconds),
            median_events_per_sec: col(Run::events_per_sec),
            median_mb_per_sec: col(Run::mb_per_sec),
            runs,
        }
    }

    /// A JSON object with every run's rates spelled out.
    pub fn to_json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["events_per_sec"] = json!(round(r.events_per_sec()));
                v["mb_per_sec"] = json!(round(r.mb_per_sec()));
                v
            })
            .collect();
        json!({
            "runs": runs,
            "median_seconds": round(self.median_seconds),
            "median_events_per_sec": round(self.median_events_per_sec),
            "median_mb_per_sec": round(self.median_mb_per_sec),
        })
    }
}

/// `x` with two decimals.
pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The verdicts against the targets.
pub fn targets(postgres: &Series, objects: &Series, raw: &Series, ceilings: &Value) -> Value {
    let ratio = objects.median_mb_per_sec / raw.median_mb_per_sec.max(1e-9);
    let ceiling = ceiling_ratio(postgres, ceilings).map(|r| {
        json!({
            "target_at_least": POSTGRES_CEILING_TARGET_RATIO,
            "ratio": round(r * 1000.0) / 1000.0,
            "met": r >= POSTGRES_CEILING_TARGET_RATIO,
        })
    });
    json!({
        "postgres_replay_vs_unnest_ceiling": ceiling,
        "postgres_events_per_sec": {
            "target": POSTGRES_TARGET_EVENTS_PER_SEC,
            "median": round(postgres.median_events_per_sec),
            "met": postgres.median_events_per_sec >= POSTGRES_TARGET_EVENTS_PER_SEC,
        },
        "objects_vs_raw_put_mb_per_sec": {
            "target_at_least": OBJECTS_TARGET_RATIO,
            "ratio": round(ratio * 1000.0) / 1000.0,
            "met": ratio >= OBJECTS_TARGET_RATIO,
        },
    })
}

/// Prints one line per series and the verdicts.
pub fn print(postgres: &Series, objects: &Series, raw: &Series, ceilings: &Value) {
    let line = |name: &str, unit: &str, s: &Series| {
        if s.runs.is_empty() {
            return; // not measured (`--measure`)
        }
        let each: Vec<String> = s
            .runs
            .iter()
            .map(|r| format!("{:.0}", r.events_per_sec()))
            .collect();
        println!(
            "{name:<16} median {:>9.0} {unit}/s {:>8.1} MB/s {:>7.2} s   (runs: {} {unit}/s)",
            s.median_events_per_sec,
            s.median_mb_per_sec,
            s.median_seconds,
            each.join(", ")
        );
    };
    line("postgres replay", "events", postgres);
    line("object replay", "events", objects);
    line("raw put", "objects", raw);
    let ratio = objects.median_mb_per_sec / raw.median_mb_per_sec.max(1e-9);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if !postgres.runs.is_empty() {
        println!(
            "postgres replay: {:.0} events/s against the target of {:.0}: {}",
            postgres.median_events_per_sec,
            POSTGRES_TARGET_EVENTS_PER_SEC,
            verdict(postgres.median_events_per_sec >= POSTGRES_TARGET_EVENTS_PER_SEC)
        );
    }
    if !objects.runs.is_empty() && !raw.runs.is_empty() {
        println!(
        "object replay / raw put: {ratio:.2} of the MB/s (target: at least {OBJECTS_TARGET_RATIO}, within 2x): {}",
        verdict(ratio >= OBJECTS_TARGET_RATIO)
    );
    }
    if let Some(r) = ceiling_ratio(postgres, ceilings) {
        let rounds: Vec<String> = postgres
            .runs
            .iter()
            .zip(
                ceilings["unnest_insert_rows"]["runs_per_sec"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .map(|(run, c)| {
                format!(
                    "{:.0} %",
                    100.0 * run.events_per_sec() / c.as_f64().unwrap_or(f64::INFINITY)
                )
            })
            .collect();
        println!(
            "postgres replay / UNNEST insert ceiling: {:.0} events/s against {:.0} rows/s (medians) = {:.0} % (rounds: {}; target: at least {:.0} %): {}",
            postgres.median_events_per_sec,
            ceilings["unnest_insert_rows"]["per_sec"].as_f64().unwrap_or(0.0),
            r * 100.0,
            rounds.join(", "),
            POSTGRES_CEILING_TARGET_RATIO * 100.0,
            verdict(r >= POSTGRES_CEILING_TARGET_RATIO)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let s = Series::of(vec![
            Run {
                seconds: 2.0,
                events: 100,
                bytes: 2_000_000,
                ..Run::default()
            },
            Run {
                seconds: 1.0,
                events: 100,
                bytes: 2_000_000,
                ..Run::default()
            },
            Run {
                seconds: 4.0,
                events: 100,
                bytes: 2_000_000,
                ..Run::default()
            },
        ]);
        assert_eq!(s.median_events_per_sec, 50.0);
        assert_eq!(s.median_mb_per_sec, 1.0);
        assert_eq!(s.median_seconds, 2.0);
    }
}
