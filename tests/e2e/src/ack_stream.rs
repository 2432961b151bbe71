//! [`AckStream`]: a producer that streams under a cluster test while nodes die, writing each
//! record it gets acknowledged to an ack file as it comes (`partition offset value`, a line
//! each, as [`acked_lines`] reads it), and printing one JSON document when SIGTERM stops it
//! (`sasl_client.py stream`, ...).
//!
//! ```text
//!   test ── AckStream::start(cmd, ack_file) ──▶ child (stdin closed)
//!     │        stdout, stderr ──▶ a thread each, read to the end (the final document carries
//!     │                           every delivered record, more than a pipe holds)
//!     ├── acked() / wait_until(cluster, ..)   the ack file, polled; a producer that exits
//!     │                                       early fails the wait
//!     └── stop(cluster, timeout)              SIGTERM, then the final document (or a panic
//!                                             with its output and the nodes' logs)
//! ```
//!
//! Dropped while running (a failed test), the producer is killed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use crate::broker::{send_signal, wait_timeout};
use crate::cluster::Cluster;
use crate::cluster_client::{acked_lines, wait_for};

/// How long [`AckStream::wait_for_acks`] waits for the acknowledgements it asks for.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// One acknowledged record: `(partition, offset, value)`.
pub type Acked = (i32, i64, String);

/// A running producer whose acknowledged records go to an ack file; see the module docs.
pub struct AckStream {
    /// What the failure messages call it ("alice's producer", "sasl_client.py stream").
    name: String,
    child: Child,
    /// Its stdout and stderr, each read to the end by a thread of its own.
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// The acknowledged records, a line each, as they are acknowledged.
    ack_file: PathBuf,
}

impl AckStream {
    /// Spawns `cmd` (which writes its acknowledgements to `ack_file`) with its output piped and
    /// drained; `name` is what failure messages call it.
    pub fn start(name: &str, mut cmd: Command, ack_file: &Path) -> AckStream {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let drain = |mut pipe: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = Some(drain(Box::new(
            child.stdout.take().expect("stdout is piped"),
        )));
        let stderr = Some(drain(Box::new(
            child.stderr.take().expect("stderr is piped"),
        )));
        AckStream {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            ack_file: ack_file.to_path_buf(),
        }
    }

    /// The records acknowledged so far, in acknowledgement order.
    pub fn acked(&self) -> Vec<Acked> {
        acked_lines(&self.ack_file)
    }

    /// Waits (polling, at most `timeout`) until `done` holds for the acknowledgements so far;
    /// fails if the producer exits first, or with `cluster`'s logs once the time is up.
    pub fn wait_until(
        &mut self,
        cluster: &Cluster,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Acked]) -> bool,
    ) {
        wait_for(cluster, what, timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) while waiting for {what}", self.name);
            }
            done(&self.acked()).then_some(())
        });
    }

    /// Waits until at least `n` records are acknowledged, at most [`ACK_TIMEOUT`].
    pub fn wait_for_acks(&mut self, cluster: &Cluster, n: usize, what: &str) {
        self.wait_until(cluster, what, ACK_TIMEOUT, |acked| acked.len() >= n);
    }

    /// SIGTERM, then its final JSON document once it exits (killed after `timeout`). Fails,
    /// with its output and `cluster`'s logs, unless it exits with success and prints one.
    pub fn stop(mut self, cluster: &Cluster, timeout: Duration) -> Value {
        let (status, stdout, stderr) = self.finish(timeout);
        let stdout = String::from_utf8_lossy(&stdout);
        let doc = status
            .is_some_and(|s| s.success())
            .then(|| serde_json::from_str(&stdout).ok())
            .flatten();
        doc.unwrap_or_else(|| {
            panic!(
                "{} failed ({status:?}):\n--- stderr ---\n{}\n--- stdout (start) ---\n{}\n{}",
                self.name,
                String::from_utf8_lossy(&stderr),
                stdout.chars().take(2000).collect::<String>(),
                cluster.logs()
            )
        })
    }

    /// SIGTERM, wait at most `timeout` (then SIGKILL), and collect what it wrote.
    fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, Vec<u8>, Vec<u8>) {
        send_signal(self.child.id(), "TERM");
        let status = wait_timeout(&mut self.child, timeout);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let output = |pipe: Option<JoinHandle<Vec<u8>>>| {
            pipe.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        (
            status,
            output(self.stdout.take()),
            output(self.stderr.take()),
        )
    }
}

impl Drop for AckStream {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
