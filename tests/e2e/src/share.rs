//! Share groups (KIP-932) end to end: Kafka's own `KafkaShareConsumer` and producer through
//! `tests/interop/java/ShareLoop.java`, Kafka's `kafka-configs.sh` and `kafka-share-groups.sh`
//! from the toolbox, and the checks the share-group tests make on what the consumers printed.
//!
//! ```text
//!   share_loop_classes()           ShareLoop.java compiled once per source (javac), cached
//!   produce(bootstrap, topic, ..)  ShareLoop produce: the topic created, records acks=all
//!   set_group_config(..)           kafka-configs.sh --alter --entity-type groups
//!   ShareConsumer::start(..)       ShareLoop consume in the background, its JSON lines in a
//!                                   file: events(), deliveries(), acks(), wait_for(..),
//!                                   stop() (a stop file), kill9()
//!   assert_no_redelivery_after_ack, assert_all_acknowledged   the at-least-once checks
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::{send_signal, wait_timeout};
use crate::kafka_tools::{ToolRun, Toolbox};

/// How long a producer run or one tool run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Broker settings the share-group tests start gregor and Kafka with, so that the tests are
/// quick: record locks down to 1 s (Kafka's floor for the group's
/// `share.record.lock.duration.ms` is the broker's `group.share.min.record.lock.duration.ms`,
/// 15 s by default), heartbeats every second and a dead member gone after 6 s.
pub const SHARE_BROKER_SETTINGS: &[&str] = &[
    "group.share.min.record.lock.duration.ms=1000",
    "group.share.min.heartbeat.interval.ms=500",
    "group.share.heartbeat.interval.ms=1000",
    "group.share.min.session.timeout.ms=3000",
    "group.share.session.timeout.ms=6000",
];

/// The directory holding `ShareLoop.class`, compiled from the current source on first use
/// ([`Toolbox::compiled`]).
pub fn share_loop_classes() -> PathBuf {
    Toolbox::installed().compiled("ShareLoop.java").0
}

/// `java ... ShareLoop args...` against the toolbox's jars.
pub fn share_loop_command(args: &[&str]) -> Command {
    let toolbox = Toolbox::installed();
    let mut cmd = Command::new(std::env::var_os("JAVA").unwrap_or_else(|| "java".into()));
    cmd.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256M"])
        .args(toolbox.cds_args("tools"))
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            toolbox
                .dir()
                .join("config/tools-log4j2.properties")
                .display()
        ))
        .arg("-cp")
        // The jars first: the class path the tools' archive was made with.
        .arg(format!(
            "{}/*:{}",
            toolbox.dir().join("jars").display(),
            share_loop_classes().display()
        ))
        .arg("ShareLoop")
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// One record a producer run had acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
}

/// Creates `topic` (`partitions`, replication factor `rf`; kept if it exists) and produces
/// `count` records with acks=all, keys `k<i>` from `k<start>`, record i to partition
/// i % partitions. Panics unless every record was acknowledged.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    count: usize,
    partitions: i32,
    rf: i32,
    start: usize,
) -> Vec<Produced> {
    let (count_s, partitions_s, rf_s, start_s) = (
        count.to_string(),
        partitions.to_string(),
        rf.to_string(),
        start.to_string(),
    );
    let args = [
        "produce",
        bootstrap,
        topic,
        &count_s,
        "--partitions",
        &partitions_s,
        "--rf",
        &rf_s,
        "--start",
        &start_s,
    ];
    let out = crate::run_command(share_loop_command(&args), None, RUN_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ShareLoop produce failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let produced: Vec<Produced> = json_lines(&stdout)
        .iter()
        .filter(|v| v["event"] == "produced")
        .map(|v| Produced {
            partition: v["partition"].as_i64().unwrap_or(-1) as i32,
            offset: v["offset"].as_i64().unwrap_or(-1),
            key: v["key"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    assert_eq!(produced.len(), count, "records acknowledged:\n{stdout}");
    produced
}

/// `kafka-configs.sh --alter --entity-type groups --entity-name GROUP --add-config a=b,c=d`;
/// panics with the transcript when the tool fails or prints an error.
pub fn set_group_config(bootstrap: &str, group: &str, configs: &[&str]) {
    let joined = configs.join(",");
    let run = Toolbox::installed().run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--entity-type",
            "groups",
            "--entity-name",
            group,
            "--add-config",
            &joined,
        ],
        None,
        RUN_TIMEOUT,
    );
    assert!(
        run.succeeded() && run.stdout.contains("Completed updating config"),
        "kafka-configs.sh could not set {joined} on group {group}:\n{}",
        run.transcript()
    );
}

/// `kafka-share-groups.sh --bootstrap-server BOOTSTRAP args...`.
pub fn share_groups_tool(bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    Toolbox::installed().run("kafka-share-groups.sh", &all, None, RUN_TIMEOUT)
}

/// The JSON objects among `text`'s lines (others, e.g. a half-written last line, skipped).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One record a share consumer was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub client: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// The delivery count the broker gave it (1 on the first delivery).
    pub delivery: i64,
}

/// One acknowledgement the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub client: String,
    pub partition: i32,
    pub offset: i64,
    /// accept, release or reject.
    pub kind: String,
    /// The error the acknowledgement commit callback was given, if any.
    pub error: Option<String>,
}

/// The record events (`"event":"record"`) of `events`, in order.
pub fn deliveries(events: &[Value]) -> Vec<Delivery> {
    events
        .iter()
        .filter(|v| v["event"] == "record")
        .map(|v| Delivery {
            client: v["client"].as_str().unwrap_or_default().to_string(),
            partition: v["partition"].as_i64().unwrap_or(-1) as i32,
            offset: v["offset"].as_i64().unwrap_or(-1),
            key: v["key"].as_str().unwrap_or_default().to_string(),
            delivery: v["delivery"].as_i64().unwrap_or(-1),
        })
        .collect()
}

/// The acknowledgement events (`"event":"ack"`) of `events`, in order.
pub fn acks(events: &[Value]) -> Vec<Ack> {
    events
        .iter()
        .filter(|v| v["event"] == "ack")
        .map(|v| Ack {
            client: v["client"].as_str().unwrap_or_default().to_string(),
            partition: v["partition"].as_i64().unwrap_or(-1) as i32,
            offset: v["offset"].as_i64().unwrap_or(-1),
            kind: v["type"].as_str().unwrap_or_default().to_string(),
            error: v["error"].as_str().map(str::to_string),
        })
        .collect()
}

/// The error events (`"event":"error"`) of `events`, as their lines.
pub fn errors(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|v| v["event"] == "error")
        .map(Value::to_string)
        .collect()
}

/// A `ShareLoop consume` running in the background; killed on drop.
pub struct ShareConsumer {
    child: Option<Child>,
    pub client: String,
    out: PathBuf,
    stop_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl ShareConsumer {
    /// Starts `ShareLoop consume BOOTSTRAP TOPIC GROUP --client-id CLIENT --stop-file .. args..`
    /// (see ShareLoop.java for the options).
    pub fn start(
        bootstrap: &str,
        topic: &str,
        group: &str,
        client: &str,
        args: &[&str],
    ) -> ShareConsumer {
        let dir = tempfile::Builder::new()
            .prefix("share-consumer-")
            .tempdir()
            .expect("a temp dir for the share consumer");
        let out = dir.path().join("out.jsonl");
        let stop_file = dir.path().join("stop");
        let stop = stop_file.display().to_string();
        let mut all = vec![
            "consume",
            bootstrap,
            topic,
            group,
            "--client-id",
            client,
            "--stop-file",
            &stop,
        ];
        all.extend_from_slice(args);
        let file = |path: &Path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let child = share_loop_command(&all)
            .stdout(file(&out))
            .stderr(file(&out.with_extension("err")))
            .spawn()
            .unwrap_or_else(|e| panic!("start ShareLoop consume: {e}"));
        ShareConsumer {
            child: Some(child),
            client: client.to_string(),
            out,
            stop_file,
            _dir: dir,
        }
    }

    /// Everything it printed on stdout so far, as JSON objects.
    pub fn events(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }

    /// Its stderr so far (the client's warnings and errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
    }

    /// The last `n` lines of stdout and stderr, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.client,
            tail(std::fs::read_to_string(&self.out).unwrap_or_default()),
            self.client,
            tail(self.stderr())
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Polls its events every 100 ms until `pred` holds; panics naming `what` (with its output)
    /// after `timeout` or when it exits first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) {
        self.wait_explained(what, timeout, |events| {
            if pred(events) {
                None
            } else {
                Some(String::new())
            }
        });
    }

    /// As `wait_for`, with `lacking` saying what is still missing (`None` once nothing is);
    /// its last answer goes into the failure message.
    pub fn wait_explained(
        &mut self,
        what: &str,
        timeout: Duration,
        lacking: impl Fn(&[Value]) -> Option<String>,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(missing) = lacking(&self.events()) else {
                return;
            };
            assert!(
                self.is_running(),
                "{}: exited before {what}\n{missing}\n{}",
                self.client,
                self.tail(40)
            );
            assert!(
                Instant::now() < deadline,
                "{}: not within {timeout:?}: {what}\n{missing}\n{}",
                self.client,
                self.tail(40)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for it to exit by itself (its --idle-ms, --max-records or --timeout-ms), at most
    /// `timeout` (then kills it and panics); returns its events.
    pub fn wait_exit(&mut self, timeout: Duration) -> Vec<Value> {
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, timeout).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: did not exit within {timeout:?}\n{}",
                    self.client,
                    self.tail(40)
                );
            }
        }
        self.events()
    }

    /// Asks it to stop (the stop file: it sends what it has not acknowledged yet and closes),
    /// waits at most a minute; returns its events.
    pub fn stop(&mut self) -> Vec<Value> {
        let _ = std::fs::write(&self.stop_file, b"");
        self.wait_exit(Duration::from_secs(60))
    }

    /// Kills it with SIGKILL: whatever it holds stays acquired until the lock times out.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ShareConsumer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.tail(30));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `(partition, offset)`.
pub type Pos = (i32, i64);

/// The positions of `produced`.
pub fn positions(produced: &[Produced]) -> BTreeSet<Pos> {
    produced.iter().map(|p| (p.partition, p.offset)).collect()
}

/// The at-least-once rule across a fault: in each consumer's own event order, no record is
/// delivered after the broker answered its accept without an error (records whose
/// acknowledgement failed or never came may come again). Returns the violations.
pub fn redelivered_after_ack(events: &[Value]) -> Vec<String> {
    let mut accepted: BTreeMap<Pos, String> = BTreeMap::new();
    let mut bad = Vec::new();
    for v in events {
        let pos = (
            v["partition"].as_i64().unwrap_or(-1) as i32,
            v["offset"].as_i64().unwrap_or(-1),
        );
        if v["event"] == "ack" && v["type"] == "accept" && v["error"].is_null() {
            accepted.entry(pos).or_insert_with(|| v.to_string());
        } else if v["event"] == "record" {
            if let Some(ack) = accepted.get(&pos) {
                bad.push(format!("{v} after {ack}"));
            }
        }
    }
    bad
}

/// The positions accepted without an error in `events`, each with how often.
pub fn accepted(events: &[Value]) -> BTreeMap<Pos, usize> {
    let mut out = BTreeMap::new();
    for a in acks(events) {
        if a.kind == "accept" && a.error.is_none() {
            *out.entry((a.partition, a.offset)).or_insert(0) += 1;
        }
    }
    out
}

/// Panics unless every position of `produced` was accepted in `accepted` (at least once), naming
/// the first missing ones.
pub fn assert_all_accepted(produced: &[Produced], accepted: &BTreeMap<Pos, usize>, what: &str) {
    let missing: Vec<Pos> = positions(produced)
        .into_iter()
        .filter(|p| !accepted.contains_key(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} records never accepted, e.g. {:?}",
        missing.len(),
        produced.len(),
        &missing[..missing.len().min(10)]
    );
}
