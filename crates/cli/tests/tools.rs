//! End-to-end test of the client tools: starts the real `gregor server` on an ephemeral port
//! with a temp data dir, then drives `gregor topics|produce|consume` as a user would and checks
//! what they print. The server is killed by a drop guard, also when an assertion fails.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gregor");

/// A running broker; killed and reaped on drop.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gregor server");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    // Keep draining stderr for the server's whole life so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(pos) = line.find("listening on ") {
                let addr = line[pos + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    let mut server = Server {
        child,
        addr: String::new(),
        _dir: dir,
    };
    server.addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not print `listening on`");
    server
}

fn gregor(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--bootstrap-server", &server.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gregor tool");
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("tool output")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tool failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn topics_produce_consume_round_trip() {
    let server = start_server();

    // Create, and refuse to create twice.
    let out = ok(&gregor(
        &server,
        &[
            "topics",
            "create",
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=600000",
        ],
        None,
    ));
    assert_eq!(out.trim(), "Created topic events.");
    let again = gregor(&server, &["topics", "create", "events"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("TOPIC_ALREADY_EXISTS"));
    ok(&gregor(
        &server,
        &["topics", "create", "events", "--if-not-exists"],
        None,
    ));
    ok(&gregor(&server, &["topics", "create", "other"], None));

    let list = ok(&gregor(&server, &["topics", "list"], None));
    assert_eq!(list.lines().collect::<Vec<_>>(), vec!["events", "other"]);

    let describe = ok(&gregor(&server, &["topics", "describe", "events"], None));
    let lines: Vec<&str> = describe.lines().collect();
    assert!(
        lines[0].starts_with("Topic: events\tTopicId: "),
        "{describe}"
    );
    assert!(lines[0].contains("PartitionCount: 3"), "{describe}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
    for (i, row) in lines[2..].iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 5, "{row}");
        assert_eq!(cells[0], "events");
        assert_eq!(cells[1], i.to_string());
    }
    assert_eq!(lines.len(), 5, "{describe}");

    // Keyed records, in two runs with different codecs and acks.
    let first: String = (0..100).map(|i| format!("key{i}:value{i}\n")).collect();
    let second: String = (100..150).map(|i| format!("key{i}:value{i}\n")).collect();
    let out = gregor(
        &server,
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--compression",
            "gzip",
        ],
        Some(&first),
    );
    assert_eq!(ok(&out), "", "produce prints nothing on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("100 records produced"));
    ok(&gregor(
        &server,
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--compression",
            "lz4",
            "--acks",
            "1",
        ],
        Some(&second),
    ));

    // All partitions from the beginning: every record once, each key where murmur2 puts it.
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "events",
            "--from-beginning",
            "--timeout-ms",
            "1500",
            "--format",
            "%p %o %k %v",
        ],
        None,
    ));
    let mut seen = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{line}");
        let p: i32 = f[0].parse().expect("partition");
        assert_eq!(
            p,
            gregor_client::partitioner::partition_for_key(f[2].as_bytes(), 3),
            "{line}"
        );
        assert_eq!(f[3], f[2].replace("key", "value"));
        seen.push(f[2].trim_start_matches("key").parse::<u32>().expect("n"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..150).collect::<Vec<_>>());

    // One partition, from an offset, bounded by --max-messages.
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "events",
            "--partition",
            "1",
            "--offset",
            "2",
            "--max-messages",
            "3",
            "--format",
            "%p:%o",
        ],
        None,
    ));
    assert_eq!(out, "1:2\n1:3\n1:4\n");

    // From the end: nothing new arrives, the timeout ends the tool successfully.
    let out = ok(&gregor(
        &server,
        &["consume", "events", "--timeout-ms", "500"],
        None,
    ));
    assert_eq!(out, "");

    // Keyless values to an explicit partition, uncompressed, fire-and-forget, then read back.
    ok(&gregor(
        &server,
        &["produce", "other", "--partition", "0", "--acks", "0"],
        Some("a\nb\nc\n"),
    ));
    ok(&gregor(
        &server,
        &["produce", "other", "--compression", "zstd"],
        Some("d\n"),
    ));
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "other",
            "--from-beginning",
            "--max-messages",
            "4",
            "--timeout-ms",
            "5000",
        ],
        None,
    ));
    let mut values: Vec<&str> = out.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "c", "d"]);

    // Errors: a clear message and a non-zero exit.
    let missing = gregor(&server, &["consume", "nope", "--timeout-ms", "200"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"));
    let bad = gregor(
        &server,
        &["produce", "events", "--partition", "7"],
        Some("x\n"),
    );
    assert!(!bad.status.success());

    // Delete.
    let out = ok(&gregor(&server, &["topics", "delete", "other"], None));
    assert_eq!(out.trim(), "Deleted topic other.");
    let list = ok(&gregor(&server, &["topics", "list"], None));
    assert_eq!(list.trim(), "events");
    let gone = gregor(&server, &["topics", "delete", "other"], None);
    assert!(!gone.status.success());
    ok(&gregor(
        &server,
        &["topics", "delete", "other", "--if-exists"],
        None,
    ));
}
