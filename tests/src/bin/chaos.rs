//! `just chaos`: every chaos scenario (or the ones named) at full size, then the table.
//! Exits 1 if any scenario lost, duplicated or invented an image, did not complete or
//! did not verify against a replay.
//!
//!     chaos [--fast] [SCENARIO…]     scenarios: no-fault leader-kill stage-kills
//!                                     nats-pause pg-failover partition

use imgcrawl_tests::chaos::{run, table, Scenario, Size};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = if args.iter().any(|a| a == "--fast") {
        Size::fast()
    } else {
        Size::full()
    };
    let named: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s.name()))
        .collect();
    let scenarios = if named.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        named
    };
    let mut reports = Vec::new();
    for s in scenarios {
        eprintln!("chaos: {} ...", s.name());
        let r = run(s, &size).await;
        for n in &r.notes {
            eprintln!("  {n}");
        }
        eprintln!(
            "chaos: {} {}",
            s.name(),
            if r.ok() { "ok" } else { "FAILED" }
        );
        reports.push(r);
    }
    println!("{}", table(&reports));
    if reports.iter().all(|r| r.ok()) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
