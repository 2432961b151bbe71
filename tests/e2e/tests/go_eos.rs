//! Issue 12's exactly-once scenarios with the Go clients, franz-go and sarama: the programs
//! `eos-franz-go` and `eos-sarama` of `tests/interop/go` (built by `scripts/toolbox`), one
//! subcommand per scenario, each printing a JSON report. Every test runs for both clients:
//!
//! - `idempotent_producer_across_a_kill9_*`: 6000 records to one partition from the client's
//!   idempotent producer (acks=all); the broker is killed with kill -9 and restarted a third of
//!   the way through; the client retries through it and the log holds every record exactly
//!   once, in produce order.
//! - `idempotent_producer_across_a_leader_kill_*`: the same on three nodes, the partition's
//!   leader killed with kill -9 (and left down): the new leader rebuilt the producer's state
//!   from what it replicated, and the log holds every record once, in order.
//! - `consume_transform_produce_*`: the input's offsets sent in each transaction
//!   (franz-go's `GroupTransactSession`; sarama's `AddOffsetsToTxn`), every third transaction
//!   and the last one aborted, the input read again from the committed offsets after each
//!   abort: read_committed sees the outputs of the committed inputs exactly once,
//!   read_uncommitted every data record written, and the group's offsets are those of the last
//!   committed transaction. `..._franz_go_kip848` runs the group on KIP-848's consumer
//!   protocol (franz-go's `ServerSideBalancer`; sarama has no client for it).
//! - `consume_transform_produce_across_a_kill9_*`: the same loop over 600 inputs, each
//!   transaction held open 100 ms after its writes, with a kill -9 and restart of the broker
//!   in the sixth (one to commit): the client rides it out and the same claims hold.
//! - `consume_transform_produce_across_a_coordinator_kill_*`: the loop on three nodes, the
//!   node coordinating its transactional id killed with kill -9 (and left down) in the sixth
//!   transaction: the coordinator moves, the client follows, the same claims hold.
//! - `two_loops_share_the_input_franz_go*`: two franz-go loops with their own transactional
//!   ids in one group (classic, and KIP-848), the second joining mid-way: between them every
//!   input is committed exactly once (the classic case also on Kafka, in the comparing test).
//! - `a_second_producer_fences_the_first_*`: producer B with A's transactional id fences A; A's
//!   next write and its commit fail as fenced; only B's records are committed and nothing A
//!   sent after the fence is in the log.
//! - `a_broker_killed_mid_transaction_*`: three transactions open when the broker is killed
//!   with kill -9: one whose producer lives on and commits after the restart (all or nothing
//!   becomes visible), one whose producer is gone and whose id a new producer takes up
//!   (InitProducerId aborts it), one whose producer is gone and whose timeout the coordinator
//!   enforces; read_committed then reaches the end of every topic (the last stable offset
//!   moved on) and sees no transaction by halves.
//! - `the_transaction_topic_asked_for_first_*`: a Metadata request for the missing
//!   `__transaction_state` with auto-creation allowed (what sarama sends while it waits for a
//!   transaction coordinator) leaves the topic to the transaction coordinator, which creates
//!   it with its 50 partitions; a transactional producer then commits.
//! - `consume_transform_produce_and_fencing_match_kafka`: the consume-transform-produce (both
//!   group protocols for franz-go) and fencing scenarios with both clients against Apache Kafka 4.4 (the toolbox's jars) and
//!   against gregor: the same checks pass on both, and the clients report the same errors;
//!   and a transaction whose live producer outlasts its timeout: both brokers abort it, the
//!   clients see the same errors, and the same producer's next transaction commits (franz-go)
//!   or fails for good (sarama) on both.
//!
//! Without the toolbox the tests fail saying to run `scripts/toolbox`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_timeout;
use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::{
    bootstrap_without, create_topic, describe, new_leader_after_kill, replicated_topic,
    wait_for_brokers,
};
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{run_program, Toolbox};
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// How long one synchronous run of a program may take (its own -timeout is shorter).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The program's own deadline.
const PROGRAM_TIMEOUT: &str = "60s";

#[derive(Clone, Copy, Debug)]
enum Client {
    FranzGo,
    Sarama,
}

impl Client {
    fn program(self) -> &'static str {
        match self {
            Client::FranzGo => "eos-franz-go",
            Client::Sarama => "eos-sarama",
        }
    }

    fn path(self) -> PathBuf {
        Toolbox::installed().go_program(self.program())
    }

    /// `program scenario -bootstrap-server <bootstrap> -timeout 60s args...`.
    fn args(scenario: &str, bootstrap: &str, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            scenario.to_string(),
            "-bootstrap-server".to_string(),
            bootstrap.to_string(),
            "-timeout".to_string(),
            PROGRAM_TIMEOUT.to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Runs one scenario to its end and returns its report, which may say it failed.
    fn try_run(self, scenario: &str, bootstrap: &str, args: &[&str]) -> (Value, String) {
        let all = Client::args(scenario, bootstrap, args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let run = run_program(&self.path(), self.program(), &all, None, RUN_TIMEOUT);
        let report = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{}: no JSON report ({e})\n{}",
                self.program(),
                run.transcript()
            )
        });
        (report, run.transcript())
    }

    /// Runs one scenario and returns its report; panics when the program reports a failure.
    fn run(self, scenario: &str, bootstrap: &str, args: &[&str]) -> Value {
        let (report, transcript) = self.try_run(scenario, bootstrap, args);
        assert!(
            report["ok"] == true,
            "{} {scenario} failed: {}\n{transcript}",
            self.program(),
            report["error"]
        );
        report
    }

    /// Starts one scenario in the background, its report going to `out`.
    fn spawn(self, scenario: &str, bootstrap: &str, args: &[&str], out: &Path) -> Child {
        Command::new(self.path())
            .args(Client::args(scenario, bootstrap, args))
            .stdin(Stdio::null())
            .stdout(File::create(out).expect("create the report file"))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program()))
    }

    /// Waits for a background run and returns its report; panics when it reports a failure.
    fn finish(self, mut child: Child, out: &Path) -> Value {
        let status = wait_timeout(&mut child, RUN_TIMEOUT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stdout = std::fs::read_to_string(out).unwrap_or_default();
        let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{}: no JSON report ({e}; exit {status:?}): {stdout}",
                self.program()
            )
        });
        assert!(
            report["ok"] == true,
            "{} {} failed: {}\n{report}",
            self.program(),
            report["scenario"],
            report["error"]
        );
        report
    }

    /// Reads `topic` (every partition, up to an end record the program writes first) with the
    /// isolation level; the report's `values` per partition, and `group_offsets` when a group
    /// is named.
    fn read(
        self,
        bootstrap: &str,
        topic: &str,
        partitions: usize,
        isolation: &str,
        group: Option<&str>,
    ) -> Value {
        let partitions = partitions.to_string();
        let mut args = vec![
            "-topic",
            topic,
            "-partitions",
            partitions.as_str(),
            "-isolation",
            isolation,
        ];
        if let Some(g) = group {
            args.extend(["-group", g]);
        }
        self.run("read", bootstrap, &args)
    }

    /// All the values of one-partition `topic` up to the end record, read with the isolation.
    fn read_all(self, bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
        all_values(&self.read(bootstrap, topic, 1, isolation, None))
    }
}

/// The values of a read report, per partition.
fn values(read: &Value) -> BTreeMap<String, Vec<String>> {
    serde_json::from_value(read["values"].clone()).expect("values: partition -> [value]")
}

/// All the values of a read report.
fn all_values(read: &Value) -> Vec<String> {
    values(read).into_values().flatten().collect()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn offsets(v: &Value) -> BTreeMap<String, i64> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// `prefix-0 .. prefix-(n-1)`.
fn sequence(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A temporary directory for progress and report files.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("go-eos-")
        .tempdir()
        .expect("a temporary directory")
}

/// Waits until `pred` holds of the progress file's contents.
fn wait_progress(path: &Path, what: &str, pred: impl Fn(&str) -> bool, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if pred(now.trim()) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the program exited ({status}) before {what}; progress {now:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no {what} in 60 s; progress {now:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// --- the idempotent producer across a kill -9 ----------------------------------------------------

const IDEMPOTENT_RECORDS: usize = 6000;

/// Starts the idempotent producer of `IDEMPOTENT_RECORDS` values "v-<i>" to `topic`'s
/// partition 0 and waits until a third of them are acknowledged; returns the program, its
/// progress file and its report file (in `dir`).
fn spawn_idempotent(
    client: Client,
    bootstrap: &str,
    topic: &str,
    dir: &Path,
) -> (Child, PathBuf, PathBuf) {
    let progress = dir.join("progress");
    let out = dir.join("report.json");
    let records = IDEMPOTENT_RECORDS.to_string();
    let progress_arg = progress.display().to_string();
    let mut producer = client.spawn(
        "idempotent",
        bootstrap,
        &[
            "-topic",
            topic,
            "-records",
            &records,
            "-prefix",
            "v",
            "-progress",
            &progress_arg,
        ],
        &out,
    );
    wait_progress(
        &progress,
        "a third of the records acknowledged",
        |s| {
            s.parse::<usize>()
                .is_ok_and(|n| n >= IDEMPOTENT_RECORDS / 3)
        },
        &mut producer,
    );
    (producer, progress, out)
}

/// Waits for the idempotent producer's end, and checks that it had every record acknowledged
/// and that what `read` then gets from the log holds each of them once, in produce order;
/// `what` says what the producer went through.
fn finish_idempotent(
    client: Client,
    producer: Child,
    out: &Path,
    read: impl FnOnce() -> Vec<String>,
    what: &str,
) {
    let report = client.finish(producer, out);
    assert_eq!(
        report["produced"].as_u64(),
        Some(IDEMPOTENT_RECORDS as u64),
        "{report}"
    );
    let got = read();
    let want = sequence("v", IDEMPOTENT_RECORDS);
    if got != want {
        let distinct: BTreeSet<&String> = got.iter().collect();
        let missing = want.iter().filter(|v| !distinct.contains(v)).count();
        panic!(
            "{client:?}: {what}, the log holds {} records ({} distinct, {missing} missing, {} \
             duplicates) where {} were produced once each in order; the first difference at \
             index {:?}",
            got.len(),
            distinct.len(),
            got.len() - distinct.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
}

fn idempotent_producer_across_a_kill9(client: Client) {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    client.run(
        "create",
        &bootstrap,
        &["-topic", "idem", "-partitions", "1"],
    );
    let dir = scratch();
    let (producer, progress, out) = spawn_idempotent(client, &bootstrap, "idem", dir.path());
    broker.kill9();
    let acked_at_kill: usize = std::fs::read_to_string(&progress)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        acked_at_kill < IDEMPOTENT_RECORDS,
        "the producer had finished before the kill: nothing was tested"
    );
    thread::sleep(Duration::from_millis(500));
    broker.restart();
    finish_idempotent(
        client,
        producer,
        &out,
        || client.read_all(&bootstrap, "idem", "read_uncommitted"),
        &format!("killed at {acked_at_kill} acknowledged"),
    );
}

#[test]
fn idempotent_producer_across_a_kill9_franz_go() {
    idempotent_producer_across_a_kill9(Client::FranzGo);
}

#[test]
fn idempotent_producer_across_a_kill9_sarama() {
    idempotent_producer_across_a_kill9(Client::Sarama);
}

/// The same on three nodes: one partition on all three (`min.insync.replicas=2`), its leader
/// killed with kill -9 (and left down) a third of the way through; the client moves to the
/// new leader, which rebuilt the producer's state from the batches it replicated.
fn idempotent_producer_across_a_leader_kill(client: Client) {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("go-idem-failover");
    replicated_topic(&cluster, &topic);
    let dir = scratch();
    let (producer, _, out) = spawn_idempotent(client, &bootstrap, &topic, dir.path());
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts[&0].leader;
    assert_eq!(parts[&0].isr.len(), 3, "a full ISR before the kill");
    cluster.kill9(leader);
    finish_idempotent(
        client,
        producer,
        &out,
        || {
            let (live, _) = new_leader_after_kill(&cluster, &topic, leader);
            client.read_all(&live, &topic, "read_uncommitted")
        },
        "after the leader's kill",
    );
}

#[test]
fn idempotent_producer_across_a_leader_kill_franz_go() {
    idempotent_producer_across_a_leader_kill(Client::FranzGo);
}

#[test]
fn idempotent_producer_across_a_leader_kill_sarama() {
    idempotent_producer_across_a_leader_kill(Client::Sarama);
}

// --- consume-transform-produce ---------------------------------------------------------------------

const CTP_RECORDS: usize = 300;
const CTP_PARTITIONS: usize = 3;

/// What one consume-transform-produce run reported, and what the broker then served.
struct CtpOutcome {
    report: Value,
    committed_read: Value,
    uncommitted_read: Value,
}

/// The consumer group protocols: Kafka's classic one, and KIP-848's (`consumer`), which only
/// franz-go speaks (its `ServerSideBalancer`).
const CLASSIC: &str = "classic";
const KIP848: &str = "consumer";

/// The ctp subcommand's arguments for a run named `tag` over `records` inputs, its group on
/// `protocol`.
fn ctp_args(tag: &str, records: usize, protocol: &str) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, value) in [
        ("-input", format!("ctp-in-{tag}")),
        ("-topic", format!("ctp-out-{tag}")),
        ("-group", format!("ctp-group-{tag}")),
        ("-txn-id", format!("ctp-txn-{tag}")),
        ("-records", records.to_string()),
        ("-partitions", CTP_PARTITIONS.to_string()),
        ("-batch", "40".to_string()),
        ("-group-protocol", protocol.to_string()),
    ] {
        args.push(flag.to_string());
        args.push(value);
    }
    args
}

fn run_ctp(client: Client, bootstrap: &str, tag: &str, protocol: &str) -> CtpOutcome {
    let args = ctp_args(tag, CTP_RECORDS, protocol);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = client.run("ctp", bootstrap, &args);
    read_ctp(client, bootstrap, tag, report)
}

/// Reads a ctp run's output both ways, with the group's offsets.
fn read_ctp(client: Client, bootstrap: &str, tag: &str, report: Value) -> CtpOutcome {
    let (output, group) = (format!("ctp-out-{tag}"), format!("ctp-group-{tag}"));
    let committed_read = client.read(
        bootstrap,
        &output,
        CTP_PARTITIONS,
        "read_committed",
        Some(&group),
    );
    let uncommitted_read =
        client.read(bootstrap, &output, CTP_PARTITIONS, "read_uncommitted", None);
    CtpOutcome {
        report,
        committed_read,
        uncommitted_read,
    }
}

/// The scenario's claims, as a list of failures (empty when all hold), for a run over
/// `records` inputs.
fn check_ctp(o: &CtpOutcome, records: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let r = &o.report;
    let (commits, aborts) = (
        r["commits"].as_u64().unwrap_or(0),
        r["aborts"].as_u64().unwrap_or(0),
    );
    if commits < 2 || aborts < 2 {
        failures.push(format!(
            "{commits} commits and {aborts} aborts: too few of each to test"
        ));
    }
    let inputs = strings(&r["committed_inputs"]);
    let distinct: BTreeSet<&String> = inputs.iter().collect();
    if distinct.len() != inputs.len() {
        failures.push(format!(
            "{} inputs committed, {} distinct: an input was committed twice",
            inputs.len(),
            distinct.len()
        ));
    }
    if inputs.len() >= records {
        failures.push("every input was committed: the last transaction was to abort".to_string());
    }
    // read_committed: each committed input's output exactly once, each partition in input order.
    let mut want: Vec<String> = inputs.iter().map(|i| format!("out-{i}")).collect();
    want.sort();
    let committed = all_values(&o.committed_read);
    let mut got = committed.clone();
    got.sort();
    if got != want {
        failures.push(format!(
            "read_committed saw {} records, want the {} outputs of the committed inputs once each",
            got.len(),
            want.len()
        ));
    }
    for (p, vs) in values(&o.committed_read) {
        let idx: Vec<usize> = vs
            .iter()
            .filter_map(|v| v.rsplit('-').next().and_then(|n| n.parse().ok()))
            .collect();
        if idx.windows(2).any(|w| w[0] >= w[1]) {
            failures.push(format!(
                "read_committed partition {p} is out of input order"
            ));
        }
    }
    // read_uncommitted: every data record written, aborted ones too.
    let uncommitted = all_values(&o.uncommitted_read);
    if uncommitted.len() as u64 != r["produced"].as_u64().unwrap_or(0) {
        failures.push(format!(
            "read_uncommitted saw {} records, the program wrote {}",
            uncommitted.len(),
            r["produced"]
        ));
    }
    let seen: BTreeSet<&String> = uncommitted.iter().collect();
    if committed.iter().any(|v| !seen.contains(v)) {
        failures.push("read_uncommitted lacks a committed record".to_string());
    }
    // The group's offsets: the last committed transaction's, not the aborted last one's.
    let group = offsets(&o.committed_read["group_offsets"]);
    let last = offsets(&r["offsets"]);
    if group != last {
        failures.push(format!(
            "the group's committed offsets are {group:?}, the last committed transaction sent {last:?}"
        ));
    }
    let sum: i64 = group.values().sum();
    if sum != inputs.len() as i64 {
        failures.push(format!(
            "the group's offsets add up to {sum}, {} inputs were committed",
            inputs.len()
        ));
    }
    failures
}

/// Asserts the scenario's claims of a run over `records` inputs, `what` saying how it ran.
fn assert_ctp(client: Client, protocol: &str, what: &str, o: &CtpOutcome, records: usize) {
    let failures = check_ctp(o, records);
    assert!(
        failures.is_empty(),
        "{client:?} consume-transform-produce ({protocol} group) {what}: {failures:#?}\nreport: {}",
        o.report
    );
}

fn consume_transform_produce(client: Client, protocol: &str) {
    let broker = Broker::start();
    let o = run_ctp(client, &broker.bootstrap(), "gregor", protocol);
    assert_ctp(client, protocol, "on gregor", &o, CTP_RECORDS);
}

#[test]
fn consume_transform_produce_franz_go() {
    consume_transform_produce(Client::FranzGo, CLASSIC);
}

#[test]
fn consume_transform_produce_franz_go_kip848() {
    consume_transform_produce(Client::FranzGo, KIP848);
}

#[test]
fn consume_transform_produce_sarama() {
    consume_transform_produce(Client::Sarama, CLASSIC);
}

const CTP_KILL_RECORDS: usize = 600;

/// Starts the ctp loop named `tag` over `CTP_KILL_RECORDS` inputs, each transaction held open
/// 100 ms after its writes, and waits until five transactions ended; returns the program and
/// its report file (in `dir`).
fn spawn_paced_ctp(
    client: Client,
    bootstrap: &str,
    tag: &str,
    protocol: &str,
    dir: &Path,
) -> (Child, PathBuf) {
    let progress = dir.join("progress");
    let out = dir.join("report.json");
    let mut args = ctp_args(tag, CTP_KILL_RECORDS, protocol);
    args.extend(["-pace".to_string(), "100ms".to_string()]);
    args.extend(["-progress".to_string(), progress.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = client.spawn("ctp", bootstrap, &args, &out);
    wait_progress(
        &progress,
        "five transactions ended",
        |s| s.parse::<usize>().is_ok_and(|n| n >= 5),
        &mut child,
    );
    (child, out)
}

/// Each transaction held open 100 ms after its writes; the broker is killed with kill -9 in
/// the sixth (one to commit) and restarted: the client rides it out and the same claims hold.
fn consume_transform_produce_across_a_kill9(client: Client, protocol: &str) {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = scratch();
    let (child, out) = spawn_paced_ctp(client, &bootstrap, "kill", protocol, dir.path());
    thread::sleep(Duration::from_millis(30));
    broker.kill9();
    thread::sleep(Duration::from_millis(300));
    broker.restart();
    let report = client.finish(child, &out);
    let o = read_ctp(client, &bootstrap, "kill", report);
    assert_ctp(client, protocol, "across a kill -9", &o, CTP_KILL_RECORDS);
}

#[test]
fn consume_transform_produce_across_a_kill9_franz_go() {
    consume_transform_produce_across_a_kill9(Client::FranzGo, CLASSIC);
}

#[test]
fn consume_transform_produce_across_a_kill9_franz_go_kip848() {
    consume_transform_produce_across_a_kill9(Client::FranzGo, KIP848);
}

#[test]
fn consume_transform_produce_across_a_kill9_sarama() {
    consume_transform_produce_across_a_kill9(Client::Sarama, CLASSIC);
}

/// `__transaction_state`'s partition for a transactional id: abs(Java's `String.hashCode`)
/// modulo its 50 partitions, as Kafka's `TransactionStateManager.partitionFor`.
fn transaction_state_partition(id: &str) -> i32 {
    let hash = id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    // Kafka's `Utils.abs` takes i32::MIN to 0.
    hash.checked_abs().unwrap_or(0) % 50
}

/// The loop on three nodes (every topic on all three), the node coordinating its
/// transactional id killed with kill -9 (and left down) in the sixth transaction: the
/// coordinator moves to the new leader of the id's `__transaction_state` partition, the client
/// follows, and the same claims hold.
fn consume_transform_produce_across_a_coordinator_kill(client: Client, protocol: &str) {
    let mut cluster = Cluster::start(3, &["group.initial.rebalance.delay.ms=0"]);
    let bootstrap = cluster.bootstrap();
    wait_for_brokers(&cluster, 3);
    let tag = "cluster";
    for topic in [format!("ctp-in-{tag}"), format!("ctp-out-{tag}")] {
        create_topic(
            &bootstrap,
            &topic,
            CTP_PARTITIONS as i32,
            3,
            &["min.insync.replicas=2"],
        );
    }
    let dir = scratch();
    let (child, out) = spawn_paced_ctp(client, &bootstrap, tag, protocol, dir.path());
    let partition = transaction_state_partition(&format!("ctp-txn-{tag}"));
    let (_, parts) = describe(&bootstrap, "__transaction_state");
    let coordinator = parts[&partition].leader;
    assert!(
        coordinator > 0,
        "no coordinator for partition {partition}: {parts:?}"
    );
    cluster.kill9(coordinator);
    let report = client.finish(child, &out);
    let live = bootstrap_without(&cluster, coordinator);
    let o = read_ctp(client, &live, tag, report);
    assert_ctp(
        client,
        protocol,
        "across the coordinator's kill -9",
        &o,
        CTP_KILL_RECORDS,
    );
}

#[test]
fn consume_transform_produce_across_a_coordinator_kill_franz_go() {
    consume_transform_produce_across_a_coordinator_kill(Client::FranzGo, CLASSIC);
}

#[test]
fn consume_transform_produce_across_a_coordinator_kill_sarama() {
    consume_transform_produce_across_a_coordinator_kill(Client::Sarama, CLASSIC);
}

/// Two franz-go loops in one group, with their own transactional ids, share the input: the
/// second joins after the first's third transaction (a rebalance: the first aborts what it
/// cannot commit and gives up partitions), each stops once no input came for a while. Between
/// them every input is committed exactly once: the group's generations (classic) or member
/// epochs (KIP-848) fence a member's offsets after it lost a partition, and a new owner's
/// OffsetFetch waits for a pending transaction's offsets (KIP-447's require_stable).
fn two_loops_share_the_input(bootstrap: &str, protocol: &str, on: &str) {
    let client = Client::FranzGo;
    let tag = format!("shared-{protocol}");
    let dir = scratch();
    let progress = dir.path().join("progress");
    // Long enough for a rebalance on a loaded machine (a KIP-848 member learns a new
    // assignment at its next heartbeat: the gregor tests run them 1 s apart).
    let idle = "6s";
    let base = ctp_args(&tag, CTP_KILL_RECORDS, protocol);
    let run = |txn_id: &str, extra: &[&str], out: &Path| {
        let mut args = base.clone();
        args.extend(
            ["-txn-id", txn_id, "-pace", "50ms", "-idle", idle]
                .iter()
                .chain(extra)
                .map(|s| s.to_string()),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client.spawn("ctp", bootstrap, &args, out)
    };
    let progress_arg = progress.display().to_string();
    let (out_a, out_b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let mut first = run("shared-a", &["-progress", &progress_arg], &out_a);
    wait_progress(
        &progress,
        "three transactions ended",
        |s| s.parse::<usize>().is_ok_and(|n| n >= 3),
        &mut first,
    );
    let second = run("shared-b", &["-seed=false"], &out_b);
    let (a, b) = (client.finish(first, &out_a), client.finish(second, &out_b));

    let mut inputs = strings(&a["committed_inputs"]);
    inputs.extend(strings(&b["committed_inputs"]));
    let distinct: BTreeSet<&String> = inputs.iter().collect();
    assert_eq!(
        (inputs.len(), distinct.len()),
        (CTP_KILL_RECORDS, CTP_KILL_RECORDS),
        "{on}, {protocol}: every input committed once between the two loops\nA: {a}\nB: {b}"
    );
    let o = read_ctp(client, bootstrap, &tag, a.clone());
    let mut got = all_values(&o.committed_read);
    got.sort();
    let mut want: Vec<String> = (0..CTP_KILL_RECORDS)
        .map(|i| format!("out-in-{i}"))
        .collect();
    want.sort();
    assert_eq!(
        got, want,
        "{on}, {protocol}: read_committed sees every output once"
    );
    let produced = a["produced"].as_u64().unwrap_or(0) + b["produced"].as_u64().unwrap_or(0);
    assert_eq!(
        all_values(&o.uncommitted_read).len() as u64,
        produced,
        "{on}, {protocol}: read_uncommitted sees every record written"
    );
    let group: i64 = offsets(&o.committed_read["group_offsets"]).values().sum();
    assert_eq!(
        group, CTP_KILL_RECORDS as i64,
        "{on}, {protocol}: the group's offsets"
    );
    assert!(
        b["commits"].as_u64().unwrap_or(0) > 0,
        "{on}, {protocol}: the second loop got partitions and committed: {b}"
    );
}

#[test]
fn two_loops_share_the_input_franz_go() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    two_loops_share_the_input(&broker.bootstrap(), CLASSIC, "gregor");
}

#[test]
fn two_loops_share_the_input_franz_go_kip848() {
    let broker = Broker::start_with(&[
        "group.initial.rebalance.delay.ms=0",
        "group.consumer.heartbeat.interval.ms=1000",
    ]);
    two_loops_share_the_input(&broker.bootstrap(), KIP848, "gregor");
}

// --- fencing --------------------------------------------------------------------------------------

const FENCE_RECORDS: usize = 5;

/// Runs the fence scenario on a fresh topic, checks what the broker then serves, and returns
/// the client's errors for A's write after the fence and A's commit.
fn fence(client: Client, bootstrap: &str, tag: &str) -> (String, String) {
    let topic = format!("fence-{tag}");
    let txn_id = format!("fence-txn-{tag}");
    client.run("create", bootstrap, &["-topic", &topic, "-partitions", "1"]);
    let records = FENCE_RECORDS.to_string();
    let report = client.run(
        "fence",
        bootstrap,
        &[
            "-topic", &topic, "-txn-id", &txn_id, "-records", &records, "-prefix", "f",
        ],
    );
    assert_eq!(report["fenced"], true, "{report}");
    let committed = client.read_all(bootstrap, &topic, "read_committed");
    assert_eq!(
        committed,
        sequence("f-b", FENCE_RECORDS),
        "{client:?} read_committed on {tag}"
    );
    let uncommitted = client.read_all(bootstrap, &topic, "read_uncommitted");
    let mut want = sequence("f-a", FENCE_RECORDS);
    want.extend(sequence("f-b", FENCE_RECORDS));
    assert_eq!(
        uncommitted, want,
        "{client:?} read_uncommitted on {tag}: A's records, then B's, and nothing A sent after the fence"
    );
    (
        report["after_fence_error"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        report["commit_error"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn a_second_producer_fences_the_first_franz_go() {
    let broker = Broker::start();
    fence(Client::FranzGo, &broker.bootstrap(), "gregor");
}

#[test]
fn a_second_producer_fences_the_first_sarama() {
    let broker = Broker::start();
    fence(Client::Sarama, &broker.bootstrap(), "gregor");
}

// --- a broker killed mid-transaction ------------------------------------------------------------

/// A txn-open program whose producer waits, its transaction open, for the resume file.
struct OpenTransaction {
    client: Client,
    child: Child,
    resume: PathBuf,
    out: PathBuf,
}

impl OpenTransaction {
    /// Starts txn-open with `args` and -resume, its files in `dir` named after `name`, and
    /// waits until its transaction is open.
    fn start(client: Client, bootstrap: &str, args: &[&str], dir: &Path, name: &str) -> Self {
        let (progress, resume, out) = (
            dir.join(format!("{name}.progress")),
            dir.join(format!("{name}.resume")),
            dir.join(format!("{name}.json")),
        );
        let (progress_arg, resume_arg) =
            (progress.display().to_string(), resume.display().to_string());
        let mut args = args.to_vec();
        args.extend(["-progress", &progress_arg, "-resume", &resume_arg]);
        let mut child = client.spawn("txn-open", bootstrap, &args, &out);
        wait_progress(
            &progress,
            &format!("the {name} transaction open"),
            |s| s == "open",
            &mut child,
        );
        OpenTransaction {
            client,
            child,
            resume,
            out,
        }
    }

    /// Lets the producer write its second half and commit, and returns its report.
    fn resume(self) -> Value {
        std::fs::write(&self.resume, b"go").expect("write the resume file");
        self.client.finish(self.child, &self.out)
    }
}

const OPEN_RECORDS: usize = 10;

fn a_broker_killed_mid_transaction(client: Client) {
    // The coordinator looks for timed-out transactions every second (Kafka's default is 10 s).
    let mut broker =
        Broker::start_with(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=1000"]);
    let bootstrap = broker.bootstrap();
    for t in ["live", "reinit", "timeout"] {
        client.run("create", &bootstrap, &["-topic", t, "-partitions", "1"]);
    }
    let dir = scratch();
    let records = OPEN_RECORDS.to_string();

    // live: the producer waits across the kill, then writes its second half and commits.
    let live = OpenTransaction::start(
        client,
        &bootstrap,
        &[
            "-topic", "live", "-txn-id", "live-txn", "-records", &records, "-prefix", "live",
        ],
        dir.path(),
        "live",
    );
    // reinit and timeout: the producer leaves its transaction open and exits.
    let reinit = client.run(
        "txn-open",
        &bootstrap,
        &[
            "-topic",
            "reinit",
            "-txn-id",
            "reinit-txn",
            "-records",
            &records,
            "-prefix",
            "old",
        ],
    );
    assert_eq!(
        reinit["produced"].as_u64(),
        Some(OPEN_RECORDS as u64),
        "{reinit}"
    );
    let timeout = client.run(
        "txn-open",
        &bootstrap,
        &[
            "-topic",
            "timeout",
            "-txn-id",
            "timeout-txn",
            "-records",
            &records,
            "-prefix",
            "old",
            "-txn-timeout",
            "4s",
        ],
    );
    assert_eq!(
        timeout["produced"].as_u64(),
        Some(OPEN_RECORDS as u64),
        "{timeout}"
    );

    broker.kill9();
    thread::sleep(Duration::from_millis(300));
    broker.restart();

    let live = live.resume();
    // The new producer's InitProducerId aborts the open transaction of its id.
    client.run(
        "txn-commit",
        &bootstrap,
        &[
            "-topic",
            "reinit",
            "-txn-id",
            "reinit-txn",
            "-records",
            &records,
            "-prefix",
            "new",
        ],
    );

    // live: all of it or none of it, as the client reported.
    let seen = client.read_all(&bootstrap, "live", "read_committed");
    let all = sequence("live", OPEN_RECORDS);
    if live["committed"] == true {
        assert_eq!(
            seen, all,
            "{client:?}: the live transaction committed: {live}"
        );
    } else {
        assert!(
            seen.is_empty(),
            "{client:?}: the live transaction failed, yet {seen:?} is visible: {live}"
        );
    }
    let unseen = client.read_all(&bootstrap, "live", "read_uncommitted");
    assert!(
        unseen.len() >= OPEN_RECORDS / 2,
        "{client:?}: the live transaction's first half is gone: {unseen:?}"
    );
    // reinit: only the new producer's records are committed.
    let seen = client.read_all(&bootstrap, "reinit", "read_committed");
    assert_eq!(
        seen,
        sequence("new", OPEN_RECORDS),
        "{client:?}: reinit read_committed"
    );
    let unseen = client.read_all(&bootstrap, "reinit", "read_uncommitted");
    let mut want = sequence("old", OPEN_RECORDS);
    want.extend(sequence("new", OPEN_RECORDS));
    assert_eq!(unseen, want, "{client:?}: reinit read_uncommitted");
    // timeout: the coordinator aborts it; read_committed reaches the end record.
    let seen = client.read_all(&bootstrap, "timeout", "read_committed");
    assert!(
        seen.is_empty(),
        "{client:?}: the timed-out transaction is visible: {seen:?}"
    );
    eprintln!("{client:?} live transaction: {live}");
}

#[test]
fn a_broker_killed_mid_transaction_franz_go() {
    a_broker_killed_mid_transaction(Client::FranzGo);
}

#[test]
fn a_broker_killed_mid_transaction_sarama() {
    a_broker_killed_mid_transaction(Client::Sarama);
}

// --- the transaction topic asked for before it exists --------------------------------------------

/// sarama, answered COORDINATOR_NOT_AVAILABLE by FindCoordinator for a transactional id, asks
/// for `__transaction_state`'s metadata with auto-creation allowed (its client's default) before
/// it retries. gregor used to auto-create the topic then as a plain topic of `num.partitions`
/// (1) partition, so that ids hashed to any other of the coordinator's 50 partitions never
/// found a coordinator and the producer hung. Asked for first, the topic must come out with
/// the coordinator's partitions, and a transactional producer must then commit.
fn the_transaction_topic_asked_for_first(client: Client) {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let first = client.run("metadata", &bootstrap, &["-topic", "__transaction_state"]);
    eprintln!("{client:?}, asked for first: {first}");
    client.run(
        "create",
        &bootstrap,
        &["-topic", "asked", "-partitions", "1"],
    );
    // An id hashed to a partition other than 0 (44 of 50, by Java's String.hashCode).
    client.run(
        "txn-commit",
        &bootstrap,
        &[
            "-topic",
            "asked",
            "-txn-id",
            "eos-txn-7",
            "-records",
            "3",
            "-prefix",
            "v",
            "-timeout",
            "30s",
        ],
    );
    let after = client.run("metadata", &bootstrap, &["-topic", "__transaction_state"]);
    assert_eq!(after["partitions"].as_u64(), Some(50), "{after}");
    let seen = client.read_all(&bootstrap, "asked", "read_committed");
    assert_eq!(seen, sequence("v", 3));
}

#[test]
fn the_transaction_topic_asked_for_first_franz_go() {
    the_transaction_topic_asked_for_first(Client::FranzGo);
}

#[test]
fn the_transaction_topic_asked_for_first_sarama() {
    the_transaction_topic_asked_for_first(Client::Sarama);
}

// --- side by side with Apache Kafka ---------------------------------------------------------------

/// The coordinator looks for timed-out transactions every second (Kafka's default is 10 s),
/// on both brokers.
const ABORT_INTERVAL: &str = "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000";

/// A transaction whose producer lives on but outlasts its timeout (2 s) by 5 s before writing its
/// second half: the coordinator aborts it, the client's next write or commit fails, and the
/// same producer then tries one more transaction. Returns the client's report and what
/// read_committed then serves.
fn timeout_while_producing(client: Client, bootstrap: &str, tag: &str) -> (Value, Vec<String>) {
    let topic = format!("timeout-{tag}");
    client.run("create", bootstrap, &["-topic", &topic, "-partitions", "1"]);
    let dir = scratch();
    let open = OpenTransaction::start(
        client,
        bootstrap,
        &[
            "-topic",
            &topic,
            "-txn-id",
            &topic,
            "-records",
            "10",
            "-prefix",
            "live",
            "-txn-timeout",
            "2s",
        ],
        dir.path(),
        "timeout",
    );
    thread::sleep(Duration::from_secs(7));
    let report = open.resume();
    let seen = client.read_all(bootstrap, &topic, "read_committed");
    (report, seen)
}

/// What of a timeout_while_producing run two brokers should agree on.
fn timeout_outcome(report: &Value, seen: &[String]) -> String {
    format!(
        "committed={} commit_error={} recovered={} recover_error={} read_committed={seen:?}",
        report["committed"], report["commit_error"], report["recovered"], report["recover_error"]
    )
}

#[test]
fn consume_transform_produce_and_fencing_match_kafka() {
    let peer = KafkaPeer::start_with(&[ABORT_INTERVAL]);
    let broker = Broker::start_with(&[ABORT_INTERVAL]);
    let (kafka, gregor) = (peer.bootstrap(), broker.bootstrap());
    let mut differences = Vec::new();

    // Before any transaction: `__transaction_state` asked for with auto-creation allowed.
    let asked = |bootstrap: &str| {
        let r = Client::Sarama.run("metadata", bootstrap, &["-topic", "__transaction_state"]);
        format!("{} partitions ({})", r["partitions"], r["topic_error"])
    };
    let (on_kafka, on_gregor) = (asked(&kafka), asked(&gregor));
    if on_kafka != on_gregor {
        differences.push(format!(
            "__transaction_state asked for first: Kafka {on_kafka}, gregor {on_gregor}"
        ));
    }

    // Transactions outlasting their timeout, the four runs at once (sarama's take ~17 s).
    let runs: Vec<_> = [Client::FranzGo, Client::Sarama]
        .into_iter()
        .flat_map(|client| [(client, kafka.clone()), (client, gregor.clone())])
        .map(|(client, bootstrap)| {
            thread::spawn(move || {
                let tag = format!("{client:?}").to_lowercase();
                let (report, seen) = timeout_while_producing(client, &bootstrap, &tag);
                timeout_outcome(&report, &seen)
            })
        })
        .collect();
    let outcomes: Vec<String> = runs
        .into_iter()
        .map(|h| h.join().expect("a timeout run panicked"))
        .collect();
    for (client, pair) in [Client::FranzGo, Client::Sarama]
        .iter()
        .zip(outcomes.chunks(2))
    {
        eprintln!(
            "{client:?}, a transaction outlasting its timeout: Kafka {}",
            pair[0]
        );
        if pair[0] != pair[1] {
            differences.push(format!(
                "{client:?}, a transaction outlasting its timeout: Kafka {}, gregor {}",
                pair[0], pair[1]
            ));
        }
    }

    for (client, protocol) in [
        (Client::FranzGo, CLASSIC),
        (Client::FranzGo, KIP848),
        (Client::Sarama, CLASSIC),
    ] {
        let tag = format!("{client:?}-{protocol}").to_lowercase();
        let on_kafka = run_ctp(client, &kafka, &tag, protocol);
        let on_gregor = run_ctp(client, &gregor, &tag, protocol);
        let (kafka_failures, gregor_failures) = (
            check_ctp(&on_kafka, CTP_RECORDS),
            check_ctp(&on_gregor, CTP_RECORDS),
        );
        assert!(
            kafka_failures.is_empty(),
            "{client:?} consume-transform-produce ({protocol} group) on Apache Kafka {}: {kafka_failures:#?}\n{}",
            peer.version(),
            on_kafka.report
        );
        assert!(
            gregor_failures.is_empty(),
            "{client:?} consume-transform-produce ({protocol} group) on gregor (passes on Kafka): {gregor_failures:#?}\n{}",
            on_gregor.report
        );
    }
    for client in [Client::FranzGo, Client::Sarama] {
        let tag = format!("{client:?}").to_lowercase();
        let kafka_errors = fence(client, &kafka, &tag);
        let gregor_errors = fence(client, &gregor, &tag);
        eprintln!("{client:?}, fenced: Kafka {kafka_errors:?}");
        if kafka_errors != gregor_errors {
            differences.push(format!(
                "{client:?}: after the fence Kafka gives {kafka_errors:?}, gregor {gregor_errors:?}"
            ));
        }
    }
    // Two franz-go loops sharing a classic group's input, on Kafka (on gregor: above).
    two_loops_share_the_input(&kafka, CLASSIC, "Kafka");
    for (name, bootstrap) in [("Kafka", &kafka), ("gregor", &gregor)] {
        let r = Client::Sarama.run("metadata", bootstrap, &["-topic", "__transaction_state"]);
        assert_eq!(
            r["partitions"].as_u64(),
            Some(50),
            "{name}'s __transaction_state: {r}"
        );
    }
    assert!(differences.is_empty(), "{differences:#?}");
}
