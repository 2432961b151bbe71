//! [`KafkaPeer`]: a real Apache Kafka broker (the toolbox's jars, KRaft combined mode, one node)
//! started next to gregor so that a test can send both the same request and compare answers.
//!
//! ```text
//!   KafkaPeer::start()
//!     ├── <tmp>/server.properties   broker+controller, node 1, 127.0.0.1 ephemeral ports
//!     ├── kafka.tools.StorageTool format -t <cluster id> -c server.properties
//!     ├── kafka.Kafka server.properties   (own process group, -Xmx512m, serial GC, first JIT
//!     │                                    tier, the toolbox's CDS archive; log in <tmp>/server.log)
//!     └── waits for "Kafka Server started" and an ApiVersions answer
//!   drop ──▶ kill -KILL -<process group>
//! ```
//!
//! The jars come from `scripts/toolbox` ([`Toolbox::installed`] fails the test when they are
//! missing). Start-up takes a few seconds on two cores; a test starts one peer and reuses it.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::broker::{send_signal, wait_timeout};
use crate::kafka_tools::Toolbox;
use crate::raw::RawConn;

/// How long the JVM may take to format its storage or to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The JVM flags of the peer's broker and its `kafka-storage format` run (after the heap):
/// the serial collector and the first JIT tier only, which a test's light load does not miss
/// and which start faster and take less CPU on two cores than Kafka's G1 and full JIT. The
/// toolbox's server archive (`Toolbox::cds_args("server")`) is made with these flags
/// (`scripts/toolbox`, "class-data sharing").
const PEER_JVM: &[&str] = &[
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
];

/// The cluster id the peer is formatted with (22 characters of base64, as Kafka wants).
const CLUSTER_ID: &str = "Z3JlZ29yLXBlZXItMDAwMA";

/// A running single-node Apache Kafka broker; killed (its whole process group) on drop.
pub struct KafkaPeer {
    child: Child,
    addr: SocketAddr,
    /// The CONTROLLER listener (KRaft combined mode), for `--bootstrap-controller`.
    controller_addr: SocketAddr,
    dir: TempDir,
    version: String,
}

/// An ephemeral port on 127.0.0.1, free when this returns (the JVM binds it soon after).
fn free_port() -> u16 {
    crate::ports::reserve().port()
}

/// Broker settings: combined mode, one node, default settings apart from the listeners and the
/// replication factors a single node needs.
fn server_properties(data: &Path, port: u16, controller_port: u16, extra: &[&str]) -> String {
    let mut props = String::new();
    let lines = [
        "process.roles=broker,controller".to_string(),
        "node.id=1".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{controller_port}"),
        format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
        format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "inter.broker.listener.name=PLAINTEXT".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
        format!("log.dirs={}", data.display()),
        "offsets.topic.replication.factor=1".to_string(),
        "transaction.state.log.replication.factor=1".to_string(),
        "transaction.state.log.min.isr=1".to_string(),
        "share.coordinator.state.topic.replication.factor=1".to_string(),
        "share.coordinator.state.topic.min.isr=1".to_string(),
        "group.initial.rebalance.delay.ms=0".to_string(),
    ];
    for line in lines.iter().map(String::as_str) {
        let _ = writeln!(props, "{line}");
    }
    // An extra line may name the peer's own ports (`{port}`, `{controller_port}`), e.g. to
    // list another listener beside them; a later key wins over the defaults above.
    for line in extra {
        let line = line
            .replace("{port}", &port.to_string())
            .replace("{controller_port}", &controller_port.to_string());
        let _ = writeln!(props, "{line}");
    }
    props
}

/// Kafka's log4j2 settings for the peer: INFO to stdout (which goes to `server.log`), so that
/// the start-up line can be waited for.
const LOG4J2: &str = "\
status = error
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
";

impl KafkaPeer {
    /// Formats and starts the broker with default settings; panics (with its log) when it does
    /// not serve within the start-up timeout.
    pub fn start() -> KafkaPeer {
        KafkaPeer::start_with(&[])
    }

    /// The default peer that the tests of one test binary running now share: started by the
    /// first that asks, killed when the last drops its handle.
    pub fn shared() -> Arc<KafkaPeer> {
        static SHARED: Mutex<Weak<KafkaPeer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(peer) = shared.upgrade() {
            return peer;
        }
        let peer = Arc::new(KafkaPeer::start());
        *shared = Arc::downgrade(&peer);
        peer
    }

    /// Like [`KafkaPeer::start`], with extra `key=value` lines in `server.properties` (where
    /// `{port}` and `{controller_port}` stand for the peer's PLAINTEXT and controller ports).
    pub fn start_with(extra: &[&str]) -> KafkaPeer {
        KafkaPeer::start_formatted_with(extra, &[])
    }

    /// Like [`KafkaPeer::start_with`], with `format_args` given to `kafka-storage format` too
    /// (`--add-scram SPEC`).
    pub fn start_formatted_with(extra: &[&str], format_args: &[&str]) -> KafkaPeer {
        let toolbox = Toolbox::installed();
        let dir = tempfile::Builder::new()
            .prefix("kafka-peer-")
            .tempdir()
            .expect("a temp dir for the Kafka peer");
        let (port, controller_port) = (free_port(), free_port());
        let props_path = dir.path().join("server.properties");
        std::fs::write(
            &props_path,
            server_properties(&dir.path().join("data"), port, controller_port, extra),
        )
        .expect("write server.properties");
        let log4j = dir.path().join("log4j2.properties");
        std::fs::write(&log4j, LOG4J2).expect("write log4j2.properties");

        let jars = format!("{}/jars/*", toolbox.dir().display());
        let java = |heap: &str, class: &str| {
            let mut cmd = Command::new(std::env::var_os("JAVA").unwrap_or_else(|| "java".into()));
            cmd.arg(heap)
                .args(PEER_JVM)
                .args(toolbox.cds_args("server"))
                .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
                .arg("-cp")
                .arg(&jars)
                .arg(class)
                .stdin(Stdio::null());
            cmd
        };

        // kafka-storage.sh format: the metadata directory with the bootstrap records.
        let format_log = dir.path().join("format.log");
        let mut format = java("-Xmx256m", "kafka.tools.StorageTool");
        format
            .args(["format", "-t", CLUSTER_ID, "-c"])
            .arg(&props_path)
            .args(format_args)
            .stdout(log_file(&format_log))
            .stderr(log_file(&format_log))
            .process_group(0);
        let mut child = format.spawn().expect("run Kafka's StorageTool (java)");
        match wait_timeout(&mut child, START_TIMEOUT) {
            Some(status) if status.success() => {}
            other => {
                let _ = child.kill();
                panic!(
                    "kafka-storage format failed ({other:?}):\n{}",
                    std::fs::read_to_string(&format_log).unwrap_or_default()
                );
            }
        }

        // kafka-server-start.sh: kafka.Kafka server.properties, in its own process group.
        let log = dir.path().join("server.log");
        let mut server = java("-Xmx512m", "kafka.Kafka");
        server
            .arg(&props_path)
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .process_group(0);
        let child = server
            .spawn()
            .expect("start Apache Kafka (java kafka.Kafka)");
        let mut peer = KafkaPeer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            controller_addr: SocketAddr::from(([127, 0, 0, 1], controller_port)),
            dir,
            version: toolbox.kafka_version(),
        };
        peer.wait_serving();
        peer
    }

    /// Waits for Kafka's start-up line, then for an ApiVersions answer on the listener.
    fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Apache Kafka exited during start-up ({status}):\n{}",
                    self.log_tail(60)
                );
            }
            if self.logs().contains("Kafka Server started")
                && TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            {
                let mut conn = RawConn::connect(self.addr);
                conn.api_versions();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Apache Kafka did not start within {START_TIMEOUT:?}:\n{}",
                self.log_tail(60)
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the broker (SIGKILL to its process group) and starts it again on the same data,
    /// settings and ports; waits until it serves again (a new "Kafka Server started" line).
    pub fn kill9_and_restart(&mut self) {
        send_signal_group(self.child.id(), "KILL");
        let _ = self.child.kill();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
        let started = |peer: &KafkaPeer| peer.logs().matches("Kafka Server started").count();
        let before = started(self);
        let toolbox = Toolbox::installed();
        let log = self.log_path();
        let child = Command::new(std::env::var_os("JAVA").unwrap_or_else(|| "java".into()))
            .arg("-Xmx512m")
            .args(PEER_JVM)
            .args(toolbox.cds_args("server"))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.path().join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/jars/*", toolbox.dir().display()))
            .arg("kafka.Kafka")
            .arg(self.dir.path().join("server.properties"))
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .process_group(0)
            .spawn()
            .expect("restart Apache Kafka (java kafka.Kafka)");
        self.child = child;
        let deadline = Instant::now() + START_TIMEOUT;
        while started(self) <= before
            || TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_err()
        {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Apache Kafka exited during its restart ({status}):\n{}",
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "Apache Kafka did not restart within {START_TIMEOUT:?}:\n{}",
                self.log_tail(60)
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The PLAINTEXT listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for a client's bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The CONTROLLER listener (PLAINTEXT unless `start_with` maps it otherwise), where Kafka's
    /// controller serves the KIP-919 admin APIs.
    pub fn controller_addr(&self) -> SocketAddr {
        self.controller_addr
    }

    /// `host:port` for a tool's `--bootstrap-controller` (or a client's
    /// `bootstrap.controllers`).
    pub fn controller_bootstrap(&self) -> String {
        self.controller_addr.to_string()
    }

    /// The Kafka version of the jars, e.g. `4.4.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Path of the broker's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The broker's whole log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of the broker's log.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A file both stdout and stderr append to.
fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

impl Drop for KafkaPeer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- Apache Kafka log (last lines) ---\n{}\n---",
                self.log_tail(40)
            );
        }
        // The JVM leads its own process group: kill the group, then reap the child.
        send_signal_group(self.child.id(), "KILL");
        let _ = self.child.kill();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
    }
}

/// Sends a signal to the process group `pgid` (`kill -SIG -- -pgid`).
fn send_signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // The group leader itself, in case the group signal could not be sent.
    send_signal(pgid, signal);
}
