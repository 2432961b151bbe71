//! `gregor cluster up`: a local N-node cluster in the foreground, for trying things out (like
//! `rpk container start -n 3`). Each node is a child `gregor server` process in combined mode
//! (broker and controller, every node a voter), with its own data directory and two ports:
//!
//! ```text
//!  node i (1..=N)   client listener      127.0.0.1:(base + i - 1)
//!                   controller listener  127.0.0.1:(base + N + i - 1)
//!                   data                 <data-dir>/node-<i>
//! ```
//!
//! Every child's log lines are printed with a `[node-i]` prefix. Ctrl-C (or SIGTERM) stops all
//! nodes with SIGTERM (a clean, controlled shutdown each) and waits for them; if one node exits
//! on its own, the others are stopped too and the command fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `gregor cluster ...`
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster of N nodes in the foreground; Ctrl-C stops it.
    Up(UpArgs),
    /// Show the nodes, the controller and the metadata quorum with each voter's lag.
    Describe(crate::cluster_describe::DescribeArgs),
    /// Remove a broker that is gone for good from the cluster (`kafka-cluster.sh unregister`):
    /// it leaves every ISR and its registration is removed; its partitions keep it as an
    /// offline replica until reassigned.
    Unregister(UnregisterArgs),
    /// Make a controller a voter of the metadata quorum (`kafka-metadata-quorum
    /// add-controller`, KIP-853; the cluster must be at kraft.version 1). Start it first, with
    /// the cluster's --voters and outside them: it joins as an observer.
    AddController(AddControllerArgs),
    /// Take a voter out of the metadata quorum (`kafka-metadata-quorum remove-controller`,
    /// KIP-853; kraft.version 1). A removed controller that still runs follows as an observer.
    RemoveController(RemoveControllerArgs),
}

/// Flags of `gregor cluster add-controller`.
#[derive(Debug, clap::Args)]
pub struct AddControllerArgs {
    #[command(flatten)]
    connect: crate::tool::ConnectArgs,
    /// The controller's node id.
    #[arg(long)]
    id: i32,
    /// Its controller listener, HOST:PORT.
    #[arg(long)]
    endpoint: String,
    /// Its data directory, whose meta.properties names its directory id (as Kafka's tool
    /// reads it); or give --directory-id.
    #[arg(long, conflicts_with = "directory_id")]
    data_dir: Option<PathBuf>,
    /// Its data directory's id (`directory.id` in meta.properties).
    #[arg(long)]
    directory_id: Option<String>,
    /// The controller listener's name.
    #[arg(long, default_value = "CONTROLLER")]
    listener_name: String,
    /// How long it may take to catch up with the quorum leader, in ms.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
}

/// Flags of `gregor cluster remove-controller`.
#[derive(Debug, clap::Args)]
pub struct RemoveControllerArgs {
    #[command(flatten)]
    connect: crate::tool::ConnectArgs,
    /// The voter's node id.
    #[arg(long)]
    id: i32,
    /// Its data directory's id, as `gregor cluster describe` or `kafka-metadata-quorum
    /// describe --replication` shows it (any, when not given).
    #[arg(long)]
    directory_id: Option<String>,
}

/// `directory.id` from the `meta.properties` in `dir`.
fn directory_id_of(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("meta.properties");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("directory.id="))
        .map(|d| d.trim().to_string())
        .with_context(|| format!("no directory.id in {}", path.display()))
}

/// Flags of `gregor cluster unregister`.
#[derive(Debug, clap::Args)]
pub struct UnregisterArgs {
    #[command(flatten)]
    connect: crate::tool::ConnectArgs,
    /// The broker's node id.
    #[arg(long)]
    id: i32,
}

/// Flags of `gregor cluster up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of nodes (each a broker and a voter of the metadata quorum).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Directory holding each node's data directory (node-1, node-2, ...).
    #[arg(long, default_value = "gregor-cluster")]
    pub data_dir: PathBuf,
    /// First client port; the nodes take consecutive ports from here, and their controller
    /// listeners the ports after those.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Config key for every node as key=value; repeatable (passed to `gregor server --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// One node's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// `node.id`.
    pub id: u16,
    /// Client port.
    pub port: u16,
    /// Controller port.
    pub controller_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
}

/// The nodes `up` starts, the `--voters` value they share, and the bootstrap string.
pub fn plan(args: &UpArgs) -> anyhow::Result<(Vec<NodePlan>, String, String)> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let last = u32::from(args.base_port) + 2 * u32::from(args.nodes) - 1;
    anyhow::ensure!(
        args.base_port > 0 && last <= u32::from(u16::MAX),
        "--base-port {} leaves no room for {} nodes (2 ports each)",
        args.base_port,
        args.nodes
    );
    // In range: the last controller port was checked above.
    let port = |offset: u16| args.base_port + (offset - 1);
    let nodes: Vec<NodePlan> = (1..=args.nodes)
        .map(|id| NodePlan {
            id,
            port: port(id),
            controller_port: port(args.nodes + id),
            data_dir: args.data_dir.join(format!("node-{id}")),
        })
        .collect();
    let voters = nodes
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
        .collect::<Vec<_>>()
        .join(",");
    let bootstrap = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect::<Vec<_>>()
        .join(",");
    Ok((nodes, voters, bootstrap))
}

/// Runs `gregor cluster ...`.
pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Up(args) => up(args).await,
        ClusterCommand::Describe(args) => crate::cluster_describe::describe(args).await,
        ClusterCommand::Unregister(args) => {
            let mut admin = crate::tool::admin(&args.connect).await?;
            admin.unregister_broker(args.id).await?;
            println!("Broker {} is no longer registered.", args.id);
            Ok(())
        }
        ClusterCommand::AddController(args) => {
            let (host, port) = args
                .endpoint
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--endpoint {:?} is not HOST:PORT", args.endpoint))?;
            let directory_id = match (&args.data_dir, &args.directory_id) {
                (Some(dir), _) => Some(directory_id_of(dir)?),
                (None, d) => d.clone(),
            };
            let mut admin = crate::tool::admin(&args.connect).await?;
            admin
                .add_raft_voter(
                    args.id,
                    directory_id.as_deref(),
                    &args.listener_name,
                    host,
                    port,
                    Duration::from_millis(args.timeout_ms),
                )
                .await?;
            println!(
                "Controller {} ({}{}) is a voter of the metadata quorum.",
                args.id,
                args.endpoint,
                directory_id
                    .map(|d| format!(", directory {d}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        ClusterCommand::RemoveController(args) => {
            let mut admin = crate::tool::admin(&args.connect).await?;
            admin
                .remove_raft_voter(args.id, args.directory_id.as_deref())
                .await?;
            println!(
                "Controller {} is no longer a voter of the metadata quorum.",
                args.id
            );
            Ok(())
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let (nodes, voters, bootstrap) = plan(&args)?;
    let exe = std::env::current_exe().context("cannot find the gregor binary")?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    for n in &nodes {
        std::fs::create_dir_all(&n.data_dir)
            .with_context(|| format!("cannot create {}", n.data_dir.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("server")
            .arg("--node-id")
            .arg(n.id.to_string())
            .arg("--data-dir")
            .arg(&n.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", n.port))
            .arg("--controller-listen")
            .arg(format!("127.0.0.1:{}", n.controller_port))
            .arg("--voters")
            .arg(&voters);
        for s in &args.set {
            cmd.arg("--set").arg(s);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children).await;
                return Err(e).context(format!("cannot start node {}", n.id));
            }
        };
        let prefix = format!("[node-{}]", n.id);
        if let Some(out) = child.stdout.take() {
            forward(prefix.clone(), out);
        }
        if let Some(err) = child.stderr.take() {
            forward(prefix, err);
        }
        children.push((n.id, child));
    }
    println!(
        "gregor cluster: {} nodes, data in {}",
        nodes.len(),
        args.data_dir.display()
    );
    println!("bootstrap servers: {bootstrap}");
    println!("press Ctrl-C to stop all nodes");
    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        (id, status) = first_exit(&mut children) => {
            Err(anyhow::anyhow!("node {id} exited on its own ({status}); stopping the others"))
        }
    };
    stop_all(&mut children).await;
    outcome
}

/// Copies a child's output lines to ours with a prefix.
fn forward<R>(prefix: String, stream: R)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{prefix} {line}");
        }
    });
}

/// Resolves when the first child exits, with its id and status.
async fn first_exit(children: &mut [(u16, Child)]) -> (u16, String) {
    loop {
        for (id, child) in children.iter_mut() {
            match child.try_wait() {
                Ok(Some(status)) => return (*id, status.to_string()),
                Ok(None) => {}
                Err(e) => return (*id, e.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to every node still running, then waits (SIGKILL after 60 s).
async fn stop_all(children: &mut [(u16, Child)]) {
    for (_, child) in children.iter() {
        if let Some(pid) = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    for (id, child) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(Ok(status)) => eprintln!("[node-{id}] stopped ({status})"),
            Ok(Err(e)) => eprintln!("[node-{id}] cannot wait for it: {e}"),
            Err(_) => {
                eprintln!("[node-{id}] did not stop within 60 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base_port: u16) -> UpArgs {
        UpArgs {
            nodes,
            data_dir: PathBuf::from("d"),
            base_port,
            set: Vec::new(),
        }
    }

    #[test]
    fn plan_gives_each_node_two_ports_and_a_directory() {
        let (nodes, voters, bootstrap) = plan(&args(3, 9092)).expect("plan");
        assert_eq!(nodes.len(), 3);
        assert_eq!(
            nodes[1],
            NodePlan {
                id: 2,
                port: 9093,
                controller_port: 9096,
                data_dir: PathBuf::from("d/node-2"),
            }
        );
        assert_eq!(voters, "1@127.0.0.1:9095,2@127.0.0.1:9096,3@127.0.0.1:9097");
        assert_eq!(bootstrap, "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094");
    }

    #[test]
    fn plan_refuses_ports_past_the_range() {
        assert!(plan(&args(3, 65_533)).is_err());
        assert!(plan(&args(0, 9092)).is_err());
        assert!(plan(&args(1, 65_534)).is_ok());
    }
}
