//! A real JetStream cluster for one test: N nats-server processes with routes between
//! them, each with its own store, on loopback ports or, for partition tests, each in a
//! network namespace of its own (see [`crate::netns`]). Nodes can be killed, paused
//! (SIGSTOP), resumed and restarted; everything is cleaned up on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::netns::Net;
use crate::process::{log_tail, Proc};
use crate::{free_port, nats::nats_binary, HarnessError};

/// How long a cluster may take to elect its JetStream meta leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Cluster settings.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `jetstream { sync_interval: always }`: fsync every write (the durable setting).
    pub sync_always: bool,
    /// Put each node in its own network namespace (for partitions).
    pub namespaces: bool,
}

struct Node {
    name: String,
    host: String,
    port: u16,
    cluster_port: u16,
    monitor_port: u16,
    proc: Option<Proc>,
}

/// A running cluster.
pub struct NatsCluster {
    dir: TempDir,
    bin: PathBuf,
    nodes: Vec<Node>,
    options: ClusterOptions,
    net: Option<Net>,
}

impl NatsCluster {
    /// Starts `n` nodes and waits until JetStream answers; panics with the logs if not.
    pub async fn start(n: usize, options: ClusterOptions) -> NatsCluster {
        match NatsCluster::try_start(n, options).await {
            Ok(c) => c,
            Err(e) => panic!("start nats cluster: {e}"),
        }
    }

    /// Starts `n` nodes and waits until JetStream answers.
    pub async fn try_start(n: usize, options: ClusterOptions) -> Result<NatsCluster, HarnessError> {
        let bin = nats_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-cluster-")
            .tempdir()
            .map_err(HarnessError::io("cluster temp dir"))?;
        let net = if options.namespaces {
            Some(Net::create(n)?)
        } else {
            None
        };
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                host: net.as_ref().map_or("127.0.0.1".into(), |net| net.addr(i)),
                port: if net.is_some() { 4222 } else { free_port() },
                cluster_port: if net.is_some() { 6222 } else { free_port() },
                monitor_port: if net.is_some() { 8222 } else { free_port() },
                proc: None,
            })
            .collect();
        let mut c = NatsCluster {
            dir,
            bin,
            nodes,
            options,
            net,
        };
        for i in 0..n {
            c.spawn(i)?;
        }
        c.wait_ready().await?;
        Ok(c)
    }

    fn config(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"nats-route://{}:{}\"", n.host, n.cluster_port))
            .collect();
        let sync = if self.options.sync_always {
            ", sync_interval: always"
        } else {
            ""
        };
        let store = self.dir.path().join(&node.name).join("store");
        format!(
            "server_name: {name}\nlisten: \"{host}:{port}\"\nhttp: \"{host}:{mport}\"\n\
             jetstream {{ store_dir: \"{store}\" {sync} }}\n\
             cluster {{ name: imgcrawl-test, listen: \"{host}:{cport}\", routes: [{routes}] }}\n",
            name = node.name,
            host = node.host,
            port = node.port,
            mport = node.monitor_port,
            store = store.display(),
            cport = node.cluster_port,
            routes = routes.join(", "),
        )
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.nodes[i].name))
    }

    fn spawn(&mut self, i: usize) -> Result<(), HarnessError> {
        let conf = self.dir.path().join(format!("{}.conf", self.nodes[i].name));
        std::fs::write(&conf, self.config(i)).map_err(HarnessError::io("write nats config"))?;
        let mut cmd = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.namespace(i)]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("-c").arg(&conf);
        let proc = Proc::spawn(&mut cmd, &self.log_path(i))?;
        self.nodes[i].proc = Some(proc);
        Ok(())
    }

    /// Waits until every running node names the same JetStream meta leader, the
    /// leader counts every running node as a current member of the meta group (so R3
    /// can be placed), and the cluster answers JetStream account requests. A node the
    /// leader does not count after a while is restarted: a freshly started 2.10 node
    /// sometimes never joins the meta group, while naming its leader all the same.
    pub async fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut restart_at = Instant::now() + Duration::from_secs(15);
        loop {
            let views = self.meta_views().await;
            let running: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].proc.is_some())
                .collect();
            let leaders: Vec<Option<&str>> = views
                .iter()
                .map(|v| v.as_ref().map(|v| v.leader.as_str()))
                .collect();
            let agreed = running.iter().all(|&i| leaders[i].is_some())
                && running.windows(2).all(|w| leaders[w[0]] == leaders[w[1]]);
            // the members the leader counts: itself and its current replicas
            let members: Vec<String> = running
                .first()
                .and_then(|&i| leaders[i])
                .and_then(|l| {
                    let at = self.nodes.iter().position(|n| n.name == l)?;
                    let v = views[at].as_ref()?;
                    Some(
                        std::iter::once(l.to_string())
                            .chain(v.current.iter().cloned())
                            .collect(),
                    )
                })
                .unwrap_or_default();
            let outside: Vec<usize> = running
                .iter()
                .copied()
                .filter(|&i| !members.contains(&self.nodes[i].name))
                .collect();
            let err = if !agreed {
                format!("meta leaders as each node sees them: {leaders:?}")
            } else if !outside.is_empty() {
                format!("the meta leader counts only {members:?} as current members")
            } else {
                let urls: Vec<String> = self.urls().split(',').map(String::from).collect();
                match async_nats::connect(urls).await {
                    Ok(client) => match async_nats::jetstream::new(client).query_account().await {
                        Ok(_) => return Ok(()),
                        Err(e) => e.to_string(),
                    },
                    Err(e) => e.to_string(),
                }
            };
            if Instant::now() > restart_at {
                let stuck: Vec<usize> = if agreed {
                    outside
                } else {
                    running
                        .iter()
                        .copied()
                        .filter(|&i| leaders[i].is_none())
                        .collect()
                };
                for i in stuck {
                    eprintln!(
                        "cluster: node {} has not joined the meta group ({err}); restarting it",
                        self.nodes[i].name
                    );
                    self.start_again(i)?;
                }
                restart_at = Instant::now() + Duration::from_secs(15);
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (0..self.nodes.len())
                    .map(|i| log_tail(&self.log_path(i), 1500))
                    .collect();
                return Err(HarnessError::NotReady {
                    what: "nats cluster".into(),
                    detail: format!("{err}\n{}", logs.join("\n---\n")),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How each node sees the meta group (none: not answering, or no leader known).
    async fn meta_views(&self) -> Vec<Option<MetaView>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let url = format!("http://{}:{}/jsz", n.host, n.monitor_port);
            let view = async {
                let bytes = reqwest::Client::new()
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?
                    .bytes()
                    .await
                    .ok()?;
                let body: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
                let meta = &body["meta_cluster"];
                let leader = meta["leader"].as_str()?.to_string();
                let current = meta["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["current"].as_bool() == Some(true))
                    .filter_map(|r| r["name"].as_str().map(String::from))
                    .collect();
                (!leader.is_empty()).then_some(MetaView { leader, current })
            };
            out.push(view.await);
        }
        out
    }

    /// Every node's client URL, comma-separated (what `NATS_URL` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://{}:{}", n.host, n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://{}:{}", self.nodes[i].host, self.nodes[i].port)
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// The process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.as_ref().map(Proc::pid))
            .collect()
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index of the node named `name` (`n1`…).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The server name of node `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Kills node `i` with SIGKILL (its store stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].proc.take() {
            drop(p);
        }
    }

    /// Starts node `i` again on its ports and store.
    pub fn start_again(&mut self, i: usize) -> Result<(), HarnessError> {
        self.kill(i);
        self.spawn(i)
    }

    /// Stops node `i` with SIGSTOP.
    pub fn pause(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    /// Continues node `i` after [`NatsCluster::pause`].
    pub fn resume(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    fn signal(&self, i: usize, sig: i32) {
        if let Some(p) = &self.nodes[i].proc {
            // `ip netns exec` execs the server: the pid is the server's either way
            p.signal(sig);
        }
    }

    /// Cuts node `i` off from every other node (both directions); clients keep their
    /// links. Needs [`ClusterOptions::namespaces`].
    pub fn partition(&self, i: usize) -> Result<(), HarnessError> {
        let net = self.net.as_ref().ok_or_else(|| HarnessError::NotReady {
            what: "partition".into(),
            detail: "the cluster was not started in network namespaces".into(),
        })?;
        net.isolate(i)
    }

    /// Undoes [`NatsCluster::partition`].
    pub fn heal(&self, i: usize) -> Result<(), HarnessError> {
        match &self.net {
            Some(net) => net.rejoin(i),
            None => Ok(()),
        }
    }

    /// The last lines of node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        log_tail(&self.log_path(i), 4000)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.proc.take();
        }
    }
}

/// One node's view of the JetStream meta group (from its `/jsz`).
struct MetaView {
    /// The leader it names.
    leader: String,
    /// The replicas it reports as current (only the leader reports them).
    current: Vec<String>,
}
