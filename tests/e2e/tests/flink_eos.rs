//! Apache Flink's Kafka connector doing exactly-once against gregor, and the same job against
//! Apache Kafka 4.4 (tests/interop/java/flink/FlinkEos.java, compiled by `scripts/toolbox`
//! against Flink 2.2 and flink-connector-kafka 5.0.0-2.2, whose kafka-clients is 4.2, and
//! against Flink 1.20 with connector 3.4).
//!
//! ```text
//!   FlinkEos produce   input (600 records, 2 partitions) + output topic
//!   FlinkEos run       first process: KafkaSource (read_committed) → map (upper-case) →
//!                      KafkaSink EXACTLY_ONCE; subtask 0 throws once after a checkpoint
//!                      (Flink restarts it from that checkpoint, the failed attempt's open
//!                      transaction is aborted when the new attempt's InitProducerId fences
//!                      it), then halts the JVM (as a kill -9 would) once a later checkpoint
//!                      is complete but before the task hears of it: that checkpoint's
//!                      transaction is pre-committed (flushed, open on the broker, the LSO
//!                      lags) and not committed
//!   FlinkEos run --restore   second process, same transactional-id prefix, from the newest
//!                      retained checkpoint: the sink commits that checkpoint's transactions
//!                      by resuming them (producer id and epoch set into a new producer,
//!                      EndTxn with no InitProducerId) and aborts the lingering ones of its
//!                      prefix (probing InitProducerId, or ListTransactions with the POOLING
//!                      naming strategy), then reads the rest of the input
//!   then               confluent-kafka reads the output: read_committed holds every input
//!                      record transformed exactly once; read_uncommitted also the aborted
//!                      attempts' records; every partition's last stable offset is its high
//!                      watermark (no transaction left open)
//! ```
//!
//! - `the_same_job_on_gregor_and_on_apache_kafka`: one gregor broker and one Kafka node, the
//!   same driver, compared side by side (the Kafka node is the reference).
//! - `pooling_transaction_names_on_three_gregor_nodes`: replication factor 3 on a three-node
//!   cluster, with the POOLING naming strategy, whose recovery lists the open transactions
//!   (DescribeProducers, then ListTransactions by producer ids and state).
//! - `flink_1_20_and_connector_3_on_gregor_and_on_apache_kafka`: the same job on the previous
//!   line (Flink 1.20.3, flink-connector-kafka 3.4.0-1.20, kafka-clients 3.4.0: transactions
//!   version 1, AddPartitionsToTxn from the client), on gregor and on Kafka.
//! - `a_broker_killed_mid_job_on_gregor_and_on_apache_kafka`: the job with no failure of its
//!   own while the broker is killed -9 (once the sink's transactional records are being
//!   written) and restarted; the job finishes and the output is exactly-once, on both.
//! - `a_partition_leader_killed_mid_job_on_three_gregor_nodes`: the same on three nodes
//!   (replication factor 3), killing the leader of the output's partition 0.
//!
//! Against Kafka 4.4 the connector logs the same ERROR as against gregor when the restored
//! checkpoint's transactions are committed again although they had been committed before the
//! process died: the resumed EndTxn carries the epoch of before the commit, which transactions
//! version 2 bumped, and a resumed kafka-clients producer sends EndTxn v4 (version-1 rules: it
//! never called `beginTransaction`, which is where it turns version 2 on), so it is answered
//! PRODUCER_FENCED. The connector calls it possible data loss, but nothing is lost (the
//! read_committed check). The tests accept that ERROR only.
//!
//! Needs `scripts/toolbox` (Kafka's jars; the Flink jars and the compiled job are skipped with
//! a message when missing), `cargo build -p gregor-cli`, and the Python venv (confluent-kafka).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{run_program, ToolRun, Toolbox};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

/// Input records; each Flink subtask reads one partition of 300, 10 ms a record in the map, so
/// that checkpoints (every second) fall inside the input.
const COUNT: usize = 600;

/// One Flink process: a MiniCluster starts in a few seconds; the job takes under ten.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// The Flink line of the current connector: Flink 2.2, flink-connector-kafka 5.0, kafka-clients
/// 4.2 (transactions version 2).
const FLINK_2: &str = "flink";

/// The previous line: Flink 1.20, flink-connector-kafka 3.4, kafka-clients 3.4 (transactions
/// version 1; the connector resumes a transaction through the older TransactionManager).
const FLINK_1: &str = "flink1";

/// The Flink job, compiled by `scripts/toolbox` into `<toolbox>/<line>/classes`, and that
/// line's jars in `<toolbox>/<line>/jars`.
struct FlinkJob {
    toolbox: PathBuf,
    line: &'static str,
}

impl FlinkJob {
    /// The job, or `None` (with a message) when the toolbox has no Flink in it.
    fn installed(line: &'static str) -> Option<FlinkJob> {
        let toolbox = Toolbox::installed().dir().to_path_buf();
        let class = toolbox.join(line).join("classes/FlinkEos.class");
        let jars = toolbox.join(line).join("jars/.stamp");
        if !class.is_file() || !jars.is_file() {
            eprintln!(
                "skipped: the toolbox in {} has no Flink job ({} or {} missing); run \
                 scripts/toolbox, which installs Flink's jars and compiles \
                 tests/interop/java/flink",
                toolbox.display(),
                class.display(),
                jars.display()
            );
            return None;
        }
        Some(FlinkJob { toolbox, line })
    }

    /// `java ... FlinkEos <bootstrap> <args>`: Flink's own JVM options for Java 17 (the
    /// `--add-opens` its distribution's config gives every process), warnings to stderr.
    fn run(&self, bootstrap: &str, args: &[&str]) -> ToolRun {
        let classpath = format!(
            "{}:{}/*",
            self.toolbox.join(self.line).join("classes").display(),
            self.toolbox.join(self.line).join("jars").display()
        );
        let log = format!(
            "-Dlog4j2.configurationFile={}",
            self.toolbox
                .join("config/tools-log4j2.properties")
                .display()
        );
        let mut all: Vec<String> = vec!["-Xmx768m".into(), "-XX:+UseSerialGC".into(), log];
        for opens in [
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.net",
            "java.base/java.io",
            "java.base/java.nio",
            "java.base/sun.nio.ch",
            "java.base/java.lang.reflect",
            "java.base/java.util.concurrent",
            "java.base/java.util.concurrent.atomic",
        ] {
            all.push(format!("--add-opens={opens}=ALL-UNNAMED"));
        }
        all.push("--add-exports=java.base/sun.net.util=ALL-UNNAMED".into());
        all.push("--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED".into());
        all.extend(["-cp".into(), classpath, "FlinkEos".into(), bootstrap.into()]);
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_program(Path::new("java"), "java FlinkEos", &all, None, JOB_TIMEOUT)
    }
}

/// The JSON lines a run printed, in order.
fn json_lines(run: &ToolRun) -> Vec<Value> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The report a run ended with; asserts that it succeeded and says the job finished (`claim`
/// says what was expected of it).
fn finished(run: &ToolRun, claim: &str) -> Value {
    let report = json_lines(run).pop().unwrap_or(Value::Null);
    assert!(
        run.succeeded() && report["result"] == "finished",
        "{claim} ({}):\n{}\n{}",
        run.reason(),
        run.stdout,
        run.stderr
    );
    report
}

/// The Flink connector's ERROR lines (first line of each), e.g. a re-commit answered fenced.
fn error_lines(run: &ToolRun) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.contains("] ERROR "))
        .map(str::to_string)
        .collect()
}

/// One run's topics, transactional-id prefix and checkpoint directory, the input written.
struct JobTopics {
    input: String,
    output: String,
    prefix: String,
    /// The job's checkpoint directory, held to be deleted on drop.
    _checkpoints: tempfile::TempDir,
    checkpoint_dir: String,
    count: String,
}

impl JobTopics {
    /// Fresh names; `FlinkEos produce` creates the topics (`replication` replicas) and writes
    /// the `COUNT` input records.
    fn produce(job: &FlinkJob, bootstrap: &str, replication: &str) -> JobTopics {
        let checkpoints = tempfile::tempdir().expect("temp dir");
        let topics = JobTopics {
            input: unique_topic("flink-in"),
            output: unique_topic("flink-out"),
            prefix: unique_topic("flink-txn"),
            checkpoint_dir: checkpoints.path().display().to_string(),
            _checkpoints: checkpoints,
            count: COUNT.to_string(),
        };
        let produce = job.run(
            bootstrap,
            &[
                "produce",
                &topics.input,
                &topics.output,
                &topics.count,
                replication,
            ],
        );
        assert!(
            produce.succeeded(),
            "FlinkEos produce: {}\n{}",
            produce.reason(),
            produce.stderr
        );
        topics
    }

    /// `FlinkEos run` over these topics, with `extra` arguments.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            &self.input,
            &self.output,
            &self.prefix,
            &self.checkpoint_dir,
            "--count",
            &self.count,
        ];
        args.extend(extra);
        args
    }
}

/// Each partition of `topic` with its last stable offset (`lso`) and high watermark (`hw`),
/// as confluent-kafka reads them.
fn partition_ends(bootstrap: &str, topic: &str) -> Value {
    run_python_json(
        "transactional_client.py",
        &[bootstrap, "ends", topic],
        CLIENT_TIMEOUT,
    )
}

/// Prints the connector's ERROR lines, each cut to 240 characters.
fn print_errors(errors: &[String]) {
    for e in errors {
        eprintln!("  {}", e.chars().take(240).collect::<String>());
    }
}

/// What one broker made of the job.
#[derive(Debug)]
struct Outcome {
    /// Output records a read_committed consumer sees.
    committed: usize,
    /// Output records a read_uncommitted consumer sees (the aborted attempts' too).
    uncommitted: usize,
    /// The connector's ERROR lines over the job's runs.
    errors: Vec<String>,
    /// The report of the job's last run.
    report: Value,
}

/// The scenario of the module docs against `bootstrap`; asserts exactly-once and returns what
/// it saw.
fn scenario(job: &FlinkJob, bootstrap: &str, replication: &str, naming: &str) -> Outcome {
    let topics = JobTopics::produce(job, bootstrap, replication);
    let output = &topics.output;
    let common = topics.run_args(&["--naming", naming]);
    let mut first_args = common.clone();
    first_args.extend(["--fail-after", "20", "--halt-before-commit"]);
    let first = job.run(bootstrap, &first_args);
    let events = json_lines(&first);
    let saw = |what: &str| events.iter().any(|e| e["event"] == what);
    assert!(
        saw("fail") && saw("halt-before-commit") && first.status.and_then(|s| s.code()) == Some(3),
        "the first run should fail once, recover, then halt between a checkpoint and its \
         commit ({}):\n{}\n{}",
        first.reason(),
        first.stdout,
        first.stderr
    );

    // The halted checkpoint's transaction (subtask 0's at least) is pre-committed: flushed and
    // open on the broker, so the output's last stable offset lags its high watermark.
    let ends = partition_ends(bootstrap, output);
    let open = ends
        .as_object()
        .expect("ends")
        .values()
        .any(|e| e["lso"].as_i64() < e["hw"].as_i64());
    assert!(
        open,
        "after the halt a pre-committed transaction should be open: {ends}"
    );

    let mut second_args = common;
    second_args.push("--restore");
    let second = job.run(bootstrap, &second_args);
    let report = finished(
        &second,
        "the second run (restored from the first's checkpoint) should finish",
    );

    let (committed, uncommitted) = verify(bootstrap, output);
    let mut errors = error_lines(&first);
    errors.extend(error_lines(&second));
    Outcome {
        committed,
        uncommitted,
        errors,
        report,
    }
}

/// Reads `output` with confluent-kafka at both isolation levels and asserts exactly-once:
/// read_committed holds every input record transformed once, read_uncommitted nothing else
/// than copies of them, and no partition's last stable offset lags its high watermark.
/// Returns the two counts.
fn verify(bootstrap: &str, output: &str) -> (usize, usize) {
    let read = |isolation: &str| -> Vec<String> {
        let v = run_python_json(
            "transactional_client.py",
            &[bootstrap, "consume", output, "--isolation", isolation],
            CLIENT_TIMEOUT,
        );
        v["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let expected: Vec<String> = (0..COUNT).map(|i| format!("R-{i:05}")).collect();
    let mut committed = read("read_committed");
    committed.sort();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &committed {
        *seen.entry(v).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|v| !seen.contains_key(v.as_str()))
        .take(5)
        .collect();
    assert!(
        committed == expected,
        "read_committed should hold every input record transformed once: {} records, \
         duplicated e.g. {twice:?}, missing e.g. {missing:?}",
        committed.len()
    );
    let uncommitted = read("read_uncommitted");
    assert!(
        expected.iter().all(|v| uncommitted.iter().any(|u| u == v))
            && uncommitted.iter().all(|u| seen.contains_key(u.as_str())),
        "read_uncommitted should hold the committed records and only duplicates of them"
    );

    let ends = partition_ends(bootstrap, output);
    for (partition, e) in ends.as_object().expect("ends") {
        assert_eq!(
            e["lso"], e["hw"],
            "partition {partition}: a transaction is left open (LSO below HW): {ends}"
        );
    }

    (committed.len(), uncommitted.len())
}

fn describe(broker: &str, o: &Outcome) {
    eprintln!(
        "{broker}: read_committed {} (of {COUNT}), read_uncommitted {}, second run ended by {}, \
         connector errors {}",
        o.committed,
        o.uncommitted,
        o.report["ended"],
        o.errors.len()
    );
    print_errors(&o.errors);
}

/// The connector's ERROR lines that are not the known, harmless one: a re-commit of a
/// transaction that was committed already before the process died is answered
/// PRODUCER_FENCED (transactions version 2 bumped the epoch at the commit), which the
/// connector logs as possible data loss; Kafka 4.4 answers it the same way.
fn unexpected_errors(o: &Outcome) -> Vec<&String> {
    o.errors
        .iter()
        .filter(|e| !e.contains("Unable to commit transaction") || !e.contains("already fenced"))
        .collect()
}

/// The scenario with the Flink `line` on one gregor broker, then on one Kafka node: no
/// connector errors but the known one on either. `label` tells the line apart in the output.
fn the_same_job_on_gregor_and_on_kafka(line: &'static str, label: &str) {
    let Some(job) = FlinkJob::installed(line) else {
        return;
    };
    let broker = Broker::start();
    let on_gregor = scenario(&job, &broker.bootstrap(), "1", "incrementing");
    describe(&format!("gregor{label}"), &on_gregor);
    drop(broker);

    let kafka = KafkaPeer::start();
    let on_kafka = scenario(&job, &kafka.bootstrap(), "1", "incrementing");
    describe(
        &format!("Apache Kafka {}{label}", kafka.version()),
        &on_kafka,
    );

    assert!(
        unexpected_errors(&on_gregor).is_empty(),
        "the connector{label} logged errors against gregor: {:?}",
        on_gregor.errors
    );
    assert!(
        unexpected_errors(&on_kafka).is_empty(),
        "the connector{label} logged errors against Kafka: {:?}",
        on_kafka.errors
    );
}

#[test]
fn the_same_job_on_gregor_and_on_apache_kafka() {
    the_same_job_on_gregor_and_on_kafka(FLINK_2, "");
}

#[test]
fn flink_1_20_and_connector_3_on_gregor_and_on_apache_kafka() {
    the_same_job_on_gregor_and_on_kafka(FLINK_1, ", Flink 1.20");
}

#[test]
fn pooling_transaction_names_on_three_gregor_nodes() {
    let Some(job) = FlinkJob::installed(FLINK_2) else {
        return;
    };
    let cluster = Cluster::start(3, &[]);
    let o = scenario(&job, &cluster.bootstrap(), "3", "pooling");
    describe("three gregor nodes, POOLING", &o);
    assert!(
        unexpected_errors(&o).is_empty(),
        "the connector logged errors: {:?}",
        o.errors
    );
}

/// The job runs once, with no failure of its own, while `kill_and_restart` (given the output
/// topic) kills a broker with SIGKILL and starts it again under it (once transactional output
/// is being written). Topics get `replication` replicas.
/// Returns what the broker made of the job.
fn kill9_scenario(
    job: &FlinkJob,
    bootstrap: &str,
    replication: &str,
    kill_and_restart: impl FnOnce(&str),
) -> Outcome {
    let topics = JobTopics::produce(job, bootstrap, replication);
    let output = &topics.output;
    let args = topics.run_args(&["--sleep-ms", "20"]);
    let mut open_at_kill = false;
    let run = std::thread::scope(|scope| {
        let running = scope.spawn(|| job.run(bootstrap, &args));
        // Wait for the sink's first transactional records (the high watermark moves).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ends = partition_ends(bootstrap, output);
            let sum = |key: &str| -> i64 {
                ends.as_object()
                    .map(|o| o.values().filter_map(|e| e[key].as_i64()).sum())
                    .unwrap_or(0)
            };
            let written = sum("hw");
            // A transaction is open when the last stable offset lags the high watermark.
            open_at_kill = sum("lso") < written;
            if written >= 100 || std::time::Instant::now() > deadline || running.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        kill_and_restart(output);
        running.join().expect("the job's thread")
    });
    let report = finished(&run, "the job should outlast the broker's restart");
    let (committed, uncommitted) = verify(bootstrap, output);
    eprintln!("a transaction was open when the broker was killed: {open_at_kill}");
    Outcome {
        committed,
        uncommitted,
        errors: error_lines(&run),
        report,
    }
}

/// Prints what a kill9_scenario run made of the job, `what` saying which broker was killed.
fn describe_kill9(what: &str, o: &Outcome) {
    eprintln!(
        "{what} killed -9 mid-job: read_committed {} (of {COUNT}), read_uncommitted {}, Flink \
         restarts (highest attempt) {}, ended by {}, connector errors {}",
        o.committed,
        o.uncommitted,
        o.report["max_attempt"],
        o.report["ended"],
        o.errors.len()
    );
    print_errors(&o.errors);
}

#[test]
fn a_broker_killed_mid_job_on_gregor_and_on_apache_kafka() {
    let Some(job) = FlinkJob::installed(FLINK_2) else {
        return;
    };
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let on_gregor = kill9_scenario(&job, &bootstrap, "1", |_| {
        broker.kill9();
        std::thread::sleep(Duration::from_secs(1));
        broker.restart();
    });
    drop(broker);
    let mut kafka = KafkaPeer::start();
    let bootstrap = kafka.bootstrap();
    let on_kafka = kill9_scenario(&job, &bootstrap, "1", |_| kafka.kill9_and_restart());
    describe_kill9("gregor, broker", &on_gregor);
    describe_kill9("Apache Kafka, broker", &on_kafka);
}

#[test]
fn a_partition_leader_killed_mid_job_on_three_gregor_nodes() {
    let Some(job) = FlinkJob::installed(FLINK_2) else {
        return;
    };
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let mut killed = -1;
    let o = kill9_scenario(&job, &bootstrap, "3", |output| {
        let (_, partitions) = cluster_client::describe(&bootstrap, output);
        killed = partitions.get(&0).map(|p| p.leader).unwrap_or(1);
        cluster.kill9(killed);
        std::thread::sleep(Duration::from_secs(1));
        cluster.restart(killed);
    });
    describe_kill9(
        &format!("three gregor nodes, output partition 0's leader (node {killed})"),
        &o,
    );
}
