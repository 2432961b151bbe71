//! [`Cluster`]: N `gregor server` processes on 127.0.0.1 forming one cluster (every node a
//! broker and a voter of the metadata quorum), with every link between two nodes routed
//! through its own [`LinkProxy`] so a test can cut, delay or reset it.
//!
//! ```text
//!   test client ─────────────────────────────► node j client port (direct)
//!   node i ── ctrl link (i→j) ─► LinkProxy ──► node j controller port   (Raft, heartbeats)
//!   node i ── data link (i→j) ─► LinkProxy ──► node j client port       (replica fetches)
//! ```
//!
//! Node i sees node j at node i's own proxies: its `--voters` names them, and
//! `peer.address.overrides` tells it where to dial brokers for replication instead of their
//! registered endpoints. Ports are fixed at start, so a node restarts on the same ones. Every
//! process is killed when the `Cluster` is dropped; data dirs are temporary.

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::broker::{send_signal, spawn_server, wait_timeout};
use crate::fault_proxy::{LinkMode, LinkProxy};

/// How long `stop()` waits after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Restart attempts (a killed node's ports can linger a moment).
const RESTART_ATTEMPTS: usize = 10;

/// One node of the cluster.
pub struct Node {
    /// `node.id` (1-based).
    pub id: i32,
    /// Client listener.
    pub addr: SocketAddr,
    /// Controller listener.
    pub controller_addr: SocketAddr,
    data_dir: TempDir,
    /// `gregor server` flags, reused on restart.
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Node {
    /// The node's last log lines.
    pub fn logs(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Whether the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The proxies of one ordered pair of nodes.
struct Link {
    controller: LinkProxy,
    data: LinkProxy,
}

/// A running cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    links: BTreeMap<(i32, i32), Link>,
}

/// A port free right now on 127.0.0.1 (the listener is dropped; the node binds it next).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
}

impl Cluster {
    /// Starts `n` nodes, each with `--set` for every entry of `sets`, and waits until each one
    /// logs its listening address.
    pub fn start(n: usize, sets: &[&str]) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let ids: Vec<i32> = (1..=n as i32).collect();
        let addrs: BTreeMap<i32, (SocketAddr, SocketAddr)> = ids
            .iter()
            .map(|&i| (i, (free_port(), free_port())))
            .collect();
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in &ids {
                if from != to {
                    let (client, controller) = addrs[&to];
                    links.insert(
                        (from, to),
                        Link {
                            controller: LinkProxy::start(controller),
                            data: LinkProxy::start(client),
                        },
                    );
                }
            }
        }
        let mut nodes = Vec::new();
        for &id in &ids {
            let (addr, controller_addr) = addrs[&id];
            let data_dir = tempfile::Builder::new()
                .prefix(&format!("gregor-cluster-{id}-"))
                .tempdir()
                .expect("create a temporary data dir");
            let voters = ids
                .iter()
                .map(|&j| {
                    let at = if j == id {
                        controller_addr
                    } else {
                        links[&(id, j)].controller.addr()
                    };
                    format!("{j}@{at}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let peers = ids
                .iter()
                .filter(|&&j| j != id)
                .map(|&j| format!("{j}@{}", links[&(id, j)].data.addr()))
                .collect::<Vec<_>>()
                .join(",");
            let mut args = vec![
                "--node-id".to_string(),
                id.to_string(),
                "--data-dir".to_string(),
                data_dir.path().display().to_string(),
                "--listen".to_string(),
                addr.to_string(),
                "--controller-listen".to_string(),
                controller_addr.to_string(),
                "--voters".to_string(),
                voters,
            ];
            if !peers.is_empty() {
                args.push("--set".to_string());
                args.push(format!("peer.address.overrides={peers}"));
            }
            for s in sets {
                args.push("--set".to_string());
                args.push(s.to_string());
            }
            nodes.push(Node {
                id,
                addr,
                controller_addr,
                data_dir,
                args,
                child: None,
                paused: false,
                log: Arc::new(Mutex::new(VecDeque::new())),
            });
        }
        // All at once: a node may wait for a quorum before it is ready.
        let started: Vec<Result<(Child, SocketAddr), String>> = thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let args = n.args.clone();
                    let log = Arc::clone(&n.log);
                    s.spawn(move || spawn_server(&args, &log))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("start thread panicked".into()))
                })
                .collect()
        });
        let mut cluster = Cluster { nodes, links };
        let mut errors = Vec::new();
        for (node, result) in cluster.nodes.iter_mut().zip(started) {
            match result {
                Ok((child, addr)) => {
                    assert_eq!(addr, node.addr, "node {} listens elsewhere", node.id);
                    node.child = Some(child);
                }
                Err(e) => errors.push(format!("node {}: {e}", node.id)),
            }
        }
        assert!(
            errors.is_empty(),
            "cluster did not start:\n{}",
            errors.join("\n")
        );
        cluster
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// A node by id.
    pub fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Every node's client address, as a bootstrap-servers string.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's last log lines, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self, id: i32) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// SIGTERM (controlled shutdown) and wait.
    pub fn stop(&mut self, id: i32) -> ExitStatus {
        self.resume(id);
        let node = self.node_mut(id);
        let mut child = node.child.take().expect("stop(): the node is not running");
        send_signal(child.id(), "TERM");
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    node.logs()
                );
            }
        }
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self, id: i32) {
        let node = self.node_mut(id);
        if let Some(pid) = node.pid() {
            send_signal(pid, "STOP");
            node.paused = true;
        }
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, id: i32) {
        let node = self.node_mut(id);
        if node.paused {
            if let Some(pid) = node.pid() {
                send_signal(pid, "CONT");
            }
            node.paused = false;
        }
    }

    /// Starts a stopped or killed node again on its data dir and ports (kills it first if it
    /// still runs).
    pub fn restart(&mut self, id: i32) {
        self.kill9(id);
        let node = self.node_mut(id);
        let mut last_err = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match spawn_server(&node.args, &node.log) {
                Ok((child, addr)) => {
                    assert_eq!(addr, node.addr, "node {id} restarted elsewhere");
                    node.child = Some(child);
                    return;
                }
                Err(e) => {
                    last_err = e;
                    thread::sleep(Duration::from_millis(300));
                }
            }
        }
        panic!("node {id} did not restart: {last_err}");
    }

    /// Kills a node, empties its data dir, and starts it again (a replaced disk).
    pub fn restart_empty(&mut self, id: i32) {
        self.kill9(id);
        let dir = self.node(id).data_dir().to_path_buf();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        self.restart(id);
    }

    /// Sets both links (controller and data) from `from` to `to`. Links are one-way: a
    /// connection `from` opens carries both directions of its traffic, so cutting it silences
    /// `from`'s requests to `to` and their answers.
    pub fn set_link(&self, from: i32, to: i32, mode: LinkMode) {
        let link = self
            .links
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no link {from}→{to}"));
        link.controller.set(mode);
        link.data.set(mode);
    }

    /// Both directions between two nodes.
    pub fn set_between(&self, a: i32, b: i32, mode: LinkMode) {
        self.set_link(a, b, mode);
        self.set_link(b, a, mode);
    }

    /// Cuts every link to and from `id` (clients still reach it directly).
    pub fn isolate(&self, id: i32) {
        for other in self.ids() {
            if other != id {
                self.set_between(id, other, LinkMode::Blackhole);
            }
        }
    }

    /// Every link back to Pass.
    pub fn heal(&self) {
        for link in self.links.values() {
            link.controller.set(LinkMode::Pass);
            link.data.set(LinkMode::Pass);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- cluster logs (last lines) ---\n{}\n---", self.logs());
        }
        for id in self.ids() {
            self.kill9(id);
        }
    }
}
