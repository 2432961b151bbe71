//! Requests that are well-formed but hostile in size or shape, and state a restart must keep:
//! CreateTopics asking for absurd partition counts, Fetch asking for more than the broker
//! should send (or naming a partition many times), more fetch sessions than the broker keeps,
//! and an Empty consumer group across a restart. After each case the broker keeps answering other connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::raw::{code, simple_batch, topic_name, RawConn};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    MetadataRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion};
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

/// A flood of fetch sessions: one connection asks for far more sessions than the cache has
/// slots (each with 2,000 partitions of a topic that does not exist). The broker keeps as many
/// as its slots and answers the rest without a session (id 0, a full answer), as Kafka does
/// when no session may be evicted; the sessions it made keep working (an incremental fetch in
/// the first answers it), and a consumer still reads.
#[test]
fn a_flood_of_fetch_sessions_keeps_only_the_slots() {
    const SLOTS: usize = 20;
    let slots = format!("max.incremental.fetch.session.cache.slots={SLOTS}");
    let broker = Broker::start_with(&[&slots]);
    let topic = unique_topic("sessions");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), code::NONE);
    let (err, _) = conn.produce(&topic, 0, simple_batch(&[("k", "v")]));
    assert_eq!(err, code::NONE);
    let v = conn.version(ApiKey::Fetch);
    let missing = unique_topic("missing");
    let mut ids = Vec::new();
    for _ in 0..SLOTS * 3 {
        let req = greedy_fetch(vec![fetch_partitions(&missing, 0..2000)]).with_session_epoch(0);
        let resp = conn
            .request(v, &req)
            .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
        assert_eq!(resp.error_code, code::NONE);
        assert_eq!(
            resp.responses
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>(),
            2000,
            "a full answer names every partition"
        );
        ids.push(resp.session_id);
    }
    let made: Vec<i32> = ids.iter().copied().filter(|&id| id != 0).collect();
    assert_eq!(made.len(), SLOTS, "sessions made: {ids:?}");
    assert!(ids[SLOTS..].iter().all(|&id| id == 0), "{ids:?}");
    // The first session still answers (incrementally: nothing changed but the errors).
    let req = greedy_fetch(vec![])
        .with_session_id(made[0])
        .with_session_epoch(1);
    let resp = conn
        .request(v, &req)
        .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
    assert_eq!((resp.error_code, resp.session_id), (code::NONE, made[0]));
    // A real client still reads.
    let doc = run_python_json(
        "confluent_client.py",
        &[&broker.bootstrap(), "consume", &topic],
        SCRIPT_TIMEOUT,
    );
    assert_eq!(doc["records"].as_array().map(Vec::len), Some(1), "{doc}");
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

/// Kafka's POLICY_VIOLATION.
const POLICY_VIOLATION: i16 = 44;

fn create_topics(conn: &mut RawConn, topics: &[(&str, i32)]) -> CreateTopicsResponse {
    let v = conn.version(ApiKey::CreateTopics);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(
            topics
                .iter()
                .map(|&(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(topic_name(name))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    conn.request(v, &req)
        .unwrap_or_else(|e| panic!("CreateTopics v{v}: {e}"))
}

/// CreateTopics for one topic on its own socket with a long read timeout: a debug build on a
/// busy machine may take longer than [`RawConn`]'s timeout to make 10 000 partitions.
fn create_topics_slowly(
    broker: &Broker,
    conn: &mut RawConn,
    name: &str,
    partitions: i32,
) -> CreateTopicsResponse {
    let v = conn.version(ApiKey::CreateTopics);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(120_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let (correlation_id, body) = conn.encode_request(v, &req);
    let mut stream = TcpStream::connect(broker.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let size = i32::try_from(body.len()).expect("small request");
    stream.write_all(&size.to_be_bytes()).expect("send");
    stream.write_all(&body).expect("send");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let len = usize::try_from(i32::from_be_bytes(size)).expect("non-negative size");
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).expect("response");
    let mut frame = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, CreateTopicsResponse::header_version(v))
        .expect("response header");
    assert_eq!(header.correlation_id, correlation_id);
    CreateTopicsResponse::decode(&mut frame, v).expect("CreateTopics response")
}

/// Metadata for one topic: its partition count, or the topic's error code as a negative.
fn partition_count(conn: &mut RawConn, topic: &str) -> i64 {
    let v = conn.version(ApiKey::Metadata);
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]));
    let resp = conn
        .request(v, &req)
        .unwrap_or_else(|e| panic!("Metadata v{v}: {e}"));
    let t = &resp.topics[0];
    if t.error_code != code::NONE {
        return -i64::from(t.error_code);
    }
    t.partitions.len() as i64
}

/// CreateTopics asking for 2^31-1 partitions, or 50 000, or 10 000 in one topic (10 001
/// metadata records), or two topics that only together exceed 10 000: each is refused with
/// POLICY_VIOLATION for every topic, at once, nothing is created, and the broker keeps
/// answering.
#[test]
fn create_topics_over_the_partition_limit_is_refused_at_once() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(broker.addr());
    let cases: [(&[(&str, i32)], &str); 4] = [
        (
            &[("huge", i32::MAX)],
            "Excessively large number of partitions per request.",
        ),
        (
            &[("big", 50_000)],
            "Excessively large number of partitions per request.",
        ),
        (
            &[("ten-k", 10_000)],
            "Unable to perform excessively large batch operation.",
        ),
        (
            &[("half-a", 6_000), ("half-b", 4_001)],
            "Excessively large number of partitions per request.",
        ),
    ];
    for (topics, message) in cases {
        let started = Instant::now();
        let resp = create_topics(&mut conn, topics);
        let took = started.elapsed();
        eprintln!("CreateTopics {topics:?}: answered in {took:?}");
        assert!(took < Duration::from_secs(2), "{topics:?} took {took:?}");
        assert_eq!(resp.topics.len(), topics.len());
        for t in &resp.topics {
            assert_eq!(t.error_code, POLICY_VIOLATION, "{topics:?}");
            assert_eq!(t.error_message.as_deref(), Some(message), "{topics:?}");
        }
        let mut other = RawConn::connect(broker.addr());
        other.api_versions();
        for (name, _) in topics {
            // UNKNOWN_TOPIC_OR_PARTITION (3): nothing was created.
            assert_eq!(partition_count(&mut other, name), -3, "{name} exists");
        }
    }
    let dirs = std::fs::read_dir(broker.data_dir())
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir() && e.file_name() != "__cluster_metadata")
        .count();
    assert!(
        dirs <= 50,
        "{dirs} partition directories: something was created"
    );
}

/// The largest topic Kafka creates in one request (9 999 partitions) is made while another
/// connection keeps getting ApiVersions and Metadata answers: the file work runs outside the
/// replica manager's lock and off the request workers. Prints the worst latency seen.
#[test]
fn large_create_topics_does_not_stall_other_connections() {
    const BOUND: Duration = Duration::from_secs(1);
    let broker = Broker::start();
    let small = unique_topic("small");
    let mut probe = RawConn::connect(broker.addr());
    assert_eq!(probe.create_topic(&small, 1), code::NONE);
    probe.api_versions();

    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let done = Arc::clone(&done);
        let small = small.clone();
        thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut rounds = 0u32;
            while !done.load(Ordering::Acquire) {
                let started = Instant::now();
                probe.api_versions();
                assert_eq!(partition_count(&mut probe, &small), 1);
                worst = worst.max(started.elapsed());
                rounds += 1;
                thread::sleep(Duration::from_millis(5));
            }
            (worst, rounds)
        })
    };
    let big = unique_topic("big");
    let mut conn = RawConn::connect(broker.addr());
    let started = Instant::now();
    let resp = create_topics_slowly(&broker, &mut conn, &big, 9_999);
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    let (worst, rounds) = prober.join().expect("prober");
    eprintln!(
        "9 999-partition CreateTopics took {took:?}; {rounds} ApiVersions+Metadata rounds \
         meanwhile, worst {worst:?}"
    );
    assert_eq!(resp.topics[0].error_code, code::NONE, "{resp:?}");
    assert_eq!(partition_count(&mut conn, &big), 9_999);
    assert!(rounds >= 2, "the probe ran during the creation");
    assert!(
        worst < BOUND,
        "worst ApiVersions+Metadata round trip {worst:?}"
    );
}

/// A Produce naming one partition several times (here three times, with two other topic entries
/// in between) appends only the last record set and answers the partition once, as Kafka does;
/// the first two sets are neither stored nor acknowledged.
#[test]
fn produce_naming_a_partition_several_times_appends_only_the_last_set() {
    let broker = Broker::start();
    let topic = unique_topic("dup-produce");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 2), code::NONE, "CreateTopics");
    let entry = |partition: i32, records: Vec<u8>| {
        let req = gregor_e2e::raw::produce_request(&topic, partition, records);
        req.topic_data.into_iter().next().expect("one topic entry")
    };
    let mut first = entry(0, simple_batch(&[("a", "first"), ("b", "first")]));
    first
        .partition_data
        .extend(entry(0, simple_batch(&[("c", "second")])).partition_data);
    let other = entry(1, simple_batch(&[("d", "other")]));
    let last = entry(0, simple_batch(&[("e", "last")]));
    let req = gregor_e2e::raw::produce_request(&topic, 0, Vec::new())
        .with_topic_data(vec![first, other, last]);
    let v = conn.version(ApiKey::Produce);
    let resp = conn.request(v, &req).expect("Produce");
    let answered: Vec<(i32, i16, i64)> = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    assert_eq!(
        answered,
        [(1, code::NONE, 0), (0, code::NONE, 0)],
        "each partition answered once: the other topic entry, then the last copy of partition 0"
    );
    assert_eq!(
        conn.log_end_offset(&topic, 0),
        1,
        "only the last set is stored"
    );
    let values: Vec<String> = conn
        .fetch_records(&topic, 0, 0)
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, ["last"]);
    assert_eq!(conn.log_end_offset(&topic, 1), 1);
}
