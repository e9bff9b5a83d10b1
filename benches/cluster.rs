//! The Redis Streams queue on one Redis next to Redis Clusters of 1 and 3 masters (and 3
//! masters with a replica each, without and with `wait_replicas = 1`), all started by this
//! bench on loopback in the same run with the same server settings.
//!
//! `cargo bench --bench cluster` prints acknowledged enqueues/s and full enqueue → receive → ack
//! cycles/s per number of writers. Every server shares this machine's cores with the bench
//! itself, so more masters cannot mean more cores here: docs/redis.md reads the figures.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BODY, RUN, event, measure};

use hookgate::queue::Queue;
use hookgate::queue::redis_stream::RedisQueue;
use hookgate::redis_conn::{Options, Redis};

/// Queue streams per lane on a cluster (the default of `storage.shards`).
const SHARDS: u32 = 16;

/// Redis servers started for one row; killed on drop.
struct Servers {
    children: Vec<Child>,
    ports: Vec<u16>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` redis-servers (cluster nodes if `cluster`), persistence off as in the tests.
fn spawn(dir: &Path, n: usize, cluster: bool) -> Servers {
    let mut servers = Servers {
        children: Vec::new(),
        ports: Vec::new(),
    };
    for _ in 0..n {
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        cmd.args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
            cmd.args(["--cluster-port", &free_port().to_string()]);
            cmd.arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")));
        }
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        servers.children.push(child);
        servers.ports.push(port);
    }
    for &p in &servers.ports {
        wait_until("redis-server answers", || {
            cli(p, &["ping"]).contains("PONG")
        });
    }
    servers
}

/// A cluster of `masters` masters with `replicas` replicas each.
fn cluster(dir: &Path, masters: usize, replicas: usize) -> Servers {
    let servers = spawn(dir, masters * (1 + replicas), true);
    if masters == 1 && replicas == 0 {
        // `redis-cli --cluster create` wants three masters; one node takes every slot itself.
        cli(
            servers.ports[0],
            &["cluster", "addslotsrange", "0", "16383"],
        );
    } else {
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(servers.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(out.success(), "cluster create");
    }
    wait_until("cluster_state:ok", || {
        servers.ports.iter().all(|&p| {
            cli(p, &["cluster", "info"]).contains("cluster_state:ok")
                && (replicas == 0
                    || !cli(p, &["info", "replication"]).contains("role:slave")
                    || cli(p, &["info", "replication"]).contains("master_link_status:up"))
        })
    });
    servers
}

/// Enqueues/s and cycles/s for `writers` on `queue`.
async fn row(queue: &RedisQueue, writers: usize) -> (f64, f64) {
    let q = queue.clone();
    let enqueue = measure(writers, move |i| {
        let q = q.clone();
        async move {
            q.enqueue(event(i)).await.expect("enqueue");
        }
    })
    .await;
    // Cycles receive what the first phase left first: each is still one enqueue, one
    // receive and one ack.
    let q = queue.clone();
    let cycle = measure(writers, move |i| {
        let q = q.clone();
        async move {
            q.enqueue(event(1 << 40 | i)).await.expect("enqueue");
            let job = q.receive("bench").await.expect("receive");
            q.ack(&job).await.expect("ack");
        }
    })
    .await;
    (enqueue, cycle)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "Redis Streams queue, {BODY} B bodies, {} s per figure, shards = {SHARDS} on clusters",
        RUN.as_secs()
    );
    println!(
        "{:<36} | {:>7} | {:>11} | {:>13}",
        "setup", "writers", "enqueues/s", "enq+recv+ack/s"
    );
    let setups: [(&str, usize, usize, u32); 5] = [
        ("one Redis (baseline)", 0, 0, 0),
        ("cluster, 1 master", 1, 0, 0),
        ("cluster, 3 masters", 3, 0, 0),
        ("cluster, 3 masters + 3 replicas", 3, 1, 0),
        ("cluster, 3+3, wait_replicas = 1", 3, 1, 1),
    ];
    for (i, (name, masters, replicas, wait)) in setups.into_iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir_all(&sub).expect("dir");
        let options = Options {
            shards: if masters == 0 { 1 } else { SHARDS },
            wait_replicas: wait,
            ..Options::new("hgbench", Duration::from_secs(5))
        };
        let (servers, redis) = if masters == 0 {
            let s = spawn(&sub, 1, false);
            let url = format!("redis://127.0.0.1:{}", s.ports[0]);
            (s, Redis::single(&url, options).expect("url"))
        } else {
            let s = cluster(&sub, masters, replicas);
            let urls: Vec<String> = s
                .ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect();
            let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
            (s, Redis::cluster(&seeds, options).expect("urls"))
        };
        let queue = RedisQueue::new(redis, Duration::from_secs(60));
        for writers in [16, 64] {
            let (enqueue, cycle) = row(&queue, writers).await;
            println!("{name:<36} | {writers:>7} | {enqueue:>11.0} | {cycle:>13.0}");
        }
        drop(servers);
    }
}
