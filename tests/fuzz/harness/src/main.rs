//! One libFuzzer binary for every target: `IMGCRAWL_FUZZ_TARGET` names the target
//! (see `imgcrawl_fuzz_targets::TARGETS`); `tests/fuzz/run.sh` runs each in turn.

#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<String> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| std::env::var("IMGCRAWL_FUZZ_TARGET").unwrap_or_default());
    if !imgcrawl_fuzz_targets::run(target, data) {
        panic!(
            "unknown fuzz target {target:?}: set IMGCRAWL_FUZZ_TARGET to one of {:?}",
            imgcrawl_fuzz_targets::TARGETS
        );
    }
});
