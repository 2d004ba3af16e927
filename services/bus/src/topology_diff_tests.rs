//! Unit tests of the topology diff.

use std::time::Duration;

use super::*;
use crate::config::Storage;
use crate::topology::stream_config;

fn stream_target(cfg: &BusConfig) -> Target {
    targets(cfg).remove(0)
}

#[test]
fn the_config_a_start_creates_has_no_diff() {
    let cfg = BusConfig {
        replicas: 3,
        max_age_secs: 86_400,
        max_bytes: 1 << 30,
        ..Default::default()
    };
    let t = stream_target(&cfg);
    assert_eq!(t.kind, Kind::Stream);
    assert!(diff(&stream_config(&cfg), &t.wanted).is_empty());
    let names: Vec<_> = targets(&cfg).into_iter().map(|t| t.stream).collect();
    assert_eq!(
        names,
        [
            "IMGCRAWL",
            "IMGCRAWL_ADVISORIES",
            "KV_imgcrawl-seen",
            "KV_imgcrawl-jobs",
            "KV_imgcrawl-tombstones",
            "KV_imgcrawl-ha",
            "KV_imgcrawl-hosts",
            "KV_imgcrawl-partitions",
            "OBJ_imgcrawl-blobs"
        ]
    );
}

#[test]
fn more_replicas_apply_and_fewer_weaken() {
    let existing = stream_config(&BusConfig::default());
    let up = stream_target(&BusConfig {
        replicas: 3,
        ..Default::default()
    });
    let changes = diff(&existing, &up.wanted);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, Field::Replicas);
    assert_eq!(
        (changes[0].current.as_str(), changes[0].wanted.as_str()),
        ("1", "3")
    );
    assert_eq!(changes[0].verdict, Verdict::Apply);
    assert_eq!(
        updated(&existing, &up.wanted, &changes, false).num_replicas,
        3
    );

    let r3 = updated(&existing, &up.wanted, &changes, false);
    let down = stream_target(&BusConfig::default());
    let changes = diff(&r3, &down.wanted);
    assert_eq!(changes[0].verdict, Verdict::Weakens);
    assert_eq!(
        updated(&r3, &down.wanted, &changes, false).num_replicas,
        3,
        "not without leave"
    );
    assert_eq!(updated(&r3, &down.wanted, &changes, true).num_replicas, 1);
}

#[test]
fn storage_cannot_change_in_place() {
    let existing = stream_config(&BusConfig::default());
    let mem = stream_target(&BusConfig {
        storage: Storage::Memory,
        ..Default::default()
    });
    let changes = diff(&existing, &mem.wanted);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].verdict, Verdict::CannotChange(STORAGE_FIXED));
    assert_eq!(updated(&existing, &mem.wanted, &changes, true), existing);
}

#[test]
fn limits_weaken_when_set_or_lowered_and_apply_when_lifted() {
    let mut existing = stream_config(&BusConfig::default());
    existing.duplicate_window = Duration::from_secs(1200);
    let cfg = BusConfig {
        max_age_secs: 3600,
        ..Default::default()
    };
    let want = stream_target(&cfg).wanted;
    let changes = diff(&existing, &want);
    let by = |f: Field| changes.iter().find(|c| c.field == f).unwrap().clone();
    assert_eq!(by(Field::DuplicateWindow).verdict, Verdict::Weakens);
    assert_eq!(by(Field::DuplicateWindow).current, "1200s");
    assert_eq!(by(Field::MaxAge).verdict, Verdict::Weakens);
    assert_eq!(by(Field::MaxAge).current, "forever");
    let safe = updated(&existing, &want, &changes, false);
    assert_eq!(safe, existing, "both weaken: nothing without leave");
    let all = updated(&existing, &want, &changes, true);
    assert!(diff(&all, &want).is_empty());

    // lifting limits is always safe
    let mut limited = stream_config(&cfg);
    limited.max_bytes = 1 << 20;
    let lift = stream_target(&BusConfig::default()).wanted;
    let changes = diff(&limited, &lift);
    assert!(
        changes.iter().all(|c| c.verdict == Verdict::Apply),
        "{changes:?}"
    );
    assert!(diff(&updated(&limited, &lift, &changes, false), &lift).is_empty());
}

#[test]
fn buckets_compare_only_what_the_config_controls() {
    let cfg = BusConfig {
        replicas: 3,
        seen_max_age_secs: 86_400,
        ..Default::default()
    };
    let ts = targets(&cfg);
    let mut kv = stream_config(&BusConfig::default());
    kv.duplicate_window = Duration::from_secs(120);
    kv.max_bytes = 5;
    let seen = diff(&kv, &ts[2].wanted);
    let fields: Vec<_> = seen.iter().map(|c| c.field).collect();
    assert_eq!(fields, [Field::Replicas, Field::MaxAge]);
    let jobs = diff(&kv, &ts[3].wanted);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}
