//! HA node lists for tests: `pg1`, `pg2`, ... in priority order.

use imgcrawl_bus::ha::Node;

/// One node per URL, named `pg1`, `pg2`, ... with priorities 1, 2, ... (lower is
/// preferred), as `imgcrawl up --nodes N` names them.
pub fn pg_nodes<S: AsRef<str>>(urls: &[S]) -> Vec<Node> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| Node {
            name: format!("pg{}", i + 1),
            url: url.as_ref().to_string(),
            priority: i as u32 + 1,
        })
        .collect()
}
