//! A real Redis Cluster for the tests: six `redis-server --cluster-enabled yes` processes on free
//! loopback ports (3 masters, 3 replicas, `cluster-node-timeout` 1 s), joined by
//! `redis-cli --cluster create`, killed by PID on Drop (a failing test included).

// Some helpers (reshard, per-node scans) are for the cluster suite still to come.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Nodes of a test cluster: three masters, one replica each.
const NODES: usize = 6;
/// How long a cluster may take to form, or to heal after a failover or a reshard. Generous:
/// with three copies of the cluster tests at once on two cores, a failover once took longer
/// than 30 s (node timeouts of 1 s flag loaded nodes as failing, and elections fail and wait).
const SETTLE: Duration = Duration::from_secs(60);

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    bus: u16,
    child: Option<Child>,
}

/// A running six-node Redis Cluster in a temporary directory.
pub struct Cluster {
    nodes: Mutex<Vec<Node>>,
    _dir: tempfile::TempDir,
}

/// The cluster shared by the end-to-end suite's cluster variants: started by the first test that
/// asks and kept for the whole run (tests use key prefixes of their own). A static is never
/// dropped, so a watchdog process kills its nodes once the test process is gone.
static SHARED: OnceLock<Arc<Cluster>> = OnceLock::new();

/// A port free for both the client and the cluster bus (the bus gets a port of its own).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-cli -p PORT args…`, its stdout; None if it failed or did not answer.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `ok` every 50 ms until it holds or `within` passes (then panics with `what`).
fn wait_until(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A line of `CLUSTER NODES`: id, port, whether a master, whether failed, master id, slots.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    pub master_id: String,
    pub slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_owned(),
                port,
                master: f.get(2)?.contains("master"),
                failed: f.get(2)?.contains("fail"),
                master_id: f.get(3)?.to_string(),
                slots,
            })
        })
        .collect()
}

impl Cluster {
    /// The suite's shared cluster (see [`SHARED`]).
    pub fn shared() -> Arc<Cluster> {
        SHARED
            .get_or_init(|| {
                let c = Cluster::start();
                c.kill_when_this_process_ends();
                Arc::new(c)
            })
            .clone()
    }

    /// Starts `sh` polling this process: once it is gone, it SIGKILLs the nodes and deletes
    /// their directory. Only for a cluster that lives as long as the process (else the PIDs
    /// it kills could have been reused).
    fn kill_when_this_process_ends(&self) {
        let pids: Vec<String> = self
            .nodes()
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| c.id().to_string()))
            .collect();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pids}; rm -rf '{dir}'",
            me = std::process::id(),
            pids = pids.join(" "),
            dir = self._dir.path().display(),
        );
        // Never waited for: it outlives this process (init reaps it).
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh on PATH");
    }

    /// Starts a cluster of its own (for tests that kill or move nodes). Blocks for a few
    /// seconds: call it before starting gateways.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            nodes.push(spawn_fresh_node(dir.path()));
        }
        let cluster = Cluster {
            nodes: Mutex::new(nodes),
            _dir: dir,
        };
        let ports = cluster.ports();
        for &port in &ports {
            wait_until(SETTLE, "redis-server answers PING", || {
                cli(port, &["ping"]).is_some_and(|o| o.contains("PONG"))
            });
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create.output().unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_healthy();
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes().iter().map(|n| n.port).collect()
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ports of the nodes still running.
    fn live_ports(&self) -> Vec<u16> {
        self.nodes()
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Seed URLs for `storage.redis_cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// URLs of the current masters (each holds its own slots' keys).
    pub fn master_urls(&self) -> Vec<String> {
        self.masters()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// `CLUSTER NODES` as seen by a live node.
    pub fn topology(&self) -> Vec<NodeLine> {
        for port in self.live_ports() {
            if let Some(text) = cli(port, &["cluster", "nodes"]) {
                return parse_nodes(&text);
            }
        }
        panic!("no live cluster node answers CLUSTER NODES");
    }

    /// Ports of the live masters that own slots.
    pub fn masters(&self) -> Vec<u16> {
        let live = self.live_ports();
        let mut m: Vec<u16> = self
            .topology()
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty() && live.contains(&n.port))
            .map(|n| n.port)
            .collect();
        m.sort_unstable();
        m
    }

    /// The port of the master that owns `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        self.topology()
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|n| n.port)
            .expect("every slot has a master")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        cli(port, &["cluster", "keyslot", key])
            .and_then(|o| o.trim().parse().ok())
            .expect("CLUSTER KEYSLOT answers")
    }

    /// Runs `redis-cli -p PORT args…` against one node.
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli(port, args)
    }

    /// SIGKILLs the node on `port` (no shutdown, no save).
    pub fn kill(&self, port: u16) {
        let mut nodes = self.nodes();
        let node = nodes.iter_mut().find(|n| n.port == port).expect("a node");
        if let Some(mut child) = node.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the SIGKILLed node on `port` again: it rejoins (as a replica, if it was a master
    /// that failed over meanwhile).
    pub fn restart(&self, port: u16) {
        let mut nodes = self.nodes();
        let node = nodes.iter_mut().find(|n| n.port == port).expect("a node");
        assert!(node.child.is_none(), "node {port} is running");
        *node = spawn_node(self._dir.path(), port, node.bus);
        drop(nodes);
        wait_until(SETTLE, "the restarted node answers PING", || {
            cli(port, &["ping"]).is_some_and(|o| o.contains("PONG"))
        });
    }

    /// Waits until the cluster is healthy ([`Cluster::healthy`]); a timeout shows each live
    /// node's view of it and the end of its log.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + SETTLE;
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "cluster not healthy within {SETTLE:?}:\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every live node reports `cluster_state:ok`, every slot is served by a live
    /// master, and every replica of a live master has its replication link up.
    fn healthy(&self) -> bool {
        let live = self.live_ports();
        let all_ok = live
            .iter()
            .all(|&p| cli(p, &["cluster", "info"]).is_some_and(|o| o.contains("cluster_state:ok")));
        let topo = self.topology();
        let masters_live = topo
            .iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .all(|n| live.contains(&n.port) && !n.failed);
        let replicas_up = topo
            .iter()
            .filter(|n| !n.master && live.contains(&n.port))
            .all(|n| {
                cli(n.port, &["info", "replication"])
                    .is_some_and(|o| o.contains("master_link_status:up"))
            });
        all_ok && masters_live && replicas_up
    }

    /// Each live node's view of the cluster and the end of its log, for a failure message.
    fn report(&self) -> String {
        let mut out = String::new();
        for port in self.live_ports() {
            let state = line_of(port, &["cluster", "info"], "cluster_state");
            let link = line_of(port, &["info", "replication"], "master_link_status");
            let nodes = cli(port, &["cluster", "nodes"]).unwrap_or_default();
            let log = std::fs::read_to_string(self._dir.path().join(format!("{port}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            out += &format!("-- {port}: {} {}\n{nodes}", state.trim(), link.trim());
            out += &tail
                .into_iter()
                .rev()
                .map(|l| format!("   {l}\n"))
                .collect::<String>();
        }
        out
    }

    /// Moves `slots` slots from the master on `from` to the master on `to` with
    /// `redis-cli --cluster reshard` (it takes the source's lowest slots first). Async: the
    /// gateways under test keep running in this runtime meanwhile.
    pub async fn reshard(&self, from: u16, to: u16, slots: u16) {
        // `reshard` refuses (and moves nothing) while nodes disagree about the slot map, which
        // gossip settles some time after `cluster_state:ok` on a loaded machine.
        let seed = format!("127.0.0.1:{from}");
        tokio::task::block_in_place(|| {
            wait_until(SETTLE, "every node agrees on the slot map", || {
                Command::new("redis-cli")
                    .args(["--cluster", "check", &seed])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        });
        let topo = self.topology();
        let id = |port: u16| topo.iter().find(|n| n.port == port).unwrap().id.clone();
        let out = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("reshard")
            .arg(format!("127.0.0.1:{from}"))
            .args(["--cluster-from", &id(from), "--cluster-to", &id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .args(["--cluster-pipeline", "10"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster reshard: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What every master holds under `prefix`, for failure reports: each non-empty stream's
    /// length and consumer groups (`XINFO GROUPS`: leases pending, last delivered id, lag),
    /// and each non-empty sorted set (retries waiting).
    pub fn streams(&self, prefix: &str) -> String {
        let mut out = String::new();
        for master in self.masters() {
            for key in self.keys_on(master, &format!("{prefix}:*")) {
                let kind = cli(master, &["type", &key]).unwrap_or_default();
                let line = match kind.trim() {
                    "stream" => {
                        let len = cli(master, &["xlen", &key]).unwrap_or_default();
                        let groups = cli(master, &["xinfo", "groups", &key]).unwrap_or_default();
                        let groups = groups.split_whitespace().collect::<Vec<_>>().join(" ");
                        let idle = len.trim() == "0" && groups.contains("pending 0 ");
                        (!idle).then(|| format!("xlen {} groups [{groups}]", len.trim()))
                    }
                    "zset" => cli(master, &["zcard", &key])
                        .filter(|n| n.trim() != "0")
                        .map(|n| format!("zcard {}", n.trim())),
                    _ => None,
                };
                if let Some(line) = line {
                    out += &format!("{master} {key}: {line}\n");
                }
            }
        }
        out
    }

    /// Keys on the master on `port` matching `pattern` (`SCAN` on that node only).
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(["--scan", "--pattern", pattern])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The line of `redis-cli -p PORT args…`'s answer that starts with `field`, or "".
fn line_of(port: u16, args: &[&str], field: &str) -> String {
    cli(port, args)
        .and_then(|o| o.lines().find(|l| l.starts_with(field)).map(str::to_owned))
        .unwrap_or_default()
}

/// Starts a node on `port` (cluster bus on `bus`); its `nodes-PORT.conf` in `dir` makes a
/// restarted node rejoin the cluster it was part of.
/// A node on two free ports. A port found free can be taken by another test before
/// redis-server binds it, and redis-server then exits at once: that node is started again on
/// other ports (seen once in CI: the cluster never formed).
fn spawn_fresh_node(dir: &Path) -> Node {
    for _ in 0..5 {
        let mut node = spawn_node(dir, free_port(), free_port());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cli(node.port, &["ping"]).is_some_and(|o| o.contains("PONG")) {
                return node;
            }
            let exited = node.child.as_mut().map(|c| c.try_wait());
            if matches!(exited, Some(Ok(Some(_)))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    panic!("no redis-server answered PING on free ports in five tries");
}

fn spawn_node(dir: &Path, port: u16, bus: u16) -> Node {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
        ])
        .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
        .args(["--cluster-node-timeout", "1000"])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("{port}.log")))
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    Node {
        port,
        bus,
        child: Some(child),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes().iter_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
