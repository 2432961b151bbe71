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
    let broker = Broker::start();
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
    let broker = Broker::start();
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
    let mut broker = Broker::start();
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
    let mut cluster = Cluster::start(3, &[]);
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
