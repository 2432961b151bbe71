//! Requests that are well-formed but hostile in size or shape, and state a restart must keep:
//! CreateTopics asking for absurd partition counts, Fetch asking for more than the broker
//! should send (or naming a partition many times), and an Empty consumer group across a
//! restart. After each case the broker keeps answering other connections.

use std::time::Duration;

use bytes::Bytes;
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::raw::{code, simple_batch, topic_name, RawConn};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use serde_json::Value;

/// How long one client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn group_step(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("hostile_group.py", &all, SCRIPT_TIMEOUT)
}

/// A consumer (librdkafka) joins a group and leaves without committing: the group is Empty
/// with no offsets. Kafka keeps it across a restart (until the offsets-retention check removes
/// it), so after a restart ListGroups and DescribeGroups still show it as Empty.
#[test]
fn empty_group_without_offsets_is_listed_after_restart() {
    let mut broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    let topic = unique_topic("empty-group");
    let group = unique_topic("group");
    let mut conn = gregor_e2e::raw::RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 2), gregor_e2e::raw::code::NONE);
    drop(conn);

    let joined = group_step(&broker, &["join-leave", &topic, &group]);
    assert_eq!(joined["assigned"], serde_json::json!([0, 1]), "{joined}");
    let before = group_step(&broker, &["list-groups"]);
    assert_eq!(
        before["groups"][&group], "EMPTY",
        "before restart: {before}"
    );

    broker.restart();
    let after = group_step(&broker, &["list-groups"]);
    assert_eq!(after["groups"][&group], "EMPTY", "after restart: {after}");
    assert_eq!(
        after["described"][&group], "EMPTY",
        "after restart: {after}"
    );
}

/// `fetch.max.bytes` of the fetch tests: small, so a few MB of records exceed it.
const FETCH_CAP: usize = 262_144;

/// Number of whole batches in a record set (each: base offset, int32 length, then `length`
/// bytes).
fn batch_count(records: &Bytes) -> usize {
    let mut pos = 0usize;
    let mut n = 0;
    while pos + 12 <= records.len() {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        pos += 12 + usize::try_from(len).expect("batch length");
        n += 1;
    }
    assert_eq!(pos, records.len(), "record set ends on a batch boundary");
    n
}

/// A Fetch with every limit at its maximum.
fn greedy_fetch(topics: Vec<FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(topics)
}

fn fetch_partitions(topic: &str, partitions: impl IntoIterator<Item = i32>) -> FetchTopic {
    FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(
            partitions
                .into_iter()
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(i32::MAX)
                })
                .collect(),
        )
}

/// Record bytes per partition of a response, and the whole.
fn record_bytes(resp: &FetchResponse) -> (Vec<(i32, Bytes)>, usize) {
    assert_eq!(resp.error_code, code::NONE, "Fetch top-level error");
    let mut parts = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            assert_eq!(
                p.error_code,
                code::NONE,
                "partition {} error",
                p.partition_index
            );
            parts.push((p.partition_index, p.records.clone().unwrap_or_default()));
        }
    }
    let total = parts.iter().map(|(_, r)| r.len()).sum();
    (parts, total)
}

/// One partition named 200 times in a Fetch asking for 2^31-1 bytes: the broker answers it
/// once (as Kafka does: the request's partitions are a map), the response decodes completely,
/// and it stays within `fetch.max.bytes`.
#[test]
fn fetch_naming_a_partition_200_times_answers_it_once() {
    let cap = format!("fetch.max.bytes={FETCH_CAP}");
    let broker = Broker::start_with(&[&cap]);
    let topic = unique_topic("fetch-dup");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), code::NONE);
    let value = "v".repeat(100_000);
    for i in 0..5 {
        let key = format!("k{i}");
        let (err, _) = conn.produce(&topic, 0, simple_batch(&[(&key, &value)]));
        assert_eq!(err, code::NONE);
    }
    let v = conn.version(ApiKey::Fetch);
    let req = greedy_fetch(vec![fetch_partitions(&topic, std::iter::repeat_n(0, 200))]);
    let resp = conn
        .request(v, &req)
        .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
    assert_eq!(resp.responses.len(), 1, "one topic");
    let (parts, total) = record_bytes(&resp);
    assert_eq!(parts.len(), 1, "the partition is answered once");
    assert!(total <= FETCH_CAP, "{total} record bytes > fetch.max.bytes");
    assert_eq!(
        batch_count(&parts[0].1),
        2,
        "two 100 kB batches fit in 256 KiB"
    );
    // The connection and the broker carry on.
    conn.api_versions();
}

/// Several partitions holding more than `fetch.max.bytes` together, fetched with every limit
/// at 2^31-1: the response decodes completely and carries at most `fetch.max.bytes` of
/// records (or, Kafka's exception, the single first batch when that alone is larger). A real
/// client (librdkafka) still reads everything, fetch after fetch.
#[test]
fn fetch_over_many_partitions_is_bounded_by_fetch_max_bytes() {
    let cap = format!("fetch.max.bytes={FETCH_CAP}");
    let broker = Broker::start_with(&[&cap]);
    let topic = unique_topic("fetch-cap");
    CONFLUENT.create_topic(&broker, &topic, 6);
    let delivered = CONFLUENT.produce(&broker, &topic, 3_000, 1_000, "none");
    assert_eq!(delivered.len(), 3_000);

    let mut conn = RawConn::connect(broker.addr());
    let v = conn.version(ApiKey::Fetch);
    let resp = conn
        .request(v, &greedy_fetch(vec![fetch_partitions(&topic, 0..6)]))
        .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
    let (parts, total) = record_bytes(&resp);
    assert_eq!(parts.len(), 6);
    let with_data: Vec<&(i32, Bytes)> = parts.iter().filter(|(_, r)| !r.is_empty()).collect();
    assert!(!with_data.is_empty(), "some records are returned");
    let one_big_batch = with_data.len() == 1 && batch_count(&with_data[0].1) == 1;
    assert!(
        total <= FETCH_CAP || one_big_batch,
        "{total} record bytes over fetch.max.bytes={FETCH_CAP}"
    );

    let consumed = CONFLUENT.consume(&broker, &topic);
    gregor_e2e::check::assert_same_records(3_000, &delivered, &consumed);
}
