//! [`Cluster`]: N `gregor server` processes on 127.0.0.1 forming one cluster, each with a
//! [`Role`] (combined broker and controller by default, or controller-only, or broker-only),
//! with every link between two nodes routed through its own [`LinkProxy`] so a test can cut,
//! delay or reset it.
//!
//! ```text
//!   test client ─────────────────────────────► node j client port (direct)
//!   node i ── ctrl link (i→j) ─► LinkProxy ──► node j controller port   (Raft, heartbeats;
//!                                                                        j a controller)
//!   node i ── data link (i→j) ─► LinkProxy ──► node j client port       (replica fetches;
//!                                                                        i and j brokers)
//! ```
//!
//! Node i sees node j at node i's own proxies: its `--voters` names them (the nodes with the
//! controller role), and `peer.address.overrides` tells it where to dial brokers for
//! replication instead of their registered endpoints. The quorum leader reaches a broker-only
//! node (a learner) directly, at the address the node joined with. Ports are fixed at start,
//! so a node restarts on the same ones. Every process is killed when the `Cluster` is dropped;
//! data dirs are temporary.
//!
//! [`Cluster::start`] and [`Cluster::start_with_roles`] start every node; [`Cluster::prepare`]
//! only lays them out, so a test can change a node's flags ([`Cluster::args_mut`]) and start
//! nodes one by one ([`Cluster::start_nodes`], [`Cluster::launch`]). [`Cluster::add_broker`]
//! adds a broker-only node that joins the running cluster.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::broker::{launch_server, send_signal, spawn_server, wait_timeout};
use crate::fault_proxy::{LinkMode, LinkProxy};

/// How long `stop()` waits after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Restart attempts (a killed node's ports can linger a moment).
const RESTART_ATTEMPTS: usize = 10;

/// What a node does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `broker,controller`: a voter that also serves clients and hosts replicas.
    Combined,
    /// `controller`: a voter only; no client listener, no partitions.
    Controller,
    /// `broker`: serves clients and hosts replicas; follows the quorum as a learner.
    Broker,
}

impl Role {
    /// Whether the node is a voter of the metadata quorum.
    pub fn is_controller(self) -> bool {
        matches!(self, Role::Combined | Role::Controller)
    }

    /// Whether the node serves clients and hosts replicas.
    pub fn is_broker(self) -> bool {
        matches!(self, Role::Combined | Role::Broker)
    }

    /// The `process.roles` value.
    fn process_roles(self) -> &'static str {
        match self {
            Role::Combined => "broker,controller",
            Role::Controller => "controller",
            Role::Broker => "broker",
        }
    }
}

/// One node of the cluster.
pub struct Node {
    /// `node.id` (1-based).
    pub id: i32,
    /// What the node does.
    pub role: Role,
    /// Client listener; for a controller-only node, which has none, its controller listener
    /// (the address it logs as `listening on`).
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

    /// The node's `gregor server` flags.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A key of the data directory's `meta.properties` (`cluster.id`, `directory.id`).
    pub fn meta_property(&self, key: &str) -> String {
        let path = self.data_dir().join("meta.properties");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {}:\n{text}", path.display()))
            .trim()
            .to_string()
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

/// The proxies of one ordered pair of nodes (only those the pair uses).
struct Link {
    /// To the other node's controller listener, when it is a controller.
    controller: Option<LinkProxy>,
    /// To the other node's client listener, when both are brokers.
    data: Option<LinkProxy>,
}

impl Link {
    fn set(&self, mode: LinkMode) {
        for proxy in [&self.controller, &self.data].into_iter().flatten() {
            proxy.set(mode);
        }
    }
}

/// A running cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    links: BTreeMap<(i32, i32), Link>,
}

/// A started process and the address it listens on, or why it did not start.
type Started = Result<(Child, SocketAddr), String>;

/// A port free right now on 127.0.0.1, below the ephemeral range so that a restarted node gets
/// it back ([`crate::ports`]); the node binds it next.
pub fn free_port() -> SocketAddr {
    crate::ports::reserve()
}

impl Cluster {
    /// Starts `n` combined nodes (broker and controller), each with `--set` for every entry of
    /// `sets`, and waits until each one logs its listening address.
    pub fn start(n: usize, sets: &[&str]) -> Cluster {
        Cluster::start_with_roles(&vec![Role::Combined; n], sets)
    }

    /// Starts one node per entry of `roles` (node ids 1, 2, ...) and waits for all of them.
    pub fn start_with_roles(roles: &[Role], sets: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(roles, sets);
        let ids = cluster.ids();
        cluster.start_nodes(&ids);
        cluster
    }

    /// Lays out one node per entry of `roles` (ports, proxies, data dirs, flags) without
    /// starting any.
    pub fn prepare(roles: &[Role], sets: &[&str]) -> Cluster {
        assert!(!roles.is_empty(), "a cluster has at least one node");
        assert!(
            roles.iter().any(|r| r.is_controller()),
            "a cluster needs at least one controller"
        );
        let mut cluster = Cluster {
            nodes: Vec::new(),
            links: BTreeMap::new(),
        };
        let layout: Vec<(i32, Role, SocketAddr, SocketAddr)> = roles
            .iter()
            .zip(1..)
            .map(|(&role, id)| (id, role, free_port(), free_port()))
            .collect();
        for &(from, from_role, _, _) in &layout {
            for &(to, to_role, client, controller) in &layout {
                if from != to {
                    cluster.links.insert(
                        (from, to),
                        Link {
                            controller: to_role
                                .is_controller()
                                .then(|| LinkProxy::start(controller)),
                            data: (from_role.is_broker() && to_role.is_broker())
                                .then(|| LinkProxy::start(client)),
                        },
                    );
                }
            }
        }
        for &(id, role, client, controller) in &layout {
            let node = cluster.lay_out(id, role, client, controller, sets);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// A node's data dir and flags, seeing the other nodes through its links.
    fn lay_out(
        &self,
        id: i32,
        role: Role,
        client: SocketAddr,
        controller_addr: SocketAddr,
        sets: &[&str],
    ) -> Node {
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("gregor-cluster-{id}-"))
            .tempdir()
            .expect("create a temporary data dir");
        let mut voters = Vec::new();
        let mut peers = Vec::new();
        for (&(from, to), link) in &self.links {
            if from != id {
                continue;
            }
            if let Some(c) = &link.controller {
                voters.push(format!("{to}@{}", c.addr()));
            }
            if let Some(d) = &link.data {
                peers.push(format!("{to}@{}", d.addr()));
            }
        }
        if role.is_controller() {
            voters.push(format!("{id}@{controller_addr}"));
        }
        let mut args = vec![
            "--node-id".to_string(),
            id.to_string(),
            "--data-dir".to_string(),
            data_dir.path().display().to_string(),
            "--controller-listen".to_string(),
            controller_addr.to_string(),
            "--voters".to_string(),
            voters.join(","),
        ];
        if role.is_broker() {
            args.extend(["--listen".to_string(), client.to_string()]);
        }
        if role != Role::Combined {
            args.extend([
                "--set".to_string(),
                format!("process.roles={}", role.process_roles()),
            ]);
        }
        if !peers.is_empty() {
            args.push("--set".to_string());
            args.push(format!("peer.address.overrides={}", peers.join(",")));
        }
        for s in sets {
            args.push("--set".to_string());
            args.push(s.to_string());
        }
        Node {
            id,
            role,
            addr: if role.is_broker() {
                client
            } else {
                controller_addr
            },
            controller_addr,
            data_dir,
            args,
            child: None,
            paused: false,
            log: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Starts the nodes `ids` all at once (a node may wait for a quorum before it is ready)
    /// and waits until each logs its listening address; panics with the logs if one does not.
    pub fn start_nodes(&mut self, ids: &[i32]) {
        let started: Vec<(i32, Started)> = thread::scope(|s| {
            let handles: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let n = self.node(id);
                    let args = n.args.clone();
                    let log = Arc::clone(&n.log);
                    (id, s.spawn(move || spawn_server(&args, &log)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(id, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err("start thread panicked".into()));
                    (id, r)
                })
                .collect()
        });
        let mut errors = Vec::new();
        for (id, result) in started {
            let node = self.node_mut(id);
            match result {
                Ok((child, addr)) => {
                    assert_eq!(addr, node.addr, "node {id} listens elsewhere");
                    node.child = Some(child);
                }
                Err(e) => errors.push(format!("node {id}: {e}")),
            }
        }
        assert!(
            errors.is_empty(),
            "cluster did not start:\n{}",
            errors.join("\n")
        );
    }

    /// Starts node `id` without waiting for it to listen (a node expected to fail or hang);
    /// its output goes to its log as usual.
    pub fn launch(&mut self, id: i32) {
        let node = self.node_mut(id);
        let (child, _lines) = launch_server(&node.args, &node.log)
            .unwrap_or_else(|e| panic!("node {id} did not launch: {e}"));
        node.child = Some(child);
    }

    /// Node `id`'s `gregor server` flags, to change before it (re)starts.
    pub fn args_mut(&mut self, id: i32) -> &mut Vec<String> {
        &mut self.node_mut(id).args
    }

    /// Adds a broker-only node (the next id) that joins the running quorum through its own
    /// links to the controllers and replicates from the other brokers through its own data
    /// links (the others reach it directly), starts it and waits until it serves. Its id.
    pub fn add_broker(&mut self, sets: &[&str]) -> i32 {
        let id = self.prepare_broker(sets);
        self.start_nodes(&[id]);
        id
    }

    /// Lays out a broker-only node as [`Cluster::add_broker`] does, without starting it (start
    /// it with [`Cluster::start_nodes`], or [`Cluster::launch`] when it is expected not to
    /// serve). Its id.
    pub fn prepare_broker(&mut self, sets: &[&str]) -> i32 {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let (client, controller) = (free_port(), free_port());
        self.link_new_node(id, true);
        let node = self.lay_out(id, Role::Broker, client, controller, sets);
        self.nodes.push(node);
        id
    }

    /// The configured voters: the ids in the first node's `--voters` (controllers added as
    /// observers later are not among them).
    fn configured_voter_ids(&self) -> Vec<i32> {
        self.nodes
            .first()
            .and_then(|n| {
                let at = n.args.iter().position(|a| a == "--voters")? + 1;
                Some(
                    n.args[at]
                        .split(',')
                        .filter_map(|v| v.split('@').next()?.parse().ok())
                        .collect(),
                )
            })
            .unwrap_or_default()
    }

    /// Links a new node `id` to every configured voter's controller listener and, with
    /// `data`, to every broker's client listener.
    fn link_new_node(&mut self, id: i32, data: bool) {
        let voter_ids = self.configured_voter_ids();
        let others: Vec<(i32, Role, SocketAddr, SocketAddr)> = self
            .nodes
            .iter()
            .map(|n| (n.id, n.role, n.addr, n.controller_addr))
            .collect();
        for (to, role, to_client, to_controller) in others {
            let controller = (role.is_controller() && voter_ids.contains(&to))
                .then(|| LinkProxy::start(to_controller));
            let data = (data && role.is_broker()).then(|| LinkProxy::start(to_client));
            if controller.is_some() || data.is_some() {
                self.links.insert((id, to), Link { controller, data });
            }
        }
    }

    /// Lays out a controller-only node that is not among the voters (KIP-853: it joins the
    /// quorum as an observer, to be made a voter with AddRaftVoter), without starting it. Its
    /// `--voters` are the cluster's controllers, as the other nodes have them. Its id.
    pub fn prepare_observer_controller(&mut self, sets: &[&str]) -> i32 {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let (client, controller) = (free_port(), free_port());
        self.link_new_node(id, false);
        let mut node = self.lay_out(id, Role::Controller, client, controller, sets);
        let own = format!("{id}@{controller}");
        let at = node
            .args
            .iter()
            .position(|a| a == "--voters")
            .expect("--voters")
            + 1;
        let voters: Vec<&str> = node.args[at].split(',').filter(|v| *v != own).collect();
        node.args[at] = voters.join(",");
        self.nodes.push(node);
        id
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

    /// The ids of the nodes that serve clients.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role.is_broker())
            .map(|n| n.id)
            .collect()
    }

    /// The ids of the voters of the metadata quorum.
    pub fn controller_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role.is_controller())
            .map(|n| n.id)
            .collect()
    }

    /// Every broker's client address, as a bootstrap-servers string.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.role.is_broker())
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

    /// Gives node `id` these log directories (`log.dirs`, its data directory first) instead of
    /// its data directory alone; before the node starts.
    pub fn set_log_dirs(&mut self, id: i32, more: &[&Path]) {
        let main = self.node(id).data_dir().to_path_buf();
        let dirs: Vec<String> = std::iter::once(main.as_path())
            .chain(more.iter().copied())
            .map(|d| d.display().to_string())
            .collect();
        let args = self.args_mut(id);
        let at = args
            .iter()
            .position(|a| a == "--data-dir")
            .expect("--data-dir");
        args.drain(at..at + 2);
        args.push("--set".into());
        args.push(format!("log.dirs={}", dirs.join(",")));
    }

    /// Puts node `id`'s data directory (its only log directory, which holds its metadata log)
    /// at `dir` instead of its temporary one; before its first start.
    pub fn set_data_dir(&mut self, id: i32, dir: &Path) {
        let args = self.args_mut(id);
        let at = args
            .iter()
            .position(|a| a == "--data-dir")
            .expect("--data-dir");
        args[at + 1] = dir.display().to_string();
    }

    /// Waits up to `timeout` for node `id` to exit by itself: its status, or `None` if it
    /// still runs.
    pub fn wait_exit(&mut self, id: i32, timeout: Duration) -> Option<ExitStatus> {
        let node = self.node_mut(id);
        let child = node.child.as_mut()?;
        let status = crate::broker::wait_timeout(child, timeout)?;
        node.child = None;
        Some(status)
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
        link.set(mode);
    }

    /// Both directions between two nodes.
    pub fn set_between(&self, a: i32, b: i32, mode: LinkMode) {
        // A node added later has links only from itself.
        for pair in [(a, b), (b, a)] {
            if let Some(link) = self.links.get(&pair) {
                link.set(mode);
            }
        }
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
            link.set(LinkMode::Pass);
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

/// One seeded fault of the random fault tests.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// kill -9, then restart after the hold.
    Kill(i32),
    /// SIGSTOP for the hold, then SIGCONT.
    Pause(i32),
    /// Every link between two nodes blackholed for the hold.
    Cut(i32, i32),
    /// Every link to and from a node slowed by 150 ms each way for the hold.
    Slow(i32),
}

impl Fault {
    /// A fault drawn from `rng` among the nodes `ids` (at least two), and how long to hold it
    /// (1.5–4.5 s).
    pub fn pick(rng: &mut crate::mutate::Rng, ids: &[i32]) -> (Fault, Duration) {
        let pick = |rng: &mut crate::mutate::Rng| ids[rng.below(ids.len())];
        let fault = match rng.below(4) {
            0 => Fault::Kill(pick(rng)),
            1 => Fault::Pause(pick(rng)),
            2 => {
                let a = pick(rng);
                let at = ids.iter().position(|&i| i == a).unwrap_or(0);
                let b = ids[(at + 1 + rng.below(ids.len() - 1)) % ids.len()];
                Fault::Cut(a, b)
            }
            _ => Fault::Slow(pick(rng)),
        };
        (
            fault,
            Duration::from_millis(1_500 + rng.below(3_000) as u64),
        )
    }

    /// Applies the fault to `cluster`, holds it for `hold`, then heals it (restarts, resumes,
    /// or restores the links).
    pub fn run(self, cluster: &mut Cluster, hold: Duration) {
        match self {
            Fault::Kill(n) => {
                cluster.kill9(n);
                thread::sleep(hold);
                cluster.restart(n);
            }
            Fault::Pause(n) => {
                cluster.pause(n);
                thread::sleep(hold);
                cluster.resume(n);
            }
            Fault::Cut(a, b) => {
                cluster.set_between(a, b, LinkMode::Blackhole);
                thread::sleep(hold);
                cluster.heal();
            }
            Fault::Slow(n) => {
                for other in cluster.ids().into_iter().filter(|&i| i != n) {
                    cluster.set_between(n, other, LinkMode::Delay(Duration::from_millis(150)));
                }
                thread::sleep(hold);
                cluster.heal();
            }
        }
    }
}
