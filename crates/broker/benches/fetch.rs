//! Micro-benchmark of fetch assembly: a Fetch request frame goes through the router and the
//! fetch handler (offset-index lookups for each partition's start and end, a few header reads,
//! hand-encoded response) and comes out as response chunks: encoded bytes plus file ranges for
//! sendfile. The socket write is not included; the records themselves are never touched.
//!
//! `fetch_session`: one round of an incremental fetch session (KIP-227) of 1,000 partitions,
//! as a follower's session with its leader goes: a small batch is appended to one partition,
//! and the session's next request names that partition alone at its new offset; the broker
//! reads every partition of the session and answers the one with records. The append is
//! inside the measured time.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gregor_broker::{dispatch, BrokerConfig, Chunk, Reply, SystemClock};
use gregor_protocol::batch::{encode_simple_batch, SimpleRecord};
use gregor_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use gregor_protocol::messages::{ApiKey, FetchRequest, RequestHeader, TopicName};
use gregor_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

const VERSION: i16 = 12;
const PARTITIONS: i32 = 8;

fn fetch_frame(offset: i64, partition_max_bytes: i32) -> Bytes {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(partitions)]);
    frame(&req, VERSION, 1)
}

/// `req` as a request frame (header and body) of `version`.
fn frame(req: &FetchRequest, version: i16, correlation_id: i32) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut b = BytesMut::new();
    header
        .encode(&mut b, FetchRequest::header_version(version))
        .expect("header");
    req.encode(&mut b, version).expect("request");
    b.freeze()
}

/// A broker on a temporary directory (kept by the caller) and a runtime to answer on.
fn broker_and_runtime(
    dir: &tempfile::TempDir,
) -> (Arc<gregor_broker::Broker>, tokio::runtime::Runtime) {
    let mut config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.group.offsets_topic_num_partitions = 1;
    let broker = gregor_broker::broker::test_broker_with_clock(config, Arc::new(SystemClock));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (broker, rt)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, rt) = broker_and_runtime(&dir);
    let topic = broker
        .replicas
        .create_topic("bench", PARTITIONS, 1, BTreeMap::new())
        .expect("topic");
    // 8 partitions × 64 batches of 64 × 1 KiB records: 4 MiB each.
    let value = [7u8; 1024];
    let recs: Vec<SimpleRecord<'_>> = (0..64).map(|_| (None, Some(&value[..]))).collect();
    let batch = encode_simple_batch(1_700_000_000_000, &recs);
    for part in topic.partitions.values() {
        for _ in 0..64 {
            part.append(&batch, &topic.settings).expect("append");
        }
    }
    let peer = "127.0.0.1:1".parse().expect("addr");

    let mut g = c.benchmark_group("fetch");
    for (name, offset, max) in [
        ("8_partitions_1MiB_each", 0i64, 1 << 20),
        ("8_partitions_from_middle_256KiB_each", 2_000, 256 << 10),
    ] {
        let frame = fetch_frame(offset, max);
        g.throughput(Throughput::Elements(u64::from(PARTITIONS as u32)));
        g.bench_function(name, |b| {
            b.iter(|| {
                let reply = dispatch(&broker, peer, frame.clone()).expect("dispatch");
                let Reply::PendingChunks(fut) = reply else {
                    panic!("fetch answers with chunks");
                };
                let chunks = rt.block_on(fut).expect("fetch");
                let files = chunks
                    .iter()
                    .filter(|c| matches!(c, Chunk::File(_)))
                    .count();
                assert_eq!(files, PARTITIONS as usize);
                chunks
            })
        });
    }
    g.finish();
}

const SESSION_PARTITIONS: i32 = 1000;
const SESSION_VERSION: i16 = 13;

/// A Fetch v13 frame for topic `id`: `partitions` as (index, fetch offset), in session `session`
/// at `epoch`.
fn session_frame(id: uuid::Uuid, partitions: &[(i32, i64)], session: i32, epoch: i32) -> Bytes {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_id(session)
        .with_session_epoch(epoch)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    frame(&req, SESSION_VERSION, epoch)
}

/// The error code and session id of a Fetch v13 answer (size, correlation id, no header
/// tags, throttle time, then those two).
fn session_of(chunks: &[Chunk]) -> (i16, i32) {
    let Some(Chunk::Bytes(b)) = chunks.first() else {
        panic!("an answer starts with bytes");
    };
    let at = 4 + 4 + 1 + 4;
    let code = i16::from_be_bytes([b[at], b[at + 1]]);
    let id = i32::from_be_bytes([b[at + 2], b[at + 3], b[at + 4], b[at + 5]]);
    (code, id)
}

fn bench_session(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, rt) = broker_and_runtime(&dir);
    let topic = broker
        .replicas
        .create_topic("session", SESSION_PARTITIONS, 1, BTreeMap::new())
        .expect("topic");
    let peer = "127.0.0.1:1".parse().expect("addr");
    let fetch = |frame: Bytes| {
        let reply = dispatch(&broker, peer, frame).expect("dispatch");
        let Reply::PendingChunks(fut) = reply else {
            panic!("fetch answers with chunks");
        };
        rt.block_on(fut).expect("fetch")
    };
    // The session: a full request of every partition at offset 0.
    let all: Vec<(i32, i64)> = (0..SESSION_PARTITIONS).map(|p| (p, 0)).collect();
    let (code, session) = session_of(&fetch(session_frame(topic.id, &all, 0, 0)));
    assert_eq!((code, session > 0), (0, true), "a session was opened");
    let hot = Arc::clone(&topic.partitions[&0]);
    let value = [7u8; 100];
    let batch = encode_simple_batch(1_700_000_000_000, &[(None, Some(&value[..]))]);
    let mut epoch = 1;
    let mut g = c.benchmark_group("fetch_session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_of_1000_partitions_one_with_records", |b| {
        b.iter(|| {
            let offset = hot.log_end_offset();
            hot.append(&batch, &topic.settings).expect("append");
            let chunks = fetch(session_frame(topic.id, &[(0, offset)], session, epoch));
            epoch += 1;
            assert_eq!(session_of(&chunks), (0, session), "still in the session");
            chunks
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_session);
criterion_main!(benches);
