//! `sitegen`: writes a synthetic site to a directory for a static web server (the
//! benchmark serves it with nginx), with its ground truth beside it.
//!
//! ```text
//! sitegen --out DIR [--pages N] [--links N] [--images N] [--distinct N] [--seed N]
//! ```
//!
//! Defaults are the benchmark's site ([`SyntheticSpec::benchmark`]): 2,000 pages, 5
//! links and 10 images each, 20,000 distinct images of 5-30 KiB, seed 1. The site goes to `DIR/www`; `DIR/truth.json` holds the
//! counts, and `DIR/sha256.txt` the distinct SHA-256s (one a line, sorted).
//! `truth.json` is written last, so its presence means the directory is complete.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use imgcrawl_events::{ImageFilters, Scope};
use imgcrawl_sitegen::{synthetic_with, Origins, SyntheticSpec};

const USAGE: &str =
    "usage: sitegen --out DIR [--pages N] [--links N] [--images N] [--distinct N] [--seed N]";

/// Parsed command line.
struct Args {
    out: PathBuf,
    spec: SyntheticSpec,
}

fn parse() -> Result<Args, String> {
    let mut out = None;
    let mut spec = SyntheticSpec::benchmark();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(&value)),
            "--pages" => spec.pages = num()? as usize,
            "--links" => spec.links_per_page = num()? as usize,
            "--images" => spec.images_per_page = num()? as usize,
            "--distinct" => spec.distinct_images = num()? as usize,
            "--seed" => spec.seed = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let out = out.ok_or("--out is required")?;
    Ok(Args { out, spec })
}

fn run(args: &Args) -> Result<(), String> {
    let start = Instant::now();
    let site = synthetic_with(&args.spec).map_err(|e| e.to_string())?;
    let www = args.out.join("www");
    if www.exists() {
        std::fs::remove_dir_all(&www).map_err(|e| format!("clear {}: {e}", www.display()))?;
    }
    let written = site
        .write_to(&www, &Origins::loopback(80))
        .map_err(|e| e.to_string())?;
    let t = &site.truth;
    let distinct = t.distinct_sha256();
    let mut shas: Vec<&str> = distinct.iter().copied().collect();
    shas.sort_unstable();
    let mut list = shas.join("\n");
    list.push('\n');
    std::fs::write(args.out.join("sha256.txt"), list).map_err(|e| e.to_string())?;
    let defaults = t.for_job(&Scope::default(), &ImageFilters::default());
    let max_depth = t.pages_fetched.iter().map(|p| p.depth).max().unwrap_or(0);
    let s = &args.spec;
    let truth = format!(
        concat!(
            "{{\"pages\": {}, \"links_per_page\": {}, \"images_per_page\": {}, ",
            "\"seed\": {}, \"pages_reachable\": {}, \"max_depth\": {}, ",
            "\"image_urls\": {}, \"distinct_sha256\": {}, \"distinct_bytes\": {}, ",
            "\"files\": {}, \"default_job_pages\": {}, \"default_job_images\": {}}}\n"
        ),
        s.pages,
        s.links_per_page,
        s.images_per_page,
        s.seed,
        t.pages_fetched.len(),
        max_depth,
        t.images.len(),
        distinct.len(),
        t.distinct_bytes(),
        written.written,
        defaults.pages_fetched.len(),
        defaults.images.len(),
    );
    std::fs::write(args.out.join("truth.json"), &truth).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} files to {} in {:.1?}",
        written.written,
        www.display(),
        start.elapsed()
    );
    print!("{truth}");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sitegen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("sitegen: create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sitegen: {e}");
            ExitCode::FAILURE
        }
    }
}
