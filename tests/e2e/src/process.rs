//! Running the third-party clients: Python scripts from `tests/e2e/python/` in the venv that
//! `scripts/test` installs, and `kcat`. Every run has a timeout and fails the test with the
//! client's stderr when it exits non-zero.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::broker::wait_timeout;

/// The venv's Python: `$GREGOR_PYTHON` (absolute, or relative to the repository root), else `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("GREGOR_PYTHON") {
        // Relative to the repository root: test binaries run in their crate's directory.
        Some(p) => crate::repo_root().join(p),
        None => crate::repo_root().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "Python with the Kafka clients not found at {}: run scripts/test once (it creates \
         .venv with confluent-kafka and kafka-python), or set GREGOR_PYTHON",
        path.display()
    );
    path
}

/// Path of a script in `tests/e2e/python/`.
pub fn python_script(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name);
    assert!(p.is_file(), "no such script: {}", p.display());
    p
}

/// Runs `tests/e2e/python/<script> args...` and returns its stdout; panics (failing the test)
/// with its stderr if it exits non-zero or outlives `timeout`.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-u")
        .arg("-B")
        .arg(python_script(script))
        .args(args);
    let out = run_command(cmd, None, timeout);
    expect_success(&format!("python {script} {}", args.join(" ")), &out)
}

/// [`run_python_json`] with more to show when it fails (the broker's log, say).
pub fn run_python_json_or(
    script: &str,
    args: &[&str],
    timeout: Duration,
    context: impl Fn() -> String,
) -> serde_json::Value {
    let mut cmd = Command::new(python());
    cmd.arg("-u")
        .arg("-B")
        .arg(python_script(script))
        .args(args);
    let out = run_command(cmd, None, timeout);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python {script} {} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        truncate(&stdout, 4000),
        context()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "python {script}: stdout is not JSON ({e}):\n{stdout}\n{}",
            context()
        )
    })
}

/// [`run_python`], parsing stdout as JSON.
pub fn run_python_json(script: &str, args: &[&str], timeout: Duration) -> serde_json::Value {
    let stdout = run_python(script, args, timeout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("python {script}: stdout is not JSON ({e}):\n{stdout}");
    })
}

/// Runs `kcat args...` (optionally feeding `stdin`) and returns its stdout; panics with its
/// stderr if it exits non-zero or outlives `timeout`.
pub fn kcat(args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> String {
    let mut cmd = Command::new("kcat");
    // `cargo test --workspace` puts the native-library directories of every package's build
    // scripts on LD_LIBRARY_PATH, among them the librdkafka that rdkafka-sys builds for the load
    // generator (without zstd). kcat must run on the librdkafka it was packaged with.
    cmd.args(args).env_remove("LD_LIBRARY_PATH");
    let out = run_command(cmd, stdin, timeout);
    expect_success(&format!("kcat {}", args.join(" ")), &out)
}

fn expect_success(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            truncate(&stdout, 4000)
        );
    }
    stdout
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Runs a command with piped stdio, writing `stdin` if given, and kills it after `timeout`
/// (panicking with what it printed so far).
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (did scripts/test install it?)"));

    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let data = data.to_vec();
        // Dropping the pipe at the end closes the child's stdin (EOF).
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));

    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            let out = stdout.join().unwrap_or_default();
            panic!(
                "{program} timed out after {timeout:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                String::from_utf8_lossy(&err),
                truncate(&String::from_utf8_lossy(&out), 4000)
            );
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn read_all<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
