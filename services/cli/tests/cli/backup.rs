//! `imgcrawl backup`, `backup verify`, `backup prune --dry-run`, `restore` and
//! `purge` as a user runs them against real nats-servers: a one-shot backup, a
//! damaged segment named by `verify` (exit 1) and refused by `restore` (nothing
//! written), the restore of the intact backup into an empty server, a bad SHA-256
//! refused by `purge`.

use imgcrawl_bus::{topology, Bus, BusConfig};
use imgcrawl_tests::NatsServer;

use super::{imgcrawl, text};

async fn last_seq(bus: &Bus) -> u64 {
    topology::stream_info(&bus.js, "IMGCRAWL")
        .await
        .unwrap()
        .map_or(0, |i| i.state.last_sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_prune_restore_and_purge_from_the_command_line() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    for i in 0..50 {
        bus.js
            .publish("imgcrawl.test.cli", format!("{{\"n\":{i}}}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup").display().to_string();
    let env = vec![("NATS_URL", nats.url())];

    let out = imgcrawl(&env, &["backup", "--once", "--to", &target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("50 messages") || text(&out.stdout).contains(" messages,"),
        "{}",
        text(&out.stdout)
    );

    let out = imgcrawl(&env, &["backup", "verify", "--to", &target]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("archived through sequence 50"),
        "{}",
        text(&out.stdout)
    );

    let out = imgcrawl(&env, &["backup", "prune", "--dry-run", "--to", &target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("would remove 0 segment(s)"),
        "{}",
        text(&out.stdout)
    );

    // damage a copy: verify names it, restore refuses and writes nothing
    let damaged = tempfile::tempdir().unwrap();
    let copy = damaged.path().join("backup");
    std::fs::create_dir_all(copy.join("segments/IMGCRAWL")).unwrap();
    std::fs::copy(
        dir.path().join("backup/manifest.json"),
        copy.join("manifest.json"),
    )
    .unwrap();
    let segment = std::fs::read_dir(dir.path().join("backup/segments/IMGCRAWL"))
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let name = segment.file_name().to_string_lossy().into_owned();
    let bytes = std::fs::read(segment.path()).unwrap();
    std::fs::write(
        copy.join("segments/IMGCRAWL").join(&name),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let copy = copy.display().to_string();
    let out = imgcrawl(&env, &["backup", "verify", "--to", &copy]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("TRUNCATED") && shown.contains(&name),
        "{shown}"
    );

    let fresh = NatsServer::start().await;
    let fresh_env = vec![("NATS_URL", fresh.url())];
    let out = imgcrawl(&fresh_env, &["restore", "--from", &copy]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("the backup is damaged, nothing was restored") && err.contains(&name),
        "{err}"
    );
    let fresh_bus = Bus::connect(BusConfig::with_url(fresh.url()))
        .await
        .unwrap();
    assert_eq!(last_seq(&fresh_bus).await, 0, "nothing written");

    // the intact backup restores
    let out = imgcrawl(&fresh_env, &["restore", "--from", &target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("last sequence 50"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(last_seq(&fresh_bus).await, 50);

    let out = imgcrawl(&fresh_env, &["purge", "not-a-sha"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a lowercase hex sha-256"),
        "{}",
        text(&out.stderr)
    );
}
