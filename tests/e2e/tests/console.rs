//! The web console on `http.listener` against a live broker: `/api/overview`'s JSON checked
//! field by field, and the page itself loaded in jsdom with its scripts run, clicked, and read
//! back as a person sees it.
//!
//! ```text
//!   gregor produce --partition P ─▶ topic, 3 partitions: 90 + 100 + 110 records
//!   group_client.py consume-commit ─▶ group G: 240 read, each committed (every partition some)
//!   group_client.py member         ─▶ G Stable, one member (librdkafka's "rdkafka") owning all
//!   GET /api/overview              ─▶ brokers, topics, end offsets, G's commits and lag of 60
//!   node console.js overview ──────▶ jsdom: the page polls /api/overview (Node's fetch), the
//!        │                           test waits for the tables, clicks the topic and the group,
//!        │                           reads every table ─▶ {"phase":"clicked", ...}
//!        ├─◀ "450" on stdin after gregor produce adds 150 records
//!        └───────────────────────▶ the first poll showing 450 records: records/s > 0, the
//!                                    opened partition tables updated ─▶ {"phase":"polled", ...}
//! ```
//!
//! And a broker whose cluster cannot be asked (its inter-broker listener advertised on a port
//! nobody listens on) answers an `error` in the overview, which the page shows.
//!
//! jsdom comes from the toolbox (`scripts/toolbox`, from tests/interop/node/package.json), the
//! confluent-kafka group members from the venv (`scripts/test`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{ports, Broker};
use gregor_e2e::{python, python_script, repo_root, run_command, run_python_json_or, unique_topic};
use serde_json::{json, Value};

/// Records produced to each partition first: different counts, so a partition's numbers
/// cannot pass for another's.
const FIRST: [i64; 3] = [90, 100, 110];
/// Records the group reads and commits: more than any two partitions hold, so every partition
/// has a committed offset and the group's lag is exactly the records it did not read.
const COMMITTED: i64 = 240;
/// Records produced to each partition after the page's first look.
const MORE: i64 = 50;
/// The page polls /api/overview this often (console.html's POLL_MS).
const POLL: Duration = Duration::from_secs(3);
/// The longest one client run or wait may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
/// Rebalances are immediate: the group settles in well under a second.
const NO_DELAY: &str = "group.initial.rebalance.delay.ms=0";
/// The client id librdkafka gives a consumer that sets none: what the console shows as a
/// partition's owner.
const RDKAFKA_CLIENT_ID: &str = "rdkafka";

#[test]
fn overview_and_page_show_topics_groups_lag_and_rate() {
    let node_modules = node_modules();
    let started = Instant::now();
    let broker = Broker::start_with(&["http.listener=127.0.0.1:0", NO_DELAY]);
    let base = console_base(&broker);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("console");
    let group = unique_topic("console-group");

    // The page: one self-contained document.
    let (status, content_type, page) = http_get(&base, "/");
    assert_eq!(status, 200, "GET /: {page}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(page.contains("<title>gregor console</title>"), "{page}");
    for external in ["<script src", "<link", "<img", "@import"] {
        assert!(
            !page.contains(external),
            "the page loads {external}: {page}"
        );
    }

    gregor(
        &["topics", "create", &topic, "--partitions", "3"],
        &bootstrap,
        None,
    );
    for (p, n) in FIRST.iter().enumerate() {
        produce(&bootstrap, &topic, p, *n);
    }
    let consumed = run_python_json_or(
        "group_client.py",
        &[
            &bootstrap,
            "consume-commit",
            &topic,
            &group,
            "--count",
            &COMMITTED.to_string(),
        ],
        STEP_TIMEOUT,
        || broker.logs(),
    );
    assert_eq!(consumed["errors"], json!([]), "{consumed}");
    assert_eq!(consumed["commit_failed"], json!([]), "{consumed}");
    let committed: Vec<i64> = (0..3)
        .map(|p| {
            consumed["committed"][p.to_string()]
                .as_i64()
                .unwrap_or_else(|| panic!("no committed offset for partition {p}: {consumed}"))
        })
        .collect();
    assert_eq!(committed.iter().sum::<i64>(), COMMITTED, "{consumed}");
    assert!(
        committed.iter().zip(FIRST).all(|(c, n)| *c > 0 && *c <= n),
        "every partition read in part or whole: {consumed}"
    );

    // A member that stays: the group is Stable and owns every partition while the page looks.
    let mut member = Spawned::start(
        "group_client.py member",
        Command::new(python())
            .args(["-u", "-B"])
            .arg(python_script("group_client.py"))
            .args([&bootstrap, "member", &topic, &group])
            .args(["--session-timeout-ms", "10000"]),
    );
    let assigned = member.line(STEP_TIMEOUT);
    assert_eq!(assigned, r#"{"assigned": [0, 1, 2]}"#);

    // /api/overview, once the group has settled.
    let overview = wait_for_overview(&base, STEP_TIMEOUT, |o| {
        group_of(o, &group).is_some_and(|g| g["state"] == "Stable")
    });
    assert_eq!(overview["node_id"], 1, "{overview}");
    assert_eq!(overview["controller_id"], 1, "{overview}");
    assert!(
        overview["cluster_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{overview}"
    );
    assert_eq!(overview["warnings"], json!([]), "{overview}");
    assert_eq!(
        overview["brokers"],
        json!([{ "id": 1, "host": "127.0.0.1", "port": broker.addr().port(), "rack": null }])
    );
    let ours = topic_of(&overview, &topic);
    assert_eq!(
        ours,
        &json!({
            "name": topic,
            "internal": false,
            "error": null,
            "partitions": (0..3).map(|p| json!({
                "partition": p,
                "leader": 1,
                "replicas": [1],
                "isr": [1],
                "end_offset": FIRST[p],
            })).collect::<Vec<_>>(),
        })
    );
    let ends_total: i64 = ours["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["end_offset"].as_i64().expect("end offset"))
        .sum();
    assert_eq!(ends_total, FIRST.iter().sum::<i64>());
    assert_eq!(topic_of(&overview, "__consumer_offsets")["internal"], true);
    let lag: Vec<i64> = (0..3).map(|p| FIRST[p] - committed[p]).collect();
    assert_eq!(
        group_of(&overview, &group).expect("the group"),
        &json!({
            "group_id": group,
            "state": "Stable",
            "protocol_type": "consumer",
            "protocol": "range",
            "members": 1,
            "lag": FIRST.iter().sum::<i64>() - COMMITTED,
            "partitions": (0..3).map(|p| json!({
                "topic": topic,
                "partition": p,
                "committed": committed[p],
                "end_offset": FIRST[p],
                "lag": lag[p],
                "owner": RDKAFKA_CLIENT_ID,
            })).collect::<Vec<_>>(),
        })
    );

    // The page in jsdom: the tables, then both rows clicked open.
    let total = FIRST.iter().sum::<i64>();
    let mut driver = Spawned::start(
        "node console.js overview",
        Command::new("node")
            .env("NODE_PATH", &node_modules)
            .arg(console_js())
            .args(["overview", &base, &topic, &group, &total.to_string()]),
    );
    let clicked = driver.json(STEP_TIMEOUT);
    assert_eq!(clicked["phase"], "clicked", "{clicked}");
    assert_eq!(
        clicked["errors"],
        json!([]),
        "the page's console: {clicked}"
    );
    assert_eq!(
        clicked["error"],
        json!({ "shown": false, "text": "" }),
        "{clicked}"
    );
    assert_eq!(
        clicked["header"],
        json!({
            "cluster": format!("cluster {}", overview["cluster_id"].as_str().expect("id")),
            "controller": "controller 1",
            "node": "served by node 1",
        })
    );
    let brokers = rows(&clicked, "brokers");
    assert_eq!(brokers.len(), 2, "{clicked}");
    assert_eq!(brokers[0], json!(["id", "host", "port", "rack", "role"]));
    assert_eq!(
        brokers[1],
        json!([
            "1",
            "127.0.0.1",
            broker.addr().port().to_string(),
            "–",
            "broker, active controller"
        ]),
        "{clicked}"
    );

    let topics = rows(&clicked, "topics");
    assert_eq!(
        topics,
        &[
            json!([
                "topic",
                "partitions",
                "replication",
                "under-replicated",
                "offline",
                "records",
                "records/s"
            ]),
            // One poll so far: no rate yet.
            json!([topic, "3", "1", "0", "0", total.to_string(), "–"]),
            json!({ "detail": partition_rows(&FIRST) }),
        ],
        "the topics (internal ones hidden), the partitions opened: {clicked}"
    );
    assert_eq!(
        clicked["internal_ticked"],
        json!(["__consumer_offsets", topic]),
        "{clicked}"
    );
    assert_eq!(clicked["internal_unticked"], json!([topic]), "{clicked}");
    assert_eq!(
        rows(&clicked, "groups"),
        group_table(&group, &topic, &committed, &FIRST),
        "{clicked}"
    );

    // More records; the page's next poll shows them at a rate.
    let ends: Vec<i64> = FIRST.iter().map(|n| n + MORE).collect();
    for p in 0..3 {
        produce(&bootstrap, &topic, p, MORE);
    }
    let new_total: i64 = ends.iter().sum();
    driver.say(&new_total.to_string());
    let polled = driver.json(STEP_TIMEOUT + POLL);
    assert_eq!(polled["phase"], "polled", "{polled}");
    assert_eq!(polled["errors"], json!([]), "the page's console: {polled}");
    let topics = rows(&polled, "topics");
    assert_eq!(topics.len(), 3, "{polled}");
    // Everything as before but the records and the rate (checked below).
    let rate_cell = topics[1][6].clone();
    assert_eq!(
        topics[1],
        json!([topic, "3", "1", "0", "0", new_total.to_string(), rate_cell]),
        "{polled}"
    );
    // 150 records between two polls at least POLL apart: at most 50 a second.
    let rate = digits(&rate_cell);
    let most = 3 * MORE * 1000 / POLL.as_millis() as i64;
    assert!(
        rate > 0 && rate <= most,
        "records/s after {} more records: {} (expected 1..={most}): {polled}",
        3 * MORE,
        rate_cell
    );
    assert_eq!(
        topics[2],
        json!({ "detail": partition_rows(&ends) }),
        "{polled}"
    );
    assert_eq!(
        rows(&polled, "groups"),
        group_table(&group, &topic, &committed, &ends),
        "the opened group, its lag grown by the new records: {polled}"
    );
    driver.finish(STEP_TIMEOUT);
    member.kill();
    eprintln!("console test took {:?}", started.elapsed());
}

#[test]
fn overview_and_page_say_when_the_cluster_cannot_be_asked() {
    let node_modules = node_modules();
    // The console asks the cluster through the inter-broker listener as advertised: a port
    // nobody listens on.
    let dead = ports::reserve();
    let advertised = format!("advertised.listeners=PLAINTEXT://{dead}");
    let broker = Broker::start_with(&["http.listener=127.0.0.1:0", &advertised]);
    let base = console_base(&broker);

    let (status, content_type, body) = http_get(&base, "/api/overview");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let overview: Value = serde_json::from_str(&body).expect("JSON");
    let error = overview["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains(&dead.to_string()),
        "the error names where it asked: {overview}"
    );
    assert_eq!(overview, json!({ "node_id": 1, "error": error }));

    let mut driver = Spawned::start(
        "node console.js error",
        Command::new("node")
            .env("NODE_PATH", &node_modules)
            .arg(console_js())
            .args(["error", &base]),
    );
    let page = driver.json(STEP_TIMEOUT);
    assert_eq!(page["phase"], "error", "{page}");
    assert_eq!(page["errors"], json!([]), "the page's console: {page}");
    assert_eq!(
        page["error"],
        json!({ "shown": true, "text": format!("The cluster did not answer: {error}") })
    );
    for table in ["brokers", "topics", "groups"] {
        assert_eq!(page["tables"][table], json!([]), "{page}");
    }
    driver.finish(STEP_TIMEOUT);
}

/// The toolbox's node_modules with jsdom, or a test failure naming scripts/toolbox.
fn node_modules() -> PathBuf {
    let toolbox = Toolbox::installed();
    let dir = toolbox.dir().join("node/node_modules");
    let jsdom = dir.join("jsdom/package.json");
    assert!(
        jsdom.is_file(),
        "jsdom is not installed ({} is missing): run scripts/toolbox",
        jsdom.display()
    );
    dir
}

fn console_js() -> PathBuf {
    repo_root().join("tests/interop/node/console.js")
}

/// `http://HOST:PORT` of the broker's http.listener, from its log line
/// `metrics served on http://HOST:PORT/metrics` (printed before the broker listens).
fn console_base(broker: &Broker) -> String {
    let logs = broker.logs();
    logs.lines()
        .find_map(|l| {
            let rest = &l[l.find("metrics served on http://")? + "metrics served on ".len()..];
            Some(
                rest.split_whitespace()
                    .next()?
                    .strip_suffix("/metrics")?
                    .to_string(),
            )
        })
        .unwrap_or_else(|| panic!("no 'metrics served on' line in the log:\n{logs}"))
}

/// `GET path` on `base` (`http://HOST:PORT`): status, content type, body.
fn http_get(base: &str, path: &str) -> (u16, String, String) {
    let addr: SocketAddr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not http://HOST:PORT: {base}"));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    // The overview gives the cluster 10 s.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let raw = String::from_utf8(raw).unwrap_or_else(|e| panic!("GET {path}: not UTF-8: {e}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers: {raw}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line: {head}"));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    assert!(
        header("transfer-encoding").is_none(),
        "GET {path}: a chunked answer: {head}"
    );
    let body = match header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => body.get(..n).unwrap_or(body),
        None => body,
    };
    (
        status,
        header("content-type").unwrap_or_default(),
        body.to_string(),
    )
}

/// Polls /api/overview until `ready` holds for it; panics with the last answer after `timeout`.
fn wait_for_overview(base: &str, timeout: Duration, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, _, body) = http_get(base, "/api/overview");
        let overview: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/overview is not JSON ({e}): {body}"));
        if status == 200 && ready(&overview) {
            return overview;
        }
        assert!(
            Instant::now() < deadline,
            "/api/overview not as expected within {timeout:?} (HTTP {status}): {overview}"
        );
        // Answers are reused for a second.
        thread::sleep(Duration::from_millis(500));
    }
}

fn topic_of<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no topic {name} in {overview}"))
}

fn group_of<'a>(overview: &'a Value, id: &str) -> Option<&'a Value> {
    overview["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group_id"] == id)
}

/// The rows of one of the page's tables as the driver printed them.
fn rows<'a>(page: &'a Value, table: &str) -> &'a [Value] {
    page["tables"][table]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no table {table} in {page}"))
}

/// The opened topic's partition table: leader 1, replicas and ISR just 1, the end offsets.
fn partition_rows(ends: &[i64]) -> Vec<Value> {
    let mut rows = vec![json!([
        "partition",
        "leader",
        "replicas",
        "isr",
        "end offset"
    ])];
    for (p, end) in ends.iter().enumerate() {
        rows.push(json!([p.to_string(), "1", "1", "1", end.to_string()]));
    }
    rows
}

/// The opened group's table: per partition committed, end offset, lag, owner.
fn group_rows(topic: &str, committed: &[i64], ends: &[i64]) -> Vec<Value> {
    let mut rows = vec![json!([
        "topic",
        "partition",
        "committed",
        "end offset",
        "lag",
        "owner"
    ])];
    for (p, (c, e)) in committed.iter().zip(ends).enumerate() {
        rows.push(json!([
            topic,
            p.to_string(),
            c.to_string(),
            e.to_string(),
            (e - c).to_string(),
            RDKAFKA_CLIENT_ID
        ]));
    }
    rows
}

/// The page's groups table with the group opened: its row (Stable, one member, the lag the
/// end offsets `ends` leave over the commits) and its partition rows.
fn group_table(group: &str, topic: &str, committed: &[i64], ends: &[i64]) -> Vec<Value> {
    let lag: i64 = ends.iter().sum::<i64>() - COMMITTED;
    vec![
        json!(["group", "state", "protocol", "members", "lag"]),
        json!([group, "Stable", "range", "1", lag.to_string()]),
        json!({ "detail": group_rows(topic, committed, ends) }),
    ]
}

/// A cell's number from its digits (the page groups thousands as the locale does).
fn digits(cell: &Value) -> i64 {
    let text = cell.as_str().unwrap_or_default();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {cell}"))
}

/// Runs `gregor ARGS --bootstrap-server BOOTSTRAP`, feeding `stdin`; panics when it fails.
fn gregor(args: &[&str], bootstrap: &str, stdin: Option<&[u8]>) {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(args).args(["--bootstrap-server", bootstrap]);
    let out = run_command(cmd, stdin, STEP_TIMEOUT);
    assert!(
        out.status.success(),
        "gregor {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` records to one partition with `gregor produce` (acks=all: all written when it exits).
fn produce(bootstrap: &str, topic: &str, partition: usize, n: i64) {
    let lines: String = (0..n).map(|i| format!("p{partition}-{i}\n")).collect();
    gregor(
        &["produce", topic, "--partition", &partition.to_string()],
        bootstrap,
        Some(lines.as_bytes()),
    );
}

/// A child process the test talks to line by line; killed when dropped.
struct Spawned {
    what: String,
    child: Child,
    /// Its stdin: the driver's cue for the next phase.
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    lines: Receiver<String>,
    /// Its stderr, kept for failure messages.
    stderr: thread::JoinHandle<String>,
}

impl Spawned {
    fn start(what: &str, cmd: &mut Command) -> Spawned {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Spawned {
            what: what.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// The next line it prints; panics with its stderr when none comes within `timeout`.
    fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(e) => {
                self.kill();
                let stderr = std::mem::replace(&mut self.stderr, thread::spawn(String::new));
                panic!(
                    "{}: no line within {timeout:?} ({e}); stderr:\n{}",
                    self.what,
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }

    /// The next line, as JSON.
    fn json(&mut self, timeout: Duration) -> Value {
        let line = self.line(timeout);
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.what))
    }

    /// Writes one line to its stdin.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("{}: write: {e}", self.what));
        stdin
            .flush()
            .unwrap_or_else(|e| panic!("{}: flush: {e}", self.what));
    }

    /// Closes its stdin and waits for it to exit successfully.
    fn finish(&mut self, timeout: Duration) {
        self.stdin = None;
        match gregor_e2e::broker::wait_timeout(&mut self.child, timeout) {
            Some(status) => assert!(status.success(), "{} exited with {status}", self.what),
            None => {
                self.kill();
                panic!("{} did not exit within {timeout:?}", self.what);
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}
