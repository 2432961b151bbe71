//! Kafka Connect and MirrorMaker 2 from the toolbox (`connect-distributed.sh`,
//! `connect-mirror-maker.sh`), started against gregor or a [`KafkaPeer`](crate::kafka_peer):
//! a worker's properties file and log in a test's temp dir, its REST API on an ephemeral port.
//!
//! ```text
//!   ConnectWorker::start(dir, "w1", props)
//!     ├── <dir>/w1.properties      bootstrap, group, internal topics, listeners=http://127.0.0.1:P
//!     ├── connect-distributed.sh   own process group, log in <dir>/w1.log
//!     └── waits for GET /health = 200 (the herder has joined its group and read its topics)
//!   worker.put_connector("x", ..), worker.wait_running("x"), worker.restart() (SIGTERM),
//!   worker.kill_and_restart() (SIGKILL)
//!   JavaService::start(.., "connect-mirror-maker.sh", mm2.properties)   MirrorMaker 2, dedicated
//!   drop ──▶ kill -KILL -<process group>
//! ```
//!
//! The JVMs run with a small heap, the serial collector and the first JIT tier only: on two
//! cores that halves a worker's start-up, and the tests move a few hundred records.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::{send_signal, wait_timeout};
use crate::kafka_tools::Toolbox;

/// How long a worker may take to start serving its REST API with the herder ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a graceful stop (SIGTERM) may take before the JVM is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// One REST call's timeout, in seconds.
const HTTP_TIMEOUT_SECS: u64 = 30;

/// JVM settings for the tests' Connect processes (see the module doc).
const HEAP_OPTS: &str = "-Xms64M -Xmx512M";
const JVM_OPTS: &str = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true";

/// A toolbox JVM service (a Connect worker, MirrorMaker 2) in its own process group, its
/// output appended to a log file; killed with its group on drop.
pub struct JavaService {
    child: Option<Child>,
    /// What it runs, e.g. `connect-distributed.sh w1.properties`, for messages.
    label: String,
    script: String,
    args: Vec<String>,
    log: PathBuf,
}

impl JavaService {
    /// Starts `<toolbox>/bin/<script> args...`, its stdout and stderr appended to `log`.
    pub fn start(toolbox: &Toolbox, script: &str, args: &[String], log: &Path) -> JavaService {
        let mut service = JavaService {
            child: None,
            label: format!("{script} {}", args.join(" ")),
            script: script.to_string(),
            args: args.to_vec(),
            log: log.to_path_buf(),
        };
        service.spawn(toolbox);
        service
    }

    fn spawn(&mut self, toolbox: &Toolbox) {
        assert!(
            toolbox.dir().join("connect/jars/.stamp").is_file(),
            "Kafka Connect is not installed in {}: run scripts/toolbox",
            toolbox.dir().display()
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new(toolbox.bin(&self.script))
            .args(&self.args)
            .env("KAFKA_HEAP_OPTS", HEAP_OPTS)
            .env("KAFKA_JVM_PERFORMANCE_OPTS", JVM_OPTS)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.label));
        self.child = Some(child);
    }

    /// Whether the JVM is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The whole log so far (all runs).
    pub fn logs(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The log's ERROR lines (with the line after each, usually the exception), for messages.
    pub fn errors(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("] ERROR ") {
                let _ = writeln!(out, "{line}");
                if let Some(next) = lines.get(i + 1) {
                    let _ = writeln!(out, "    {next}");
                }
            }
        }
        out
    }

    /// Stops the JVM as a user does (SIGTERM: Connect stops its connectors, flushes their
    /// offsets and leaves its group) and waits; kills the group if it outlives the timeout.
    /// Returns how long the graceful stop took.
    pub fn stop(&mut self) -> Duration {
        let start = Instant::now();
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM");
            if wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.label,
                    self.log_tail(40)
                );
            }
            // Anything the JVM started in its group goes with it.
            kill_group(child.id());
        }
        start.elapsed()
    }
}

impl JavaService {
    /// Kills the JVM and its process group at once (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id());
            let _ = child.kill();
            let _ = wait_timeout(&mut child, Duration::from_secs(10));
        }
    }
}

impl Drop for JavaService {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- {} (errors) ---\n{}\n--- {} (last lines) ---\n{}\n---",
                self.label,
                self.errors(),
                self.label,
                self.log_tail(40)
            );
        }
        self.kill9();
    }
}

/// `kill -KILL -- -<pgid>`: the JVM leads its own process group.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A Kafka Connect worker in distributed mode.
pub struct ConnectWorker {
    service: JavaService,
    toolbox: Toolbox,
    /// The REST listener, `http://127.0.0.1:PORT`.
    rest: String,
}

impl ConnectWorker {
    /// The settings every test worker has: `bootstrap.servers`, `group.id`, string converters,
    /// the three internal topics (one replica each; few offset partitions, so that creating
    /// and reading them is quick) and a short offset flush interval. `extra` entries override
    /// or add to these.
    pub fn properties(
        bootstrap: &str,
        group: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut props: Vec<(String, String)> = [
            ("bootstrap.servers", bootstrap),
            ("group.id", group),
            (
                "key.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
            ("config.storage.topic", "connect-configs"),
            ("offset.storage.topic", "connect-offsets"),
            ("status.storage.topic", "connect-status"),
            ("config.storage.replication.factor", "1"),
            ("offset.storage.replication.factor", "1"),
            ("status.storage.replication.factor", "1"),
            ("offset.storage.partitions", "5"),
            ("status.storage.partitions", "2"),
            ("offset.flush.interval.ms", "500"),
            ("scheduled.rebalance.max.delay.ms", "2000"),
            ("plugin.discovery", "only_scan"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            match props.iter_mut().find(|(key, _)| key == k) {
                Some(entry) => entry.1 = v.to_string(),
                None => props.push((k.to_string(), v.to_string())),
            }
        }
        props
    }

    /// Writes `<dir>/<name>.properties` (with a REST listener on a free port) and starts the
    /// worker; waits until it is ready.
    pub fn start(dir: &Path, name: &str, props: &[(String, String)]) -> ConnectWorker {
        let toolbox = Toolbox::installed();
        let port = crate::ports::reserve().port();
        let rest = format!("http://127.0.0.1:{port}");
        let mut text = String::new();
        for (k, v) in props {
            let _ = writeln!(text, "{k}={v}");
        }
        let _ = writeln!(text, "listeners={rest}");
        let path = dir.join(format!("{name}.properties"));
        std::fs::write(&path, text).expect("write the worker's properties");
        let service = JavaService::start(
            &toolbox,
            "connect-distributed.sh",
            &[path.display().to_string()],
            &dir.join(format!("{name}.log")),
        );
        let mut worker = ConnectWorker {
            service,
            toolbox,
            rest,
        };
        worker.wait_ready();
        worker
    }

    /// Waits for `GET /health` to answer 200: the REST server is up and the herder has joined
    /// its group and read the config topic (KIP-1017).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            assert!(
                self.service.is_running(),
                "the Connect worker exited during start-up:\n{}\n{}",
                self.service.errors(),
                self.service.log_tail(40)
            );
            if matches!(self.request("GET", "/health", None), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Connect worker was not ready within {START_TIMEOUT:?}:\n{}\n{}",
                self.service.errors(),
                self.service.log_tail(40)
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the worker gracefully and starts it again with the same properties and port.
    /// Returns how long the stop took.
    pub fn restart(&mut self) -> Duration {
        let took = self.service.stop();
        self.service.spawn(&self.toolbox);
        self.wait_ready();
        took
    }

    /// Kills the worker (SIGKILL to its process group: nothing is flushed, no group is left)
    /// and starts it again with the same properties and port.
    pub fn kill_and_restart(&mut self) {
        self.service.kill9();
        self.service.spawn(&self.toolbox);
        self.wait_ready();
    }

    /// Stops the worker gracefully (see [`JavaService::stop`]).
    pub fn stop(&mut self) -> Duration {
        self.service.stop()
    }

    /// The worker's process and log.
    pub fn service(&self) -> &JavaService {
        &self.service
    }

    /// One REST call: `(status, body as JSON, or Null when it is empty or not JSON)`.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.rest);
        let req = match method {
            "GET" => minreq::get(url),
            "PUT" => minreq::put(url),
            "POST" => minreq::post(url),
            "DELETE" => minreq::delete(url),
            "PATCH" => minreq::patch(url),
            other => return Err(format!("no such method {other}")),
        }
        .with_timeout(HTTP_TIMEOUT_SECS)
        .with_header("Accept", "application/json");
        let req = match body {
            Some(b) => req
                .with_header("Content-Type", "application/json")
                .with_body(b.to_string()),
            None => req,
        };
        let resp = req.send().map_err(|e| format!("{method} {path}: {e}"))?;
        let text = resp.as_str().unwrap_or("");
        let json = serde_json::from_str(text).unwrap_or(Value::Null);
        Ok((resp.status_code, json))
    }

    /// A REST call that must succeed (2xx); its JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        match self.request(method, path, body) {
            Ok((status, json)) if (200..300).contains(&status) => json,
            Ok((status, json)) => panic!(
                "{method} {path} answered {status}: {json}\n{}",
                self.service.errors()
            ),
            Err(e) => panic!("{e}\n{}", self.service.log_tail(40)),
        }
    }

    /// `PUT /connectors/<name>/config`: creates or updates a connector.
    pub fn put_connector(&self, name: &str, config: &Value) -> Value {
        self.call("PUT", &format!("/connectors/{name}/config"), Some(config))
    }

    /// Waits until the connector and `tasks` tasks are RUNNING; panics with the status (and a
    /// failed task's trace) when one FAILED or the time is up. Returns the status document.
    pub fn wait_running(&self, name: &str, tasks: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let path = format!("/connectors/{name}/status");
        loop {
            let status = match self.request("GET", &path, None) {
                Ok((200, json)) => json,
                _ => Value::Null,
            };
            let state = |v: &Value| v["state"].as_str().unwrap_or("").to_string();
            let task_states: Vec<String> = status["tasks"]
                .as_array()
                .map(|a| a.iter().map(state).collect())
                .unwrap_or_default();
            let failed = state(&status["connector"]) == "FAILED"
                || task_states.iter().any(|s| s == "FAILED");
            assert!(
                !failed,
                "connector {name} failed: {status:#}\n{}",
                self.service.errors()
            );
            if state(&status["connector"]) == "RUNNING"
                && task_states.len() == tasks
                && task_states.iter().all(|s| s == "RUNNING")
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "connector {name} not RUNNING with {tasks} task(s) within {timeout:?}: {status:#}\n{}",
                self.service.errors()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` and the last
/// value `describe` gives after `timeout`.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            describe()
        );
        thread::sleep(Duration::from_millis(200));
    }
}
