//! Kafka 4.4's own `kafka-streams-groups.sh` (`org.apache.kafka.tools.streams.StreamsGroupCommand`,
//! installed by `scripts/toolbox`) against a KIP-1071 streams group, on Apache Kafka 4.4 (the
//! toolbox's `KafkaPeer`, whose outputs are the expectations) and on gregor:
//!
//! ```text
//!   tests/interop/java/StreamsGroupHold.java   one Kafka Streams instance, group.protocol=streams
//!     <prefix>-input (3 × 100 words) ─ selectKey ─▶ <app>-counts-repartition ─ count ─▶ output
//!     prints {"ready": true, ...} once Stable, every task its own, input and repartition committed
//!   while it runs:   --list, --list --state, --describe [--verbose], --members [--verbose],
//!                    --offsets [--verbose], --state [--verbose], --topology
//!   stdin closed ──▶ it closes, leaving the group ({"closed": true, ...})
//!   after it stopped: --list, --list --state, --describe, --state, --members, --offsets,
//!                    --reset-offsets --dry-run, --delete, --list, --state (gone)
//! ```
//!
//! The first two tests hold each broker's outputs to what Kafka prints (the group listed, the
//! columns, Stable, one member with both subtopologies' three tasks, committed offsets at the
//! end offsets with no lag, Empty after the stop, deleted and gone). The third compares every
//! output of the two brokers line by line once normalised: the bootstrap address, the
//! application id and the topic prefix (unique per run), member and process ids, the group,
//! target assignment and member epochs (coordinator bookkeeping), the column widths (the tool
//! pads to the longest value) and the order of a table's rows (the tool's own is a hash
//! map's). Each broker's session is made once per test binary and shared by the tests.

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::java_hold::JavaHold;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// The wrapper `scripts/toolbox` installs.
const TOOL: &str = "kafka-streams-groups.sh";

/// One tool run (about 0.7 s on two cores).
const TOOL_TIMEOUT: Duration = Duration::from_secs(45);

/// The Java program's "ready" line: it compiles (~3 s), creates and fills the input, starts the
/// instance and gives up itself after 60 s of waiting for the group to settle.
const READY_TIMEOUT: Duration = Duration::from_secs(100);

/// Its final line after stdin closed: the close (leave group) is given 20 s.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);

/// Input partitions, and the words the program produces to each (`StreamsGroupHold.java`).
const PARTITIONS: u64 = 3;
const WORDS_PER_PARTITION: u64 = 100;

/// The tool runs while the application runs, by label (`{G}` is the group).
const WHILE_RUNNING: &[(&str, &[&str])] = &[
    ("list", &["--list"]),
    ("list --state", &["--list", "--state"]),
    ("describe", &["--describe", "--group", "{G}"]),
    (
        "describe --verbose",
        &["--describe", "--group", "{G}", "--verbose"],
    ),
    (
        "describe --members",
        &["--describe", "--group", "{G}", "--members"],
    ),
    (
        "describe --members --verbose",
        &["--describe", "--group", "{G}", "--members", "--verbose"],
    ),
    (
        "describe --offsets",
        &["--describe", "--group", "{G}", "--offsets"],
    ),
    (
        "describe --offsets --verbose",
        &["--describe", "--group", "{G}", "--offsets", "--verbose"],
    ),
    (
        "describe --state",
        &["--describe", "--group", "{G}", "--state"],
    ),
    (
        "describe --state --verbose",
        &["--describe", "--group", "{G}", "--state", "--verbose"],
    ),
    (
        "describe --topology",
        &["--describe", "--group", "{G}", "--topology"],
    ),
];

/// The tool runs after the application stopped (the group Empty), by label.
const AFTER_STOP: &[(&str, &[&str])] = &[
    ("stopped: list", &["--list"]),
    ("stopped: describe", &["--describe", "--group", "{G}"]),
    (
        "stopped: describe --state",
        &["--describe", "--group", "{G}", "--state"],
    ),
    (
        "stopped: describe --members",
        &["--describe", "--group", "{G}", "--members"],
    ),
    (
        "stopped: describe --offsets",
        &["--describe", "--group", "{G}", "--offsets"],
    ),
    (
        "stopped: reset-offsets --to-earliest --dry-run",
        &[
            "--reset-offsets",
            "--group",
            "{G}",
            "--all-input-topics",
            "--to-earliest",
            "--dry-run",
        ],
    ),
    ("delete", &["--delete", "--group", "{G}"]),
    ("deleted: list", &["--list"]),
    (
        "deleted: describe --state",
        &["--describe", "--group", "{G}", "--state"],
    ),
];

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One broker's session: the program's lines and every tool run.
struct Session {
    broker: &'static str,
    bootstrap: String,
    prefix: String,
    /// The application id: the group.
    app: String,
    /// Why the session stopped short, if it did.
    error: Option<String>,
    ready: Value,
    stopped: Value,
    runs: Vec<(&'static str, ToolRun)>,
    /// The end of the program's stderr and of the broker's log, for failure messages.
    hold_log: String,
    broker_log: String,
}

impl Session {
    /// The run labelled `label`; fails the test (with the session's logs) when there is none.
    fn run(&self, label: &str) -> &ToolRun {
        self.runs
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("{}: no run of {label:?}\n{}", self.broker, self.logs()))
    }

    fn logs(&self) -> String {
        format!(
            "error: {:?}\nready: {}\nstopped: {}\n--- StreamsGroupHold stderr ---\n{}\n\
             --- broker log ---\n{}",
            self.error, self.ready, self.stopped, self.hold_log, self.broker_log
        )
    }

    /// `args` with `{G}` as the group, run against the broker.
    fn tool(&self, args: &[&str]) -> ToolRun {
        let mut all = vec!["--bootstrap-server", self.bootstrap.as_str()];
        all.extend(
            args.iter()
                .map(|a| if *a == "{G}" { self.app.as_str() } else { *a }),
        );
        Toolbox::installed().run(TOOL, &all, None, TOOL_TIMEOUT)
    }
}

/// Runs the program and the tool against `bootstrap`; never panics (a failure is in
/// [`Session::error`]).
fn session(broker: &'static str, bootstrap: &str, log: &dyn Fn() -> String) -> Session {
    let started = Instant::now();
    let prefix = unique_topic("sgtools");
    let app = format!("{prefix}-app");
    let mut s = Session {
        broker,
        bootstrap: bootstrap.to_string(),
        prefix,
        app,
        error: None,
        ready: Value::Null,
        stopped: Value::Null,
        runs: Vec::new(),
        hold_log: String::new(),
        broker_log: String::new(),
    };
    let mut hold = match JavaHold::start("StreamsGroupHold.java", &[bootstrap, &s.prefix, &s.app]) {
        Ok(h) => h,
        Err(e) => {
            s.error = Some(e);
            return s;
        }
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
        for (label, args) in WHILE_RUNNING {
            let run = s.tool(args);
            s.runs.push((label, run));
        }
        match hold.stop(STOP_TIMEOUT) {
            Ok(v) => s.stopped = v,
            Err(e) => s.error = Some(format!("the application did not stop: {e}")),
        }
    }
    s.hold_log = hold.finish(40);
    if s.error.is_none() {
        // The leave is sent by the close; the group is Empty at once on Kafka, but give it a
        // few polls (a deadline of 15 s).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let run = s.tool(&["--list", "--state"]);
            let empty = table(&run.stdout).1.iter().any(|r| {
                r.first() == Some(&s.app) && r.get(1).map(String::as_str) == Some("Empty")
            });
            if empty || Instant::now() >= deadline {
                s.runs.push(("stopped: list --state", run));
                break;
            }
            thread::sleep(Duration::from_millis(300));
        }
        for (label, args) in AFTER_STOP {
            let run = s.tool(args);
            s.runs.push((label, run));
        }
    }
    s.broker_log = tail(&log(), 60);
    eprintln!(
        "kafka-streams-groups.sh against {broker} ({bootstrap}): {} ms, {} runs{}",
        started.elapsed().as_millis(),
        s.runs.len(),
        s.error
            .as_ref()
            .map(|e| format!(", error: {e}"))
            .unwrap_or_default()
    );
    for (label, run) in &s.runs {
        eprintln!(
            "--- {broker}: {label} ({} ms)\n{}",
            run.elapsed.as_millis(),
            run.comparable(bootstrap, &[])
        );
    }
    s
}

/// The session against Apache Kafka 4.4 (made by the first test that asks).
fn on_kafka() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let peer = KafkaPeer::shared();
        session("Apache Kafka", &peer.bootstrap(), &|| peer.log_tail(60))
    })
}

/// The session against a gregor process (made by the first test that asks).
fn on_gregor() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let broker = Broker::start();
        session("gregor", &broker.bootstrap(), &|| broker.logs())
    })
}

/// The first table in `stdout` (a header line starting with `GROUP`, then the lines below it
/// until an empty one), split at whitespace; a row's tokens past the header's last column are
/// joined into that column (ASSIGNMENTS holds spaces). `COORDINATOR (ID)` is two header tokens
/// over two value tokens (`host:port (id)`), so the columns stay aligned.
fn table(stdout: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("GROUP "))
        .take_while(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (Vec::new(), Vec::new());
    };
    let header: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let rows = lines
        .map(|l| {
            let tokens: Vec<&str> = l.split_whitespace().collect();
            let cut = tokens.len().min(header.len().saturating_sub(1));
            let mut row: Vec<String> = tokens[..cut].iter().map(|t| t.to_string()).collect();
            if tokens.len() > cut {
                row.push(tokens[cut..].join(" "));
            }
            row
        })
        .collect();
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

fn strings(header: &[String]) -> Vec<&str> {
    header.iter().map(String::as_str).collect()
}

/// The columns of a table cell that hold ids or epochs the brokers legitimately differ in.
const MASKED: &[(&str, &str)] = &[
    ("MEMBER", "<member-id>"),
    ("PROCESS", "<process-id>"),
    ("GROUP-EPOCH", "<epoch>"),
    ("TARGET-ASSIGNMENT-EPOCH", "<epoch>"),
    ("MEMBER-EPOCH", "<epoch>"),
];

/// What a run printed ([`ToolRun::comparable`]: success, stdout, stderr's exceptions), with the
/// session's names replaced, whitespace runs made one space, the masked columns' values
/// replaced and each table's rows sorted.
fn normalised(s: &Session, run: &ToolRun) -> String {
    let text = run
        .comparable(&s.bootstrap, &[])
        .replace(&s.app, "<app>")
        .replace(&s.prefix, "<prefix>");
    let mut lines = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .peekable();
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if !line.starts_with("GROUP ") {
            out.push(line);
            continue;
        }
        let header: Vec<&str> = line.split(' ').collect();
        let masked: Vec<(usize, &str)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                MASKED
                    .iter()
                    .find(|(column, _)| column == h)
                    .map(|(_, mask)| (i, *mask))
            })
            .collect();
        let mut rows = Vec::new();
        while let Some(row) = lines.next_if(|l| l.starts_with("<app> ")) {
            let mut tokens: Vec<&str> = row.split(' ').collect();
            for (i, mask) in &masked {
                if let Some(t) = tokens.get_mut(*i) {
                    *t = mask;
                }
            }
            rows.push(tokens.join(" "));
        }
        rows.sort();
        out.push(line);
        out.extend(rows);
    }
    out.join("\n")
}

/// The offsets the program reported (`inputEnd`, `repartitionEnd`), by partition.
fn ends(s: &Session, key: &str) -> Vec<u64> {
    s.ready[key]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(u64::MAX)).collect())
        .unwrap_or_default()
}

/// What both brokers must print (Kafka 4.4's behaviour).
fn assert_expected(s: &Session) {
    let why = |label: &str| {
        let run = s.runs.iter().find(|(l, _)| *l == label).map(|(_, r)| r);
        format!(
            "{}: {label}\n{}\n{}",
            s.broker,
            run.map(ToolRun::transcript).unwrap_or_default(),
            s.logs()
        )
    };
    assert!(s.error.is_none(), "{}: {}", s.broker, s.logs());
    let app = s.app.as_str();
    let input = format!("{}-input", s.prefix);
    let repartition = format!("{app}-counts-repartition");
    assert_eq!(
        s.ready["internalTopics"],
        serde_json::json!([format!("{app}-counts-changelog"), repartition]),
        "{}",
        s.logs()
    );
    let input_end = ends(s, "inputEnd");
    let repartition_end = ends(s, "repartitionEnd");
    assert_eq!(
        input_end,
        vec![WORDS_PER_PARTITION; PARTITIONS as usize],
        "{}",
        s.logs()
    );
    assert_eq!(repartition_end.len(), PARTITIONS as usize, "{}", s.logs());
    assert_eq!(
        repartition_end.iter().sum::<u64>(),
        PARTITIONS * WORDS_PER_PARTITION,
        "{}",
        s.logs()
    );
    for (label, run) in &s.runs {
        if !matches!(*label, "describe --topology" | "deleted: describe --state") {
            assert!(run.succeeded(), "{}", why(label));
        }
    }

    // --list: the group; --list --state: Stable.
    let listed = |label: &str| s.run(label).stdout.lines().any(|l| l.trim() == app);
    assert!(listed("list"), "{}", why("list"));
    let (header, rows) = table(&s.run("list --state").stdout);
    assert_eq!(
        strings(&header),
        ["GROUP", "STATE"],
        "{}",
        why("list --state")
    );
    assert!(
        rows.contains(&vec![app.to_string(), "Stable".to_string()]),
        "{}",
        why("list --state")
    );

    // --describe (= --offsets, the default) and --verbose: every input and repartition
    // partition, committed at its end offset, no lag.
    let mut want: Vec<(String, u64, u64)> = (0..PARTITIONS)
        .map(|p| (input.clone(), p, input_end[p as usize]))
        .chain((0..PARTITIONS).map(|p| (repartition.clone(), p, repartition_end[p as usize])))
        .collect();
    want.sort();
    for label in ["describe", "describe --offsets"] {
        let (header, rows) = table(&s.run(label).stdout);
        assert_eq!(
            strings(&header),
            ["GROUP", "TOPIC", "PARTITION", "OFFSET-LAG"],
            "{}",
            why(label)
        );
        let mut got: Vec<(String, u64, String)> = rows
            .iter()
            .map(|r| {
                assert_eq!(cell(&header, r, "GROUP"), app, "{}", why(label));
                (
                    cell(&header, r, "TOPIC").to_string(),
                    cell(&header, r, "PARTITION").parse().unwrap_or(u64::MAX),
                    cell(&header, r, "OFFSET-LAG").to_string(),
                )
            })
            .collect();
        got.sort();
        let lagless: Vec<(String, u64, String)> = want
            .iter()
            .map(|(t, p, _)| (t.clone(), *p, "0".to_string()))
            .collect();
        assert_eq!(got, lagless, "{}", why(label));
    }
    for label in ["describe --verbose", "describe --offsets --verbose"] {
        let (header, rows) = table(&s.run(label).stdout);
        assert_eq!(
            strings(&header),
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LEADER-EPOCH",
                "LOG-END-OFFSET",
                "OFFSET-LAG"
            ],
            "{}",
            why(label)
        );
        let mut got: Vec<(String, u64, u64)> = Vec::new();
        for r in &rows {
            let topic = cell(&header, r, "TOPIC").to_string();
            let partition = cell(&header, r, "PARTITION").parse().unwrap_or(u64::MAX);
            let current = cell(&header, r, "CURRENT-OFFSET")
                .parse()
                .unwrap_or(u64::MAX);
            assert_eq!(
                cell(&header, r, "LOG-END-OFFSET"),
                current.to_string(),
                "{}",
                why(label)
            );
            assert_eq!(cell(&header, r, "OFFSET-LAG"), "0", "{}", why(label));
            assert_eq!(cell(&header, r, "LEADER-EPOCH"), "0", "{}", why(label));
            got.push((topic, partition, current));
        }
        got.sort();
        assert_eq!(got, want, "{}", why(label));
    }

    // --members: one member, the client's consumer, both subtopologies' three tasks active.
    let label = "describe --members";
    let (header, rows) = table(&s.run(label).stdout);
    assert_eq!(
        strings(&header),
        ["GROUP", "MEMBER", "PROCESS", "CLIENT-ID", "ASSIGNMENTS"],
        "{}",
        why(label)
    );
    assert_eq!(rows.len(), 1, "{}", why(label));
    let member = &rows[0];
    let client = format!("{app}-client-StreamThread-1-consumer");
    assert_eq!(cell(&header, member, "GROUP"), app, "{}", why(label));
    assert_eq!(cell(&header, member, "CLIENT-ID"), client, "{}", why(label));
    let tasks = "ACTIVE: 0:[0,1,2]; 1:[0,1,2];";
    assert_eq!(
        cell(&header, member, "ASSIGNMENTS"),
        tasks,
        "{}",
        why(label)
    );
    let member_id = cell(&header, member, "MEMBER").to_string();
    let process_id = cell(&header, member, "PROCESS").to_string();
    assert!(!member_id.is_empty(), "{}", why(label));
    assert_eq!(process_id.len(), 36, "a UUID: {}", why(label));

    let label = "describe --members --verbose";
    let (header, rows) = table(&s.run(label).stdout);
    assert_eq!(
        strings(&header),
        [
            "GROUP",
            "TARGET-ASSIGNMENT-EPOCH",
            "TOPOLOGY-EPOCH",
            "MEMBER",
            "MEMBER-PROTOCOL",
            "MEMBER-EPOCH",
            "PROCESS",
            "CLIENT-ID",
            "ASSIGNMENTS"
        ],
        "{}",
        why(label)
    );
    assert_eq!(rows.len(), 1, "{}", why(label));
    let row = &rows[0];
    assert_eq!(cell(&header, row, "MEMBER"), member_id, "{}", why(label));
    assert_eq!(cell(&header, row, "PROCESS"), process_id, "{}", why(label));
    assert_eq!(cell(&header, row, "CLIENT-ID"), client, "{}", why(label));
    assert_eq!(
        cell(&header, row, "MEMBER-PROTOCOL"),
        "streams",
        "{}",
        why(label)
    );
    assert_eq!(cell(&header, row, "TOPOLOGY-EPOCH"), "0", "{}", why(label));
    let member_epoch = cell(&header, row, "MEMBER-EPOCH");
    assert!(
        member_epoch.parse::<u32>().is_ok_and(|e| e > 0),
        "{}",
        why(label)
    );
    assert_eq!(
        cell(&header, row, "TARGET-ASSIGNMENT-EPOCH"),
        member_epoch,
        "a stable member is at the target assignment's epoch: {}",
        why(label)
    );
    assert_eq!(
        cell(&header, row, "ASSIGNMENTS"),
        format!("{tasks} TARGET-{tasks}"),
        "{}",
        why(label)
    );

    // --state: this broker coordinates, the sticky assignor, Stable, one member.
    let label = "describe --state";
    let (header, rows) = table(&s.run(label).stdout);
    assert_eq!(
        strings(&header),
        [
            "GROUP",
            "COORDINATOR",
            "(ID)",
            "ASSIGNOR",
            "STATE",
            "#MEMBERS"
        ],
        "{}",
        why(label)
    );
    assert_eq!(
        rows,
        [[app, s.bootstrap.as_str(), "(1)", "sticky", "Stable", "1"].map(str::to_string)],
        "{}",
        why(label)
    );
    let label = "describe --state --verbose";
    let (header, rows) = table(&s.run(label).stdout);
    assert_eq!(
        strings(&header),
        [
            "GROUP",
            "COORDINATOR",
            "(ID)",
            "ASSIGNOR",
            "STATE",
            "GROUP-EPOCH",
            "TARGET-ASSIGNMENT-EPOCH",
            "#MEMBERS"
        ],
        "{}",
        why(label)
    );
    assert_eq!(
        rows,
        [[
            app,
            s.bootstrap.as_str(),
            "(1)",
            "sticky",
            "Stable",
            member_epoch,
            member_epoch,
            "1"
        ]
        .map(str::to_string)],
        "a stable group's epochs are its member's: {}",
        why(label)
    );

    // --topology: Kafka keeps no topology description without its plugin.
    let label = "describe --topology";
    let run = s.run(label);
    assert!(!run.succeeded(), "{}", why(label));
    assert_eq!(
        run.stdout.trim(),
        format!("Error: No topology description is stored for streams group '{app}'."),
        "{}",
        why(label)
    );

    // The application closed, leaving: the group is still listed, Empty, without members.
    assert_eq!(s.stopped["closed"], Value::Bool(true), "{}", s.logs());
    assert_eq!(s.stopped["error"], "", "{}", s.logs());
    assert!(listed("stopped: list"), "{}", why("stopped: list"));
    let (_, rows) = table(&s.run("stopped: list --state").stdout);
    assert!(
        rows.contains(&vec![app.to_string(), "Empty".to_string()]),
        "{}",
        why("stopped: list --state")
    );
    let label = "stopped: describe --state";
    let run = s.run(label);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim() == format!("Error: Streams group '{app}' has no active members.")),
        "{}",
        why(label)
    );
    let (_, rows) = table(&run.stdout);
    assert_eq!(
        rows,
        [[app, s.bootstrap.as_str(), "(1)", "sticky", "Empty", "0"].map(str::to_string)],
        "{}",
        why(label)
    );

    // --delete: deleted, no longer listed, not found.
    let label = "delete";
    assert_eq!(
        s.run(label).stdout.trim(),
        format!("Deletion of requested streams groups ('{app}') was successful."),
        "{}",
        why(label)
    );
    assert!(!listed("deleted: list"), "{}", why("deleted: list"));
    let label = "deleted: describe --state";
    let run = s.run(label);
    assert!(!run.succeeded(), "{}", why(label));
    assert!(
        run.stdout
            .contains(&format!("GroupIdNotFoundException: Group {app} not found.")),
        "{}",
        why(label)
    );
}

#[test]
fn kafka_streams_groups_sh_on_kafka() {
    assert_expected(on_kafka());
}

#[test]
fn kafka_streams_groups_sh_on_gregor() {
    assert_expected(on_gregor());
}

#[test]
fn kafka_streams_groups_sh_prints_the_same_on_gregor_as_on_kafka() {
    let (kafka, gregor) = (on_kafka(), on_gregor());
    assert!(kafka.error.is_none(), "Apache Kafka: {}", kafka.logs());
    assert!(gregor.error.is_none(), "gregor: {}", gregor.logs());
    let mut differences = Vec::new();
    for (label, kafka_run) in &kafka.runs {
        let Some((_, gregor_run)) = gregor.runs.iter().find(|(l, _)| l == label) else {
            differences.push(format!("{label}: not run on gregor"));
            continue;
        };
        let (want, got) = (normalised(kafka, kafka_run), normalised(gregor, gregor_run));
        eprintln!(
            "--- {label}: {}\n{want}",
            if want == got { "the same" } else { "DIFFERENT" }
        );
        if want != got {
            differences.push(format!(
                "{label}:\n--- Apache Kafka (normalised) ---\n{want}\n--- gregor (normalised) ---\n\
                 {got}\n--- Apache Kafka ---\n{}\n--- gregor ---\n{}",
                kafka_run.transcript(),
                gregor_run.transcript()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "kafka-streams-groups.sh prints differently on gregor than on Apache Kafka 4.4:\n\n{}\n\n\
         gregor's broker log:\n{}",
        differences.join("\n\n"),
        gregor.broker_log
    );
}
