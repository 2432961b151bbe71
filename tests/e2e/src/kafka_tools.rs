//! Apache Kafka's own command-line tools against gregor: finding the toolbox that
//! `scripts/toolbox` installs, running a tool as a user types it (with a timeout, never
//! panicking), and the compatibility table the runs make.
//!
//! ```text
//!   scripts/toolbox ──installs──▶ <toolbox>/bin/kafka-*.sh ──java──▶ <toolbox>/jars/*
//!   tests/kafka_tools.rs
//!     ├── Toolbox::installed()           fails the test, naming scripts/toolbox, when missing
//!     ├── Toolbox::run(script, args..)   one tool run: exit, stdout, stderr, timed out or not
//!     ├── Row { tool, command, outcome } one line of the table: works / fails: <reason>
//!     ├── Expectations::parse(..)        tests/interop/kafka-tools.expected
//!     └── markdown(rows) / replace_section(readme, ..)   the README's "Kafka's own tools"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::broker::wait_timeout;

/// The outcome recorded for tools that need a multi-node cluster, which gregor does not have yet.
pub const NEEDS_CLUSTER: &str = "needs the cluster (issue 10)";

/// Where `scripts/toolbox` installs: `$GREGOR_TOOLBOX`, else `$XDG_CACHE_HOME/gregor-toolbox`,
/// else `~/.cache/gregor-toolbox` (the same rule as the script's).
pub fn toolbox_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GREGOR_TOOLBOX") {
        return PathBuf::from(dir);
    }
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"),
    };
    cache.join("gregor-toolbox")
}

/// The installed toolbox: Kafka's jars and the wrappers named like Kafka's scripts.
#[derive(Debug, Clone)]
pub struct Toolbox {
    dir: PathBuf,
}

impl Toolbox {
    /// The toolbox, or a test failure telling how to install it: the interop tests never pass
    /// silently because Java's tools are missing.
    pub fn installed() -> Toolbox {
        let dir = toolbox_dir();
        let stamp = dir.join("jars/.stamp");
        let wrapper = dir.join("bin/kafka-topics.sh");
        assert!(
            stamp.is_file() && wrapper.is_file(),
            "Apache Kafka's tools are not installed in {} (no {} or {}): run scripts/toolbox \
             (it fetches Kafka's jars with Maven and writes the kafka-*.sh wrappers), or set \
             GREGOR_TOOLBOX to where it installed them",
            dir.display(),
            stamp.display(),
            wrapper.display()
        );
        Toolbox { dir }
    }

    /// The toolbox directory: what librdkafka's test suite wants as `KAFKA_PATH`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The flags that give a JVM on `jars/` the toolbox's class-data sharing archive `name`
    /// (`tools` for clients and tools, `server` for a Kafka broker: `scripts/toolbox` makes
    /// them), which halves its start-up CPU; none when the toolbox has no such archive. A JVM
    /// whose class path does not start with `jars/*` runs without it, silently.
    pub fn cds_args(&self, name: &str) -> Vec<String> {
        let archive = self.dir.join("cds").join(format!("{name}.jsa"));
        if !archive.is_file() {
            return Vec::new();
        }
        vec![
            format!("-XX:SharedArchiveFile={}", archive.display()),
            "-Xlog:cds=off".into(),
            "-Xlog:cds+dynamic=off".into(),
        ]
    }

    /// The Kafka version the jars are (from the install stamp), e.g. `4.4.0`.
    pub fn kafka_version(&self) -> String {
        std::fs::read_to_string(self.dir.join("jars/.stamp"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .find_map(|w| w.strip_prefix("kafka=").map(str::to_string))
            })
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// Path of a wrapper, e.g. `kafka-topics.sh`.
    pub fn bin(&self, script: &str) -> PathBuf {
        self.dir.join("bin").join(script)
    }

    /// Path of one of the Go interop programs (`tests/interop/go/cmd/<name>`), which
    /// `scripts/toolbox` builds; fails the test, naming scripts/toolbox, when it is missing.
    pub fn go_program(&self, name: &str) -> PathBuf {
        let path = self.dir.join("go/bin").join(name);
        assert!(
            path.is_file(),
            "the Go interop program {name} is not built ({} is missing): run scripts/toolbox",
            path.display()
        );
        path
    }

    /// Runs `<toolbox>/bin/<script> args...`, feeding `stdin` when given, and kills it after
    /// `timeout`. Never panics on the tool's behaviour: a failure is in the [`ToolRun`].
    pub fn run(
        &self,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> ToolRun {
        run_program(&self.bin(script), script, args, stdin, timeout)
    }

    /// `kafka-reassign-partitions.sh --bootstrap-server <bootstrap> --reassignment-json-file
    /// <plan> <action...>` (`--execute ...`, `--verify`), within 90 s.
    pub fn reassign_partitions(&self, bootstrap: &str, plan: &Path, action: &[&str]) -> ToolRun {
        let plan = plan.display().to_string();
        let mut args = vec![
            "--bootstrap-server",
            bootstrap,
            "--reassignment-json-file",
            plan.as_str(),
        ];
        args.extend(action);
        self.run(
            "kafka-reassign-partitions.sh",
            &args,
            None,
            Duration::from_secs(90),
        )
    }

    /// `kafka-metadata-quorum.sh --bootstrap-controller <controller> --command-config <config>
    /// describe --status`: the quorum as Kafka's tool reads it from a controller listener.
    pub fn quorum_status(&self, controller: &str, config: &Path, timeout: Duration) -> ToolRun {
        self.run(
            "kafka-metadata-quorum.sh",
            &[
                "--bootstrap-controller",
                controller,
                "--command-config",
                &config.display().to_string(),
                "describe",
                "--status",
            ],
            None,
            timeout,
        )
    }

    /// The directory holding `tests/interop/java/<file>` compiled against `jars/`, on first
    /// use (javac, in the system temp dir named by a hash of the source and the Kafka version,
    /// so later runs and concurrent test processes share it), and its main class (the file's
    /// name: each file there holds one public class of its name).
    pub fn compiled(&self, file: &str) -> (PathBuf, String) {
        use std::hash::{Hash, Hasher};
        static COMPILED: std::sync::Mutex<BTreeMap<String, PathBuf>> =
            std::sync::Mutex::new(BTreeMap::new());
        let class = file.trim_end_matches(".java").to_string();
        let mut done = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = done.get(file) {
            return (dir.clone(), class);
        }
        let source = crate::repo_root().join("tests/interop/java").join(file);
        let text =
            std::fs::read(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        file.hash(&mut hasher);
        self.kafka_version().hash(&mut hasher);
        let dir = std::env::temp_dir().join(format!(
            "gregor-java-{}-{:016x}",
            class.to_lowercase(),
            hasher.finish()
        ));
        if !dir.join(format!("{class}.class")).is_file() {
            let work = tempfile::Builder::new()
                .prefix("gregor-javac-")
                .tempdir()
                .expect("a temp dir for javac");
            let out = Command::new("javac")
                .args(["-nowarn", "-encoding", "UTF-8", "-cp"])
                .arg(format!("{}/*", self.dir.join("jars").display()))
                .arg("-d")
                .arg(work.path())
                .arg(&source)
                .stdin(Stdio::null())
                .output()
                .expect("run javac");
            assert!(
                out.status.success(),
                "javac {file} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // Another process may have won the race: either copy is the same.
            let built = work.keep();
            if std::fs::rename(&built, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&built);
            }
        }
        done.insert(file.to_string(), dir.clone());
        (dir, class)
    }

    /// The arguments of `java` that run `tests/interop/java/<file>` ([`compiled`]
    /// (Self::compiled) once) against the toolbox's jars (kafka-clients), with `args`: the
    /// tools' JVM flags and class-data sharing archive, the jars first on the class path.
    pub fn java_source_args(&self, file: &str, args: &[&str]) -> Vec<String> {
        let (classes, main) = self.compiled(file);
        let classpath = format!(
            "{}/*:{}",
            self.dir().join("jars").display(),
            classes.display()
        );
        let log = format!(
            "-Dlog4j2.configurationFile={}",
            self.dir().join("config/tools-log4j2.properties").display()
        );
        let mut all: Vec<String> = vec![
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Xmx256M".into(),
        ];
        all.extend(self.cds_args("tools"));
        all.extend([log, "-cp".into(), classpath, main]);
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Runs `tests/interop/java/<file>` ([`java_source_args`](Self::java_source_args)) and
    /// returns the last line it printed that starts with `{` (the programs there answer one
    /// JSON line); panics with the transcript when it fails or prints none.
    pub fn run_java_source(&self, file: &str, args: &[&str], timeout: Duration) -> String {
        let owned = self.java_source_args(file, args);
        let all: Vec<&str> = owned.iter().map(String::as_str).collect();
        let label = format!("java {file}");
        let run = run_program(Path::new("java"), &label, &all, None, timeout);
        let out = run.ok().unwrap_or_else(|e| panic!("{label}: {e}"));
        out.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON from {label}:\n{out}"))
            .to_string()
    }
}

/// Runs `program args...` (shown as `label args...`), feeding `stdin` when given, and kills it
/// after `timeout`. Never panics on the program's behaviour.
pub fn run_program(
    program: &Path,
    label: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> ToolRun {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_with_timeout(cmd, label, args, stdin, timeout)
}

/// One run of one tool.
#[derive(Debug, Clone)]
pub struct ToolRun {
    /// `script arg...`, as typed.
    pub command: String,
    /// `None` when it did not start or was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// Set when the run outlived its timeout and was killed.
    pub timed_out: Option<Duration>,
    /// Set when the program could not be started.
    pub spawn_error: Option<String>,
    pub elapsed: Duration,
}

impl ToolRun {
    /// The voter ids in `kafka-metadata-quorum describe --status`'s `CurrentVoters` line,
    /// sorted.
    pub fn quorum_voters(&self) -> Option<Vec<i32>> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("CurrentVoters:"))?;
        let mut ids: Vec<i32> = line
            .split("\"id\": ")
            .skip(1)
            .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// The `LeaderId` of `kafka-metadata-quorum describe --status`.
    pub fn quorum_leader(&self) -> Option<i32> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("LeaderId:"))?
            .trim()
            .parse()
            .ok()
    }

    /// Whether `kafka-features describe` lists `feature` finalized at `level`.
    pub fn finalizes(&self, feature: &str, level: i16) -> bool {
        let (name, finalized) = (
            format!("Feature: {feature}"),
            format!("FinalizedVersionLevel: {level}"),
        );
        self.stdout.lines().any(|l| {
            // Columns padded with spaces (Kafka 4.4) or separated by tabs (older tools).
            let l = l.replace('\t', "  ");
            let fields: Vec<&str> = l.split("  ").map(str::trim).collect();
            fields.contains(&name.as_str()) && fields.contains(&finalized.as_str())
        })
    }

    /// Exited 0 in time.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stdout when the tool exited 0 in time, else the short reason it failed.
    pub fn ok(&self) -> Result<&str, String> {
        if self.succeeded() {
            Ok(&self.stdout)
        } else {
            Err(self.reason())
        }
    }

    /// The short reason a run failed, taken from what the tool printed: the first exception or
    /// error line, else the last line, else the exit status.
    pub fn reason(&self) -> String {
        if let Some(e) = &self.spawn_error {
            return format!("cannot run: {e}");
        }
        let found = error_line(&self.stderr).or_else(|| error_line(&self.stdout));
        match (self.timed_out, found) {
            (Some(t), Some(line)) => format!("timed out after {} s ({line})", t.as_secs()),
            (Some(t), None) => format!("timed out after {} s", t.as_secs()),
            (None, Some(line)) => line,
            (None, None) => {
                let last = last_line(&self.stderr).or_else(|| last_line(&self.stdout));
                let status = self
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no exit status".to_string());
                last.unwrap_or(status)
            }
        }
    }

    /// The error line in what the tool printed, if any (see [`error_line`]).
    pub fn error_in_output(&self) -> Option<String> {
        error_line(&self.stdout).or_else(|| error_line(&self.stderr))
    }

    /// What the run printed that a comparison of two brokers can hold equal: whether it
    /// succeeded, its stdout, and of its stderr the exception lines (class and message,
    /// without timestamps or stack frames) and the lines starting with one of `also`; with
    /// `bootstrap` replaced by `<bootstrap>`.
    pub fn comparable(&self, bootstrap: &str, also: &[&str]) -> String {
        let clean = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("Picked up") && !l.trim().is_empty())
                .map(|l| l.replace(bootstrap, "<bootstrap>"))
                .collect::<Vec<_>>()
        };
        let mut out = vec![format!("succeeded: {}", self.succeeded())];
        out.extend(clean(&self.stdout));
        for line in clean(&self.stderr) {
            if let Some(at) = line.find("Exception: ") {
                let start = line[..at].rfind(' ').map_or(0, |i| i + 1);
                out.push(format!("stderr: {}", &line[start..]));
            } else if also.iter().any(|p| line.starts_with(p)) {
                out.push(format!("stderr: {line}"));
            }
        }
        out.join("\n")
    }

    /// Everything the tool printed, for a failure message.
    pub fn transcript(&self) -> String {
        format!(
            "$ {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            clip(&self.stdout, 3000),
            clip(&self.stderr, 3000)
        )
    }
}

/// Runs `cmd` with piped stdio and a timeout; never panics.
fn run_with_timeout(
    mut cmd: Command,
    script: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> ToolRun {
    let command = std::iter::once(script)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let start = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ToolRun {
                command,
                status: None,
                stdout: String::new(),
                stderr: String::new(),
                timed_out: None,
                spawn_error: Some(e.to_string()),
                elapsed: start.elapsed(),
            }
        }
    };
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            // Dropping the pipe when the thread ends closes the tool's stdin (EOF).
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    ToolRun {
        command,
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
        timed_out: status.is_none().then_some(timeout),
        spawn_error: None,
        elapsed: start.elapsed(),
    }
}

fn read_all<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// The most telling line of a tool's output, shortened for a table cell: the root cause of an
/// exception (its last `Caused by:`), else the first exception's class and message, else the
/// first `Error ...` / `ERROR ...` line.
pub fn error_line(output: &str) -> Option<String> {
    if let Some(cause) = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Caused by: "))
    {
        return error_line(cause).or_else(|| Some(short(cause)));
    }
    let lines = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("at "));
    let mut first_error = None;
    for line in lines {
        if let Some(i) = line.rfind("Exception: ") {
            // `org.apache.kafka.common.errors.FooException: message` → `FooException: message`
            let start = line[..i].rfind(['.', ' ', '(']).map_or(0, |d| d + 1);
            return Some(short(&line[start..]));
        }
        if first_error.is_none()
            && (line.starts_with("Error")
                || line.contains("] ERROR ")
                || line.starts_with("ERROR")
                || line.contains("Exception"))
        {
            first_error = Some(short(strip_log_prefix(line)));
        }
    }
    first_error
}

/// `[2026-01-01 00:00:00,000] ERROR message (logger)` → `message`.
fn strip_log_prefix(line: &str) -> &str {
    let body = match line.find("] ERROR ") {
        Some(i) => &line[i + "] ERROR ".len()..],
        None => line,
    };
    match body.rfind(" (") {
        Some(i) if body.ends_with(')') => &body[..i],
        _ => body,
    }
}

fn last_line(output: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty())
        .map(short)
}

/// At most 160 characters, on one line, with no `|` (it would split a Markdown cell).
fn short(s: &str) -> String {
    let one_line = s.replace('|', "/").replace('\t', " ");
    let clipped = clip(one_line.trim(), 160);
    if clipped.len() < one_line.trim().len() {
        format!("{clipped}…")
    } else {
        clipped.to_string()
    }
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What happened to one row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Works,
    /// The short reason, from the tool's output or from the check that failed.
    Fails(String),
    /// Not run, for the reason given (e.g. [`NEEDS_CLUSTER`]).
    NotRun(String),
}

impl Outcome {
    /// `Ok` → works, `Err(reason)` → fails.
    pub fn from_result(r: Result<(), String>) -> Outcome {
        match r {
            Ok(()) => Outcome::Works,
            Err(reason) => Outcome::Fails(reason),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Works => f.write_str("works"),
            Outcome::Fails(reason) => write!(f, "fails: {reason}"),
            Outcome::NotRun(why) => f.write_str(why),
        }
    }
}

/// One row of the compatibility table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's key in the expectations file, e.g. `kafka-topics --create`.
    pub name: String,
    /// The command as a user types it (against `localhost:9092`).
    pub command: String,
    pub outcome: Outcome,
}

/// The committed expectations: row name → whether the row is expected to work.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    rows: BTreeMap<String, Outcome>,
}

impl Expectations {
    /// Parses lines of `name | outcome` (`works`, `fails: reason`, or a not-run reason such as
    /// [`NEEDS_CLUSTER`]); `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Expectations, String> {
        let mut rows = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, outcome) = line
                .split_once(" | ")
                .ok_or_else(|| format!("line {}: want `name | outcome`: {line}", n + 1))?;
            let outcome = outcome.trim();
            let outcome = if outcome == "works" {
                Outcome::Works
            } else if let Some(reason) = outcome.strip_prefix("fails:") {
                Outcome::Fails(reason.trim().to_string())
            } else {
                Outcome::NotRun(outcome.to_string())
            };
            if rows.insert(name.trim().to_string(), outcome).is_some() {
                return Err(format!("line {}: row {name:?} listed twice", n + 1));
            }
        }
        Ok(Expectations { rows })
    }

    /// The expectations file that `rows` would make (to refresh the committed one).
    pub fn render(rows: &[Row]) -> String {
        let mut out = String::from(
            "# Kafka's own tools against gregor: the expected outcome of each row of the\n\
             # kafka_tools test (`name | works`, `name | fails: reason`, or why it is not run).\n\
             # A row expected to work that fails is a regression and fails the test; a row\n\
             # expected to fail that works is reported: update this file (the test writes the\n\
             # current outcomes to target/interop/kafka-tools.expected).\n",
        );
        for row in rows {
            out.push_str(&format!("{} | {}\n", row.name, row.outcome));
        }
        out
    }

    /// Compares the outcomes with the expectations.
    pub fn compare(&self, rows: &[Row]) -> Comparison {
        let mut c = Comparison::default();
        for row in rows {
            match (self.rows.get(&row.name), &row.outcome) {
                (None, _) => c.unlisted.push(row.name.clone()),
                (Some(Outcome::Works), Outcome::Fails(reason)) => {
                    c.regressions.push(format!("{}: {reason}", row.name))
                }
                (Some(Outcome::Fails(_) | Outcome::NotRun(_)), Outcome::Works) => {
                    c.newly_working.push(row.name.clone())
                }
                _ => {}
            }
        }
        for name in self.rows.keys() {
            if !rows.iter().any(|r| &r.name == name) {
                c.missing.push(name.clone());
            }
        }
        c
    }
}

/// How a run's outcomes differ from the expectations.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Rows expected to work that failed, with the reason: these fail the test.
    pub regressions: Vec<String>,
    /// Rows expected to fail that now work: the expectations file needs updating.
    pub newly_working: Vec<String>,
    /// Rows the run made that the file does not list.
    pub unlisted: Vec<String>,
    /// Rows the file lists that the run did not make.
    pub missing: Vec<String>,
}

/// The table as Markdown, one row per tool command.
pub fn markdown(rows: &[Row], kafka_version: &str) -> String {
    let mut out = format!(
        "Apache Kafka {kafka_version}'s tools against one gregor broker (`num.partitions=1`), \
         as `tests/e2e/tests/kafka_tools.rs` runs them:\n\n\
         | tool | command | outcome |\n|---|---|---|\n"
    );
    for row in rows {
        let tool = row.name.split_whitespace().next().unwrap_or(&row.name);
        out.push_str(&format!(
            "| {tool} | `{}` | {} |\n",
            row.command.replace('|', "\\|"),
            row.outcome
        ));
    }
    out
}

/// The comment lines that enclose the generated table in the README.
pub const README_BEGIN: &str = "<!-- kafka-tools table: generated by the kafka_tools test -->";
pub const README_END: &str = "<!-- end of kafka-tools table -->";

/// `readme` with the text between [`README_BEGIN`] and [`README_END`] replaced by `table`.
pub fn replace_section(readme: &str, table: &str) -> Result<String, String> {
    replace_between(readme, README_BEGIN, README_END, table)
}

/// `readme` with the text between the marker lines `begin` and `end` replaced by `table` (the
/// README's generated tables: the tools table, the client matrix).
pub fn replace_between(
    readme: &str,
    begin: &str,
    end: &str,
    table: &str,
) -> Result<String, String> {
    let start = readme
        .find(begin)
        .ok_or_else(|| format!("README has no line {begin}"))?;
    let after_begin = start + begin.len();
    let stop = readme[after_begin..]
        .find(end)
        .map(|i| after_begin + i)
        .ok_or_else(|| format!("README has no line {end} after the table's start"))?;
    Ok(format!(
        "{}\n{}{}",
        &readme[..after_begin],
        table,
        &readme[stop..]
    ))
}

/// `kafka-acls.sh`'s output in a fixed order, so two runs (or two brokers) compare equal
/// whatever order they list ACLs in. A unit is a line that starts in the first column
/// (`Adding ACLs for resource ...`, `Current ACLs for resource ...`, `Acl ... already exists.`,
/// `ACLs for principal ...`) with the indented entry lines under it.
pub fn sorted_acl_units(text: &str) -> String {
    let mut units: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match units.last_mut() {
            Some((_, entries)) if line.starts_with(char::is_whitespace) => {
                entries.push(line.trim().to_string());
            }
            _ => units.push((line.trim().to_string(), Vec::new())),
        }
    }
    for (_, entries) in &mut units {
        entries.sort_unstable();
    }
    units.sort_unstable();
    units
        .iter()
        .map(|(head, entries)| {
            std::iter::once(head.as_str())
                .chain(entries.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("\n\t")
                + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_takes_the_exception_class_and_message() {
        let out = "[2026-12-03 02:07:18,057] ERROR org.apache.kafka.common.errors.\
                   UnsupportedVersionException: The node does not support DESCRIBE_CONFIGS\n \
                   (org.apache.kafka.tools.TopicCommand)\n";
        assert_eq!(
            error_line(out).as_deref(),
            Some("UnsupportedVersionException: The node does not support DESCRIBE_CONFIGS")
        );
        assert_eq!(
            error_line("Error while executing topic command : boom\n").as_deref(),
            Some("Error while executing topic command : boom")
        );
        assert_eq!(error_line("all good\n"), None);
        let chained = "org.apache.kafka.common.KafkaException: Cannot execute transactional \
                       method\nCaused by: org.apache.kafka.common.errors.\
                       UnsupportedVersionException: The node does not support INIT_PRODUCER_ID\n";
        assert_eq!(
            error_line(chained).as_deref(),
            Some("UnsupportedVersionException: The node does not support INIT_PRODUCER_ID")
        );
        assert_eq!(
            error_line(
                "partition: t-0\terror: org.apache.kafka.common.errors.Foo\
                        Exception: no\n"
            )
            .as_deref(),
            Some("FooException: no")
        );
    }

    #[test]
    fn expectations_flag_regressions_and_fixes() {
        let exp = Expectations::parse(
            "# comment\na | works\nb | fails: old reason\nc | needs the cluster (issue 10)\n",
        )
        .expect("parses");
        let rows = vec![
            Row {
                name: "a".into(),
                command: "x".into(),
                outcome: Outcome::Fails("broke".into()),
            },
            Row {
                name: "b".into(),
                command: "x".into(),
                outcome: Outcome::Works,
            },
            Row {
                name: "c".into(),
                command: "x".into(),
                outcome: Outcome::NotRun(NEEDS_CLUSTER.into()),
            },
            Row {
                name: "d".into(),
                command: "x".into(),
                outcome: Outcome::Works,
            },
        ];
        let c = exp.compare(&rows);
        assert_eq!(c.regressions, vec!["a: broke".to_string()]);
        assert_eq!(c.newly_working, vec!["b".to_string()]);
        assert_eq!(c.unlisted, vec!["d".to_string()]);
        assert!(c.missing.is_empty());
        let again = Expectations::parse(&Expectations::render(&rows)).expect("round trip");
        assert!(again.compare(&rows).regressions.is_empty());
    }

    #[test]
    fn the_readme_section_is_replaced_in_place() {
        let readme = format!("# x\n{README_BEGIN}\nold\n{README_END}\ntail\n");
        let new = replace_section(&readme, "new\n").expect("markers present");
        assert_eq!(
            new,
            format!("# x\n{README_BEGIN}\nnew\n{README_END}\ntail\n")
        );
        assert!(replace_section("no markers", "t").is_err());
    }
}
