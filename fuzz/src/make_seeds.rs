//! Writes the seed corpora of the fuzz targets under `fuzz/seeds/<target>/`: small valid inputs,
//! made here from kafka-protocol's encoders and gregor's batch builders, so libFuzzer starts
//! from frames and record sets that get past the first checks.
//!
//! `scripts/fuzz --seeds` runs it; the output is committed, so a plain fuzz run needs no build
//! step. Re-running it rewrites the same files (names are a hash of the content).

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use gregor_protocol::batch::encode_simple_batch;
use gregor_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    join_group_request::JoinGroupRequestProtocol,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
    produce_request::{PartitionProduceData, TopicProduceData},
    sync_group_request::SyncGroupRequestAssignment,
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest,
    DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, RequestHeader,
    SyncGroupRequest, TopicName,
};
use gregor_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use gregor_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use gregor_protocol::request::{decode_request, SUPPORTED_APIS};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
fn topic() -> TopicName {
    TopicName(s("seed-topic"))
}
fn group() -> GroupId {
    GroupId(s("seed-group"))
}

/// One valid uncompressed batch of two records.
fn plain_batch() -> Vec<u8> {
    encode_simple_batch(
        1_700_000_000_000,
        &[
            (Some(b"k0"), Some(b"v0")),
            (None, Some(b"a longer value, repeated, repeated, repeated")),
        ],
    )
}

/// One valid batch of three records compressed with `compression`.
fn compressed_batch(compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i} value value value value"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode a record batch");
    buf.to_vec()
}

/// Header + body of a request at `version`; `None` if this request cannot be encoded there.
fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: &R) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("seed")));
    let mut b = BytesMut::new();
    header.encode(&mut b, R::header_version(version)).ok()?;
    req.encode(&mut b, version).ok()?;
    Some(b.to_vec())
}

/// A populated request of every served API at `version` (falls back to the default request when
/// a populated field does not exist at that version).
fn requests_at(key: ApiKey, v: i16) -> Option<Vec<u8>> {
    macro_rules! either {
        ($populated:expr, $default:ty) => {
            request(key, v, &$populated).or_else(|| request(key, v, &<$default>::default()))
        };
    }
    match key {
        ApiKey::Produce => either!(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(plain_batch())))])]),
            ProduceRequest
        ),
        ApiKey::Fetch => either!(
            FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]),
            FetchRequest
        ),
        ApiKey::ListOffsets => either!(
            ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]),
            ListOffsetsRequest
        ),
        ApiKey::Metadata => either!(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic()))
            ])),
            MetadataRequest
        ),
        ApiKey::ApiVersions => either!(
            ApiVersionsRequest::default()
                .with_client_software_name(s("seed"))
                .with_client_software_version(s("1.0")),
            ApiVersionsRequest
        ),
        ApiKey::CreateTopics => either!(
            CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic())
                    .with_num_partitions(2)
                    .with_replication_factor(1)]),
            CreateTopicsRequest
        ),
        ApiKey::DeleteTopics => either!(
            DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topic_names(vec![topic()]),
            DeleteTopicsRequest
        ),
        ApiKey::FindCoordinator => either!(
            FindCoordinatorRequest::default()
                .with_key(s("seed-group"))
                .with_coordinator_keys(vec![s("seed-group")]),
            FindCoordinatorRequest
        ),
        ApiKey::JoinGroup => either!(
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x0aseed-topic"))]),
            JoinGroupRequest
        ),
        ApiKey::SyncGroup => either!(
            SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(s("m-1"))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s("m-1"))
                    .with_assignment(Bytes::from_static(b"\0\x01\0\0\0\x01"))]),
            SyncGroupRequest
        ),
        ApiKey::Heartbeat => either!(
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(s("m-1")),
            HeartbeatRequest
        ),
        ApiKey::LeaveGroup => either!(
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_member_id(s("m-1")),
            LeaveGroupRequest
        ),
        ApiKey::OffsetCommit => either!(
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(1)
                .with_member_id(s("m-1"))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(3)])]),
            OffsetCommitRequest
        ),
        ApiKey::OffsetFetch => request(
            key,
            v,
            &OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0])])),
        )
        .or_else(|| {
            request(
                key,
                v,
                &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default(
                )
                .with_group_id(group())
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0])]))]),
            )
        }),
        ApiKey::ListGroups => either!(ListGroupsRequest::default(), ListGroupsRequest),
        ApiKey::DescribeGroups => either!(
            DescribeGroupsRequest::default().with_groups(vec![group()]),
            DescribeGroupsRequest
        ),
        ApiKey::DeleteGroups => either!(
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
            DeleteGroupsRequest
        ),
        ApiKey::OffsetDelete => either!(
            OffsetDeleteRequest::default().with_group_id(group()),
            OffsetDeleteRequest
        ),
        _ => None,
    }
}


/// FNV-1a, for stable file names.
fn name_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn write_all(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for seed in seeds {
        std::fs::write(dir.join(name_of(seed)), seed)?;
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));

    let mut request_seeds = Vec::new();
    let mut two_frames = Vec::new();
    for &(key, min, max) in SUPPORTED_APIS {
        for v in min..=max {
            let Some(body) = requests_at(key, v) else {
                continue;
            };
            // A seed that does not decode whole would start the fuzzer off the happy path.
            match decode_request(Bytes::from(body.clone()), SUPPORTED_APIS) {
                Ok(r) if r.trailing == 0 => {}
                other => panic!("seed {key:?} v{v} does not decode whole: {other:?}"),
            }
            // Mode byte 0: one frame body, delivered in one read.
            let mut seed = vec![0u8];
            seed.extend_from_slice(&body);
            request_seeds.push(seed);
            if v == max {
                two_frames.extend_from_slice(&(body.len() as i32).to_be_bytes());
                two_frames.extend_from_slice(&body);
            }
        }
    }
    // Mode byte 0x0f (odd): a raw stream of pipelined frames, read 8 bytes at a time.
    let mut stream = vec![0x0fu8];
    stream.extend_from_slice(&two_frames);
    request_seeds.push(stream);
    write_all(&out.join("request"), &request_seeds)?;

    let plain = plain_batch();
    let mut batch_seeds = vec![plain.clone(), [plain.clone(), plain.clone()].concat()];
    for c in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        batch_seeds.push(compressed_batch(c));
    }
    batch_seeds.push([plain, compressed_batch(Compression::Zstd)].concat());
    write_all(&out.join("batch"), &batch_seeds)?;
    Ok(())
}
