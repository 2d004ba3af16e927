//! Replays every committed fuzz input (`tests/fuzz/corpus/<target>/*`, the seeds and what
//! coverage-guided fuzzing kept, and `tests/fuzz/regressions/<target>/*`, the inputs that
//! once failed) through its target: a fixed parser stays fixed.

use std::path::{Path, PathBuf};

use imgcrawl_fuzz_targets::{run, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_input_replays_without_a_finding() {
    let mut replayed = 0;
    for target in TARGETS {
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            for file in inputs(&fuzz_dir().join(kind).join(target)) {
                let data = std::fs::read(&file).expect("read fuzz input");
                assert!(run(target, &data), "unknown target {target}");
                n += 1;
            }
        }
        assert!(
            n > 0,
            "no corpus for {target}: run `just fuzz` or add seeds"
        );
        replayed += n;
    }
    eprintln!("replayed {replayed} inputs");
}

#[test]
fn unknown_targets_are_reported() {
    assert!(!run("no-such-target", b""));
}
