//! Smoke test of `gregor perf`: starts the real `gregor server` on an ephemeral port with a temp
//! data dir, produces 20 000 records with acks=all through `gregor perf produce`, reads them back
//! with `gregor perf consume` and checks both summaries count 20 000 records.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gregor");

/// A running broker; killed and reaped on drop, also when an assertion fails.
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
    // Drain stderr for the server's whole life so it never blocks on a full pipe.
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
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not print `listening on`");
    Server {
        child,
        addr,
        _dir: dir,
    }
}

fn perf(server: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("perf")
        .args(args)
        .args(["--bootstrap-server", &server.addr])
        .stdin(Stdio::null())
        .output()
        .expect("run gregor perf");
    assert!(
        out.status.success(),
        "gregor perf {args:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn produce_then_consume_twenty_thousand_records() {
    let server = start_server();
    let produced = perf(
        &server,
        &[
            "produce",
            "--topic",
            "perf-smoke",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--acks",
            "all",
            "--partitions",
            "2",
            "--producers",
            "2",
        ],
    );
    assert!(
        produced.starts_with("20000 records sent, "),
        "produce summary: {produced}"
    );
    assert!(produced.contains("p99.9"), "produce summary: {produced}");

    let consumed = perf(
        &server,
        &["consume", "--topic", "perf-smoke", "--num-records", "20000"],
    );
    assert!(
        consumed.starts_with("20000 records consumed, "),
        "consume summary: {consumed}"
    );
    assert!(consumed.contains("1.91 MB"), "consume summary: {consumed}");
}
