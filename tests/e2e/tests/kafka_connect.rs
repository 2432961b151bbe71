//! Kafka Connect and MirrorMaker 2 (Apache Kafka's own, from the toolbox) against gregor.
//!
//! - A distributed worker on gregor: it creates its compacted config/offset/status topics,
//!   joins its group (protocol type `connect`, incremental cooperative), a FileStreamSource
//!   copies a file's lines into a topic and a FileStreamSink copies them out, in order; the
//!   worker is restarted and resumes from its stored offsets without a duplicate; a second
//!   worker joins and takes a share of the work, then leaves and the first takes it back.
//! - Exactly-once source support (KIP-618): the source task's records and its offsets are
//!   written in one transaction; the worker is killed mid-copy, and a read_committed consumer
//!   still finds every line once.
//! - MirrorMaker 2 (`connect-mirror-maker.sh`) from a real Apache Kafka node to gregor, and
//!   from gregor to gregor: the topic, its records, its configs and a new partition mirrored,
//!   and a consumer group's committed offsets translated, so that the consumer moved to the
//!   target resumes where it stopped.
//!
//! Needs `scripts/toolbox` (Kafka's jars, Kafka Connect) and `cargo build -p gregor-cli`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::connect::{wait_until, ConnectWorker, JavaService};
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{run_command, Broker};
use serde_json::json;

/// How long data may take to flow through a connector.
const FLOW_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the `gregor` CLI (a Kafka client: it talks to gregor and to Apache Kafka alike):
/// its stdout, or its stderr when it fails.
fn try_gregor(args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(args);
    let out = run_command(cmd, None, Duration::from_secs(60));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "gregor {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// [`try_gregor`], failing the test when the command fails.
fn gregor(args: &[&str]) -> String {
    try_gregor(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Every record of `topic` (all partitions, from the beginning) as `(offset, value)`; stops
/// after 2 s without a record. A topic that does not exist (yet) has none.
fn read_topic(bootstrap: &str, topic: &str) -> Vec<(i64, String)> {
    try_gregor(&[
        "consume",
        "-b",
        bootstrap,
        topic,
        "--from-beginning",
        "--timeout-ms",
        "2000",
        "--format",
        "%o %v\\n",
    ])
    .unwrap_or_default()
    .lines()
    .filter_map(|l| {
        let (o, v) = l.split_once(' ')?;
        Some((o.parse().ok()?, v.to_string()))
    })
    .collect()
}

/// A topic's config value as `gregor configs describe` shows it (set on the topic); `None`
/// when it is not set or the topic does not exist (yet).
fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    try_gregor(&["configs", "describe", "-b", bootstrap, "--topic", topic])
        .ok()?
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(key)).then(|| cols.next().unwrap_or("").to_string())
        })
}

/// A topic's partition count as `gregor topics describe` shows it (`None`: no such topic).
fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let out = try_gregor(&["topics", "describe", "-b", bootstrap, topic]).ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "PartitionCount:")
        .nth(1)?
        .parse()
        .ok()
}

/// The workers (`worker_id`s) that run a connector or a task, from the REST API's statuses.
fn assigned_workers(worker: &ConnectWorker) -> std::collections::BTreeSet<String> {
    let statuses = worker.call("GET", "/connectors?expand=status", None);
    let mut ids = std::collections::BTreeSet::new();
    for (_, connector) in statuses.as_object().into_iter().flatten() {
        let status = &connector["status"];
        let tasks = status["tasks"].as_array().into_iter().flatten();
        for unit in std::iter::once(&status["connector"]).chain(tasks) {
            if let Some(id) = unit["worker_id"].as_str() {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

/// The lines of a file (empty when it does not exist yet).
fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn append_lines(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the source file");
    for l in lines {
        writeln!(f, "{l}").expect("append a line");
    }
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Waits until the sink's file holds `want` lines and checks they are exactly `expected`.
fn wait_for_sink(worker: &ConnectWorker, out: &Path, expected: &[String]) {
    wait_until(
        FLOW_TIMEOUT,
        "the sink's file",
        || (file_lines(out).len() >= expected.len()).then_some(()),
        || {
            format!(
                "{} of {} lines\n{}",
                file_lines(out).len(),
                expected.len(),
                worker.service().errors()
            )
        },
    );
    // Give a duplicate, if any, the time to show.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(file_lines(out), expected, "the sink's file");
}

/// FileStreamSource → topic → FileStreamSink through a distributed worker on gregor, in order:
/// a graceful restart resumes from the stored offsets without a duplicate; a second worker
/// joins, takes a share of the work, leaves, and the first takes it back.
#[test]
fn distributed_workers_copy_a_file_through_gregor_resume_after_a_restart_and_rebalance() {
    let started = Instant::now();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::Builder::new()
        .prefix("kafka-connect-")
        .tempdir()
        .expect("a temp dir");
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    let first = numbered("line", 0..200);
    append_lines(&input, &first);

    let props = ConnectWorker::properties(&bootstrap, "connect-cluster", &[]);
    let mut worker = ConnectWorker::start(dir.path(), "worker", &props);

    // The internal topics, created by the worker through the admin API, compacted.
    for topic in ["connect-configs", "connect-offsets", "connect-status"] {
        assert_eq!(
            topic_config(&bootstrap, topic, "cleanup.policy").as_deref(),
            Some("compact"),
            "{topic}"
        );
    }

    worker.put_connector("file-source", &file_source(&input));
    worker.put_connector("file-sink", &file_sink(&output));
    for name in ["file-source", "file-sink"] {
        worker.wait_running(name, 1, FLOW_TIMEOUT);
    }
    wait_for_sink(&worker, &output, &first);

    // A graceful restart: the source's file position and the sink's consumer offsets are
    // stored; lines appended while the worker is down are copied once, after the old ones.
    let stop = worker.restart();
    let second = numbered("more", 0..100);
    append_lines(&input, &second);
    for name in ["file-source", "file-sink"] {
        let status = worker.wait_running(name, 1, FLOW_TIMEOUT);
        assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
    }
    let mut all: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_for_sink(&worker, &output, &all);

    {
        // A second worker joins: incremental cooperative rebalancing (protocol `sessioned`)
        // revokes some of the first worker's connectors and tasks and gives them to it. Then
        // it leaves, and after `scheduled.rebalance.max.delay.ms` they come back.
        let mut second_worker = ConnectWorker::start(dir.path(), "worker-2", &props);
        let both = wait_until(
            FLOW_TIMEOUT,
            "connectors and tasks on both workers",
            || {
                let workers = assigned_workers(&worker);
                (workers.len() == 2).then_some(workers)
            },
            || format!("{:?}", assigned_workers(&worker)),
        );
        let third = numbered("third", 0..100);
        append_lines(&input, &third);
        all.extend(third);
        wait_for_sink(&worker, &output, &all);
        second_worker.stop();
        wait_until(
            FLOW_TIMEOUT,
            "everything back on the first worker",
            || (assigned_workers(&worker).len() == 1).then_some(()),
            || format!("{:?} (were on {both:?})", assigned_workers(&worker)),
        );
        for name in ["file-source", "file-sink"] {
            worker.wait_running(name, 1, FLOW_TIMEOUT);
        }
        let fourth = numbered("fourth", 0..100);
        append_lines(&input, &fourth);
        all.extend(fourth);
        wait_for_sink(&worker, &output, &all);
    }

    // The topic holds each line once, in order.
    let records = read_topic(&bootstrap, "lines");
    let values: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, all, "the topic's records");

    // KIP-875 on gregor: the sink's offsets (its consumer group's, through the admin API) are
    // read, moved back by 10 while it is stopped, and it copies those 10 lines again.
    let offsets = worker.call("GET", "/connectors/file-sink/offsets", None);
    let end = all.len() as i64;
    assert_eq!(
        offsets["offsets"][0]["offset"]["kafka_offset"],
        json!(end),
        "{offsets}"
    );
    worker.call("PUT", "/connectors/file-sink/stop", None);
    wait_until(
        FLOW_TIMEOUT,
        "the sink STOPPED",
        || {
            let status = worker.call("GET", "/connectors/file-sink/status", None);
            (status["connector"]["state"] == "STOPPED").then_some(())
        },
        || worker.service().errors(),
    );
    let moved = json!({"offsets": [{
        "partition": {"kafka_topic": "lines", "kafka_partition": 0},
        "offset": {"kafka_offset": end - 10},
    }]});
    worker.call("PATCH", "/connectors/file-sink/offsets", Some(&moved));
    worker.call("PUT", "/connectors/file-sink/resume", None);
    let again: Vec<String> = all[all.len() - 10..].to_vec();
    all.extend(again);
    wait_for_sink(&worker, &output, &all);

    worker.stop();
    eprintln!(
        "kafka_connect: {} s (graceful stop {} ms)",
        started.elapsed().as_secs(),
        stop.as_millis()
    );
}

/// A FileStreamSource connector's config: `file`'s lines into the topic `lines`.
fn file_source(file: &Path) -> serde_json::Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topic": "lines",
    })
}

/// A FileStreamSink connector's config: the topic `lines` into `file`.
fn file_sink(file: &Path) -> serde_json::Value {
    json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topics": "lines",
    })
}

/// KIP-618 on gregor: with `exactly.once.source.support=enabled` the worker's leader fences
/// the task's earlier producers (FenceProducers) and the source task writes each poll's records
/// and its offsets in one transaction. The worker is killed (SIGKILL) while it copies a burst of
/// lines; after the restart, a consumer at read_committed finds every line exactly once, in
/// order: what the killed task had sent without committing was aborted, and the new task went
/// on from the offsets committed with the records.
#[test]
fn exactly_once_source_connector_on_gregor_survives_a_kill() {
    let started = Instant::now();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::Builder::new()
        .prefix("kafka-connect-eos-")
        .tempdir()
        .expect("a temp dir");
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    let mut all = numbered("line", 0..200);
    append_lines(&input, &all);

    let props = ConnectWorker::properties(
        &bootstrap,
        "connect-cluster",
        &[("exactly.once.source.support", "enabled")],
    );
    let mut worker = ConnectWorker::start(dir.path(), "worker", &props);
    let mut source = file_source(&input);
    source["exactly.once.support"] = json!("required");
    source["transaction.boundary"] = json!("poll");
    worker.put_connector("file-source", &source);
    let mut sink = file_sink(&output);
    sink["consumer.override.isolation.level"] = json!("read_committed");
    worker.put_connector("file-sink", &sink);
    for name in ["file-source", "file-sink"] {
        worker.wait_running(name, 1, FLOW_TIMEOUT);
    }
    wait_for_sink(&worker, &output, &all);
    // The task's transactional id, `<group>-<connector>-<task>`, on gregor's coordinator.
    let transactions = gregor(&["transactions", "list", "-b", &bootstrap]);
    assert!(
        transactions.contains("connect-cluster-file-source-0"),
        "{transactions}"
    );

    // Lines keep coming (a live log being tailed) and the worker is killed while it copies
    // them: once the sink has seen some, before the writer is done.
    let live = numbered("live", 0..1000);
    all.extend(live.iter().cloned());
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for chunk in live.chunks(25) {
                append_lines(&input, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let copied = wait_until(
        FLOW_TIMEOUT,
        "the first live lines in the sink's file",
        || {
            let n = file_lines(&output).len();
            (n > 300).then_some(n)
        },
        || worker.service().errors(),
    );
    assert!(
        !writer.is_finished(),
        "the writer was done before the kill ({copied} lines copied): make it write longer"
    );
    worker.kill_and_restart();
    writer.join().expect("the writer thread");
    for name in ["file-source", "file-sink"] {
        worker.wait_running(name, 1, FLOW_TIMEOUT);
    }
    // The file sink is at-least-once (its consumer offsets may lag the kill): a new sink, in
    // a new group, reads the topic's committed records from the start. Its consumer uses the
    // consumer group protocol (KIP-848) for a change.
    let check = dir.path().join("check.txt");
    let mut check_sink = file_sink(&check);
    check_sink["consumer.override.isolation.level"] = json!("read_committed");
    check_sink["consumer.override.auto.offset.reset"] = json!("earliest");
    check_sink["consumer.override.group.protocol"] = json!("consumer");
    worker.put_connector("check-sink", &check_sink);
    worker.wait_running("check-sink", 1, FLOW_TIMEOUT);
    wait_for_sink(&worker, &check, &all);
    assert!(
        worker
            .service()
            .logs()
            .contains("group.protocol = consumer"),
        "the check sink's consumer did not take group.protocol=consumer"
    );

    // Each poll's records were committed in a transaction: the commit markers take offsets,
    // so the last record's offset is past the number of records.
    let last = read_topic(&bootstrap, "lines")
        .last()
        .map_or(0, |(o, _)| *o);
    assert!(
        last >= all.len() as i64,
        "no transaction markers between the records (last offset {last})"
    );
    worker.stop();
    eprintln!(
        "kafka_connect exactly-once: {} s (killed after {copied} of {} lines)",
        started.elapsed().as_secs(),
        all.len()
    );
}

/// A group's committed offsets per partition of `topic`, as `gregor groups describe` shows
/// them (none when the group does not exist yet).
fn committed(bootstrap: &str, group: &str, topic: &str) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = try_gregor(&["groups", "describe", "-b", bootstrap, group])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.first() != Some(&topic) {
                return None;
            }
            Some((cols.get(1)?.parse().ok()?, cols.get(2)?.parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Produces `lines` as `key:value` records (keys spread over the partitions).
fn produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let input: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("k{}:{l}\n", i % 7))
        .collect();
    let mut cmd = Command::new(gregor_bin());
    cmd.args(["produce", "-b", bootstrap, topic, "--key-separator", ":"]);
    let out = run_command(cmd, Some(input.as_bytes()), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "gregor produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Consumes `topic` as a member of `group` until 3 s pass without a record, committing on
/// exit; returns the values read. A partition starts at the group's committed offset, else at
/// the beginning (Kafka's `auto.offset.reset=earliest`).
fn consume_as_group(bootstrap: &str, topic: &str, group: &str) -> Vec<String> {
    gregor(&[
        "consume",
        "-b",
        bootstrap,
        topic,
        "--group",
        group,
        "--from-beginning",
        "--timeout-ms",
        "3000",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// MirrorMaker 2, dedicated mode (`connect-mirror-maker.sh mm2.properties`), from the cluster at
/// `source` to gregor at `target`: the topic (as `source.orders`), its records and its
/// `retention.ms` are mirrored, then a config change and a new partition; and the group
/// `billing`'s committed offsets are translated, so that the consumer moved to gregor reads
/// exactly the records it had not read on the source.
///
/// With `acls`, both clusters run an authorizer (MirrorMaker, like the CLI, is the super user
/// `User:ANONYMOUS`) and a READ ACL on the source topic must reach the mirrored one. With
/// `exactly_once`, MirrorMaker writes to gregor with exactly-once source support (KIP-618 in
/// dedicated mode: `target.exactly.once.source.support` and the internal REST server): every
/// task's records and offsets go in transactions.
fn mirror_maker_2(source: &str, target: &str, label: &str, acls: bool, exactly_once: bool) {
    let started = Instant::now();
    let (source, target) = (source.to_string(), target.to_string());
    let dir = tempfile::Builder::new()
        .prefix("mirror-maker-")
        .tempdir()
        .expect("a temp dir");

    gregor(&[
        "topics",
        "create",
        "-b",
        &source,
        "orders",
        "--partitions",
        "2",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=7200000",
    ]);
    let first = numbered("order", 0..100);
    produce(&source, "orders", &first);
    // The group reads everything there is on the source and commits.
    assert_eq!(
        sorted(consume_as_group(&source, "orders", "billing")),
        sorted(first.clone())
    );
    let on_source = committed(&source, "billing", "orders");
    assert_eq!(
        on_source.iter().map(|(_, o)| o).sum::<i64>(),
        100,
        "{on_source:?}"
    );

    if acls {
        gregor(&[
            "acls",
            "add",
            "-b",
            &source,
            "--topic",
            "orders",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
        ]);
    }

    let props = format!(
        "clusters = source, target
source.bootstrap.servers = {source}
target.bootstrap.servers = {target}
source->target.enabled = true
source->target.topics = orders
source->target.groups = billing
target->source.enabled = false
target->source.emit.heartbeats.enabled = false
replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset-syncs.topic.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
config.storage.replication.factor = 1
offset.storage.partitions = 5
status.storage.partitions = 2
target.offset.flush.interval.ms = 1000
refresh.topics.interval.seconds = 2
refresh.groups.interval.seconds = 2
sync.topic.configs.interval.seconds = 2
sync.topic.acls.interval.seconds = 2
emit.checkpoints.interval.seconds = 1
emit.heartbeats.interval.seconds = 1
sync.group.offsets.enabled = true
sync.group.offsets.interval.seconds = 1
offset.lag.max = 0
"
    );
    let mut props = props;
    if exactly_once {
        let rest = gregor_e2e::ports::reserve().port();
        props.push_str(&format!(
            "target.exactly.once.source.support = enabled
dedicated.mode.enable.internal.rest = true
listeners = http://127.0.0.1:{rest}
"
        ));
    }
    let mm2_props = dir.path().join("mm2.properties");
    std::fs::write(&mm2_props, props).expect("write mm2.properties");
    let mut mm2 = JavaService::start(
        &Toolbox::installed(),
        "connect-mirror-maker.sh",
        &[mm2_props.display().to_string()],
        &dir.path().join("mm2.log"),
    );

    // The records, under the default replication policy's name.
    let mirrored = wait_until(
        Duration::from_secs(60),
        "source.orders on gregor",
        || {
            let recs = read_topic(&target, "source.orders");
            (recs.len() >= first.len()).then_some(recs)
        },
        || mm2.errors(),
    );
    assert_eq!(
        sorted(mirrored.into_iter().map(|(_, v)| v).collect()),
        sorted(first.clone())
    );
    // The topic's config, synced through DescribeConfigs and IncrementalAlterConfigs.
    wait_until(
        FLOW_TIMEOUT,
        "retention.ms of source.orders on gregor",
        || {
            (topic_config(&target, "source.orders", "retention.ms").as_deref() == Some("7200000"))
                .then_some(())
        },
        || {
            format!(
                "{:?}\n{}",
                topic_config(&target, "source.orders", "retention.ms"),
                mm2.errors()
            )
        },
    );
    // The group's offsets, translated through the offset syncs and checkpoints.
    wait_until(
        FLOW_TIMEOUT,
        "billing's offsets on gregor",
        || (committed(&target, "billing", "source.orders") == on_source).then_some(()),
        || {
            format!(
                "{:?} (on the source {on_source:?})\n{}",
                committed(&target, "billing", "source.orders"),
                mm2.errors()
            )
        },
    );

    // Changes on the source follow: a config (IncrementalAlterConfigs on gregor, which also
    // removes the keys that are defaults on the source) and a partition (CreatePartitions).
    gregor(&[
        "configs",
        "alter",
        "-b",
        &source,
        "--topic",
        "orders",
        "--set",
        "max.message.bytes=2000000",
    ]);
    gregor(&[
        "topics",
        "alter",
        "-b",
        &source,
        "orders",
        "--partitions",
        "3",
    ]);
    wait_until(
        FLOW_TIMEOUT,
        "max.message.bytes and a third partition of source.orders on gregor",
        || {
            (topic_config(&target, "source.orders", "max.message.bytes").as_deref()
                == Some("2000000")
                && partition_count(&target, "source.orders") == Some(3))
            .then_some(())
        },
        || {
            format!(
                "max.message.bytes {:?}, partitions {:?}\n{}",
                topic_config(&target, "source.orders", "max.message.bytes"),
                partition_count(&target, "source.orders"),
                mm2.errors()
            )
        },
    );

    if acls {
        // The topic's ACLs, read with DescribeAcls on the source and created with CreateAcls
        // on the target (MirrorMaker copies ALLOW ACLs of topics, ALL as READ).
        wait_until(
            FLOW_TIMEOUT,
            "alice's READ ACL on source.orders",
            || {
                let listed =
                    try_gregor(&["acls", "list", "-b", &target, "--topic", "source.orders"])
                        .unwrap_or_default();
                (listed.contains("User:alice") && listed.to_uppercase().contains("READ"))
                    .then_some(())
            },
            || {
                format!(
                    "{:?}\n{}",
                    try_gregor(&["acls", "list", "-b", &target]),
                    mm2.errors()
                )
            },
        );
    }

    // More records while MirrorMaker runs; then the consumer moves to gregor.
    let later = numbered("later", 0..50);
    produce(&source, "orders", &later);
    wait_until(
        FLOW_TIMEOUT,
        "the later records on gregor",
        || (read_topic(&target, "source.orders").len() >= first.len() + later.len()).then_some(()),
        || mm2.errors(),
    );
    if exactly_once {
        // The mirroring task's transactional id, `<group>-<connector>-<task>`, on gregor.
        let transactions = gregor(&["transactions", "list", "-b", &target]);
        assert!(
            transactions.contains("source-mm2-MirrorSourceConnector-0"),
            "{transactions}"
        );
    }
    let stop = mm2.stop();
    assert_eq!(
        sorted(consume_as_group(&target, "source.orders", "billing")),
        sorted(later),
        "the moved consumer reads exactly what it had not read"
    );
    eprintln!(
        "mirror_maker_2 {label}: {} s (graceful stop {} ms)",
        started.elapsed().as_secs(),
        stop.as_millis()
    );
}

/// MirrorMaker 2 from a real Apache Kafka node, exactly-once: how a team moves its data to
/// gregor.
#[test]
fn mirror_maker_2_from_apache_kafka_to_gregor() {
    let kafka = KafkaPeer::start();
    let broker = Broker::start();
    mirror_maker_2(
        &kafka.bootstrap(),
        &broker.bootstrap(),
        "kafka->gregor",
        false,
        true,
    );
}

/// MirrorMaker 2 between two gregor nodes: gregor as the source too (the offset-syncs topic,
/// the consumer groups, the topic configs and the ACLs are read from gregor), both with the
/// standard authorizer.
#[test]
fn mirror_maker_2_from_gregor_to_gregor() {
    let authorizer = [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:ANONYMOUS",
    ];
    let source = Broker::start_with(&authorizer);
    let target = Broker::start_with(&authorizer);
    mirror_maker_2(
        &source.bootstrap(),
        &target.bootstrap(),
        "gregor->gregor",
        true,
        false,
    );
}
