//! A JetStream cluster of nats-servers on loopback (cluster routes between them), for
//! replica tests: R3 streams, a node lost and the clients reconnecting elsewhere.

use std::time::{Duration, Instant};

use crate::{free_port, NatsServer};

/// `n` clustered nats-servers with JetStream; killed on drop.
pub struct NatsCluster {
    /// The servers, `n1`, `n2`, … in order.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the servers and waits until JetStream answers through the first (the
    /// meta group has a leader); panics with the reason if it cannot.
    pub async fn start(n: usize) -> NatsCluster {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, port) in routes.iter().enumerate() {
            let text = format!(
                "server_name: n{}\ncluster {{\n  name: imgcrawl-test\n  host: 127.0.0.1\n  port: {port}\n  routes: [{route_list}]\n}}\n",
                i + 1
            );
            nodes.push(NatsServer::start_with_config(&text).await);
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_jetstream(Duration::from_secs(30)).await;
        cluster
    }

    /// Every client URL, comma-separated (as `NATS_URL` takes them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every node answers a JetStream account request.
    pub async fn wait_jetstream(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            loop {
                let err = match async_nats::connect(node.url()).await {
                    Ok(c) => match async_nats::jetstream::new(c).query_account().await {
                        Ok(_) => break,
                        Err(e) => e.to_string(),
                    },
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    panic!(
                        "no jetstream on {} after {timeout:?}: {err}\n{}",
                        node.url(),
                        node.log()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
