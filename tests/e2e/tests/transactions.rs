//! The partition side of transactions with a real read_committed client: transactional
//! produces and WriteTxnMarkers sent raw (as a producer and a transaction coordinator would),
//! read back by librdkafka (confluent-kafka), kafka-python and Kafka's console consumer at
//! both isolation levels.
//!
//! - `read_committed_consumers_skip_aborted_and_open_transactions`: librdkafka's
//!   read_committed consumer drops the aborted transaction's records (from the fetch's
//!   aborted-transactions list), stops at the last stable offset while a transaction is open,
//!   and never returns the markers; read_uncommitted sees every data record. kafka-python
//!   reads the same at both levels.
//! - `a_kill9_mid_transaction_keeps_it_open_until_its_marker`: after a kill -9, the open
//!   transaction is still open (the LSO stays at its first offset), the aborted one still
//!   aborted; its marker then moves the LSO on.
//! - `a_new_leader_keeps_the_transactions_of_the_old_one`: in a three-node cluster, the
//!   followers replicate the markers and the producer state; after the leader's kill -9 the
//!   new leader serves the same read_committed view and takes the next marker.
//! - `the_java_console_consumer_reads_committed_records_only`: the same with Kafka's own
//!   consumer (`kafka-console-consumer.sh --isolation-level read_committed`, the toolbox's).
//! - `verification_asks_the_coordinator_on_another_node` (KIP-890 part 1): in a three-node
//!   cluster, with the partition's leader and the transaction coordinator on different nodes,
//!   a confluent-kafka transaction commits (the leader's verification passes across nodes),
//!   and a raw transactional produce to a partition never added to the transaction gets
//!   INVALID_TXN_STATE (v9) or TRANSACTION_ABORTABLE (v11) with nothing appended; a Produce v12 (transactions version 2) has
//!   the leader add the partition itself through the coordinator on the other node.
//!
//! The first four play the transaction coordinator themselves (raw WriteTxnMarkers for
//! producers no coordinator knows), so they run with `transaction.partition.verification.enable
//! =false`, as a Kafka broker would need to take such produces.

use std::time::Duration;

use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::{new_leader_after_kill, replicated_topic};
use gregor_e2e::raw::{code, produce_request, simple_batch, topic_name, RawConn};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TransactionalId, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);

/// The tests that play the coordinator: no KIP-890 verification (no coordinator knows their
/// producers).
const NO_VERIFICATION: &str = "transaction.partition.verification.enable=false";

/// A transactional batch of `values` from producer `pid` (epoch 0) from sequence `seq`.
fn txn_batch(pid: i64, seq: i32, values: &[&str]) -> Vec<u8> {
    let records: Vec<(&str, &str)> = values.iter().map(|v| ("k", *v)).collect();
    let mut b = simple_batch(&records);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Produces a transactional batch as transactional id `txn`; returns its base offset.
fn produce_txn(conn: &mut RawConn, topic: &str, txn: &str, batch: Vec<u8>) -> i64 {
    let req = produce_request(topic, 0, batch).with_transactional_id(Some(TransactionalId(
        StrBytes::from_string(txn.to_string()),
    )));
    let resp = conn.request(9, &req).expect("Produce");
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, code::NONE, "transactional produce");
    p.base_offset
}

/// Ends `pid`'s transaction on `topic`-0 with a marker (coordinator epoch 0).
fn write_marker(conn: &mut RawConn, topic: &str, pid: i64, commit: bool) {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(0)
        .with_transaction_result(commit)
        .with_coordinator_epoch(0)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])])]);
    let resp = conn.request(1, &req).expect("WriteTxnMarkers");
    assert_eq!(
        resp.markers[0].topics[0].partitions[0].error_code,
        code::NONE,
        "marker for {pid}"
    );
}

/// `(offset, value)` of what confluent-kafka reads at `isolation`, and its high watermark (the
/// LSO for read_committed).
fn consume(broker: &Broker, topic: &str, isolation: &str) -> (Vec<(i64, String)>, i64) {
    consume_from(&broker.bootstrap(), topic, isolation)
}

fn consume_from(bootstrap: &str, topic: &str, isolation: &str) -> (Vec<(i64, String)>, i64) {
    consume_with("confluent_client.py", bootstrap, topic, isolation)
}

/// [`consume`] with the client script `script` (confluent-kafka's or kafka-python's).
fn consume_with(
    script: &str,
    bootstrap: &str,
    topic: &str,
    isolation: &str,
) -> (Vec<(i64, String)>, i64) {
    let doc = run_python_json(
        script,
        &[bootstrap, "consume-to-end", topic, "--isolation", isolation],
        CLIENT_TIMEOUT,
    );
    let records = gregor_e2e::check::records(&doc, "records")
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap_or_default()))
        .collect();
    let high = doc
        .pointer("/watermarks/0/1")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| panic!("no watermark in {doc}"));
    (records, high)
}

fn values(records: &[(i64, String)]) -> Vec<&str> {
    records.iter().map(|(_, v)| v.as_str()).collect()
}

/// A topic holding, at offsets 0..=7: an aborted transaction (a1, a2), a plain record (p1),
/// a committed transaction (b1, b2), the two markers, and an open transaction (c1).
fn transactions_topic(broker: &Broker) -> (RawConn, String) {
    let topic = unique_topic("txn");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), code::NONE);
    assert_eq!(
        produce_txn(&mut conn, &topic, "a", txn_batch(1000, 0, &["a1", "a2"])),
        0
    );
    let (c, offset) = conn.produce(&topic, 0, simple_batch(&[("k", "p1")]));
    assert_eq!((c, offset), (code::NONE, 2));
    assert_eq!(
        produce_txn(&mut conn, &topic, "b", txn_batch(2000, 0, &["b1", "b2"])),
        3
    );
    write_marker(&mut conn, &topic, 1000, false); // 5
    write_marker(&mut conn, &topic, 2000, true); // 6
    assert_eq!(
        produce_txn(&mut conn, &topic, "c", txn_batch(3000, 0, &["c1"])),
        7
    );
    (conn, topic)
}

#[test]
fn read_committed_consumers_skip_aborted_and_open_transactions() {
    let broker = Broker::start_with(&[NO_VERIFICATION]);
    let (mut conn, topic) = transactions_topic(&broker);
    let (committed, lso) = consume(&broker, &topic, "read_committed");
    assert_eq!(values(&committed), vec!["p1", "b1", "b2"], "{committed:?}");
    assert_eq!(lso, 7, "read_committed sees the last stable offset");
    let (all, hw) = consume(&broker, &topic, "read_uncommitted");
    assert_eq!(
        values(&all),
        vec!["a1", "a2", "p1", "b1", "b2", "c1"],
        "{all:?}"
    );
    assert_eq!(hw, 8);

    // The open transaction commits: the LSO moves on and its record becomes visible.
    write_marker(&mut conn, &topic, 3000, true); // 8
    let (committed, lso) = consume(&broker, &topic, "read_committed");
    assert_eq!(
        values(&committed),
        vec!["p1", "b1", "b2", "c1"],
        "{committed:?}"
    );
    assert_eq!(lso, 9);
    // kafka-python reads the same at both levels.
    let bootstrap = broker.bootstrap();
    let (py, lso) = consume_with(
        "kafka_python_client.py",
        &bootstrap,
        &topic,
        "read_committed",
    );
    assert_eq!(py, committed, "kafka-python read_committed");
    assert_eq!(lso, 9);
    let (py, _) = consume_with(
        "kafka_python_client.py",
        &bootstrap,
        &topic,
        "read_uncommitted",
    );
    assert_eq!(
        values(&py),
        vec!["a1", "a2", "p1", "b1", "b2", "c1"],
        "kafka-python read_uncommitted"
    );
    // Produce v9 without a transactional id may not carry transactional records.
    let req = produce_request(&topic, 0, txn_batch(4000, 0, &["x"]));
    let resp = conn.request(9, &req).expect("Produce");
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
}

#[test]
fn the_java_console_consumer_reads_committed_records_only() {
    let toolbox = gregor_e2e::kafka_tools::Toolbox::installed();
    let broker = Broker::start_with(&[NO_VERIFICATION]);
    let (mut conn, topic) = transactions_topic(&broker);
    write_marker(&mut conn, &topic, 3000, false); // 8: c1 aborted too
    let bootstrap = broker.bootstrap();
    let run = |isolation: &str| {
        let run = toolbox.run(
            "kafka-console-consumer.sh",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--from-beginning",
                "--isolation-level",
                isolation,
                "--timeout-ms",
                "10000",
            ],
            None,
            Duration::from_secs(120),
        );
        assert!(run.timed_out.is_none(), "{}", run.transcript());
        run.stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(run("read_committed"), vec!["p1", "b1", "b2"]);
    assert_eq!(
        run("read_uncommitted"),
        vec!["a1", "a2", "p1", "b1", "b2", "c1"]
    );
}

#[test]
fn a_kill9_mid_transaction_keeps_it_open_until_its_marker() {
    let mut broker = Broker::start_with(&[NO_VERIFICATION]);
    let (_, topic) = transactions_topic(&broker);
    broker.restart(); // kill -9 first
    let (committed, lso) = consume(&broker, &topic, "read_committed");
    assert_eq!(values(&committed), vec!["p1", "b1", "b2"], "{committed:?}");
    assert_eq!(lso, 7, "the transaction is still open after the kill");
    let mut conn = RawConn::connect(broker.addr());
    write_marker(&mut conn, &topic, 3000, true); // 8
    let (committed, lso) = consume(&broker, &topic, "read_committed");
    assert_eq!(
        values(&committed),
        vec!["p1", "b1", "b2", "c1"],
        "{committed:?}"
    );
    assert_eq!(lso, 9);
    // Once more after a kill: the markers and the aborted transaction are as they were.
    broker.restart();
    let (again, lso) = consume(&broker, &topic, "read_committed");
    assert_eq!(again, committed);
    assert_eq!(lso, 9);
}

#[test]
fn a_new_leader_keeps_the_transactions_of_the_old_one() {
    let mut cluster = Cluster::start(3, &[NO_VERIFICATION]);
    let topic = unique_topic("txn-failover");
    let leader = replicated_topic(&cluster, &topic);
    // acks=all: the followers have each batch and marker before it is answered.
    let mut conn = RawConn::connect(cluster.node(leader).addr);
    assert_eq!(
        produce_txn(&mut conn, &topic, "a", txn_batch(1000, 0, &["a1", "a2"])),
        0
    );
    let (c, offset) = conn.produce(&topic, 0, simple_batch(&[("k", "p1")]));
    assert_eq!((c, offset), (code::NONE, 2));
    assert_eq!(
        produce_txn(&mut conn, &topic, "b", txn_batch(2000, 0, &["b1"])),
        3
    );
    write_marker(&mut conn, &topic, 1000, false); // 4
    write_marker(&mut conn, &topic, 2000, true); // 5
    assert_eq!(
        produce_txn(&mut conn, &topic, "c", txn_batch(3000, 0, &["c1"])),
        6
    );
    drop(conn);

    cluster.kill9(leader);
    let (live, new_leader) = new_leader_after_kill(&cluster, &topic, leader);
    let (committed, lso) = consume_from(&live, &topic, "read_committed");
    assert_eq!(values(&committed), vec!["p1", "b1"], "{committed:?}");
    assert_eq!(lso, 6, "c1's transaction is still open on the new leader");
    let mut conn = RawConn::connect(cluster.node(new_leader).addr);
    write_marker(&mut conn, &topic, 3000, true); // 7
    let (committed, lso) = consume_from(&live, &topic, "read_committed");
    assert_eq!(values(&committed), vec!["p1", "b1", "c1"], "{committed:?}");
    assert_eq!(lso, 8);
}

/// `(error, node id, address)` of `id`'s transaction coordinator as the node at `via` answers
/// FindCoordinator (the first one creates `__transaction_state`).
fn find_coordinator(via: std::net::SocketAddr, id: &str) -> (i16, i32, std::net::SocketAddr) {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let mut conn = RawConn::connect(via);
    let r = conn
        .request(
            3,
            &FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(id.to_string()))
                .with_key_type(1),
        )
        .expect("FindCoordinator");
    let addr = format!("{}:{}", r.host, r.port).parse().unwrap_or(via);
    (r.error_code, r.node_id.0, addr)
}

/// A transactional batch of `values` from producer `pid` at `epoch`, sequences from `seq`.
fn txn_batch_at(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Vec<u8> {
    let mut b = txn_batch(pid, seq, values);
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn verification_asks_the_coordinator_on_another_node() {
    use gregor_e2e::cluster_client::{create_topic, leader_at, wait_for, wait_for_brokers};
    use kafka_protocol::messages::{DescribeTransactionsRequest, InitProducerIdRequest};

    const INVALID_TXN_STATE: i16 = 48;
    const TRANSACTION_ABORTABLE: i16 = 120;
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("txn-verify");
    create_topic(&bootstrap, &topic, 1, 3, &[]);
    let first = cluster.node(cluster.ids()[0]).addr;
    let leader = wait_for(&cluster, "a leader", Duration::from_secs(60), || {
        leader_at(first, &topic).filter(|&l| l >= 0)
    });
    let leader_addr = cluster.node(leader).addr;
    // Two transactional ids whose coordinators are not the partition's leader.
    let mut ids = Vec::new();
    for i in 0.. {
        let id = format!("verify-{i}");
        let (error, node, addr) =
            wait_for(&cluster, "a coordinator", Duration::from_secs(60), || {
                let (error, node, addr) = find_coordinator(first, &id);
                (error == code::NONE).then_some((error, node, addr))
            });
        assert_eq!(error, code::NONE);
        if node != leader {
            ids.push((id, node, addr));
            if ids.len() == 2 {
                break;
            }
        }
        assert!(i < 200, "every coordinator is the leader?");
    }

    // librdkafka's transaction: AddPartitionsToTxn at the coordinator, then the produce, which
    // the leader verifies with that coordinator on its node.
    let (id, coordinator, _) = &ids[0];
    assert_ne!(*coordinator, leader);
    let doc = run_python_json(
        "transactional_client.py",
        &[&bootstrap, "commit", &topic, id, "--count", "5"],
        CLIENT_TIMEOUT,
    );
    assert_eq!(doc["committed"], 5, "{doc}");
    let doc = run_python_json(
        "transactional_client.py",
        &[
            &bootstrap,
            "consume",
            &topic,
            "--isolation",
            "read_committed",
        ],
        CLIENT_TIMEOUT,
    );
    assert_eq!(
        doc["values"].as_array().map(Vec::len),
        Some(5),
        "read_committed sees the committed transaction: {doc}"
    );

    // A producer that never adds the partition: refused by the leader, nothing appended.
    let (id, coordinator, coordinator_addr) = &ids[1];
    assert_ne!(*coordinator, leader);
    let tid = || TransactionalId(StrBytes::from_string(id.clone()));
    let mut at_coordinator = RawConn::connect(*coordinator_addr);
    let (pid, epoch) = wait_for(&cluster, "InitProducerId", Duration::from_secs(60), || {
        let r = at_coordinator
            .request(
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(tid()))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .expect("InitProducerId");
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    });
    let mut at_leader = RawConn::connect(leader_addr);
    let end_before = at_leader.log_end_offset(&topic, 0);
    let produce = |conn: &mut RawConn, version: i16, seq: i32| -> i16 {
        let req = produce_request(&topic, 0, txn_batch_at(pid, epoch, seq, &["x1", "x2"]))
            .with_transactional_id(Some(tid()));
        let resp = conn.request(version, &req).expect("Produce");
        resp.responses[0].partition_responses[0].error_code
    };
    // Produce v11 clients know TRANSACTION_ABORTABLE (KAFKA-16314), older ones get
    // INVALID_TXN_STATE, as from Kafka.
    for (version, want) in [(9, INVALID_TXN_STATE), (11, TRANSACTION_ABORTABLE)] {
        // NOT_ENOUGH_REPLICAS (retriable) while the leader does not know the coordinator yet.
        let error = wait_for(
            &cluster,
            "a verification answer",
            Duration::from_secs(30),
            || {
                let e = produce(&mut at_leader, version, 0);
                (e != NOT_ENOUGH_REPLICAS).then_some(e)
            },
        );
        assert_eq!(error, want, "Produce v{version}");
    }
    assert_eq!(
        at_leader.log_end_offset(&topic, 0),
        end_before,
        "nothing appended"
    );
    // Produce v12 (transactions version 2, KIP-890 part 2): the leader adds the partition to
    // the transaction itself (AddPartitionsToTxn v5 to the coordinator on the other node) and
    // appends; the transaction is then open there, so a v11 produce continues it.
    let error = wait_for(&cluster, "an add answer", Duration::from_secs(30), || {
        let e = produce(&mut at_leader, 12, 0);
        (e != NOT_ENOUGH_REPLICAS).then_some(e)
    });
    assert_eq!(error, code::NONE, "Produce v12 adds the partition");
    assert_eq!(at_leader.log_end_offset(&topic, 0), end_before + 2);
    assert_eq!(produce(&mut at_leader, 11, 2), code::NONE);
    assert_eq!(at_leader.log_end_offset(&topic, 0), end_before + 4);
    let described = at_coordinator
        .request(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid()]),
        )
        .expect("DescribeTransactions");
    let state = &described.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert!(
        state
            .topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&0)),
        "the coordinator has the partition: {state:?}"
    );
}
