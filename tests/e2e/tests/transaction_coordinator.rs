//! The transaction coordinator end to end, with librdkafka (confluent-kafka,
//! `transactional.id`) and Apache Kafka's `kafka-transactions.sh`:
//!
//! - `a_committed_transaction_is_stored`: init_transactions, begin, produce, commit; the records
//!   are in the log (read_uncommitted).
//! - `commit_then_abort`: a committed transaction, then an aborted one; read_uncommitted sees
//!   every data record, read_committed exactly the committed ones (the commit's markers are
//!   written before the next transaction can start).
//! - `consume_transform_produce_commits_offsets_in_the_transaction`: offsets sent in the
//!   transaction; an aborted pass, then a committed one: read_committed sees the committed
//!   output exactly once, and the group's offset is the committed pass's.
//! - `a_second_producer_fences_the_first`: a second producer with the same transactional id
//!   aborts the first one's open transaction, whose commit then fails as fenced.
//! - `kafka_transactions_list_and_describe`: after init_transactions, Kafka's own tool and
//!   `gregor transactions list|describe` list and describe the id (state Empty).
//! - `an_open_transaction_survives_a_kill9_and_times_out`: raw requests open a transaction,
//!   the broker is killed with kill -9 and restarted; the coordinator knows the transaction
//!   again, and its timer aborts it under a bumped epoch (the old producer is then fenced).
//! - `the_coordinator_moves_with_its_partition_leader`: 3 nodes; after a kill -9 of the
//!   coordinator, the new leader of the id's `__transaction_state` partition knows the open
//!   transaction.
//! - `java_producer_uses_transactions_version_2_on_one_node` / `..._on_three_nodes`: the
//!   cluster finalizes `transaction.version` 2 (checked in every node's ApiVersions answer);
//!   Kafka's Java producer (`tests/interop/java/TransactionsV2.java`) then uses transactions
//!   version 2: it commits and aborts transactions back to back with their offsets
//!   (TxnOffsetCommit v5, no AddPartitionsToTxn or AddOffsetsToTxn); read_committed sees
//!   exactly the committed records, the group's offset is the last committed one, and the
//!   producer epoch was bumped by every EndTxn.
//! - `transaction_version_1_keeps_the_java_producer_on_the_classic_protocol`: with
//!   `transaction.version=1` the same program runs transactions version 1 (the epoch stays).
//! - `seeded_faults_keep_transactions_exactly_once` and `..._java_transactions_...`: 3 nodes
//!   under seeded kills, pauses, link cuts and slow links while a confluent-kafka producer
//!   (transactions version 1) or Kafka's Java producer (version 2) commits and aborts
//!   transactions back to back: read_committed then sees exactly the committed transactions,
//!   each wholly and once, in order, and no transaction is left open.

use std::time::Duration;

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::kafka_tools::{run_program, Toolbox};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn client(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("transactional_client.py", &all, TIMEOUT)
}

fn values(broker: &Broker, topic: &str, isolation: &str) -> Vec<String> {
    let doc = client(broker, &["consume", topic, "--isolation", isolation]);
    let mut v: Vec<String> = doc["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values: {doc}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

fn create_topic(broker: &Broker, topic: &str) {
    gregor_e2e::client::CONFLUENT.create_topic(broker, topic, 2);
}

#[test]
fn a_committed_transaction_is_stored() {
    let broker = Broker::start();
    let topic = unique_topic("txn-commit");
    create_topic(&broker, &topic);
    let done = client(&broker, &["commit", &topic, "txn-commit", "--count", "20"]);
    assert_eq!(done["committed"], 20, "{done}");
    let seen = values(&broker, &topic, "read_uncommitted");
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.iter().all(|v| v.starts_with('c')));
}

#[test]
fn commit_then_abort() {
    let broker = Broker::start();
    let topic = unique_topic("txn-abort");
    create_topic(&broker, &topic);
    let done = client(
        &broker,
        &["commit-abort", &topic, "txn-abort", "--count", "10"],
    );
    assert_eq!(
        (done["committed"].as_u64(), done["aborted"].as_u64()),
        (Some(10), Some(10))
    );
    let all = values(&broker, &topic, "read_uncommitted");
    assert_eq!(
        all.len(),
        20,
        "read_uncommitted sees every data record: {all:?}"
    );
    let committed = values(&broker, &topic, "read_committed");
    let want: Vec<String> = (0..10).map(|i| format!("c{i:06}")).collect();
    assert_eq!(
        committed, want,
        "read_committed sees exactly the committed records"
    );
}

/// Consume-transform-produce with the consumer's offsets sent in the transaction
/// (AddOffsetsToTxn, TxnOffsetCommit): an aborted pass leaves no output visible to
/// read_committed and no committed offset; the committed pass is visible exactly once and
/// commits the group's offset.
#[test]
fn consume_transform_produce_commits_offsets_in_the_transaction() {
    let broker = Broker::start();
    let input = unique_topic("txn-in");
    let output = unique_topic("txn-out");
    gregor_e2e::client::CONFLUENT.create_topic(&broker, &input, 1);
    create_topic(&broker, &output);
    let produced = gregor_e2e::client::CONFLUENT.produce(&broker, &input, 20, 0, "none");
    assert_eq!(produced.len(), 20);
    let done = client(
        &broker,
        &[
            "ctp",
            &input,
            "txn-ctp",
            "--output",
            &output,
            "--group",
            "ctp-group",
            "--count",
            "20",
        ],
    );
    assert_eq!(
        (done["aborted"].as_u64(), done["committed"].as_u64()),
        (Some(10), Some(20)),
        "{done}"
    );
    assert_eq!(done["committed_offset"], 20, "{done}");
    let committed = values(&broker, &output, "read_committed");
    assert_eq!(committed.len(), 20, "{committed:?}");
    let mut unique = committed.clone();
    unique.dedup();
    assert_eq!(unique.len(), 20, "each input record once: {committed:?}");
    assert_eq!(values(&broker, &output, "read_uncommitted").len(), 30);
}

#[test]
fn a_second_producer_fences_the_first() {
    let broker = Broker::start();
    let topic = unique_topic("txn-fence");
    create_topic(&broker, &topic);
    let done = client(&broker, &["fence", &topic, "txn-fence"]);
    assert_eq!(done["fenced"], true, "{done}");
}

#[test]
fn kafka_transactions_list_and_describe() {
    let toolbox = Toolbox::installed();
    let broker = Broker::start();
    let topic = unique_topic("txn-tools");
    create_topic(&broker, &topic);
    let done = client(&broker, &["init", &topic, "txn-tools"]);
    assert_eq!(done["initialized"], "txn-tools", "{done}");
    let bootstrap = broker.bootstrap();
    let list = toolbox.run(
        "kafka-transactions.sh",
        &["--bootstrap-server", &bootstrap, "list"],
        None,
        TIMEOUT,
    );
    assert!(
        list.status.is_some_and(|s| s.success()) && list.stdout.contains("txn-tools"),
        "kafka-transactions list: {list:?}"
    );
    let describe = toolbox.run(
        "kafka-transactions.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "describe",
            "--transactional-id",
            "txn-tools",
        ],
        None,
        TIMEOUT,
    );
    assert!(
        describe.status.is_some_and(|s| s.success())
            && describe.stdout.contains("txn-tools")
            && describe.stdout.contains("Empty"),
        "kafka-transactions describe: {describe:?}"
    );
    for (args, want) in [
        (vec!["transactions", "list"], "Empty"),
        (vec!["transactions", "describe", "txn-tools"], "Empty"),
    ] {
        let mut all = args.clone();
        all.extend(["--bootstrap-server", &bootstrap]);
        let run = run_program(&gregor_bin(), "gregor", &all, None, TIMEOUT);
        let out = run.ok().unwrap_or_else(|e| panic!("gregor {args:?}: {e}"));
        assert!(
            out.contains("txn-tools") && out.contains(want) && out.contains("STATE"),
            "gregor {args:?}:\n{out}"
        );
    }
}

/// A coordinator killed with kill -9 in the middle of a transaction: after the restart it
/// loads `__transaction_state` and knows the open transaction (producer, epoch, partitions),
/// and its timer aborts the transaction once it is past its timeout, under a bumped epoch, so
/// the producer that let it time out is fenced.
#[test]
fn an_open_transaction_survives_a_kill9_and_times_out() {
    use gregor_e2e::raw::{topic_name, RawConn};
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
        FindCoordinatorRequest, InitProducerIdRequest, ProducerId, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    const PRODUCER_FENCED: i16 = 90;
    let mut broker =
        Broker::start_with(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    let topic = unique_topic("txn-kill");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 2), 0);
    let id = || TransactionalId(StrBytes::from_static_str("txn-kill"));
    let retry = |what: &str, mut f: Box<dyn FnMut() -> i16 + '_>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let code = f();
            if code == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {code}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    retry(
        "FindCoordinator",
        Box::new(|| {
            conn.request(
                3,
                &FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_static_str("txn-kill"))
                    .with_key_type(1),
            )
            .expect("FindCoordinator")
            .error_code
        }),
    );
    let mut init = None;
    retry(
        "InitProducerId",
        Box::new(|| {
            let r = conn
                .request(
                    4,
                    &InitProducerIdRequest::default()
                        .with_transactional_id(Some(id()))
                        .with_transaction_timeout_ms(3_000)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )
                .expect("InitProducerId");
            init = Some((r.producer_id, r.producer_epoch));
            r.error_code
        }),
    );
    let (pid, epoch) = init.expect("initialized");
    let added = conn
        .request(
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(id())
                .with_v3_and_below_producer_id(pid)
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![0, 1])]),
        )
        .expect("AddPartitionsToTxn");
    let codes: Vec<i16> = added.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![0, 0]);

    broker.restart(); // kill -9, then the same data dir and port
    let mut conn = RawConn::connect(broker.addr());
    let describe = |conn: &mut RawConn| {
        conn.request(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![id()]),
        )
        .expect("DescribeTransactions")
        .transaction_states
        .remove(0)
    };
    let state = describe(&mut conn);
    assert_eq!(state.error_code, 0, "{state:?}");
    assert_eq!(
        (state.producer_id, state.producer_epoch),
        (pid, epoch),
        "{state:?}"
    );
    let partitions: Vec<i32> = state
        .topics
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    // Ongoing, or already aborted if the restart took longer than the 3 s timeout.
    if state.transaction_state.as_str() == "Ongoing" {
        assert_eq!(partitions, vec![0, 1]);
    }
    // The timer aborts it under a bumped epoch (PrepareAbort until the markers are written).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let aborted = loop {
        let s = describe(&mut conn);
        if s.transaction_state.as_str() != "Ongoing" {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "never aborted: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        aborted.transaction_state.as_str().ends_with("Abort"),
        "{aborted:?}"
    );
    assert_eq!(aborted.producer_epoch, epoch + 1, "{aborted:?}");
    // The producer that let it time out is fenced.
    let end = conn
        .request(
            3,
            &EndTxnRequest::default()
                .with_transactional_id(id())
                .with_producer_id(pid)
                .with_producer_epoch(epoch)
                .with_committed(true),
        )
        .expect("EndTxn");
    assert_eq!(end.error_code, PRODUCER_FENCED);
}

/// In a 3-node cluster (`__transaction_state` with 3 replicas), the transaction coordinator moves
/// with the leadership of the id's partition: after a kill -9 of the coordinator, another node
/// leads the partition, loads it and knows the open transaction.
#[test]
fn the_coordinator_moves_with_its_partition_leader() {
    use gregor_e2e::cluster::Cluster;
    use gregor_e2e::cluster_client::{create_topic as create_rf_topic, wait_for_brokers};
    use gregor_e2e::raw::{topic_name, RawConn};
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, DescribeTransactionsRequest, FindCoordinatorRequest,
        InitProducerIdRequest, ProducerId, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;
    use std::net::SocketAddr;

    let mut cluster = Cluster::start(3, &["transaction.state.log.num.partitions=1"]);
    wait_for_brokers(&cluster, 3);
    let topic = unique_topic("txn-move");
    create_rf_topic(&cluster.bootstrap(), &topic, 1, 3, &[]);
    let id = || TransactionalId(StrBytes::from_static_str("txn-move"));
    let deadline = || std::time::Instant::now() + Duration::from_secs(60);
    // The coordinator as `via` sees it, once it answers: (node id, address).
    let find = |via: SocketAddr, not: Option<i32>| -> (i32, SocketAddr) {
        let until = deadline();
        loop {
            let mut conn = RawConn::connect(via);
            let r = conn
                .request(
                    3,
                    &FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_static_str("txn-move"))
                        .with_key_type(1),
                )
                .expect("FindCoordinator");
            if r.error_code == 0 && Some(r.node_id.0) != not {
                let addr = format!("{}:{}", r.host, r.port).parse().expect("address");
                return (r.node_id.0, addr);
            }
            assert!(std::time::Instant::now() < until, "no coordinator: {r:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first_node = cluster.ids()[0];
    let (coordinator, addr) = find(cluster.node(first_node).addr, None);
    let mut conn = RawConn::connect(addr);
    let until = deadline();
    let (pid, epoch) = loop {
        let r = conn
            .request(
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(id()))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .expect("InitProducerId");
        if r.error_code == 0 {
            break (r.producer_id, r.producer_epoch);
        }
        assert!(std::time::Instant::now() < until, "InitProducerId: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let added = conn
        .request(
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(id())
                .with_v3_and_below_producer_id(pid)
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![0])]),
        )
        .expect("AddPartitionsToTxn");
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );

    cluster.kill9(coordinator);
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&n| n != coordinator)
        .expect("a survivor");
    let (moved_to, addr) = find(cluster.node(survivor).addr, Some(coordinator));
    assert_ne!(moved_to, coordinator);
    let until = deadline();
    let state = loop {
        let mut conn = RawConn::connect(addr);
        let s = conn
            .request(
                0,
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![id()]),
            )
            .expect("DescribeTransactions")
            .transaction_states
            .remove(0);
        if s.error_code == 0 {
            break s;
        }
        assert!(std::time::Instant::now() < until, "not loaded: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state.transaction_state.as_str(), "Ongoing", "{state:?}");
    assert_eq!((state.producer_id, state.producer_epoch), (pid, epoch));
    assert_eq!(state.topics[0].topic, topic_name(&topic));
    assert_eq!(state.topics[0].partitions, vec![0]);
}

/// The level of `transaction.version` in the ApiVersions answer of the broker at `addr`.
fn finalized_transaction_version(addr: std::net::SocketAddr) -> Option<i16> {
    let mut conn = gregor_e2e::raw::RawConn::connect(addr);
    let resp = conn.api_versions();
    resp.finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| f.max_version_level)
}

/// Runs `tests/interop/java/TransactionsV2.java` (compiled once against the toolbox's
/// kafka-clients: `Toolbox::run_java_source`): its JSON answer.
fn java_transactions(bootstrap: &str, topic: &str, id: &str, rounds: u32, group: &str) -> Value {
    let rounds = rounds.to_string();
    let line = Toolbox::installed().run_java_source(
        "TransactionsV2.java",
        &[bootstrap, topic, id, &rounds, group],
        TIMEOUT,
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line}: {e}"))
}

/// What every TransactionsV2 run must show: read_committed sees exactly the committed records,
/// and the group's committed offset is the last committed round's.
fn check_exactly_once(doc: &Value) {
    assert_eq!(doc["read_committed"], doc["committed"], "{doc}");
    assert!(
        doc["committed"].as_array().is_some_and(|c| !c.is_empty()),
        "{doc}"
    );
    assert_eq!(doc["group_offset"], doc["expected_group_offset"], "{doc}");
}

#[test]
fn java_producer_uses_transactions_version_2_on_one_node() {
    let broker = Broker::start();
    assert_eq!(finalized_transaction_version(broker.addr()), Some(2));
    let topic = unique_topic("txn-v2");
    create_topic(&broker, &topic);
    let doc = java_transactions(&broker.bootstrap(), &topic, "txn-v2", 6, "txn-v2-group");
    assert_eq!(doc["transaction_version"], 2, "{doc}");
    check_exactly_once(&doc);
    assert_eq!(
        doc["producer_epoch"], 6,
        "every EndTxn bumped the epoch: {doc}"
    );
}

#[test]
fn java_producer_uses_transactions_version_2_on_three_nodes() {
    use gregor_e2e::cluster::Cluster;
    use gregor_e2e::cluster_client::{create_topic as create_rf_topic, wait_for_brokers};
    let cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    for id in cluster.ids() {
        let addr = cluster.node(id).addr;
        let until = std::time::Instant::now() + Duration::from_secs(30);
        // A broker answers with the level once its image has the controller's record.
        while finalized_transaction_version(addr) != Some(2) {
            assert!(
                std::time::Instant::now() < until,
                "node {id} never advertised transaction.version 2"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let topic = unique_topic("txn-v2-3");
    create_rf_topic(&cluster.bootstrap(), &topic, 3, 3, &[]);
    let doc = java_transactions(
        &cluster.bootstrap(),
        &topic,
        "txn-v2-3",
        6,
        "txn-v2-3-group",
    );
    assert_eq!(doc["transaction_version"], 2, "{doc}");
    check_exactly_once(&doc);
    assert_eq!(doc["producer_epoch"], 6, "{doc}");
}

#[test]
fn transaction_version_1_keeps_the_java_producer_on_the_classic_protocol() {
    let broker = Broker::start_with(&["transaction.version=1"]);
    assert_eq!(finalized_transaction_version(broker.addr()), Some(1));
    let topic = unique_topic("txn-v1");
    create_topic(&broker, &topic);
    let doc = java_transactions(&broker.bootstrap(), &topic, "txn-v1", 4, "txn-v1-group");
    assert_eq!(doc["transaction_version"], 1, "{doc}");
    check_exactly_once(&doc);
    assert_eq!(
        doc["producer_epoch"], 0,
        "no bump with transactions version 1: {doc}"
    );
}

/// Exactly-once under seeded faults: a transactional producer runs transactions of 20
/// records over two partitions (replication factor 3, `min.insync.replicas` 2) back to back,
/// committing three in four and flushing then aborting the rest, while a 3-node cluster goes
/// through kills and restarts, pauses, link cuts and slow links, one at a time (the random
/// fault test's faults, `Fault::pick`), each healed before the next, and then three zombie
/// fences (another producer initializes the same transactional id). The coordinator's
/// `__transaction_state` partitions and the data partitions move with their leaders. Each seed
/// (`GREGOR_TXN_SEEDS`, default "6": three kills and a cut; `GREGOR_TXN_STEPS` faults per seed,
/// default 4) then checks, after a new producer with the same id has completed or aborted
/// whatever was left:
/// - no partition is left with an open transaction (last stable offset = high watermark);
/// - read_committed sees every transaction the client saw committed, wholly and once, no
///   transaction it saw aborted, and of those whose outcome it never learned (a fatal error,
///   then a new producer) each either wholly or not at all;
/// - every partition holds the transactions in the order they were made;
/// - read_uncommitted sees every committed record too, and no record twice (the idempotent
///   producer's retries across the faults).
///
/// The producer is confluent-kafka (`txn_loop.py`: transactions version 1, AddPartitionsToTxn
/// from the client) or Kafka's Java client (`TxnLoop.java`: transactions version 2, the
/// partition leaders add the partitions through the coordinator). A failing seed replays with
/// `GREGOR_TXN_SEEDS=<seed>`.
#[test]
fn seeded_faults_keep_transactions_exactly_once() {
    for seed in txn_fault_seeds() {
        transactions_through_faults(seed, TxnClient::Librdkafka);
    }
}

/// [`seeded_faults_keep_transactions_exactly_once`] with the Java producer (transactions
/// version 2).
#[test]
fn seeded_faults_keep_java_transactions_exactly_once() {
    for seed in txn_fault_seeds() {
        transactions_through_faults(seed, TxnClient::Java);
    }
}

fn txn_fault_seeds() -> Vec<u64> {
    std::env::var("GREGOR_TXN_SEEDS")
        .unwrap_or_else(|_| "6".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnClient {
    Librdkafka,
    Java,
}

/// A transactional loop running beside the faults: a child process (confluent-kafka's Python
/// script, or the Java program), killed if the test ends without stopping it.
struct TxnLoop {
    child: Option<std::process::Child>,
    /// The Java program stops when this file exists; the Python script on SIGTERM.
    stop_file: Option<std::path::PathBuf>,
    /// Its stdout (the JSON summary); stderr is beside it, `.err`.
    output: std::path::PathBuf,
}

impl TxnLoop {
    fn start(
        client: TxnClient,
        bootstrap: &str,
        topic: &str,
        txn_id: &str,
        progress: &std::path::Path,
        per_txn: usize,
        seed: u64,
    ) -> TxnLoop {
        let (per_txn, seed) = (per_txn.to_string(), seed.to_string());
        let progress_text = progress.display().to_string();
        let (mut cmd, stop_file) = match client {
            TxnClient::Librdkafka => {
                let mut cmd = std::process::Command::new(gregor_e2e::python());
                cmd.arg("-u")
                    .arg("-B")
                    .arg(gregor_e2e::python_script("txn_loop.py"))
                    .args([bootstrap, topic, txn_id, &progress_text])
                    .args(["--partitions", "2", "--per-txn", &per_txn, "--seed", &seed]);
                (cmd, None)
            }
            TxnClient::Java => {
                let mut cmd = std::process::Command::new("java");
                cmd.args(Toolbox::installed().java_source_args(
                    "TxnLoop.java",
                    &[bootstrap, topic, txn_id, &progress_text, &per_txn, &seed],
                ));
                (
                    cmd,
                    Some(std::path::PathBuf::from(format!("{progress_text}.stop"))),
                )
            }
        };
        // Output to files, not pipes: a client that logs a lot through the faults must never
        // block on a full pipe nobody reads until the end.
        let output = std::path::PathBuf::from(format!("{progress_text}.out"));
        let file = |path: &std::path::Path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(file(&output))
            .stderr(file(&output.with_extension("err")))
            .spawn()
            .unwrap_or_else(|e| panic!("start the {client:?} transactional loop: {e}"));
        TxnLoop {
            child: Some(child),
            stop_file,
            output,
        }
    }

    /// Stops the loop at its next transaction boundary (at most 150 s, then kills it); what it
    /// printed.
    fn stop(mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        match &self.stop_file {
            Some(path) => std::fs::write(path, b"").expect("write the stop file"),
            None => gregor_e2e::broker::send_signal(child.id(), "TERM"),
        }
        if gregor_e2e::broker::wait_timeout(&mut child, Duration::from_secs(150)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stdout = std::fs::read_to_string(&self.output).unwrap_or_default();
        let stderr = std::fs::read_to_string(self.output.with_extension("err")).unwrap_or_default();
        // The JSON summary, and the end of what the client logged.
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{stdout}{}", tail.join("\n"))
    }
}

impl Drop for TxnLoop {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn transactions_through_faults(seed: u64, txn_client: TxnClient) {
    use gregor_e2e::cluster::Cluster;
    use gregor_e2e::cluster_client::{
        create_topic as create_rf_topic, run_seeded_faults, wait_for, wait_for_brokers,
    };
    use std::collections::{BTreeMap, BTreeSet};

    const PER_TXN: usize = 20;
    let steps: usize = std::env::var("GREGOR_TXN_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut rng = gregor_e2e::mutate::Rng::new(seed);
    let mut cluster = Cluster::start(3, &["transaction.state.log.num.partitions=3"]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic(&format!("txn-faults{seed}"));
    let txn_id = format!("{topic}-id");
    create_rf_topic(&bootstrap, &topic, 2, 3, &["min.insync.replicas=2"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress.txt");
    let outcomes = |path: &std::path::Path| -> Vec<(String, usize)> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (what, i) = l.split_once(' ')?;
                Some((what.to_string(), i.parse().ok()?))
            })
            .collect()
    };
    let committed_count = |path: &std::path::Path| {
        outcomes(path)
            .iter()
            .filter(|(w, _)| w == "committed")
            .count()
    };
    let producer = TxnLoop::start(
        txn_client, &bootstrap, &topic, &txn_id, &progress, PER_TXN, seed,
    );
    wait_for(
        &cluster,
        "10 committed transactions",
        Duration::from_secs(90),
        || (committed_count(&progress) >= 10).then_some(()),
    );
    run_seeded_faults(
        &mut cluster,
        &mut rng,
        steps,
        &topic,
        2,
        &format!("{txn_client:?} seed {seed}"),
    );
    // Zombies: a new producer with the same id initializes three times while the loop runs,
    // fencing the loop's producer wherever it is (its transaction's outcome is then unknown to
    // it; it starts a new producer, which fences the newcomer in turn).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        run_python_json(
            "transactional_client.py",
            &[&bootstrap, "init", &topic, &txn_id],
            TIMEOUT,
        );
    }
    // The producer goes on after the last fault.
    let before = committed_count(&progress);
    wait_for(
        &cluster,
        "10 more commits after the faults",
        Duration::from_secs(90),
        || (committed_count(&progress) >= before + 10).then_some(()),
    );
    let out = producer.stop();
    eprintln!("{txn_client:?} seed {seed}: loop {out}");
    // A new producer with the same id completes or aborts whatever the loop left.
    run_python_json(
        "transactional_client.py",
        &[&bootstrap, "init", &topic, &txn_id],
        TIMEOUT,
    );
    let mut by_outcome: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (what, i) in outcomes(&progress) {
        by_outcome.entry(what).or_default().insert(i);
    }
    let committed = by_outcome.remove("committed").unwrap_or_default();
    let aborted = by_outcome.remove("aborted").unwrap_or_default();
    let unknown = by_outcome.remove("unknown").unwrap_or_default();
    assert!(by_outcome.is_empty(), "unexpected outcomes {by_outcome:?}");
    eprintln!(
        "{txn_client:?} seed {seed}: {} committed, {} aborted, {} unknown",
        committed.len(),
        aborted.len(),
        unknown.len()
    );

    wait_for(
        &cluster,
        "no open transaction left (LSO = HW)",
        Duration::from_secs(90),
        || {
            let ends = run_python_json(
                "transactional_client.py",
                &[&bootstrap, "ends", &topic],
                TIMEOUT,
            );
            let settled = ends.as_object().is_some_and(|m| {
                m.len() == 2 && m.values().all(|e| e["lso"] == e["hw"] && e["hw"].is_i64())
            });
            settled.then_some(())
        },
    );

    // Each value is t<txn>-<record>; record j went to partition j % 2.
    let parse = |v: &str| -> (usize, usize) {
        let (t, j) = v
            .strip_prefix('t')
            .and_then(|r| r.split_once('-'))
            .unwrap_or_else(|| panic!("unexpected value {v}"));
        (t.parse().expect("txn"), j.parse().expect("record"))
    };
    let read = |isolation: &str| -> Vec<(usize, usize)> {
        let doc = run_python_json(
            "transactional_client.py",
            &[&bootstrap, "consume", &topic, "--isolation", isolation],
            TIMEOUT,
        );
        doc["values"]
            .as_array()
            .unwrap_or_else(|| panic!("no values: {doc}"))
            .iter()
            .filter_map(Value::as_str)
            .map(parse)
            .collect()
    };
    let visible = read("read_committed");
    let mut per_txn: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for &(t, j) in &visible {
        assert!(
            per_txn.entry(t).or_default().insert(j),
            "t{t}-{j} read twice"
        );
    }
    for (t, records) in &per_txn {
        assert_eq!(
            records.len(),
            PER_TXN,
            "transaction {t} is partly visible: {records:?}"
        );
        assert!(!aborted.contains(t), "aborted transaction {t} is visible");
        assert!(
            committed.contains(t) || unknown.contains(t),
            "transaction {t} visible, but the client never finished it"
        );
    }
    for t in &committed {
        assert!(
            per_txn.contains_key(t),
            "committed transaction {t} is missing"
        );
    }
    for partition in 0..2 {
        let order: Vec<(usize, usize)> = visible
            .iter()
            .copied()
            .filter(|&(_, j)| j % 2 == partition)
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} out of order"
        );
    }
    let uncommitted = read("read_uncommitted");
    let all: BTreeSet<(usize, usize)> = uncommitted.iter().copied().collect();
    assert_eq!(all.len(), uncommitted.len(), "a record is in the log twice");
    for &r in &visible {
        assert!(all.contains(&r), "{r:?} missing from read_uncommitted");
    }
    eprintln!(
        "{txn_client:?} seed {seed}: read_committed {} records of {} transactions; read_uncommitted {}",
        visible.len(),
        per_txn.len(),
        all.len()
    );
}
