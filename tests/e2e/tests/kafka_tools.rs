//! Apache Kafka's own command-line tools against gregor, typed as Kafka's quickstart and docs
//! type them: kafka-topics, the console producer and consumer, kafka-consumer-groups,
//! kafka-configs, kafka-delete-records, kafka-get-offsets, the perf tests, the verifiable
//! producer and consumer, kafka-transactions, kafka-metadata-quorum, kafka-features,
//! kafka-log-dirs, kafka-dump-log (on the broker's files), kafka-groups, kafka-e2e-latency and
//! kafka-streams-application-reset.
//!
//! Each row ends `works` or `fails: <reason from the tool's output>`. The expected outcomes are
//! in `tests/interop/kafka-tools.expected`: a row expected to work that fails fails the test; a
//! row expected to fail that works is reported (update the file). The table is written to
//! `target/interop/kafka-tools.md` (and the current outcomes to
//! `target/interop/kafka-tools.expected`); `GREGOR_UPDATE_README=1` also writes it into the
//! README's "Kafka's own tools" section.
//!
//! Needs the toolbox (`scripts/toolbox`); without it the test fails saying so. Independent
//! chains of rows run in parallel threads (Java starts slowly); every tool run has a timeout,
//! so a hung tool fails its row, never the run.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::kafka_tools::{
    markdown, replace_section, run_program, Expectations, Outcome, Row, ToolRun, Toolbox,
};
use gregor_e2e::{repo_root, Broker};

/// The longest any one tool run may take (Java on two busy cores starts in seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// What the README and the table show instead of the test broker's ephemeral address.
const SHOWN_BOOTSTRAP: &str = "localhost:9092";
/// What they show instead of the test broker's temporary data directory.
const SHOWN_DATA_DIR: &str = "<data>";

/// One chain of rows that share topics and must run in order, against one broker.
struct Chain<'a> {
    toolbox: &'a Toolbox,
    bootstrap: String,
    /// The broker's data directory (the rows that read its files).
    data_dir: PathBuf,
    scratch: PathBuf,
    rows: Vec<Row>,
}

impl<'a> Chain<'a> {
    fn new(toolbox: &'a Toolbox, broker: &Broker, scratch: &Path) -> Chain<'a> {
        Chain {
            toolbox,
            bootstrap: broker.bootstrap(),
            data_dir: broker.data_dir().to_path_buf(),
            scratch: scratch.to_path_buf(),
            rows: Vec::new(),
        }
    }

    /// Runs a Kafka tool (`{B}` in an argument stands for the bootstrap address).
    fn tool(&self, script: &str, args: &[&str], stdin: Option<&[u8]>) -> ToolRun {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{B}", &self.bootstrap))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.toolbox.run(script, &args, stdin, TOOL_TIMEOUT)
    }

    /// Runs the gregor CLI (to set up or check state independently of the Kafka tools).
    fn gregor(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--bootstrap-server", &self.bootstrap]);
        let run = run_program(&gregor_bin(), "gregor", &all, stdin, TOOL_TIMEOUT);
        run.ok()
            .map(str::to_string)
            .map_err(|e| format!("gregor {}: {e}", args.join(" ")))
    }

    /// Creates `topic` (unless it exists) and produces `lines` to it with the gregor CLI, one
    /// record per line, split into key and value at `key_separator` when given.
    fn fill(
        &self,
        topic: &str,
        partitions: u32,
        lines: &str,
        key_separator: Option<&str>,
    ) -> Result<(), String> {
        let partitions = partitions.to_string();
        if let Err(e) = self.gregor(
            &["topics", "create", topic, "--partitions", &partitions],
            None,
        ) {
            if !e.contains("TOPIC_ALREADY_EXISTS") {
                return Err(e);
            }
        }
        let mut args = vec!["produce", topic];
        if let Some(sep) = key_separator {
            args.extend(["--key-separator", sep]);
        }
        self.gregor(&args, Some(lines.as_bytes())).map(|_| ())
    }

    /// Records a row: `name`, the command as typed (`script args`), and its outcome.
    fn row(&mut self, name: &str, script: &str, args: &[&str], outcome: Outcome) {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{B}", SHOWN_BOOTSTRAP)
                    .replace(&format!("{}/", self.scratch.display()), "")
                    .replace(&self.data_dir.display().to_string(), SHOWN_DATA_DIR)
            })
            .collect();
        let command = format!("{script} {}", shown.join(" "));
        eprintln!("[kafka_tools] {name}: {outcome}");
        self.rows.push(Row {
            name: name.to_string(),
            command,
            outcome,
        });
    }

    /// A check made after the last row's tool exited 0: a failure turns the row into `fails`.
    fn amend_last(&mut self, check: Result<(), String>) {
        if let (Err(e), Some(last)) = (check, self.rows.last_mut()) {
            eprintln!("[kafka_tools] {}: {e}", last.name);
            last.outcome = Outcome::Fails(e);
        }
    }

    /// Runs a tool and records its row; `check` judges a run that exited 0.
    fn step(
        &mut self,
        name: &str,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> bool {
        let run = self.tool(script, args, stdin);
        let result = run.ok().and_then(|out| {
            // A tool that exits 0 can still print a per-partition error: say which.
            check(out).map_err(|e| match run.error_in_output() {
                Some(tool_error) => format!("{e} ({tool_error})"),
                None => e,
            })
        });
        if let Err(e) = &result {
            eprintln!("[kafka_tools] {name} failed: {e}\n{}", run.transcript());
        }
        let works = result.is_ok();
        self.row(name, script, args, Outcome::from_result(result));
        works
    }
}

fn contains(out: &str, want: &str) -> Result<(), String> {
    if out.contains(want) {
        Ok(())
    } else {
        Err(format!("output lacks {want:?}"))
    }
}

/// kafka-topics: create, list, describe, alter --partitions, delete.
fn topics(chain: &mut Chain) {
    let t = "quickstart-events";
    chain.step(
        "kafka-topics --create",
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--create",
            "--topic",
            t,
            "--partitions",
            "1",
            "--replication-factor",
            "1",
        ],
        None,
        |out| contains(out, &format!("Created topic {t}.")),
    );
    chain.step(
        "kafka-topics --list",
        "kafka-topics.sh",
        &["--bootstrap-server", "{B}", "--list"],
        None,
        |out| {
            if out.lines().any(|l| l.trim() == t) {
                Ok(())
            } else {
                Err(format!("{t} not listed"))
            }
        },
    );
    chain.step(
        "kafka-topics --describe",
        "kafka-topics.sh",
        &["--bootstrap-server", "{B}", "--describe", "--topic", t],
        None,
        |out| {
            contains(out, &format!("Topic: {t}"))?;
            contains(out, "PartitionCount: 1")
        },
    );
    let altered = chain.step(
        "kafka-topics --alter --partitions",
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--topic",
            t,
            "--partitions",
            "3",
        ],
        None,
        |_| Ok(()),
    );
    if altered {
        // The row only counts when the partitions are really there.
        amend_with_partition_count(chain, t, 3);
    }
    // Explicit replicas for the new partitions (one list per partition, the existing ones
    // first, as the tool takes them): broker 1 is the only one.
    let assigned = chain.step(
        "kafka-topics --alter --partitions --replica-assignment",
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--topic",
            t,
            "--partitions",
            "4",
            "--replica-assignment",
            "1,1,1,1",
        ],
        None,
        |_| Ok(()),
    );
    if assigned {
        amend_with_partition_count(chain, t, 4);
    }
    let deleted = chain.step(
        "kafka-topics --delete",
        "kafka-topics.sh",
        &["--bootstrap-server", "{B}", "--delete", "--topic", t],
        None,
        |_| Ok(()),
    );
    if deleted {
        let check = match chain.gregor(&["topics", "list"], None) {
            Ok(out) if out.lines().all(|l| l.trim() != t) => Ok(()),
            Ok(_) => Err("exit 0, but the topic is still listed".to_string()),
            Err(e) => Err(format!("exit 0, but listing topics failed: {e}")),
        };
        chain.amend_last(check);
    }
}

/// The console producer with keys, the console consumer in a group from the beginning, then
/// kafka-consumer-groups on that group.
fn console_and_groups(chain: &mut Chain) {
    let t = "console-demo";
    let g = "console-group";
    let input = "k1:hello\nk2:world\nk3:from the console\n";
    let produced = chain.step(
        "kafka-console-producer (keys)",
        "kafka-console-producer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=:",
        ],
        Some(input.as_bytes()),
        |_| Ok(()),
    );
    // The console producer is idempotent: its producer id is in the partition's state.
    chain.step(
        "kafka-transactions describe-producers",
        "kafka-transactions.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "describe-producers",
            "--topic",
            t,
            "--partition",
            "0",
        ],
        None,
        |out| {
            let mut rows = out.lines().skip_while(|l| !l.starts_with("ProducerId"));
            match rows.nth(1) {
                Some(row) if row.split_whitespace().nth(3) == Some("2") => Ok(()),
                other => Err(format!(
                    "expected one producer with last sequence 2, got {other:?}"
                )),
            }
        },
    );
    // The same without idempotence: the plain (non-idempotent) producer path.
    chain.step(
        "kafka-console-producer (keys, enable.idempotence=false)",
        "kafka-console-producer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            "console-plain",
            "--command-property",
            "enable.idempotence=false",
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=:",
        ],
        Some(input.as_bytes()),
        |_| Ok(()),
    );
    if !produced {
        // The consumer's row should say whether the consumer works, so give it the records
        // another way when the console producer could not.
        if let Err(e) = chain.fill(t, 1, input, Some(":")) {
            eprintln!("[kafka_tools] could not produce {t} with gregor either: {e}");
        }
    }
    chain.step(
        "kafka-console-consumer --from-beginning --group",
        "kafka-console-consumer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--from-beginning",
            "--group",
            g,
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "key.separator=:",
        ],
        None,
        |out| {
            let got: Vec<&str> = out.lines().collect();
            let want: Vec<&str> = input.lines().collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("consumed {got:?}, want {want:?}"))
            }
        },
    );
    chain.step(
        "kafka-consumer-groups --list",
        "kafka-consumer-groups.sh",
        &["--bootstrap-server", "{B}", "--list"],
        None,
        |out| {
            if out.lines().any(|l| l.trim() == g) {
                Ok(())
            } else {
                Err(format!("{g} not listed"))
            }
        },
    );
    group_tool_steps(chain, g, t, "", &["Empty"], "Classic");
    chain.step(
        "kafka-consumer-groups --reset-offsets --to-earliest --execute",
        "kafka-consumer-groups.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--reset-offsets",
            "--group",
            g,
            "--topic",
            t,
            "--to-earliest",
            "--execute",
        ],
        None,
        |out| {
            // GROUP TOPIC PARTITION NEW-OFFSET
            let line = out
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && f[0] == g && f[1] == t)
                .ok_or_else(|| format!("no line for {g} {t}"))?;
            if line[3] == "0" {
                Ok(())
            } else {
                Err(format!("new offset {}, want 0", line[3]))
            }
        },
    );
    chain.step(
        "kafka-consumer-groups --delete",
        "kafka-consumer-groups.sh",
        &["--bootstrap-server", "{B}", "--delete", "--group", g],
        None,
        |out| contains(out, "successful"),
    );
    consumer_protocol_group(chain, t, input);
}

/// The same topic read by a consumer group of KIP-848 (`group.protocol=consumer`), then
/// kafka-consumer-groups on it: the tool describes it with ConsumerGroupDescribe.
fn consumer_protocol_group(chain: &mut Chain, t: &str, input: &str) {
    let g = "console-consumer-protocol-group";
    chain.step(
        "kafka-console-consumer --group (group.protocol=consumer)",
        "kafka-console-consumer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--from-beginning",
            "--group",
            g,
            "--command-property",
            "group.protocol=consumer",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
        ],
        None,
        |out| {
            // The values, in order (the keys are not printed).
            let got: Vec<&str> = out.lines().collect();
            let want: Vec<&str> = input
                .lines()
                .filter_map(|l| l.split_once(':').map(|(_, v)| v))
                .collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("consumed {got:?}, want {want:?}"))
            }
        },
    );
    group_tool_steps(
        chain,
        g,
        t,
        " (consumer group)",
        &["Empty", "uniform"],
        "Consumer",
    );
    chain.step(
        "kafka-consumer-groups --delete (consumer group)",
        "kafka-consumer-groups.sh",
        &["--bootstrap-server", "{B}", "--delete", "--group", g],
        None,
        |out| contains(out, "successful"),
    );
}

/// Amends the last row: it only counts when `gregor topics describe` shows `t` with `n`
/// partitions.
fn amend_with_partition_count(chain: &mut Chain, t: &str, n: usize) {
    let check = match chain.gregor(&["topics", "describe", t], None) {
        Ok(desc) if desc.contains(&format!("PartitionCount: {n}")) => Ok(()),
        Ok(desc) => Err(format!(
            "exit 0, but the topic does not have {n} partitions: {}",
            desc.lines().next().unwrap_or("")
        )),
        Err(e) => Err(format!("exit 0, but describing the topic failed: {e}")),
    };
    chain.amend_last(check);
}

/// kafka-consumer-groups on group `g`, which committed all three records of `t` and has no
/// member left: `--describe` (no lag), `--describe --state` (a line with each of
/// `state_words`) and `--list --type` (`group_type`). `label` ends each row's name.
fn group_tool_steps(
    chain: &mut Chain,
    g: &str,
    t: &str,
    label: &str,
    state_words: &[&str],
    group_type: &str,
) {
    chain.step(
        &format!("kafka-consumer-groups --describe{label}"),
        "kafka-consumer-groups.sh",
        &["--bootstrap-server", "{B}", "--describe", "--group", g],
        None,
        |out| {
            // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
            let line = out
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() >= 6 && f[0] == g && f[1] == t)
                .ok_or_else(|| format!("no line for {g} {t}"))?;
            if line[3] == "3" && line[4] == "3" && line[5] == "0" {
                Ok(())
            } else {
                Err(format!(
                    "committed/log end/lag {}/{}/{}, want 3/3/0",
                    line[3], line[4], line[5]
                ))
            }
        },
    );
    chain.step(
        &format!("kafka-consumer-groups --describe --state{label}"),
        "kafka-consumer-groups.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--group",
            g,
            "--state",
        ],
        None,
        |out| {
            // GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE ... #MEMBERS
            let line = out
                .lines()
                .find(|l| l.split_whitespace().next() == Some(g))
                .ok_or_else(|| format!("no line for {g}"))?;
            if state_words.iter().all(|w| line.contains(w)) {
                Ok(())
            } else {
                Err(format!("state line {line:?}, want {state_words:?}"))
            }
        },
    );
    chain.step(
        &format!("kafka-consumer-groups --list --type{label}"),
        "kafka-consumer-groups.sh",
        &["--bootstrap-server", "{B}", "--list", "--type"],
        None,
        |out| {
            // GROUP TYPE
            let fields = out
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.first() == Some(&g))
                .ok_or_else(|| format!("{g} not listed"))?;
            match fields.get(1) {
                Some(&found) if found == group_type => Ok(()),
                other => Err(format!(
                    "group type {}, want {group_type}",
                    other.unwrap_or(&"missing")
                )),
            }
        },
    );
}

/// kafka-configs, kafka-delete-records and kafka-get-offsets on a topic of five records.
fn configs_and_offsets(chain: &mut Chain) {
    let t = "configs-demo";
    if let Err(e) = chain.fill(t, 1, "a\nb\nc\nd\ne\n", None) {
        eprintln!("[kafka_tools] setting up {t} failed: {e}");
    }
    let describe_args = [
        "--bootstrap-server",
        "{B}",
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        t,
    ];
    chain.step(
        "kafka-configs --describe (topic)",
        "kafka-configs.sh",
        &describe_args,
        None,
        |out| contains(out, &format!("configs for topic {t}")),
    );
    let altered = chain.step(
        "kafka-configs --alter --add-config (topic)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            t,
            "--add-config",
            "retention.ms=3600000",
        ],
        None,
        |out| contains(out, "Completed updating config"),
    );
    if altered {
        let run = chain.tool("kafka-configs.sh", &describe_args, None);
        let check = run
            .ok()
            .and_then(|out| contains(out, "retention.ms=3600000"))
            .map_err(|e| format!("exit 0, but describe does not show it: {e}"));
        chain.amend_last(check);
    }
    // The broker's own configuration: every key with its value and source; num.partitions is
    // given (the test starts the broker with it), min.insync.replicas is gregor's default.
    chain.step(
        "kafka-configs --describe --all (broker)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
        None,
        |out| {
            contains(out, "All configs for broker 1 are:")?;
            contains(
                out,
                "num.partitions=1 sensitive=false synonyms={STATIC_BROKER_CONFIG:num.partitions=1, \
                 DEFAULT_CONFIG:num.partitions=1}",
            )?;
            contains(
                out,
                "min.insync.replicas=1 sensitive=false synonyms={DEFAULT_CONFIG:min.insync.replicas=1}",
            )
        },
    );
    let json = chain.scratch.join("offsets.json");
    let spec =
        format!(r#"{{"partitions":[{{"topic":"{t}","partition":0,"offset":2}}],"version":1}}"#);
    if let Err(e) = std::fs::write(&json, spec) {
        eprintln!("[kafka_tools] cannot write {}: {e}", json.display());
    }
    let json = json.display().to_string();
    let deleted = chain.step(
        "kafka-delete-records",
        "kafka-delete-records.sh",
        &["--bootstrap-server", "{B}", "--offset-json-file", &json],
        None,
        |out| contains(out, "low_watermark: 2"),
    );
    chain.step(
        "kafka-get-offsets (latest)",
        "kafka-get-offsets.sh",
        &["--bootstrap-server", "{B}", "--topic", t],
        None,
        |out| contains(out, &format!("{t}:0:5")),
    );
    let earliest = if deleted { 2 } else { 0 };
    chain.step(
        "kafka-get-offsets --time earliest",
        "kafka-get-offsets.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--time",
            "earliest",
        ],
        None,
        |out| contains(out, &format!("{t}:0:{earliest}")),
    );
}

/// kafka-producer-perf-test and kafka-consumer-perf-test, small.
fn perf(chain: &mut Chain) {
    chain.step(
        "kafka-producer-perf-test",
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            "perf-produce",
            "--num-records",
            "10000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
        None,
        |out| contains(out, "10000 records sent"),
    );
    chain.step(
        "kafka-producer-perf-test (enable.idempotence=false)",
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            "perf-produce-plain",
            "--num-records",
            "10000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "enable.idempotence=false",
        ],
        None,
        |out| contains(out, "10000 records sent"),
    );
    chain.step(
        "kafka-producer-perf-test (transactional)",
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            "perf-produce-txn",
            "--num-records",
            "10000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--transactional-id",
            "perf-txn",
            "--transaction-duration-ms",
            "100",
        ],
        None,
        |out| contains(out, "10000 records sent"),
    );
    // The consumer perf test reads a topic filled by the gregor CLI, so that its row says
    // whether the consumer works whatever the producer's row says.
    let t = "perf-consume";
    let lines: String = (0..10_000).map(|i| format!("record {i:06}\n")).collect();
    if let Err(e) = chain.fill(t, 1, &lines, None) {
        eprintln!("[kafka_tools] filling {t} failed: {e}");
    }
    chain.step(
        "kafka-consumer-perf-test",
        "kafka-consumer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--num-records",
            "10000",
            "--timeout",
            "30000",
        ],
        None,
        |out| {
            // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...
            let mut lines = out.lines();
            let header = lines
                .find(|l| l.contains("data.consumed.in.nMsg"))
                .ok_or("no header line")?;
            let col = header
                .split(',')
                .position(|h| h.trim() == "data.consumed.in.nMsg")
                .ok_or("no data.consumed.in.nMsg column")?;
            let value = lines
                .next()
                .and_then(|l| l.split(',').nth(col))
                .map(str::trim)
                .ok_or("no data line")?;
            if value == "10000" {
                Ok(())
            } else {
                Err(format!("consumed {value} records, want 10000"))
            }
        },
    );
}

/// Counts the JSON events named `name` in the verifiable tools' output, summing `field` when
/// given (else counting the events).
fn count_events(out: &str, name: &str, field: Option<&str>) -> i64 {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["name"] == name)
        .map(|v| match field {
            Some(f) => v[f].as_i64().unwrap_or(0),
            None => 1,
        })
        .sum()
}

/// kafka-verifiable-producer then kafka-verifiable-consumer: no loss (acked = consumed).
fn verifiable(chain: &mut Chain) {
    let t = "verifiable";
    let mut acked = 0;
    chain.step(
        "kafka-verifiable-producer",
        "kafka-verifiable-producer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--max-messages",
            "1000",
        ],
        None,
        |out| {
            acked = count_events(out, "producer_send_success", None);
            let errors = count_events(out, "producer_send_error", None);
            if acked == 1000 && errors == 0 {
                Ok(())
            } else {
                let first_error = out
                    .lines()
                    .find(|l| l.contains("producer_send_error"))
                    .unwrap_or("");
                Err(format!(
                    "{acked} of 1000 acked, {errors} send errors {first_error}"
                ))
            }
        },
    );
    if acked == 0 {
        // The consumer's row should say whether the consumer works: fill the topic another way.
        let lines: String = (0..1000).map(|i| format!("{i}\n")).collect();
        match chain.fill(t, 1, &lines, None) {
            Ok(_) => acked = 1000,
            Err(e) => eprintln!("[kafka_tools] filling {t} failed: {e}"),
        }
    }
    let max = acked.to_string();
    chain.step(
        "kafka-verifiable-consumer",
        "kafka-verifiable-consumer.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            t,
            "--group-id",
            "verifiable-group",
            "--max-messages",
            &max,
        ],
        None,
        |out| {
            let consumed = count_events(out, "records_consumed", Some("count"));
            let failed_commits = out
                .lines()
                .filter(|l| l.contains("\"offsets_committed\"") && l.contains("\"success\":false"))
                .count();
            if consumed == acked && failed_commits == 0 {
                Ok(())
            } else {
                Err(format!(
                    "consumed {consumed} of {acked} acked records, {failed_commits} failed commits"
                ))
            }
        },
    );
}

/// kafka-transactions, kafka-metadata-quorum and kafka-features, and the rows that need a
/// cluster.
fn cluster_tools(chain: &mut Chain) {
    chain.step(
        "kafka-transactions list",
        "kafka-transactions.sh",
        &["--bootstrap-server", "{B}", "list"],
        None,
        |out| contains(out, "TransactionalId"),
    );
    chain.step(
        "kafka-cluster cluster-id",
        "kafka-cluster.sh",
        &["cluster-id", "--bootstrap-server", "{B}"],
        None,
        |out| contains(out, "Cluster ID: "),
    );
    chain.step(
        "kafka-cluster list-endpoints",
        "kafka-cluster.sh",
        &["list-endpoints", "--bootstrap-server", "{B}"],
        None,
        |out| {
            if out.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&"1") && cols.ends_with(&["unfenced", "broker"])
            }) {
                Ok(())
            } else {
                Err("broker 1 is not listed as an unfenced broker endpoint".to_string())
            }
        },
    );
    // The ApiVersions answer as the tool prints it: Produce and Fetch at the versions of
    // Kafka 4.4's clients.
    chain.step(
        "kafka-cluster api-versions",
        "kafka-cluster.sh",
        &["api-versions", "--bootstrap-server", "{B}"],
        None,
        |out| {
            contains(out, "(id: 1 rack: null isFenced: false)")?;
            contains(out, "Produce(0): 0 to 13 [usable: 13]")?;
            contains(out, "Fetch(1): 4 to 18 [usable: 18]")
        },
    );
    chain.step(
        "kafka-metadata-quorum describe --status",
        "kafka-metadata-quorum.sh",
        &["--bootstrap-server", "{B}", "describe", "--status"],
        None,
        |out| contains(out, "LeaderId"),
    );
    // KIP-584's DescribeFeatures is the ApiVersions answer: the cluster finalizes
    // transaction.version 2 (KIP-890 part 2), as a new Kafka 4.x cluster does.
    chain.step(
        "kafka-features describe",
        "kafka-features.sh",
        &["--bootstrap-server", "{B}", "describe"],
        None,
        |out| {
            contains(out, "Feature: transaction.version")
                .and_then(|_| contains(out, "FinalizedVersionLevel: 2"))
        },
    );
    // UpdateFeatures, checked by the controller and not applied (`--dry-run`: validate only),
    // so the other chains keep the features.
    chain.step(
        "kafka-features downgrade --dry-run",
        "kafka-features.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "downgrade",
            "--feature",
            "share.version=1",
            "--dry-run",
        ],
        None,
        |out| contains(out, "share.version can be downgraded to 1."),
    );
    // A single node: the reassignment keeps the partition where it is (moving it between
    // brokers is the cluster_admin test's), the election finds every preferred leader leading.
    let topic = "reassign-me";
    let made = chain.gregor(&["topics", "create", topic, "--partitions", "1"], None);
    let plan = chain.scratch.join("reassign.json");
    let written = std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[1]}}]}}"#
        ),
    );
    if let Err(e) = made.and(written.map_err(|e| e.to_string())) {
        eprintln!("[kafka_tools] cannot prepare the reassignment: {e}");
    }
    let plan = plan.display().to_string();
    chain.step(
        "kafka-reassign-partitions --execute",
        "kafka-reassign-partitions.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--reassignment-json-file",
            &plan,
            "--execute",
        ],
        None,
        |out| contains(out, "Successfully started partition reassignment"),
    );
    chain.step(
        "kafka-reassign-partitions --verify",
        "kafka-reassign-partitions.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--reassignment-json-file",
            &plan,
            "--verify",
        ],
        None,
        |out| contains(out, "is completed"),
    );
    chain.step(
        "kafka-leader-election --election-type preferred",
        "kafka-leader-election.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--election-type",
            "preferred",
            "--all-topic-partitions",
        ],
        None,
        |_| Ok(()),
    );
}

/// The segment file of `topic`-`partition` starting at `base` in the broker's data directory.
fn segment(chain: &Chain, topic: &str, partition: u32, base: i64, ext: &str) -> String {
    chain
        .data_dir
        .join(format!("{topic}-{partition}"))
        .join(format!("{base:020}.{ext}"))
        .display()
        .to_string()
}

/// The non-empty first segments of an internal topic's partitions (`__consumer_offsets`),
/// comma-separated as kafka-dump-log takes them.
fn written_segments(chain: &Chain, topic: &str) -> String {
    let mut files = Vec::new();
    for p in 0..50 {
        let f = segment(chain, topic, p, 0, "log");
        if std::fs::metadata(&f).is_ok_and(|m| m.len() > 0) {
            files.push(f);
        }
    }
    files.join(",")
}

/// kafka-log-dirs and kafka-dump-log on what gregor keeps on disk (segments, the group and
/// transaction logs in Kafka's record formats, producer-state snapshots in Kafka's layout),
/// kafka-streams-application-reset, kafka-groups and kafka-e2e-latency.
fn logs_and_groups(chain: &mut Chain) {
    let t = "on-disk-demo";
    if let Err(e) = chain.fill(t, 1, "first\nsecond\nthird\n", None) {
        eprintln!("[kafka_tools] setting up {t} failed: {e}");
    }
    let log_file = segment(chain, t, 0, 0, "log");
    chain.step(
        "kafka-log-dirs --describe",
        "kafka-log-dirs.sh",
        &["--bootstrap-server", "{B}", "--describe", "--topic-list", t],
        None,
        |out| {
            // The size is the log's bytes, as Kafka's `log.size`.
            let size = std::fs::metadata(&log_file)
                .map_err(|e| e.to_string())?
                .len();
            contains(out, &format!(r#"{{"partition":"{t}-0","size":{size},"#))
        },
    );
    chain.step(
        "kafka-dump-log --print-data-log (a segment)",
        "kafka-dump-log.sh",
        &["--files", &log_file, "--print-data-log"],
        None,
        |out| {
            contains(out, "isvalid: true")?;
            contains(out, "payload: third")
        },
    );
    // An application's committed offsets set back by the Streams reset tool, which commits
    // them as a consumer of the application's group.
    let app = "reset-demo-app";
    chain.step(
        "kafka-streams-application-reset --input-topics",
        "kafka-streams-application-reset.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--application-id",
            app,
            "--input-topics",
            t,
            "--to-offset",
            "1",
        ],
        None,
        |out| contains(out, &format!("Topic: {t} Partition: 0 Offset: 1")),
    );
    let described = chain.gregor(&["groups", "describe", app], None);
    chain.amend_last(described.and_then(|out| {
        if out
            .lines()
            .any(|l| l.split_whitespace().take(3).eq([t, "0", "1"]))
        {
            Ok(())
        } else {
            Err(format!("{app} has not committed offset 1 of {t}-0: {out}"))
        }
    }));
    chain.step(
        "kafka-groups --list",
        "kafka-groups.sh",
        &["--bootstrap-server", "{B}", "--list"],
        None,
        |out| {
            if out
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([app, "Classic"]))
            {
                Ok(())
            } else {
                Err(format!("{app} is not listed as a classic group"))
            }
        },
    );
    let offsets = written_segments(chain, "__consumer_offsets");
    chain.step(
        "kafka-dump-log --offsets-decoder (__consumer_offsets)",
        "kafka-dump-log.sh",
        &["--files", &offsets, "--offsets-decoder"],
        None,
        |out| {
            contains(
                out,
                &format!(
                    r#"key: {{"type":"1","data":{{"group":"{app}","topic":"{t}","partition":0}}}}"#
                ),
            )?;
            contains(out, r#"payload: {"version":"#)
        },
    );
    // A transaction, then the transaction log that records it.
    let txn_topic = "on-disk-txn";
    let made = chain.gregor(&["topics", "create", txn_topic, "--partitions", "1"], None);
    let perf = chain.tool(
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            txn_topic,
            "--num-records",
            "100",
            "--record-size",
            "10",
            "--throughput",
            "-1",
            "--transactional-id",
            "on-disk-txn-id",
        ],
        None,
    );
    if let Err(e) = made.and(perf.ok().map(|_| ())) {
        eprintln!("[kafka_tools] the transaction for the transaction log failed: {e}");
    }
    let txn_log = written_segments(chain, "__transaction_state");
    chain.step(
        "kafka-dump-log --transaction-log-decoder (__transaction_state)",
        "kafka-dump-log.sh",
        &["--files", &txn_log, "--transaction-log-decoder"],
        None,
        |out| {
            contains(
                out,
                r#"key: {"type":"0","data":{"transactionalId":"on-disk-txn-id"}}"#,
            )?;
            contains(out, r#""transactionStatus":"CompleteCommit""#)
        },
    );
    // Producer-state snapshots are taken when a segment rolls: an idempotent load past the
    // smallest segment Kafka 4 allows (1 MiB) rolls one.
    let snap_topic = "on-disk-snapshots";
    let made = chain.gregor(
        &[
            "topics",
            "create",
            snap_topic,
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1048576",
        ],
        None,
    );
    let perf = chain.tool(
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--topic",
            snap_topic,
            "--num-records",
            "12000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
        None,
    );
    if let Err(e) = made.and(perf.ok().map(|_| ())) {
        eprintln!("[kafka_tools] the load that rolls {snap_topic} failed: {e}");
    }
    let dir = chain.data_dir.join(format!("{snap_topic}-0"));
    let snapshot = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "snapshot"))
        .map_or_else(
            || dir.join("(no snapshot yet)").display().to_string(),
            |p| p.display().to_string(),
        );
    chain.step(
        "kafka-dump-log (a producer-state snapshot)",
        "kafka-dump-log.sh",
        &["--files", &snapshot],
        None,
        |out| {
            contains(out, "producerId: ")?;
            contains(out, "lastSequence: ")
        },
    );
    chain.step(
        "kafka-e2e-latency",
        "kafka-e2e-latency.sh",
        &["{B}", "e2e-latency-demo", "200", "all", "100"],
        None,
        |out| contains(out, "Avg latency:"),
    );
}

/// kafka-configs on the brokers' dynamic configs: a cluster-wide default and one broker's own,
/// each seen by describe and each taking effect without a restart (a record above the dynamic
/// `message.max.bytes` is refused, and accepted again once the config is deleted). Runs alone,
/// after the other chains: the limit applies to every topic.
fn broker_configs(chain: &mut Chain) {
    let t = "broker-configs-demo";
    if let Err(e) = chain.fill(t, 1, "small\n", None) {
        eprintln!("[kafka_tools] setting up {t} failed: {e}");
    }
    let big = format!("{}\n", "x".repeat(3000));
    let altered = chain.step(
        "kafka-configs --alter --entity-default (brokers)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--add-config",
            "message.max.bytes=2000",
        ],
        None,
        |out| {
            contains(
                out,
                "Completed updating default config for brokers in the cluster",
            )
        },
    );
    if altered {
        let refused = match chain.gregor(&["produce", t], Some(big.as_bytes())) {
            Ok(out) => Err(format!(
                "a 3000-byte record was accepted under message.max.bytes=2000: {out}"
            )),
            // The CLI names the error on stderr and exits non-zero.
            Err(e) if e.contains("MESSAGE_TOO_LARGE") || e.contains("could not be produced") => {
                Ok(())
            }
            Err(e) => Err(format!("the 3000-byte record failed otherwise: {e}")),
        };
        chain.amend_last(refused);
    }
    chain.step(
        "kafka-configs --describe --entity-default (brokers)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-default",
        ],
        None,
        |out| {
            contains(
                out,
                "message.max.bytes=2000 sensitive=false \
                 synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:message.max.bytes=2000}",
            )
        },
    );
    chain.step(
        "kafka-configs --alter --entity-name (broker)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--add-config",
            "log.retention.ms=3600000",
        ],
        None,
        |out| contains(out, "Completed updating config for broker 1"),
    );
    chain.step(
        "kafka-configs --describe --entity-name (broker)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
        ],
        None,
        |out| {
            contains(
                out,
                "log.retention.ms=3600000 sensitive=false \
                 synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000",
            )
        },
    );
    let deleted = chain.step(
        "kafka-configs --alter --delete-config (brokers)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--delete-config",
            "message.max.bytes",
        ],
        None,
        |out| {
            contains(
                out,
                "Completed updating default config for brokers in the cluster",
            )
        },
    );
    if deleted {
        let accepted = chain
            .gregor(&["produce", t], Some(big.as_bytes()))
            .map(|_| ())
            .map_err(|e| format!("the 3000-byte record is still refused: {e}"));
        chain.amend_last(accepted);
    }
}

/// The MB/sec of kafka-producer-perf-test's summary line (`... records/sec (0.14 MB/sec) ...`).
fn perf_mb_per_sec(out: &str) -> Option<f64> {
    let summary = out.lines().rev().find(|l| l.contains("records sent"))?;
    let at = summary.find(" MB/sec)")?;
    let open = summary[..at].rfind('(')?;
    summary[open + 1..at].trim().parse().ok()
}

/// kafka-configs on client quotas (KIP-546): a client id's own quotas and the default client
/// id's, each described, one deleted; and the producer quota enforced on Kafka's own Java
/// producer (kafka-producer-perf-test as that client id sends at about its byte rate, after
/// the burst of the ten-window span the default `quota.window.num` allows). The default
/// client-id quota is a harmless 1 GiB/s, since the other chains run meanwhile.
fn client_quotas(chain: &mut Chain) {
    let client = "quota-demo";
    let topic = "quota-demo-topic";
    if let Err(e) = chain.gregor(&["topics", "create", topic, "--partitions", "1"], None) {
        eprintln!("[kafka_tools] setting up {topic} failed: {e}");
    }
    let altered = chain.step(
        "kafka-configs --alter --entity-type clients (client id)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            client,
            "--add-config",
            "producer_byte_rate=102400,consumer_byte_rate=2097152",
        ],
        None,
        |out| {
            contains(
                out,
                &format!("Completed updating config for client {client}."),
            )
        },
    );
    if altered {
        let seen = chain
            .gregor(&["quotas", "describe", "--client-id", client], None)
            .and_then(|out| contains(&out, "producer_byte_rate  102400"));
        chain.amend_last(seen);
    }
    chain.step(
        "kafka-configs --describe --entity-type clients --entity-name",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            client,
        ],
        None,
        |out| {
            contains(
                out,
                &format!(
                    "Quota configs for client-id '{client}' are consumer_byte_rate=2097152.0, \
                     producer_byte_rate=102400.0"
                ),
            )
        },
    );
    // 2 MB at 100 KiB/s: the first ~1 MB is the burst, the rest takes about ten seconds.
    chain.step(
        "kafka-producer-perf-test (client.id under producer_byte_rate)",
        "kafka-producer-perf-test.sh",
        &[
            "--topic",
            topic,
            "--num-records",
            "2000",
            "--record-size",
            "1000",
            "--throughput",
            "-1",
            "--producer-props",
            "bootstrap.servers={B}",
            &format!("client.id={client}"),
            "acks=1",
        ],
        None,
        |out| {
            contains(out, "2000 records sent")?;
            match perf_mb_per_sec(out) {
                Some(mb) if mb <= 0.25 => Ok(()),
                Some(mb) => Err(format!("{mb} MB/sec under a 0.1 MB/sec quota")),
                None => Err("no MB/sec in the summary".to_string()),
            }
        },
    );
    chain.step(
        "kafka-configs --alter --entity-default (clients)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "clients",
            "--entity-default",
            "--add-config",
            "consumer_byte_rate=1073741824",
        ],
        None,
        |out| {
            contains(
                out,
                "Completed updating default config for clients in the cluster.",
            )
        },
    );
    chain.step(
        "kafka-configs --describe --entity-type clients",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "clients",
        ],
        None,
        |out| {
            contains(
                out,
                "Quota configs for the default client-id are consumer_byte_rate=1.073741824E9",
            )?;
            contains(out, &format!("Quota configs for client-id '{client}' are"))
        },
    );
    let deleted = chain.step(
        "kafka-configs --alter --delete-config (clients)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "clients",
            "--entity-default",
            "--delete-config",
            "consumer_byte_rate",
        ],
        None,
        |out| {
            contains(
                out,
                "Completed updating default config for clients in the cluster.",
            )
        },
    );
    if deleted {
        let gone = chain
            .gregor(&["quotas", "describe", "--client-id-default"], None)
            .and_then(|out| contains(&out, "no client quotas set"));
        chain.amend_last(gone);
    }
    // KIP-612: an address's connection creation rate (an address no test connects from).
    let ip = "127.0.0.9";
    let altered = chain.step(
        "kafka-configs --alter --entity-type ips (connection_creation_rate)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "ips",
            "--entity-name",
            ip,
            "--add-config",
            "connection_creation_rate=50",
        ],
        None,
        |out| contains(out, &format!("Completed updating config for ip {ip}.")),
    );
    if altered {
        let seen = chain
            .gregor(&["quotas", "describe", "--ip", ip], None)
            .and_then(|out| contains(&out, "connection_creation_rate  50"));
        chain.amend_last(seen);
    }
    chain.step(
        "kafka-configs --describe --entity-type ips --entity-name",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--describe",
            "--entity-type",
            "ips",
            "--entity-name",
            ip,
        ],
        None,
        |out| {
            contains(
                out,
                &format!("Quota configs for ip '{ip}' are connection_creation_rate=50.0"),
            )
        },
    );
    chain.step(
        "kafka-configs --alter --delete-config (ips)",
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            "{B}",
            "--alter",
            "--entity-type",
            "ips",
            "--entity-name",
            ip,
            "--delete-config",
            "connection_creation_rate",
        ],
        None,
        |out| contains(out, &format!("Completed updating config for ip {ip}.")),
    );
}

#[test]
fn kafka_tools_against_gregor() {
    let toolbox = Toolbox::installed();
    let started = Instant::now();
    let broker = Broker::start_with(&["num.partitions=1"]);
    let scratch = tempfile::tempdir().expect("a scratch directory");

    type ChainFn = fn(&mut Chain);
    let chains: [ChainFn; 8] = [
        topics,
        console_and_groups,
        configs_and_offsets,
        perf,
        verifiable,
        cluster_tools,
        client_quotas,
        logs_and_groups,
    ];
    let mut rows: Vec<Row> = thread::scope(|s| {
        let handles: Vec<_> = chains
            .iter()
            .map(|f| {
                let (toolbox, broker, scratch) = (&toolbox, &broker, scratch.path());
                s.spawn(move || {
                    let mut chain = Chain::new(toolbox, broker, scratch);
                    f(&mut chain);
                    chain.rows
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a chain of rows panicked"))
            .collect()
    });
    // Chains that change what every topic gets run alone.
    let mut alone = Chain::new(&toolbox, &broker, scratch.path());
    broker_configs(&mut alone);
    rows.extend(alone.rows);

    // What gregor said about the tools' requests, for a reader chasing a failing row.
    let broker_log = broker.logs();
    let complaints: Vec<&str> = broker_log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    if !complaints.is_empty() {
        eprintln!(
            "gregor logged {} warnings/errors (of its last lines):\n{}",
            complaints.len(),
            complaints.join("\n")
        );
    }

    let table = markdown(&rows, &toolbox.kafka_version());
    let out_dir = repo_root().join("target/interop");
    std::fs::create_dir_all(&out_dir).expect("create target/interop");
    std::fs::write(out_dir.join("kafka-tools.md"), &table).expect("write the table");
    std::fs::write(
        out_dir.join("kafka-tools.expected"),
        Expectations::render(&rows),
    )
    .expect("write the current outcomes");
    eprintln!(
        "{table}\n(table in target/interop/kafka-tools.md; {} rows in {:.0?})",
        rows.len(),
        started.elapsed()
    );

    if std::env::var_os("GREGOR_UPDATE_README").is_some() {
        let path = repo_root().join("README.md");
        let readme = std::fs::read_to_string(&path).expect("read README.md");
        let updated = replace_section(&readme, &table).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, updated).expect("write README.md");
        eprintln!("README.md: \"Kafka's own tools\" table updated");
    }

    let expected_path = repo_root().join("tests/interop/kafka-tools.expected");
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| e.to_string())
        .and_then(|t| Expectations::parse(&t))
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    let cmp = expected.compare(&rows);
    for name in &cmp.newly_working {
        eprintln!(
            "NOTE: `{name}` was expected to fail and now works: update \
             tests/interop/kafka-tools.expected (see target/interop/kafka-tools.expected)"
        );
    }
    assert!(
        cmp.unlisted.is_empty() && cmp.missing.is_empty(),
        "tests/interop/kafka-tools.expected is out of date: rows not listed {:?}, listed rows \
         not run {:?} (the current outcomes are in target/interop/kafka-tools.expected)",
        cmp.unlisted,
        cmp.missing
    );
    assert!(
        cmp.regressions.is_empty(),
        "Kafka tools that worked fail now:\n  {}",
        cmp.regressions.join("\n  ")
    );
}
