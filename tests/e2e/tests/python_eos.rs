//! Exactly-once with the two pure-Python clients, kafka-python and aiokafka (drivers
//! `tests/e2e/python/kafka_python_eos.py` and `aiokafka_eos.py`, one command line), through the
//! scenarios of issue 12; every test runs once per client (`kafka_python_...`, `aiokafka_...`):
//!
//! - `..._idempotent_producer_across_a_kill9_loses_and_duplicates_nothing`: 10 000 records with
//!   `enable_idempotence=True` into one partition, the broker killed with kill -9 and restarted
//!   after a third of them; every record is acknowledged, and the log (read by confluent-kafka)
//!   holds each once, in produce order, at gapless offsets.
//! - `..._consume_transform_produce_is_exactly_once`: 40 input records, 10 per transaction,
//!   transactions committed and aborted in turn with the consumer's position sent in each
//!   (AddOffsetsToTxn + TxnOffsetCommit); after an abort the loop rereads from the group's
//!   committed offset; once with the partition assigned, once as a member of the group
//!   (kafka-python then sends the member's generation and id, KIP-447). read_committed (the client's consumer and confluent-kafka's) sees each
//!   input record transformed exactly once, by a committed transaction; read_uncommitted sees
//!   the aborted transactions' records too; the group's offset moved with the commits only.
//! - `..._consume_transform_produce_and_fencing_match_kafka`: the same loop and the fencing
//!   scenario against Apache Kafka 4.4 and gregor side by side: the same transactions, offsets,
//!   records and errors.
//! - `..._second_producer_fences_the_first`: a second producer with the same transactional id
//!   fences the first: the first's sends (a Produce to a partition in its transaction, an
//!   AddPartitionsToTxn for a new one) fail with the client's fenced error and land nowhere;
//!   a third producer fences the second, whose EndTxn then fails as fenced.
//! - `..._open_transactions_across_a_kill9_are_aborted`: two transactional ids each leave an
//!   open transaction with records in the log, then the producers and the broker are killed
//!   with kill -9. After the restart the coordinator's timer aborts the one with a 10 s
//!   timeout, and a new producer's InitProducerId aborts the one with 60 s; the last stable
//!   offsets reach the high watermarks, read_committed never sees the open records, and a
//!   transaction committed afterwards is seen whole.

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

// ---------------------------------------------------------------------------------------------
// The idempotent producer across a kill -9.

const IDEMPOTENT_RECORDS: usize = 10_000;

fn acked(progress: &Path) -> usize {
    std::fs::read_to_string(progress)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn idempotent_across_a_kill9(client: Client) {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("py-idempotent");
    create_topic(&bootstrap, &topic, 1);
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
    broker.restart(); // kill -9, then the same data dir and port
    if wait_timeout(&mut producer, Duration::from_secs(180)).is_none() {
        let _ = producer.kill();
        let _ = producer.wait();
    }
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{client:?} report {stdout:?} ({e}):\n{stderr}"));
    assert_eq!(
        (report["acked"].as_u64(), report["failed"].as_u64()),
        (Some(IDEMPOTENT_RECORDS as u64), Some(0)),
        "{client:?}: every record acknowledged: {report}"
    );
    // Read back by another client: each index once, in produce order, offsets gapless.
    let consumed = gregor_e2e::client::CONFLUENT.consume(&broker, &topic);
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
    let input = unique_topic("py-ctp-in");
    let output = unique_topic("py-ctp-out");
    let group = format!("{input}-group");
    create_topic(bootstrap, &input, 1);
    create_topic(bootstrap, &output, 2);
    let produced = run_python_json(
        "confluent_client.py",
        &[
            bootstrap,
            "produce",
            &input,
            "--count",
            &CTP_INPUT.to_string(),
        ],
        TIMEOUT,
    );
    let produced = gregor_e2e::check::records(&produced, "delivered");
    assert_eq!(produced.len(), CTP_INPUT);
    let txn_id = format!("{input}-txn");
    let (count, per_txn) = (CTP_INPUT.to_string(), CTP_PER_TXN.to_string());
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
    let doc = client.run(bootstrap, &args);
    let what = format!("{client:?} on {label} (subscribe: {subscribe})");
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
    assert_eq!(
        committed_txns.len(),
        CTP_INPUT / CTP_PER_TXN,
        "{what}: {doc}"
    );
    assert_eq!(
        txns.len(),
        2 * committed_txns.len() - 1,
        "{what}: commits and aborts in turn: {doc}"
    );
    assert_eq!(doc["committed_offset"], CTP_INPUT, "{what}: {doc}");

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
        (0..CTP_INPUT as u64).collect::<Vec<u64>>(),
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
        CTP_INPUT + aborted * CTP_PER_TXN,
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

fn side_by_side_with_kafka(client: Client) {
    let broker = Broker::start();
    let kafka = KafkaPeer::start();
    for subscribe in [false, true] {
        let gregor_ctp =
            consume_transform_produce(client, &broker.bootstrap(), "gregor", subscribe);
        let kafka_ctp = consume_transform_produce(client, &kafka.bootstrap(), "Kafka", subscribe);
        assert_eq!(
            gregor_ctp,
            kafka_ctp,
            "{client:?}: consume-transform-produce on gregor (left) and Kafka {} (right)",
            kafka.version()
        );
    }
    let gregor_fence = fencing(client, &broker.bootstrap(), "gregor");
    let kafka_fence = fencing(client, &kafka.bootstrap(), "Kafka");
    assert_eq!(
        gregor_fence,
        kafka_fence,
        "{client:?}: fencing on gregor (left) and Kafka {} (right)",
        kafka.version()
    );
}

#[test]
fn kafka_python_consume_transform_produce_and_fencing_match_kafka() {
    side_by_side_with_kafka(Client::KafkaPython);
}

#[test]
fn aiokafka_consume_transform_produce_and_fencing_match_kafka() {
    side_by_side_with_kafka(Client::Aiokafka);
}

// ---------------------------------------------------------------------------------------------
// Open transactions across a kill -9 of the broker.

fn open_transactions_across_a_kill9(client: Client) {
    let mut broker =
        Broker::start_with(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("py-open");
    create_topic(&bootstrap, &topic, 2);
    let dir = tempfile::tempdir().expect("temp dir");
    // Partition 0: an id whose transaction times out in 10 s; partition 1: one with 60 s, which
    // only a new producer's InitProducerId ends in time.
    let ids = [
        (format!("{topic}-short"), "0", "10000"),
        (format!("{topic}-long"), "1", "60000"),
    ];
    let mut producers = Vec::new();
    for (id, partition, timeout) in &ids {
        let progress = dir.path().join(format!("progress-{partition}"));
        let p = progress.display().to_string();
        let child = client.spawn(
            &bootstrap,
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
    for (child, progress) in &mut producers {
        wait_until("the transaction is open", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{client:?}: the open driver exited ({status})");
            }
            progress.exists()
        });
    }
    let before = client.ends(&bootstrap, &topic);
    for (p, (hw, lso)) in &before {
        assert_eq!(
            (*hw, *lso),
            (5, 0),
            "{client:?}: partition {p} open: {before:?}"
        );
    }
    // The producers die first, then the broker: nothing will finish those transactions but
    // the coordinator's timer or a new producer with the same id.
    for (child, _) in &mut producers {
        let _ = child.kill();
        let _ = child.wait();
    }
    broker.restart();
    let after = client.ends(&bootstrap, &topic);
    assert_eq!(
        after.get("1"),
        Some(&(5, 0)),
        "{client:?}: the 60 s transaction is still open after the restart: {after:?}"
    );
    assert!(
        client
            .values(&bootstrap, &topic, "read_committed")
            .is_empty(),
        "{client:?}: read_committed sees nothing of the open transactions"
    );
    wait_until("the timed-out transaction aborted", || {
        client.ends(&bootstrap, &topic).get("0") == Some(&(6, 6))
    });
    assert_eq!(
        client.ends(&bootstrap, &topic).get("1"),
        Some(&(5, 0)),
        "{client:?}: the 60 s transaction is not timed out yet"
    );
    // A new producer with the long id: its InitProducerId aborts the open transaction.
    let init = client.run(&bootstrap, &["init", &topic, &ids[1].0]);
    assert!(init["epoch"].as_i64().is_some_and(|e| e > 0), "{init}");
    wait_until("InitProducerId aborted the open transaction", || {
        client.ends(&bootstrap, &topic).get("1") == Some(&(6, 6))
    });
    client.run(
        &bootstrap,
        &["commit", &topic, &ids[1].0, "--count", "6", "--prefix", "c"],
    );
    let mut want: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    want.sort();
    assert_eq!(
        client.values(&bootstrap, &topic, "read_committed"),
        want,
        "{client:?}: read_committed sees the later transaction whole and nothing open"
    );
    let all = client.values(&bootstrap, &topic, "read_uncommitted");
    assert_eq!(all.len(), 16, "{client:?}: {all:?}");
    for (p, (hw, lso)) in client.ends(&bootstrap, &topic) {
        assert_eq!(lso, hw, "{client:?}: partition {p} has no open transaction");
    }
}

#[test]
fn kafka_python_open_transactions_across_a_kill9_are_aborted() {
    open_transactions_across_a_kill9(Client::KafkaPython);
}

#[test]
fn aiokafka_open_transactions_across_a_kill9_are_aborted() {
    open_transactions_across_a_kill9(Client::Aiokafka);
}
