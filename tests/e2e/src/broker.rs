//! [`Broker`]: one `gregor server` child process on 127.0.0.1, with its own temporary data dir.
//!
//! The broker's port is learnt from its log: the harness reads stderr (and stdout) until a line
//! containing `listening on HOST:PORT`, then keeps draining both pipes in threads so the broker
//! never blocks on a full pipe, keeping the last lines for failure messages.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the broker may take to log its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop()` waits after SIGTERM before giving up.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How many log lines are kept for failure messages.
const LOG_LINES_KEPT: usize = 300;
/// How often `restart()` retries binding the old port (it can linger briefly after a kill).
const RESTART_ATTEMPTS: usize = 10;

/// A running `gregor server`. Dropping it kills the process (SIGKILL) and removes the data dir.
pub struct Broker {
    /// The running process; `None` between `kill9()`/`stop()` and `restart()`.
    child: Option<Child>,
    /// Owns the data directory so it outlives restarts and is removed at the end.
    data_dir: TempDir,
    /// The other log directories, when started with several ([`Broker::start_with_log_dirs`]).
    extra_dirs: Vec<TempDir>,
    /// Where the broker listens; the same port again after a restart.
    addr: SocketAddr,
    /// Extra `--set key=value` flags, repeated on every restart.
    sets: Vec<String>,
    /// A `--config` properties file, given on every restart.
    config_file: Option<PathBuf>,
    /// The last lines the broker printed (stderr and stdout, all runs), for failure messages.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Broker {
    /// Starts a broker with default config.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra config, each entry `key=value`, passed as `--set key=value`.
    pub fn start_with(sets: &[&str]) -> Broker {
        Broker::start_with_log_dirs(0, sets)
    }

    /// Starts a broker with `extra` log directories besides its data directory (`log.dirs`
    /// lists the data directory first, then each in a temporary directory of its own) and
    /// extra config as [`Broker::start_with`].
    pub fn start_with_log_dirs(extra: usize, sets: &[&str]) -> Broker {
        Broker::start_configured(None, extra, sets)
    }

    /// Starts a broker with `--config FILE` (its data directory and listener still given by
    /// flags) and extra config as [`Broker::start_with`].
    pub fn start_with_file(file: &Path, sets: &[&str]) -> Broker {
        Broker::start_configured(Some(file.to_path_buf()), 0, sets)
    }

    fn start_configured(config_file: Option<PathBuf>, extra: usize, sets: &[&str]) -> Broker {
        let temp = |prefix: &str| {
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("create a temporary data dir")
        };
        let data_dir = temp("gregor-e2e-");
        let extra_dirs: Vec<TempDir> = (0..extra).map(|_| temp("gregor-e2e-logdir-")).collect();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let mut sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        if !extra_dirs.is_empty() {
            let dirs: Vec<String> = std::iter::once(&data_dir)
                .chain(&extra_dirs)
                .map(|d| d.path().display().to_string())
                .collect();
            sets.push(format!("log.dirs={}", dirs.join(",")));
        }
        // A port below the ephemeral range, so a restart gets it back (see `ports`); another
        // one if it was taken between the check and the bind.
        let mut started = Err(String::new());
        for _ in 0..3 {
            let listen = crate::ports::reserve().to_string();
            started = spawn(
                data_dir.path(),
                &listen,
                config_file.as_deref(),
                &sets,
                &log,
            );
            if started.is_ok() {
                break;
            }
        }
        let (child, addr) = started.unwrap_or_else(|e| panic!("gregor server did not start: {e}"));
        Broker {
            child: Some(child),
            data_dir,
            extra_dirs,
            addr,
            sets,
            config_file,
            log,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `HOST:PORT`, as a bootstrap-servers string.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Every log directory, the data directory first.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        std::iter::once(&self.data_dir)
            .chain(&self.extra_dirs)
            .map(|d| d.path().to_path_buf())
            .collect()
    }

    /// The broker's last log lines, for assertion messages.
    pub fn logs(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the broker with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the broker to shut down (SIGTERM) and waits for it; panics if it does not exit in
    /// time (it is then killed).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("stop(): the broker is not running");
        send_signal(child.id(), "TERM");
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gregor did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.logs()
                );
            }
        }
    }

    /// [`Broker::restart`] with these `--set` entries instead of those it started with (its
    /// `log.dirs` among them, if it was given some).
    pub fn restart_with(&mut self, sets: &[String]) {
        self.sets = sets.to_vec();
        self.restart();
    }

    /// Starts the broker again on the same data dir and the same port. Stops it first with
    /// SIGKILL if it is still running.
    pub fn restart(&mut self) {
        self.kill9();
        let listen = format!("127.0.0.1:{}", self.addr.port());
        let mut last_err = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match spawn(
                self.data_dir.path(),
                &listen,
                self.config_file.as_deref(),
                &self.sets,
                &self.log,
            ) {
                Ok((child, addr)) => {
                    assert_eq!(addr.port(), self.addr.port(), "restarted on another port");
                    self.child = Some(child);
                    return;
                }
                Err(e) => {
                    last_err = e;
                    thread::sleep(Duration::from_millis(300));
                }
            }
        }
        panic!("gregor did not restart on {listen}: {last_err}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- gregor log (last lines) ---\n{}\n---", self.logs());
        }
        self.kill9();
    }
}

/// Path of the `gregor` binary: `$GREGOR_BIN`, else next to the test binary's `deps/` folder.
pub fn gregor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GREGOR_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "GREGOR_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("path of the running test binary");
    // target/<profile>/deps/<test-binary> → target/<profile>/gregor
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("gregor"))
        .expect("test binary has a parent directory");
    assert!(
        candidate.is_file(),
        "gregor binary not found at {}: build it first: cargo build -p gregor-cli \
         (or set GREGOR_BIN)",
        candidate.display()
    );
    candidate
}

/// Waits until `addr` accepts TCP connections (a listener the log does not announce); panics
/// with `logs()` after `timeout`.
pub fn wait_accepting(addr: SocketAddr, timeout: Duration, logs: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing accepts connections on {addr} within {timeout:?}; log:\n{}",
            logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `gregor ARGS --bootstrap-server AT --command-config CONFIG`, writing `stdin` if given:
/// (success, stdout, stderr).
pub fn gregor_with_config(
    at: &str,
    config: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(args)
        .arg("--bootstrap-server")
        .arg(at)
        .arg("--command-config")
        .arg(config);
    let out = crate::run_command(cmd, stdin.map(str::as_bytes), Duration::from_secs(90));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// gregor's CLI, logged in with `config`, creates `topic` (two partitions), produces three
/// lines to it and reads them back from the beginning, in group `{topic}-g` when `in_group`.
/// The error names the first step that failed, with what the CLI printed.
/// Runs the gregor CLI with `args` against `bootstrap`: (success, stdout, stderr).
pub fn gregor_cli(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(gregor_bin())
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .output()
        .expect("run gregor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`gregor_cli`] that must succeed: its stdout.
pub fn gregor_cli_ok(bootstrap: &str, args: &[&str]) -> String {
    let (ok, out, err) = gregor_cli(bootstrap, args);
    assert!(ok, "gregor {}: {err}", args.join(" "));
    out
}

pub fn gregor_cli_roundtrip(
    at: &str,
    config: &Path,
    topic: &str,
    in_group: bool,
) -> Result<(), String> {
    let create = ["topics", "create", topic, "--partitions", "2"];
    let (ok, out, err) = gregor_with_config(at, config, &create, None);
    if !ok {
        return Err(format!("topics create: {out}{err}"));
    }
    let (ok, out, err) =
        gregor_with_config(at, config, &["produce", topic], Some("one\ntwo\nthree\n"));
    if !ok {
        return Err(format!("produce: {out}{err}"));
    }
    let group = format!("{topic}-g");
    let mut consume = vec!["consume", topic];
    if in_group {
        consume.extend(["--group", &group]);
    }
    consume.extend([
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout-ms",
        "20000",
    ]);
    let (ok, out, err) = gregor_with_config(at, config, &consume, None);
    if !ok {
        return Err(format!("consume: {out}{err}"));
    }
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    if got != ["one", "three", "two"] {
        return Err(format!("consume read {got:?}: {err}"));
    }
    Ok(())
}

/// What `gregor server` printed as it refused to start ([`refused_start`]).
pub struct Refusal {
    /// Its stdout, then its stderr.
    pub output: String,
    /// Whether it wrote anything to its data directory (fresh and empty before) on the way.
    pub wrote_data: bool,
}

/// Runs `gregor server --data-dir <fresh> --listen 127.0.0.1:<free> ARGS` (no `--data-dir` when
/// ARGS set `log.dirs`), a configuration it must refuse: fails unless the process exits (within 20 s) with an error and never logged
/// `listening on`, and returns what it printed.
pub fn refused_start(args: &[&str]) -> Refusal {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen: SocketAddr = crate::ports::reserve();
    let mut cmd = Command::new(gregor_bin());
    cmd.arg("server");
    // `--data-dir` stands for the whole of `log.dirs`: not given when the args list them.
    if !args.iter().any(|a| a.starts_with("log.dirs=")) {
        cmd.arg("--data-dir").arg(dir.path());
    }
    cmd.arg("--listen")
        .arg(listen.to_string())
        .args(args)
        .env("NO_COLOR", "1");
    let out = crate::run_command(cmd, None, Duration::from_secs(20));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "gregor server {args:?} started:\n{output}"
    );
    assert!(
        !output.contains("listening on"),
        "gregor server {args:?} served clients:\n{output}"
    );
    let wrote_data = !std::fs::read_dir(dir.path()).is_ok_and(|mut d| d.next().is_none());
    Refusal { output, wrote_data }
}

/// Spawns one `gregor server` and waits for its listening address.
fn spawn(
    data_dir: &Path,
    listen: &str,
    config_file: Option<&Path>,
    sets: &[String],
    log: &Arc<Mutex<VecDeque<String>>>,
) -> Result<(Child, SocketAddr), String> {
    let mut args = vec!["--listen".to_string(), listen.to_string()];
    if let Some(file) = config_file {
        args.extend(["--config".to_string(), file.display().to_string()]);
    }
    // `--data-dir` stands for the whole of `log.dirs`: not given when a set lists them.
    if !sets.iter().any(|s| s.starts_with("log.dirs=")) {
        args.extend(["--data-dir".to_string(), data_dir.display().to_string()]);
    }
    for s in sets {
        args.push("--set".to_string());
        args.push(s.clone());
    }
    spawn_server(&args, log)
}

/// Spawns `gregor server <args>`, keeps its output in `log`, and waits for its listening
/// address.
pub(crate) fn spawn_server(
    args: &[String],
    log: &Arc<Mutex<VecDeque<String>>>,
) -> Result<(Child, SocketAddr), String> {
    let (mut child, rx) = launch_server(args, log)?;
    match wait_for_listening(&mut child, &rx) {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let lines = log.lock().unwrap_or_else(|p| p.into_inner());
            Err(format!("{e}; log:\n{}", excerpt(&lines)))
        }
    }
}

/// Starts `gregor server ARGS` with its output going to `log` (and, line by line, to the
/// receiver) without waiting for it to listen.
pub fn launch_server(
    args: &[String],
    log: &Arc<Mutex<VecDeque<String>>>,
) -> Result<(Child, Receiver<String>), String> {
    let mut cmd = Command::new(gregor_bin());
    cmd.arg("server").args(args);
    // The port is read from an INFO line, so INFO must be on whatever the caller's environment.
    let filter =
        std::env::var("GREGOR_E2E_LOG").unwrap_or_else(|_| "info,openraft=warn".to_string());
    cmd.env("RUST_LOG", filter)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;

    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    drain(stderr, tx.clone(), Arc::clone(log));
    drain(stdout, tx, Arc::clone(log));
    Ok((child, rx))
}

/// The start and the end of a log (a panic's message comes first, its backtrace after it).
pub(crate) fn excerpt(lines: &VecDeque<String>) -> String {
    const HEAD: usize = 30;
    const TAIL: usize = 30;
    if lines.len() <= HEAD + TAIL {
        return lines.iter().cloned().collect::<Vec<_>>().join("\n");
    }
    let head: Vec<_> = lines.iter().take(HEAD).cloned().collect();
    let tail: Vec<_> = lines.iter().skip(lines.len() - TAIL).cloned().collect();
    format!(
        "{}\n[... {} lines ...]\n{}",
        head.join("\n"),
        lines.len() - HEAD - TAIL,
        tail.join("\n")
    )
}

fn wait_for_listening(child: &mut Child, rx: &Receiver<String>) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no 'listening on' line within {START_TIMEOUT:?}"));
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(addr) = parse_listening(&line) {
                    return Ok(addr);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("gregor exited with {status} before listening"));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = wait_timeout(child, Duration::from_secs(5));
                return Err(format!(
                    "gregor closed its output before listening (exit: {status:?})"
                ));
            }
        }
    }
}

/// Finds `HOST:PORT` after `listening on ` in a log line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token = rest.split_whitespace().next()?;
    let token = token.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '`'));
    token.parse().ok()
}

/// Removes ANSI escape sequences (colours), in case the broker's logger emits them.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Forwards each line of `pipe` to `tx` (while someone listens) and into the kept log.
fn drain<R: Read + Send + 'static>(pipe: R, tx: Sender<String>, log: Arc<Mutex<VecDeque<String>>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    {
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        if log.len() == LOG_LINES_KEPT {
                            log.pop_front();
                        }
                        log.push_back(line.clone());
                    }
                    // The receiver is gone once the broker is up: that is fine.
                    let _ = tx.send(line);
                }
            }
        }
    });
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends a signal by name (`TERM`, `KILL`, ...) with the `kill` command (no unsafe code here).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        panic!("cannot run kill -{signal} {pid}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let line = "2025-01-01T00:00:00Z  INFO gregor_broker::server: listening on 127.0.0.1:41234";
        assert_eq!(
            parse_listening(line),
            Some("127.0.0.1:41234".parse().expect("valid"))
        );
        let coloured =
            "\u{1b}[32m INFO\u{1b}[0m \u{1b}[2mgregor\u{1b}[0m listening on 127.0.0.1:9 x=1";
        assert_eq!(
            parse_listening(coloured),
            Some("127.0.0.1:9".parse().expect("valid"))
        );
        assert_eq!(parse_listening("INFO starting"), None);
    }
}
