//! Shared harness of the CLI end-to-end tests: a real `gregor server` on an ephemeral port
//! with a temp data dir, killed by a drop guard, and a runner for the tool subcommands.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_gregor");

/// A running broker; killed and reaped on drop.
pub struct Server {
    child: Child,
    /// The broker's bound address.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server() -> Server {
    start_server_with(&[])
}

/// Starts a server with extra `server` arguments (e.g. `--set k=v`).
pub fn start_server_with(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(extra)
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

/// Runs a `gregor` tool against the server, feeding `stdin`.
pub fn gregor(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
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

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tool failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}
