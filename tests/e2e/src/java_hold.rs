//! A long-running Java program from `tests/interop/java` (compiled from source against the
//! toolbox's jars, as [`Toolbox::run_java_source`] does) held running while a test works
//! beside it: its stdout line by line, JSON lines parsed, closing its stdin as the cue to stop.
//! `tests/interop/java/StreamsGroupHold.java` keeps a Kafka Streams application running this
//! way for the streams group tool tests.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::wait_timeout;
use crate::kafka_tools::Toolbox;

/// A Java program held running; killed when dropped.
pub struct JavaHold {
    child: Child,
    /// Closing it is the program's cue to stop.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl JavaHold {
    /// Starts `java FILE ARGS...` from `tests/interop/java`.
    pub fn start(file: &str, args: &[&str]) -> Result<JavaHold, String> {
        let mut cmd = Command::new("java");
        cmd.args(Toolbox::installed().java_source_args(file, args));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run java {file}: {e}"))?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("java's stdout and stderr are not piped".to_string());
        };
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
        Ok(JavaHold {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        })
    }

    /// The next JSON line it prints (other lines are skipped), within `timeout`.
    pub fn json(&mut self, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|e| format!("no JSON line within {timeout:?} ({e})"))?;
            if line.starts_with('{') {
                return serde_json::from_str(&line).map_err(|e| format!("{line}: {e}"));
            }
        }
    }

    /// Closes its stdin: its final JSON line within `timeout`, once it has exited (killed
    /// when it does not within 15 s more).
    pub fn stop(&mut self, timeout: Duration) -> Result<Value, String> {
        self.stdin = None;
        let last = self.json(timeout);
        if wait_timeout(&mut self.child, Duration::from_secs(15)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        last
    }

    /// Kills it if still running; the last `n` lines of what it wrote to stderr.
    pub fn finish(&mut self, n: usize) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for JavaHold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
