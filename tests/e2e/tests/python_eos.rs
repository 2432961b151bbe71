//! Exactly-once with the two pure-Python clients, kafka-python and aiokafka (drivers
//! `tests/e2e/python/kafka_python_eos.py` and `aiokafka_eos.py`, one command line), through the
//! scenarios of issue 12; every test runs once per client (`kafka_python_...`, `aiokafka_...`):
//!
//! - `..._idempotent_producer_across_a_kill9_loses_and_duplicates_nothing`: 10 000 records with
//!   `enable_idempotence=True` into one partition, the broker killed with kill -9 and restarted
//!   after a third of them; every record is acknowledged, and the log (read by confluent-kafka)
//!   holds each once, in produce order, at gapless offsets.
//! - `..._idempotent_producer_across_a_leader_kill_loses_and_duplicates_nothing`: the same on
//!   three nodes (the partition on all three), its leader killed -9 and left down.
//! - `..._consume_transform_produce_is_exactly_once`: 40 input records, 10 per transaction,
//!   transactions committed and aborted in turn with the consumer's position sent in each
//!   (AddOffsetsToTxn + TxnOffsetCommit); after an abort the loop rereads from the group's
//!   committed offset; once with the partition assigned, once as a member of the group
//!   (kafka-python then sends the member's generation and id, KIP-447). read_committed (the client's consumer and confluent-kafka's) sees each
//!   input record transformed exactly once, by a committed transaction; read_uncommitted sees
//!   the aborted transactions' records too; the group's offset moved with the commits only.
//! - `..._consume_transform_produce_across_a_kill9`: the loop over 100 inputs, each
//!   transaction held open 200 ms, the broker killed -9 and restarted after the third: the
//!   client rides it out and the same checks hold.
//! - `..._transactions_on_three_nodes`: the loop (as a group member) and the fencing scenario
//!   on three nodes, the partitions and both coordinators spread over them.
//! - `..._transactions_match_kafka`: the consume-transform-produce loop, the fencing and the
//!   kill -9 scenarios against Apache Kafka 4.4 and gregor side by side: the same transactions,
//!   offsets, records, errors, last stable offsets and epochs; and a transaction outlasting its
//!   timeout with its producer alive (the late sends, the commit, the abort and the next
//!   transaction fail alike on both).
//! - `..._second_producer_fences_the_first`: a second producer with the same transactional id
//!   fences the first: the first's sends (a Produce to a partition in its transaction, an
//!   AddPartitionsToTxn for a new one) fail with the client's fenced error and land nowhere;
//!   a third producer fences the second, whose EndTxn then fails as fenced.
//! - `..._open_transactions_across_a_kill9_are_completed_or_aborted`: three transactions are
//!   open with records in the log when the broker is killed with kill -9; two of their
//!   producers are killed before it. After the restart the coordinator's timer aborts the one
//!   with a 10 s timeout, a new producer's InitProducerId aborts the one with 120 s, and the
//!   third producer, still running, sends as much again in the same transaction and commits
//!   it: read_committed sees that one whole and never the open records, and the last stable
//!   offsets reach the high watermarks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_timeout;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::{python, python_script, run_python_json, unique_topic, Broker};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(120);

/// One of the two Python client families, through its driver script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    KafkaPython,
    Aiokafka,
}

impl Client {
    fn script(self) -> &'static str {
        match self {
            Client::KafkaPython => "kafka_python_eos.py",
            Client::Aiokafka => "aiokafka_eos.py",
        }
    }

    /// The exception class the client raises when its producer is fenced.
    fn fenced_error(self) -> &'static str {
        match self {
            Client::KafkaPython => "ProducerFencedError",
            Client::Aiokafka => "ProducerFenced",
        }
    }

    /// Runs one driver command against `bootstrap`; its JSON.
    fn run(self, bootstrap: &str, args: &[&str]) -> Value {
        let mut all = vec![bootstrap];
        all.extend_from_slice(args);
        run_python_json(self.script(), &all, TIMEOUT)
    }

    /// Starts a long-running driver command (stdout and stderr to files beside `out`).
    fn spawn(self, bootstrap: &str, args: &[&str], out: &Path) -> Child {
        let file = |path: &Path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        Command::new(python())
            .arg("-u")
            .arg("-B")
            .arg(python_script(self.script()))
            .arg(bootstrap)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(out))
            .stderr(file(&out.with_extension("err")))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.script()))
    }

    /// Waits for a driver that [`Client::spawn`] started with `out` to exit (killing it after
    /// `timeout`) and returns its JSON; a driver that printed none fails the test with its
    /// stderr. One still running at `timeout` gets SIGABRT first, on which the driver prints
    /// where each of its threads waits (Python's `faulthandler`).
    fn finish(self, child: &mut Child, out: &Path, timeout: Duration) -> Value {
        if wait_timeout(child, timeout).is_none() {
            let _ = Command::new("kill")
                .args(["-ABRT", &child.id().to_string()])
                .status();
            if wait_timeout(child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let stdout = std::fs::read_to_string(out).unwrap_or_default();
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{self:?}: {} report {stdout:?} ({e}):\n{}",
                self.script(),
                std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
            )
        })
    }

    /// `[[partition, offset, value], ...]` of every data record the client's consumer reads
    /// at `isolation`.
    fn read(self, bootstrap: &str, topic: &str, isolation: &str) -> Vec<(i64, i64, String)> {
        let doc = self.run(bootstrap, &["consume", topic, "--isolation", isolation]);
        doc["records"]
            .as_array()
            .unwrap_or_else(|| panic!("no records: {doc}"))
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().unwrap_or_else(|| panic!("{r}")),
                    r[1].as_i64().unwrap_or_else(|| panic!("{r}")),
                    r[2].as_str().unwrap_or_else(|| panic!("{r}")).to_string(),
                )
            })
            .collect()
    }

    /// The values the client reads at `isolation`, sorted.
    fn values(self, bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .read(bootstrap, topic, isolation)
            .into_iter()
            .map(|(_, _, v)| v)
            .collect();
        v.sort();
        v
    }

    /// `{partition: (high watermark, last stable offset)}` from the client's ListOffsets.
    fn ends(self, bootstrap: &str, topic: &str) -> BTreeMap<String, (i64, i64)> {
        let doc = self.run(bootstrap, &["ends", topic]);
        doc.as_object()
            .unwrap_or_else(|| panic!("ends: {doc}"))
            .iter()
            .map(|(p, e)| {
                let n = |k: &str| e[k].as_i64().unwrap_or_else(|| panic!("ends: {doc}"));
                (p.clone(), (n("hw"), n("lso")))
            })
            .collect()
    }
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let n = partitions.to_string();
    run_python_json(
        "confluent_client.py",
        &[bootstrap, "create-topic", topic, &n],
        TIMEOUT,
    );
}

/// Waits (at most 30 s) for `f` to hold.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what} not within 30 s");
        thread::sleep(Duration::from_millis(200));
    }
}

/// [`wait_until`] while `child`, a driver, runs: its exit before `f` holds fails the test.
fn wait_while_running(child: &mut Child, what: &str, mut f: impl FnMut() -> bool) {
    wait_until(what, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what}: the driver exited early ({status})");
        }
        f()
    })
}

// ---------------------------------------------------------------------------------------------
// The idempotent producer across a kill -9.

const IDEMPOTENT_RECORDS: usize = 10_000;

fn acked(progress: &Path) -> usize {
    std::fs::read_to_string(progress)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Streams the records with the client's idempotent producer into `topic` (one partition) at
/// `bootstrap`, calls `fault` once a third are acknowledged (it returns a bootstrap to read
/// back from), and checks that every record was acknowledged and is in the log once, in order.
fn idempotent_through_a_fault(
    client: Client,
    bootstrap: &str,
    topic: &str,
    fault: &mut dyn FnMut() -> String,
) {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress");
    let out = dir.path().join("out");
    let count = IDEMPOTENT_RECORDS.to_string();
    let progress_arg = progress.display().to_string();
    let mut producer = client.spawn(
        &bootstrap,
        &["idempotent", &topic, &progress_arg, "--count", &count],
        &out,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked(&progress) < IDEMPOTENT_RECORDS / 3 {
        if let Ok(Some(status)) = producer.try_wait() {
            panic!(
                "{client:?}: the producer exited early ({status}): {}",
                std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{client:?}: too slow to ack");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        matches!(producer.try_wait(), Ok(None)),
        "still producing at the kill"
    );
    let read_from = fault();
    let report = client.finish(&mut producer, &out, Duration::from_secs(180));
    assert_eq!(
        (report["acked"].as_u64(), report["failed"].as_u64()),
        (Some(IDEMPOTENT_RECORDS as u64), Some(0)),
        "{client:?}: every record acknowledged: {report}"
    );
    // Read back by another client: each index once, in produce order, offsets gapless.
    let doc = run_python_json(
        "confluent_client.py",
        &[&read_from, "consume", &topic],
        TIMEOUT,
    );
    let consumed = gregor_e2e::check::records(&doc, "records");
    let indexes: Vec<u64> = consumed
        .iter()
        .map(|r| gregor_e2e::check::index_of(r.value.as_deref().unwrap_or_default()))
        .collect();
    let unique: BTreeSet<u64> = indexes.iter().copied().collect();
    assert_eq!(
        (indexes.len(), unique.len()),
        (IDEMPOTENT_RECORDS, IDEMPOTENT_RECORDS),
        "{client:?}: {} records, {} distinct",
        indexes.len(),
        unique.len()
    );
    assert!(
        indexes.windows(2).all(|w| w[0] < w[1]),
        "{client:?}: records out of produce order"
    );
    for (n, r) in consumed.iter().enumerate() {
        assert_eq!(r.offset, n as i64, "{client:?}: offsets gapless from 0");
    }
}

fn idempotent_across_a_kill9(client: Client) {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("py-idempotent");
    create_topic(&bootstrap, &topic, 1);
    idempotent_through_a_fault(client, &bootstrap, &topic, &mut || {
        broker.restart(); // kill -9, then the same data dir and port
        broker.bootstrap()
    });
}

/// Three nodes, the partition on all three (`min.insync.replicas=2`): its leader is killed -9
/// in the middle of the stream and left down; the new leader rebuilt the producer's state
/// from what it replicated.
fn idempotent_across_a_leader_kill(client: Client) {
    use gregor_e2e::cluster::Cluster;
    use gregor_e2e::cluster_client::{describe, new_leader_after_kill, replicated_topic};
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("py-idempotent-failover");
    replicated_topic(&cluster, &topic);
    idempotent_through_a_fault(client, &bootstrap, &topic, &mut || {
        let (_, parts) = describe(&bootstrap, &topic);
        let leader = parts[&0].leader;
        assert_eq!(parts[&0].isr.len(), 3, "a full ISR before the kill");
        cluster.kill9(leader);
        new_leader_after_kill(&cluster, &topic, leader).0
    });
}

#[test]
fn kafka_python_idempotent_producer_across_a_leader_kill_loses_and_duplicates_nothing() {
    idempotent_across_a_leader_kill(Client::KafkaPython);
}

#[test]
fn aiokafka_idempotent_producer_across_a_leader_kill_loses_and_duplicates_nothing() {
    idempotent_across_a_leader_kill(Client::Aiokafka);
}

#[test]
fn kafka_python_idempotent_producer_across_a_kill9_loses_and_duplicates_nothing() {
    idempotent_across_a_kill9(Client::KafkaPython);
}

#[test]
fn aiokafka_idempotent_producer_across_a_kill9_loses_and_duplicates_nothing() {
    idempotent_across_a_kill9(Client::Aiokafka);
}

// ---------------------------------------------------------------------------------------------
// Consume-transform-produce.

const CTP_INPUT: usize = 40;
const CTP_PER_TXN: usize = 10;

/// Runs the consume-transform-produce loop against `bootstrap` and checks it; what a run
/// against another broker must match.
/// With `subscribe` the loop's consumer is a member of the group (kafka-python then sends its
/// generation and member id with the offsets, KIP-447), else it assigns the partition.
fn consume_transform_produce(
    client: Client,
    bootstrap: &str,
    label: &str,
    subscribe: bool,
) -> Value {
    consume_transform_produce_through(client, bootstrap, label, subscribe, CTP_INPUT, None)
}

/// [`consume_transform_produce`] over `inputs` input records; with a `fault`, the fifth
/// transaction pauses once its records are flushed, `fault` is called, and the loop goes on
/// when it returns.
fn consume_transform_produce_through(
    client: Client,
    bootstrap: &str,
    label: &str,
    subscribe: bool,
    inputs: usize,
    fault: Option<&mut dyn FnMut()>,
) -> Value {
    let input = unique_topic("py-ctp-in");
    let output = unique_topic("py-ctp-out");
    let group = format!("{input}-group");
    create_topic(bootstrap, &input, 1);
    create_topic(bootstrap, &output, 2);
    let produced = run_python_json(
        "confluent_client.py",
        &[bootstrap, "produce", &input, "--count", &inputs.to_string()],
        TIMEOUT,
    );
    let produced = gregor_e2e::check::records(&produced, "delivered");
    assert_eq!(produced.len(), inputs);
    let txn_id = format!("{input}-txn");
    let (count, per_txn) = (inputs.to_string(), CTP_PER_TXN.to_string());
    let mut args = vec![
        "ctp",
        &input,
        &txn_id,
        "--output",
        &output,
        "--group",
        &group,
        "--count",
        &count,
        "--per-txn",
        &per_txn,
        "--plan",
        "CA",
    ];
    if subscribe {
        args.push("--subscribe");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress");
    let progress_arg = progress.display().to_string();
    let doc = match fault {
        None => client.run(bootstrap, &args),
        Some(fault) => {
            args.extend(["--progress-file", &progress_arg, "--pause-in", "5"]);
            let out = dir.path().join("out");
            let mut child = client.spawn(bootstrap, &args, &out);
            wait_while_running(
                &mut child,
                &format!("{client:?}: transaction 5 open, its records flushed"),
                || std::fs::read_to_string(&progress).is_ok_and(|s| s.trim() == "half"),
            );
            fault();
            std::fs::write(format!("{progress_arg}.go"), b"").expect("go file");
            client.finish(&mut child, &out, TIMEOUT)
        }
    };
    let what = format!("{client:?} on {label} (subscribe: {subscribe})");
    eprintln!("{what}: the client logged {}", doc["client_log"]);
    assert_eq!(
        doc["member"],
        subscribe && client == Client::KafkaPython,
        "{what}: the offsets go with the member's generation: {doc}"
    );
    // [t, outcome, first input offset, records, group offset after]
    let txns: Vec<(i64, String, i64, i64, Option<i64>)> = doc["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {doc}"))
        .iter()
        .map(|t| {
            (
                t[0].as_i64().unwrap_or_default(),
                t[1].as_str().unwrap_or_default().to_string(),
                t[2].as_i64().unwrap_or(-1),
                t[3].as_i64().unwrap_or(-1),
                t[4].as_i64(),
            )
        })
        .collect();
    let mut committed_offset = None;
    let mut committed_txns = BTreeSet::new();
    for (t, outcome, first, n, after) in &txns {
        assert_eq!(
            *first,
            committed_offset.unwrap_or(0),
            "{what}: transaction {t} starts at the group's committed offset: {doc}"
        );
        assert_eq!(*n, CTP_PER_TXN as i64, "{what}: {doc}");
        if outcome == "C" {
            committed_offset = Some(first + n);
            committed_txns.insert(*t);
        }
        assert_eq!(
            *after, committed_offset,
            "{what}: after transaction {t} ({outcome}) the group's offset is the last commit's: {doc}"
        );
    }
    assert_eq!(committed_txns.len(), inputs / CTP_PER_TXN, "{what}: {doc}");
    assert_eq!(
        txns.len(),
        2 * committed_txns.len() - 1,
        "{what}: commits and aborts in turn: {doc}"
    );
    assert_eq!(doc["committed_offset"], inputs, "{what}: {doc}");

    // Output values are t<t>|<input value>; the input value starts with v<index>.
    let parse = |v: &str| -> (i64, u64) {
        let (t, input) = v
            .strip_prefix('t')
            .and_then(|r| r.split_once('|'))
            .unwrap_or_else(|| panic!("{what}: unexpected value {v}"));
        (
            t.parse().unwrap_or_else(|_| panic!("{v}")),
            gregor_e2e::check::index_of(input),
        )
    };
    let committed = client.values(bootstrap, &output, "read_committed");
    let mut seen = BTreeMap::new();
    for v in &committed {
        let (t, i) = parse(v);
        assert!(
            committed_txns.contains(&t),
            "{what}: read_committed sees transaction {t}, which was aborted"
        );
        assert!(
            seen.insert(i, t).is_none(),
            "{what}: input {i} seen twice by read_committed"
        );
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<u64>>(),
        (0..inputs as u64).collect::<Vec<u64>>(),
        "{what}: read_committed sees every input record once"
    );
    // Another client's read_committed consumer sees the same.
    let confluent = run_python_json(
        "confluent_client.py",
        &[
            bootstrap,
            "consume-to-end",
            &output,
            "--isolation",
            "read_committed",
        ],
        TIMEOUT,
    );
    let mut confluent: Vec<String> = gregor_e2e::check::records(&confluent, "records")
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    confluent.sort();
    assert_eq!(
        confluent, committed,
        "{what}: confluent-kafka's read_committed"
    );
    let all = client.values(bootstrap, &output, "read_uncommitted");
    let aborted = txns.len() - committed_txns.len();
    assert_eq!(
        all.len(),
        inputs + aborted * CTP_PER_TXN,
        "{what}: read_uncommitted sees the aborted transactions' records too: {all:?}"
    );
    let all_txns: BTreeSet<i64> = all.iter().map(|v| parse(v).0).collect();
    assert_eq!(all_txns.len(), txns.len(), "{what}: {all_txns:?}");
    for (p, (hw, lso)) in client.ends(bootstrap, &output) {
        assert_eq!(lso, hw, "{what}: partition {p} has no open transaction");
    }
    // What a run against another broker must match (the record values without the input
    // padding, which is the same anyway).
    json!({
        "subscribe": subscribe,
        "transactions": doc["transactions"],
        "committed_offset": doc["committed_offset"],
        "read_committed": committed.len(),
        "read_uncommitted": all.len(),
    })
}

#[test]
fn kafka_python_consume_transform_produce_is_exactly_once() {
    let broker = Broker::start();
    for subscribe in [false, true] {
        consume_transform_produce(
            Client::KafkaPython,
            &broker.bootstrap(),
            "gregor",
            subscribe,
        );
    }
}

#[test]
fn aiokafka_consume_transform_produce_is_exactly_once() {
    let broker = Broker::start();
    for subscribe in [false, true] {
        consume_transform_produce(Client::Aiokafka, &broker.bootstrap(), "gregor", subscribe);
    }
}

/// The loop across a kill -9 of the broker, killed while its fifth transaction (a commit) is
/// open with its records in the log; the loop goes on once the broker is back: the client
/// rides out the restart (its connections reset, the coordinators found again) and the same
/// checks hold (each input once in read_committed, the group's offsets those of the commits).
/// The loop waits for the restart because kafka-python 3.0.12 can lose a transactional
/// request made while the broker is down (see `eos_common.py`).
fn consume_transform_produce_across_a_kill9(client: Client) {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let mut kill = || broker.restart();
    consume_transform_produce_through(client, &bootstrap, "gregor", true, 100, Some(&mut kill));
}

#[test]
fn kafka_python_consume_transform_produce_across_a_kill9() {
    consume_transform_produce_across_a_kill9(Client::KafkaPython);
}

#[test]
fn aiokafka_consume_transform_produce_across_a_kill9() {
    consume_transform_produce_across_a_kill9(Client::Aiokafka);
}

/// Consume-transform-produce (as a group member) and fencing on three nodes: the topics'
/// partitions, the group coordinator and the transaction coordinator spread over the nodes,
/// so markers and the offsets' verification cross between them.
fn transactions_on_three_nodes(client: Client) {
    use gregor_e2e::cluster::Cluster;
    use gregor_e2e::cluster_client::wait_for_brokers;
    let cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    consume_transform_produce(client, &bootstrap, "three nodes", true);
    fencing(client, &bootstrap, "three nodes");
}

#[test]
fn kafka_python_transactions_on_three_nodes() {
    transactions_on_three_nodes(Client::KafkaPython);
}

#[test]
fn aiokafka_transactions_on_three_nodes() {
    transactions_on_three_nodes(Client::Aiokafka);
}

// ---------------------------------------------------------------------------------------------
// Fencing.

/// The fencing scenario against `bootstrap`; checks it and returns what another broker's run
/// must match.
fn fencing(client: Client, bootstrap: &str, label: &str) -> Value {
    let what = format!("{client:?} on {label}");
    let topic = unique_topic("py-fence");
    create_topic(bootstrap, &topic, 2);
    let doc = client.run(bootstrap, &["fence", &topic, &format!("{topic}-txn")]);
    let fenced = client.fenced_error();
    assert_eq!(
        doc["send_errors"],
        json!([fenced, fenced, fenced, fenced]),
        "{what}: the fenced producer's sends fail as fenced: {doc}"
    );
    assert_eq!(
        doc["second_commit"][0], fenced,
        "{what}: EndTxn from a fenced epoch: {doc}"
    );
    assert_eq!(doc["fenced"], true, "{what}: {doc}");
    let strs = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>()
    };
    let mut want_all = [strs("before", 3), strs("second", 3), strs("third", 3)].concat();
    want_all.sort();
    assert_eq!(
        client.values(bootstrap, &topic, "read_uncommitted"),
        want_all,
        "{what}: nothing the fenced producers sent after the fence is in the log"
    );
    assert_eq!(
        client.values(bootstrap, &topic, "read_committed"),
        strs("third", 3),
        "{what}: only the last producer's transaction is committed"
    );
    json!({
        "send_errors": doc["send_errors"],
        "first_commit": doc["first_commit"][0],
        "first_state_error": doc["first_state_error"],
        "second_commit": doc["second_commit"][0],
    })
}

#[test]
fn kafka_python_second_producer_fences_the_first() {
    let broker = Broker::start();
    fencing(Client::KafkaPython, &broker.bootstrap(), "gregor");
}

#[test]
fn aiokafka_second_producer_fences_the_first() {
    let broker = Broker::start();
    fencing(Client::Aiokafka, &broker.bootstrap(), "gregor");
}

// ---------------------------------------------------------------------------------------------
// Side by side with Apache Kafka.

/// A transaction that outlasts its 2 s timeout while its producer lives: the coordinator
/// aborts it; then the producer's late sends, its commit, its abort and a next transaction.
/// Returns each step's outcome as the client reports it (Kafka's must be the same).
fn outlasting_the_timeout(client: Client, bootstrap: &str, label: &str) -> Value {
    let what = format!("{client:?} on {label}");
    let topic = unique_topic("py-outlast");
    create_topic(bootstrap, &topic, 1);
    let doc = client.run(
        bootstrap,
        &[
            "outlast",
            &topic,
            &format!("{topic}-txn"),
            "--txn-timeout-ms",
            "2000",
        ],
    );
    assert!(
        doc["late_sends"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0] != "ok"),
        "{what}: the late sends fail: {doc}"
    );
    assert_ne!(doc["commit"], "ok", "{what}: {doc}");
    // Nothing sent after the timeout's abort is in the log but the next transaction's record,
    // if the client got to commit one.
    let next = doc["next"] == "ok";
    let mut want = vec!["early0", "early1", "early2"];
    if next {
        want.push("next0");
    }
    assert_eq!(
        client.values(bootstrap, &topic, "read_uncommitted"),
        want,
        "{what}: the log ({doc})"
    );
    assert_eq!(
        client.values(bootstrap, &topic, "read_committed"),
        if next { vec!["next0"] } else { vec![] },
        "{what}: only the next transaction is committed ({doc})"
    );
    doc
}

fn side_by_side_with_kafka(client: Client) {
    let mut broker = Broker::start_with(&[TXN_CLEANUP]);
    let mut kafka = KafkaPeer::start_with(&[TXN_CLEANUP]);
    let version = kafka.version().to_string();
    for subscribe in [false, true] {
        let gregor_ctp =
            consume_transform_produce(client, &broker.bootstrap(), "gregor", subscribe);
        let kafka_ctp = consume_transform_produce(client, &kafka.bootstrap(), "Kafka", subscribe);
        assert_eq!(
            gregor_ctp, kafka_ctp,
            "{client:?}: consume-transform-produce on gregor (left) and Kafka {version} (right)"
        );
    }
    let gregor_fence = fencing(client, &broker.bootstrap(), "gregor");
    let kafka_fence = fencing(client, &kafka.bootstrap(), "Kafka");
    assert_eq!(
        gregor_fence, kafka_fence,
        "{client:?}: fencing on gregor (left) and Kafka {version} (right)"
    );
    let gregor_outlast = outlasting_the_timeout(client, &broker.bootstrap(), "gregor");
    let kafka_outlast = outlasting_the_timeout(client, &kafka.bootstrap(), "Kafka");
    assert_eq!(
        gregor_outlast, kafka_outlast,
        "{client:?}: a transaction outlasting its timeout on gregor (left) and Kafka {version} \
         (right)"
    );
    let bootstrap = broker.bootstrap();
    let mut restart = || broker.restart();
    let gregor_kill =
        open_transactions_across_a_kill9(client, &bootstrap, "gregor", &mut restart, false);
    let bootstrap = kafka.bootstrap();
    let mut restart = || kafka.kill9_and_restart();
    let mut kafka_kill =
        open_transactions_across_a_kill9(client, &bootstrap, "Kafka", &mut restart, true);
    // The one known difference: Kafka may leave the timed-out transaction hanging (see
    // `open_transactions_across_a_kill9`); gregor aborts it.
    eprintln!(
        "{client:?}: after a kill -9, Kafka {version}'s timed-out transaction: {}, gregor's: {}",
        kafka_kill["timer_abort"], gregor_kill["timer_abort"]
    );
    kafka_kill["timer_abort"] = gregor_kill["timer_abort"].clone();
    assert_eq!(
        gregor_kill, kafka_kill,
        "{client:?}: transactions across a kill -9 on gregor (left) and Kafka {version} (right)"
    );
}

#[test]
fn kafka_python_transactions_match_kafka() {
    side_by_side_with_kafka(Client::KafkaPython);
}

#[test]
fn aiokafka_transactions_match_kafka() {
    side_by_side_with_kafka(Client::Aiokafka);
}

// ---------------------------------------------------------------------------------------------
// Open transactions across a kill -9 of the broker.

/// Settings the coordinator needs for the timeout abort to come within the test's patience.
const TXN_CLEANUP: &str = "transaction.abort.timed.out.transaction.cleanup.interval.ms=200";

/// Three transactions open when the broker is killed with kill -9 (their producers killed
/// first for two of them): on partition 0 one with a 10 s timeout, which the coordinator's
/// timer aborts after the restart; on partition 1 one with 120 s, which a new producer's
/// InitProducerId aborts; and on a second topic one whose producer lives on, sends as much
/// again after the restart and commits. `restart` kills and restarts the broker at
/// `bootstrap`. Returns what a run against another broker must match.
fn open_transactions_across_a_kill9(
    client: Client,
    bootstrap: &str,
    label: &str,
    restart: &mut dyn FnMut(),
    timer_abort_may_hang: bool,
) -> Value {
    let what = format!("{client:?} on {label}");
    let topic = unique_topic("py-open");
    let survivor_topic = unique_topic("py-survive");
    create_topic(bootstrap, &topic, 2);
    create_topic(bootstrap, &survivor_topic, 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = [
        (format!("{topic}-short"), "0", "10000"),
        (format!("{topic}-long"), "1", "120000"),
    ];
    let mut producers = Vec::new();
    for (id, partition, timeout) in &ids {
        let progress = dir.path().join(format!("progress-{partition}"));
        let p = progress.display().to_string();
        let child = client.spawn(
            bootstrap,
            &[
                "open",
                &topic,
                id,
                &p,
                "--partition",
                partition,
                "--count",
                "5",
                "--txn-timeout-ms",
                timeout,
            ],
            &dir.path().join(format!("out-{partition}")),
        );
        producers.push((child, progress));
    }
    let survivor_progress = dir.path().join("progress-survivor");
    let survivor_out = dir.path().join("out-survivor");
    let mut survivor = client.spawn(
        bootstrap,
        &[
            "survive",
            &survivor_topic,
            &format!("{survivor_topic}-txn"),
            &survivor_progress.display().to_string(),
            "--count",
            "6",
        ],
        &survivor_out,
    );
    let opened = format!("{what}: the transaction is open");
    for (child, progress) in &mut producers {
        wait_while_running(child, &opened, || progress.exists());
    }
    wait_while_running(&mut survivor, &opened, || survivor_progress.exists());
    let before = client.ends(bootstrap, &topic);
    assert_eq!(
        before.values().copied().collect::<Vec<_>>(),
        vec![(5, 0), (5, 0)],
        "{what}: both partitions hold an open transaction: {before:?}"
    );
    // The two producers die first, then the broker: nothing will finish their transactions
    // but the coordinator's timer or a new producer with the same id.
    for (child, _) in &mut producers {
        let _ = child.kill();
        let _ = child.wait();
    }
    restart();
    let after = client.ends(bootstrap, &topic);
    assert_eq!(
        after.get("1"),
        Some(&(5, 0)),
        "{what}: the 120 s transaction is still open after the restart: {after:?}"
    );
    assert!(
        client
            .values(bootstrap, &topic, "read_committed")
            .is_empty(),
        "{what}: read_committed sees nothing of the open transactions"
    );
    // The surviving producer goes on in the same transaction and commits it.
    std::fs::write(format!("{}.go", survivor_progress.display()), b"").expect("go file");
    let survivor_report = client.finish(&mut survivor, &survivor_out, TIMEOUT);
    assert_eq!(
        survivor_report["committed"], 12,
        "{what}: the surviving producer's commit: {survivor_report}"
    );
    let mut want: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(
        client.values(bootstrap, &survivor_topic, "read_committed"),
        want,
        "{what}: the transaction across the restart is committed whole"
    );
    assert_eq!(
        client
            .values(bootstrap, &survivor_topic, "read_uncommitted")
            .len(),
        12,
        "{what}: no record of it twice"
    );
    // The coordinator's timer aborts the 10 s transaction: its marker closes partition 0.
    // Kafka 4.4 may leave it hanging instead (`timer_abort_may_hang`): when the timer fires
    // while the restarted broker is not yet unfenced, the partition has no leader in the
    // coordinator's metadata, its marker is skipped as if the partition had been deleted
    // ("Couldn't find leader endpoint ... likely deleted already"), and the transaction is
    // completed (CompleteAbort) without one, so the partition's last stable offset stays put.
    let timer_abort = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ends = client.ends(bootstrap, &topic);
            if ends.get("0") == Some(&(6, 6)) {
                break "aborted";
            }
            if timer_abort_may_hang && Instant::now() > deadline - Duration::from_secs(20) {
                break "hanging";
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the timed-out transaction was not aborted within 30 s: {ends:?}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(
        client.ends(bootstrap, &topic).get("1"),
        Some(&(5, 0)),
        "{what}: the 120 s transaction is not timed out yet"
    );
    // A new producer with the long id: its InitProducerId aborts the open transaction.
    let init = client.run(bootstrap, &["init", &topic, &ids[1].0]);
    wait_until(
        &format!("{what}: InitProducerId aborted the open transaction"),
        || client.ends(bootstrap, &topic).get("1") == Some(&(6, 6)),
    );
    client.run(
        bootstrap,
        &["commit", &topic, &ids[1].0, "--count", "6", "--prefix", "c"],
    );
    // c0, c2, c4 went to partition 0, c1, c3, c5 to partition 1.
    let want: Vec<String> = match timer_abort {
        "aborted" => (0..6).map(|i| format!("c{i}")).collect(),
        _ => (1..6).step_by(2).map(|i| format!("c{i}")).collect(),
    };
    assert_eq!(
        client.values(bootstrap, &topic, "read_committed"),
        want,
        "{what}: read_committed sees the later transaction whole (where no transaction hangs) \
         and nothing open"
    );
    let all = client.values(bootstrap, &topic, "read_uncommitted");
    assert_eq!(all.len(), 16, "{what}: {all:?}");
    let ends = client.ends(bootstrap, &topic);
    assert_eq!(
        ends.get("1").map(|(hw, lso)| hw == lso),
        Some(true),
        "{what}: {ends:?}"
    );
    assert_eq!(
        ends.get("0").map(|(hw, lso)| hw == lso),
        Some(timer_abort == "aborted"),
        "{what}: {ends:?}"
    );
    eprintln!("{what}: the timed-out transaction {timer_abort}; ends at last {ends:?}");
    json!({
        "before": format!("{before:?}"),
        // Partition 1 only: partition 0's transaction may have timed out during a slow restart.
        "after_restart_1": format!("{:?}", after.get("1")),
        "survivor_committed": 12,
        "init_epoch": init["epoch"],
        "timer_abort": timer_abort,
    })
}

#[test]
fn kafka_python_open_transactions_across_a_kill9_are_completed_or_aborted() {
    let mut broker = Broker::start_with(&[TXN_CLEANUP]);
    let bootstrap = broker.bootstrap();
    let mut restart = || broker.restart();
    open_transactions_across_a_kill9(
        Client::KafkaPython,
        &bootstrap,
        "gregor",
        &mut restart,
        false,
    );
}

#[test]
fn aiokafka_open_transactions_across_a_kill9_are_completed_or_aborted() {
    let mut broker = Broker::start_with(&[TXN_CLEANUP]);
    let bootstrap = broker.bootstrap();
    let mut restart = || broker.restart();
    open_transactions_across_a_kill9(Client::Aiokafka, &bootstrap, "gregor", &mut restart, false);
}
