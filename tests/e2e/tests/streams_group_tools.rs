//! exploration draft

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

const TOOL: &str = "kafka-streams-groups.sh";

struct Hold {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Hold {
    fn start(bootstrap: &str, prefix: &str, app: &str) -> Hold {
        let mut cmd = Command::new("java");
        cmd.args(
            Toolbox::installed().java_source_args("StreamsGroupHold.java", &[bootstrap, prefix, app]),
        );
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("java");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
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
        Hold {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    fn json(&mut self, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|e| e.to_string())?;
            if line.starts_with('{') {
                return serde_json::from_str(&line).map_err(|e| format!("{line}: {e}"));
            }
        }
    }

    fn stop(&mut self, timeout: Duration) -> Result<Value, String> {
        self.stdin = None;
        let v = self.json(timeout);
        let _ = gregor_e2e::broker::wait_timeout(&mut self.child, Duration::from_secs(10));
        v
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(h) = self.stderr.take() {
            let s = h.join().unwrap_or_default();
            eprintln!("--- hold stderr ---\n{}", s);
        }
    }
}

fn tool(bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    let run = Toolbox::installed().run(TOOL, &all, None, Duration::from_secs(60));
    eprintln!(
        "[{} ms] {}\n{}",
        run.elapsed.as_millis(),
        run.transcript(),
        run.status.map(|s| s.to_string()).unwrap_or_default()
    );
    run
}

fn session(name: &str, bootstrap: &str) {
    let t0 = Instant::now();
    let prefix = unique_topic("sgt");
    let app = format!("{prefix}-app");
    let mut hold = Hold::start(bootstrap, &prefix, &app);
    let ready = hold.json(Duration::from_secs(90));
    eprintln!("==== {name}: ready {ready:?} at {:?}", t0.elapsed());
    let g = app.as_str();
    for args in [
        vec!["--list"],
        vec!["--list", "--state"],
        vec!["--describe", "--group", g],
        vec!["--describe", "--group", g, "--verbose"],
        vec!["--describe", "--group", g, "--members"],
        vec!["--describe", "--group", g, "--members", "--verbose"],
        vec!["--describe", "--group", g, "--offsets"],
        vec!["--describe", "--group", g, "--offsets", "--verbose"],
        vec!["--describe", "--group", g, "--state"],
        vec!["--describe", "--group", g, "--state", "--verbose"],
        vec!["--describe", "--group", g, "--topology"],
    ] {
        tool(bootstrap, &args);
    }
    let fin = hold.stop(Duration::from_secs(40));
    eprintln!("==== {name}: final {fin:?} at {:?}", t0.elapsed());
    for args in [
        vec!["--list"],
        vec!["--list", "--state"],
        vec!["--describe", "--group", g],
        vec!["--describe", "--group", g, "--state"],
        vec!["--describe", "--group", g, "--members"],
        vec!["--describe", "--group", g, "--offsets"],
        vec!["--delete", "--group", g],
        vec!["--list"],
        vec!["--describe", "--group", g, "--state"],
    ] {
        tool(bootstrap, &args);
    }
    eprintln!("==== {name}: done at {:?}", t0.elapsed());
}

#[test]
fn explore_kafka() {
    let peer = KafkaPeer::shared();
    session("kafka", &peer.bootstrap());
}

#[test]
fn explore_gregor() {
    let broker = Broker::start();
    session("gregor", &broker.bootstrap());
}
