//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local
//! (-4, v8+), latest tiered (-5, v9+), or the first offset at or after a timestamp. Latest is
//! what a consumer can read: the high watermark, or with `isolation_level` 1 (read_committed,
//! v2+) the last stable offset; a timestamp lookup likewise finds only records below it. Max timestamp is the offset of the record
//! with the largest timestamp (KAFKA-16310). gregor has no tiered storage, so the earliest
//! local offset is the log start offset and the latest tiered one is "none" (offset -1), as
//! Kafka answers for a topic without remote storage. v10's `timeout_ms` bounds waiting for
//! remote storage, which there is none of. v11 adds the earliest pending upload (-6, KIP-1023):
//! the first offset not yet copied to remote storage; without tiered storage Kafka's
//! `UnifiedLog` answers "none" (offset -1, timestamp -1, leader epoch -1), and so does gregor.
//! As Kafka's `ReplicaManager`, a partition whose special timestamp is newer than the request's
//! version (or a negative timestamp that is none of them) answers UNSUPPORTED_VERSION.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=11;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// Whether `version` can carry the special timestamp `timestamp`: each came with a version
/// (Kafka's `timestampMinSupportedVersion`); any other negative timestamp is never valid.
fn timestamp_supported(timestamp: i64, version: i16) -> bool {
    let min_version = match timestamp {
        t if t >= 0 => return true,
        LATEST | EARLIEST => 0,
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        EARLIEST_PENDING_UPLOAD => 11,
        _ => return false,
    };
    version >= min_version
}

/// Handles a ListOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = ctx.api_version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if !timestamp_supported(p.timestamp, ctx.api_version) {
                        return resp.with_error_code(ErrorCode::UNSUPPORTED_VERSION.code());
                    }
                    let Some((_, part)) = broker.replicas.partition(&name, p.partition_index)
                    else {
                        return resp.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    };
                    let found = match p.timestamp {
                        LATEST if read_committed => {
                            part.last_stable_offset().map(|lso| Some((lso, -1)))
                        }
                        LATEST => part.offsets().map(|(_, end)| Some((end, -1))),
                        EARLIEST => part.offsets().map(|(start, _)| Some((start, -1))),
                        MAX_TIMESTAMP => part.max_timestamp(),
                        EARLIEST_LOCAL => part.offsets().map(|(start, _)| Some((start, -1))),
                        // No remote storage: nothing tiered, nothing pending upload.
                        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => Ok(Some((-1, -1))),
                        ts if ts < 0 => Err(ErrorCode::UNSUPPORTED_VERSION),
                        // Kafka's `fetchOffsetForTimestamp`: only a record a consumer at this
                        // isolation level may read (below the high watermark or the LSO).
                        ts => part.offset_for_timestamp(ts).and_then(|found| {
                            let fetchable = if read_committed {
                                part.last_stable_offset()?
                            } else {
                                part.high_watermark()
                            };
                            Ok(found.filter(|&(offset, _)| offset < fetchable))
                        }),
                    };
                    match found {
                        Ok(Some((offset, ts))) => resp
                            .with_error_code(0)
                            .with_offset(offset)
                            .with_timestamp(ts)
                            // leader_epoch exists from v4 on; encoding it earlier fails.
                            // "No offset" (-5, -6 without remote storage) has no epoch either.
                            .with_leader_epoch(if ctx.api_version >= 4 && offset >= 0 {
                                part.leader_epoch()
                            } else {
                                -1
                            }),
                        Ok(None) => resp.with_error_code(0),
                        Err(code) => resp.with_error_code(code.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use gregor_protocol::messages::TopicName;
    use gregor_protocol::protocol::StrBytes;

    fn ctx(version: i16) -> RequestContext {
        RequestContext::for_test(KEY, version)
    }

    /// (error code, offset, timestamp, leader epoch) of partition 0 of `t` for `timestamp`.
    fn list(broker: &Arc<Broker>, version: i16, timestamp: i64) -> (i16, i64, i64, i32) {
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
        let resp = handle(broker, &ctx(version), req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    }

    fn broker_with_records(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        let b = crate::broker::test_broker(config);
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        topic.partitions[&0]
            .append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        b
    }

    /// v11's earliest pending upload (-6, KIP-1023): without tiered storage "none" (offset,
    /// timestamp and leader epoch -1), as Kafka's UnifiedLog answers; latest tiered likewise.
    #[test]
    fn earliest_pending_upload_is_none_without_tiered_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_records(dir.path());
        assert_eq!(list(&b, 11, EARLIEST_PENDING_UPLOAD), (0, -1, -1, -1));
        assert_eq!(list(&b, 11, LATEST_TIERED), (0, -1, -1, -1));
        // The other special timestamps still answer at v11.
        assert_eq!(list(&b, 11, EARLIEST).0, 0);
        assert_eq!(list(&b, 11, EARLIEST).1, 0);
        assert_eq!(list(&b, 11, LATEST).1, 3);
    }

    /// As Kafka's ReplicaManager: a special timestamp newer than the request's version, or a
    /// negative timestamp that is none of them, is UNSUPPORTED_VERSION for that partition.
    #[test]
    fn a_timestamp_newer_than_the_version_is_unsupported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_records(dir.path());
        let unsupported = ErrorCode::UNSUPPORTED_VERSION.code();
        for (version, timestamp) in [
            (10, EARLIEST_PENDING_UPLOAD),
            (8, LATEST_TIERED),
            (7, EARLIEST_LOCAL),
            (6, MAX_TIMESTAMP),
            (11, -7),
        ] {
            assert_eq!(
                list(&b, version, timestamp),
                (unsupported, -1, -1, -1),
                "v{version} timestamp {timestamp}"
            );
        }
        assert_eq!(list(&b, 9, LATEST_TIERED).0, 0);
        assert_eq!(list(&b, 7, MAX_TIMESTAMP).0, 0);
        assert_eq!(list(&b, 1, EARLIEST).0, 0);
    }
}
