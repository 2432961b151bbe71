//! `gregor streams-groups list|describe|delete` (the counterpart of Kafka 4.4's
//! `kafka-streams-groups.sh`) against a gregor broker serving a running Kafka Streams
//! application with `group.protocol=streams` (KIP-1071):
//!
//! ```text
//!   tests/interop/java/StreamsGroupHold.java   one Kafka Streams instance, one thread
//!     <prefix>-input (3 × 100 words) ─ selectKey ─▶ <app>-counts-repartition ─ count ─▶ output
//!     prints {"ready": true, ...} once Stable, every task its own, input and repartition committed
//!   while it runs:  list, list --state, describe [--offsets], describe --members,
//!                   describe --state, describe --topology, describe of an unknown group,
//!                   delete (refused: NON_EMPTY_GROUP)
//!   stdin closed ──▶ it closes, leaving the group ({"closed": true, ...})
//!   after it stopped: list --state (Empty), describe --state, --members, offsets,
//!                     delete, list (gone), describe --state (not found), delete (not found)
//! ```
//!
//! Needs the toolbox (`scripts/toolbox`: Kafka's jars, for the Java program) and the gregor
//! binary (`cargo build -p gregor-cli`).

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::java_hold::JavaHold;
use gregor_e2e::kafka_tools::{run_program, ToolRun};
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// One CLI run.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The Java program's "ready" line: it compiles (~3 s), creates and fills the input, starts the
/// instance and gives up itself after 60 s of waiting for the group to settle.
const READY_TIMEOUT: Duration = Duration::from_secs(100);

/// Its final line after stdin closed: the close (leave group) is given 20 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);

/// How long the group may take to be listed Empty after the instance left.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(15);

/// Input partitions, and the words the program produces to each (`StreamsGroupHold.java`).
const PARTITIONS: u64 = 3;
const WORDS_PER_PARTITION: u64 = 100;

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `gregor streams-groups ARGS --bootstrap-server BOOTSTRAP`.
fn cli(bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["streams-groups"];
    all.extend_from_slice(args);
    all.extend(["--bootstrap-server", bootstrap]);
    run_program(&gregor_bin(), "gregor", &all, None, CLI_TIMEOUT)
}

/// The first table in `stdout` (from its header line, starting `GROUP`, to the first empty
/// line), each line cut at the header's column starts (a column starts after two spaces) and
/// each cell trimmed: cells may hold single spaces (`0:[0,1,2]; 1:[0,1,2]`,
/// `127.0.0.1:9092 (1)`), the table pads every column to its widest cell.
fn table(stdout: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("GROUP"))
        .take_while(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (Vec::new(), Vec::new());
    };
    let b = header.as_bytes();
    let mut starts = vec![0];
    for i in 2..b.len() {
        if b[i] != b' ' && b[i - 1] == b' ' && b[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |l: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                l.get(s.min(l.len())..e).unwrap_or("").trim().to_string()
            })
            .collect()
    };
    let header = cut(header);
    let rows = lines.map(cut).collect();
    (header, rows)
}

/// The value of `column` in `row` of a table with `header`.
fn cell<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    header
        .iter()
        .position(|h| h == column)
        .and_then(|i| row.get(i))
        .map_or("", String::as_str)
}

fn strings(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The offsets the program reported (`inputEnd`, `repartitionEnd`), by partition.
fn ends(ready: &Value, key: &str) -> Vec<u64> {
    ready[key]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(u64::MAX)).collect())
        .unwrap_or_default()
}

/// Every run of the session, by label, and what is needed to explain a failure.
struct Session {
    bootstrap: String,
    app: String,
    ready: Value,
    stopped: Value,
    error: Option<String>,
    runs: Vec<(String, ToolRun)>,
    hold_log: String,
    broker_log: String,
}

impl Session {
    fn run(&self, label: &str) -> &ToolRun {
        self.runs
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no run of {label:?}\n{}", self.logs()))
    }

    fn logs(&self) -> String {
        format!(
            "error: {:?}\nready: {}\nstopped: {}\n--- StreamsGroupHold stderr ---\n{}\n\
             --- broker log ---\n{}",
            self.error, self.ready, self.stopped, self.hold_log, self.broker_log
        )
    }

    /// The failure message of an assertion about the run `label`.
    fn why(&self, label: &str) -> String {
        let run = self.runs.iter().find(|(l, _)| l == label).map(|(_, r)| r);
        format!(
            "{label}\n{}\n{}",
            run.map(ToolRun::transcript).unwrap_or_default(),
            self.logs()
        )
    }

    /// The stdout of the run `label`, which must have succeeded.
    fn ok(&self, label: &str) -> &str {
        let run = self.run(label);
        assert!(run.succeeded(), "{}", self.why(label));
        &run.stdout
    }

    fn cli(&mut self, label: &str, args: &[&str]) -> &ToolRun {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{G}" { self.app.as_str() } else { *a })
            .collect();
        let run = cli(&self.bootstrap, &args);
        eprintln!(
            "--- {label} ({} ms)\n$ {}\n{}{}",
            run.elapsed.as_millis(),
            run.command,
            run.stdout,
            run.stderr
        );
        self.runs.push((label.to_string(), run));
        &self.runs[self.runs.len() - 1].1
    }
}

/// The rows of the offsets view: (topic, partition, current, log end, lag), sorted.
fn offset_rows(s: &Session, label: &str) -> Vec<(String, u64, String, String, String)> {
    let (header, rows) = table(s.ok(label));
    assert_eq!(
        strings(&header),
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG"
        ],
        "{}",
        s.why(label)
    );
    let mut got: Vec<_> = rows
        .iter()
        .map(|r| {
            assert_eq!(cell(&header, r, "GROUP"), s.app, "{}", s.why(label));
            (
                cell(&header, r, "TOPIC").to_string(),
                cell(&header, r, "PARTITION").parse().unwrap_or(u64::MAX),
                cell(&header, r, "CURRENT-OFFSET").to_string(),
                cell(&header, r, "LOG-END-OFFSET").to_string(),
                cell(&header, r, "LAG").to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn gregor_streams_groups_lists_describes_and_deletes_a_streams_group() {
    let broker = Broker::start();
    let prefix = unique_topic("sgcli");
    let mut s = Session {
        bootstrap: broker.bootstrap(),
        app: format!("{prefix}-app"),
        ready: Value::Null,
        stopped: Value::Null,
        error: None,
        runs: Vec::new(),
        hold_log: String::new(),
        broker_log: String::new(),
    };
    let unknown = format!("{prefix}-no-such-app");

    // The application: running, Stable, everything committed.
    let mut hold = match JavaHold::start("StreamsGroupHold.java", &[&s.bootstrap, &prefix, &s.app])
    {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    match hold.json(READY_TIMEOUT) {
        Ok(v) if v["ready"] == Value::Bool(true) => s.ready = v,
        Ok(v) => {
            s.error = Some(format!("the application did not get ready: {v}"));
            s.ready = v;
        }
        Err(e) => s.error = Some(format!("the application did not get ready: {e}")),
    }
    if s.error.is_none() {
        s.cli("list", &["list"]);
        s.cli("list --state", &["list", "--state"]);
        s.cli("describe", &["describe", "--group", "{G}"]);
        s.cli(
            "describe --offsets",
            &["describe", "--group", "{G}", "--offsets"],
        );
        s.cli(
            "describe --members",
            &["describe", "--group", "{G}", "--members"],
        );
        s.cli(
            "describe --state",
            &["describe", "--group", "{G}", "--state"],
        );
        s.cli(
            "describe --topology",
            &["describe", "--group", "{G}", "--topology"],
        );
        s.cli("unknown: describe", &["describe", "--group", &unknown]);
        s.cli("running: delete", &["delete", "--group", "{G}"]);
        match hold.stop(STOP_TIMEOUT) {
            Ok(v) => s.stopped = v,
            Err(e) => s.error = Some(format!("the application did not stop: {e}")),
        }
    }
    s.hold_log = hold.finish(40);
    if s.error.is_none() {
        // The close sends the leave; give the group a few polls to be listed Empty.
        let deadline = Instant::now() + EMPTY_TIMEOUT;
        loop {
            let app = s.app.clone();
            let run = s.cli("stopped: list --state", &["list", "--state"]);
            let empty = table(&run.stdout)
                .1
                .iter()
                .any(|r| r.first() == Some(&app) && r.get(1).map(String::as_str) == Some("Empty"));
            if empty || Instant::now() >= deadline {
                break;
            }
            s.runs.pop();
            thread::sleep(Duration::from_millis(300));
        }
        s.cli(
            "stopped: describe --state",
            &["describe", "--group", "{G}", "--state"],
        );
        s.cli(
            "stopped: describe --members",
            &["describe", "--group", "{G}", "--members"],
        );
        s.cli("stopped: describe", &["describe", "--group", "{G}"]);
        s.cli("delete", &["delete", "--group", "{G}"]);
        s.cli("deleted: list", &["list"]);
        s.cli(
            "deleted: describe --state",
            &["describe", "--group", "{G}", "--state"],
        );
        s.cli("deleted: delete", &["delete", "--group", "{G}"]);
    }
    s.broker_log = tail(&broker.logs(), 60);
    assert!(s.error.is_none(), "{}", s.logs());

    let app = s.app.clone();
    let input = format!("{prefix}-input");
    let repartition = format!("{app}-counts-repartition");
    let changelog = format!("{app}-counts-changelog");
    let input_end = ends(&s.ready, "inputEnd");
    let repartition_end = ends(&s.ready, "repartitionEnd");
    assert_eq!(
        input_end,
        vec![WORDS_PER_PARTITION; PARTITIONS as usize],
        "{}",
        s.logs()
    );
    assert_eq!(repartition_end.len(), PARTITIONS as usize, "{}", s.logs());

    // list: the group; list --state: Stable.
    let label = "list";
    let (header, rows) = table(s.ok(label));
    assert_eq!(strings(&header), ["GROUP"], "{}", s.why(label));
    assert!(rows.contains(&vec![app.clone()]), "{}", s.why(label));
    let label = "list --state";
    let (header, rows) = table(s.ok(label));
    assert_eq!(strings(&header), ["GROUP", "STATE"], "{}", s.why(label));
    assert!(
        rows.contains(&vec![app.clone(), "Stable".to_string()]),
        "{}",
        s.why(label)
    );

    // describe (the offsets, as --offsets): every input and repartition partition, committed
    // at its log end offset, the input's end the 100 words of each partition, no lag.
    let mut want: Vec<(String, u64, String, String, String)> = (0..PARTITIONS)
        .map(|p| (input.clone(), p, input_end[p as usize]))
        .chain((0..PARTITIONS).map(|p| (repartition.clone(), p, repartition_end[p as usize])))
        .map(|(t, p, end)| (t, p, end.to_string(), end.to_string(), "0".to_string()))
        .collect();
    want.sort();
    for label in ["describe", "describe --offsets", "stopped: describe"] {
        assert_eq!(offset_rows(&s, label), want, "{}", s.why(label));
    }

    // --members: one member, the instance's consumer, both subtopologies' three tasks active.
    let label = "describe --members";
    let (header, rows) = table(s.ok(label));
    assert_eq!(
        strings(&header),
        [
            "GROUP",
            "MEMBER",
            "PROCESS",
            "CLIENT-ID",
            "MEMBER-EPOCH",
            "ACTIVE",
            "STANDBY",
            "WARMUP"
        ],
        "{}",
        s.why(label)
    );
    assert_eq!(rows.len(), 1, "{}", s.why(label));
    let member = &rows[0];
    assert_eq!(cell(&header, member, "GROUP"), app, "{}", s.why(label));
    assert!(
        !cell(&header, member, "MEMBER").is_empty(),
        "{}",
        s.why(label)
    );
    assert_eq!(
        cell(&header, member, "PROCESS").len(),
        36,
        "a UUID: {}",
        s.why(label)
    );
    assert_eq!(
        cell(&header, member, "CLIENT-ID"),
        format!("{app}-client-StreamThread-1-consumer"),
        "{}",
        s.why(label)
    );
    let member_epoch = cell(&header, member, "MEMBER-EPOCH").to_string();
    assert!(
        member_epoch.parse::<u32>().is_ok_and(|e| e > 0),
        "{}",
        s.why(label)
    );
    assert_eq!(
        cell(&header, member, "ACTIVE"),
        "0:[0,1,2]; 1:[0,1,2]",
        "all 6 tasks: {}",
        s.why(label)
    );
    assert_eq!(cell(&header, member, "STANDBY"), "-", "{}", s.why(label));
    assert_eq!(cell(&header, member, "WARMUP"), "-", "{}", s.why(label));

    // --state: this broker coordinates, the sticky assignor, Stable at the member's epoch.
    let label = "describe --state";
    let (header, rows) = table(s.ok(label));
    let state_header = [
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNOR",
        "STATE",
        "GROUP-EPOCH",
        "TARGET-ASSIGNMENT-EPOCH",
        "#MEMBERS",
    ];
    assert_eq!(strings(&header), state_header, "{}", s.why(label));
    let coordinator = format!("{} (1)", s.bootstrap);
    assert_eq!(
        rows,
        [[
            app.as_str(),
            coordinator.as_str(),
            "sticky",
            "Stable",
            member_epoch.as_str(),
            member_epoch.as_str(),
            "1"
        ]
        .map(str::to_string)],
        "a stable group's epochs are its member's: {}",
        s.why(label)
    );

    // --topology: subtopology 0 reads the input and writes the repartition topic, 1 reads it
    // and keeps the counts' changelog; three partitions each.
    let label = "describe --topology";
    let (header, rows) = table(s.ok(label));
    assert_eq!(
        strings(&header),
        ["GROUP", "SUBTOPOLOGY", "ROLE", "TOPIC", "PARTITIONS"],
        "{}",
        s.why(label)
    );
    let three = PARTITIONS.to_string();
    let row = |sub: &str, role: &str, topic: &str| {
        [app.as_str(), sub, role, topic, three.as_str()].map(str::to_string)
    };
    assert_eq!(
        rows,
        [
            row("0", "source", &input),
            row("0", "repartition-sink", &repartition),
            row("1", "repartition-source", &repartition),
            row("1", "changelog", &changelog),
        ],
        "{}",
        s.why(label)
    );

    // An unknown group: a message and a non-zero exit, no panic.
    let label = "unknown: describe";
    let run = s.run(label);
    assert!(!run.succeeded(), "{}", s.why(label));
    assert!(
        run.stderr
            .contains(&format!("streams group '{unknown}' not found")),
        "{}",
        s.why(label)
    );
    assert!(!run.stderr.contains("panicked"), "{}", s.why(label));

    // Deleting the running group: refused, NON_EMPTY_GROUP.
    let label = "running: delete";
    let run = s.run(label);
    assert!(!run.succeeded(), "{}", s.why(label));
    assert!(
        run.stderr.contains("is not empty (NON_EMPTY_GROUP)"),
        "{}",
        s.why(label)
    );

    // The application closed, leaving: the group is Empty, without members.
    assert_eq!(s.stopped["closed"], Value::Bool(true), "{}", s.logs());
    assert_eq!(s.stopped["error"], "", "{}", s.logs());
    let label = "stopped: list --state";
    let (_, rows) = table(s.ok(label));
    assert!(
        rows.contains(&vec![app.clone(), "Empty".to_string()]),
        "{}",
        s.why(label)
    );
    let label = "stopped: describe --state";
    let (header, rows) = table(s.ok(label));
    assert_eq!(strings(&header), state_header, "{}", s.why(label));
    assert_eq!(rows.len(), 1, "{}", s.why(label));
    assert_eq!(
        cell(&header, &rows[0], "STATE"),
        "Empty",
        "{}",
        s.why(label)
    );
    assert_eq!(cell(&header, &rows[0], "#MEMBERS"), "0", "{}", s.why(label));
    let label = "stopped: describe --members";
    assert_eq!(
        s.ok(label).trim(),
        format!("Streams group '{app}' has no active members."),
        "{}",
        s.why(label)
    );

    // delete: deleted, no longer listed, not found.
    let label = "delete";
    assert_eq!(
        s.ok(label).trim(),
        format!("Deletion of requested streams groups ('{app}') was successful."),
        "{}",
        s.why(label)
    );
    let label = "deleted: list";
    let (_, rows) = table(s.ok(label));
    assert!(!rows.contains(&vec![app.clone()]), "{}", s.why(label));
    for label in ["deleted: describe --state", "deleted: delete"] {
        let run = s.run(label);
        assert!(!run.succeeded(), "{}", s.why(label));
        assert!(
            run.stderr
                .contains(&format!("streams group '{app}' not found")),
            "{}",
            s.why(label)
        );
        assert!(!run.stderr.contains("panicked"), "{}", s.why(label));
    }
}
