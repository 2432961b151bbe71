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
//!
//! Only the leader answers (NOT_LEADER_OR_FOLLOWER; the debugging replica id -2 may read a
//! follower), after the request's `current_leader_epoch` (v4+) is checked (FENCED_LEADER_EPOCH,
//! UNKNOWN_LEADER_EPOCH). A leader elected a moment ago may not have its high watermark up to
//! the start of its epoch yet: the previous leader's last acknowledged records are above it
//! until the followers fetch again. A consumer asking for the latest offset, or for a lookup
//! beyond what it may read, then gets OFFSET_NOT_AVAILABLE (LEADER_NOT_AVAILABLE before v5) and
//! retries, as from Kafka, rather than an end offset lower than one it may have seen. An offset
//! found carries the leader epoch its record was written in (KIP-320), the latest offset the
//! current one.
//!
//! As Kafka, a topic needs DESCRIBE (else TOPIC_AUTHORIZATION_FAILED for its partitions).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::authorizer;
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

/// ListOffsets' `replica_id` of a consumer, and of the debugging tools that may read a follower.
const CONSUMER_REPLICA_ID: i32 = -1;
const DEBUGGING_REPLICA_ID: i32 = -2;

/// Handles a ListOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let asker = Asker {
        version: ctx.api_version,
        require_leader: req.replica_id.0 != DEBUGGING_REPLICA_ID,
        // Kafka's `isolationLevelOpt`: only a consumer's request reads at an isolation level
        // (and can be told the offsets are not available yet); a broker's reads the log end.
        isolation: (req.replica_id.0 == CONSUMER_REPLICA_ID)
            .then_some(ctx.api_version >= 2 && req.isolation_level == 1),
    };
    let authorized = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Describe,
        ResourceType::Topic,
        req.topics.iter().map(|t| t.name.0.as_str()),
    );
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let allowed = authorized.contains(&name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if !allowed {
                        return resp.with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code());
                    }
                    let current_leader_epoch = if ctx.api_version >= 4 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    match list_partition(broker, &asker, &name, &p, current_leader_epoch) {
                        Ok(Some(found)) => resp
                            .with_error_code(0)
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            // leader_epoch exists from v4 on; encoding it earlier fails.
                            .with_leader_epoch(if ctx.api_version >= 4 {
                                found.leader_epoch.unwrap_or(-1)
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

/// Who asks, as it decides what may be answered.
struct Asker {
    version: i16,
    /// Everyone but the debugging tools reads from the leader only.
    require_leader: bool,
    /// A consumer's isolation level (`true`: read_committed); `None` for a broker.
    isolation: Option<bool>,
}

/// An offset found for a partition.
struct Found {
    offset: i64,
    timestamp: i64,
    leader_epoch: Option<i32>,
}

/// One partition's answer (Kafka's `Partition.fetchOffsetForTimestamp` and the checks of
/// `ReplicaManager.fetchOffset`): `None` is "no such offset" (offset -1).
fn list_partition(
    broker: &Arc<Broker>,
    asker: &Asker,
    topic: &str,
    p: &gregor_protocol::messages::list_offsets_request::ListOffsetsPartition,
    current_leader_epoch: i32,
) -> Result<Option<Found>, ErrorCode> {
    if !timestamp_supported(p.timestamp, asker.version) {
        return Err(ErrorCode::UNSUPPORTED_VERSION);
    }
    let Some((_, part)) = broker.replicas.partition(topic, p.partition_index) else {
        return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    };
    part.check_leader_epoch(current_leader_epoch)?;
    if asker.require_leader && !part.is_leader() {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    let high_watermark = part.high_watermark();
    let last_fetchable = match asker.isolation {
        Some(true) => part.last_stable_offset()?,
        Some(false) => high_watermark,
        None => part.log_end_offset(),
    };
    // A new leader whose high watermark still lags behind the start of its epoch (until the
    // followers fetch from it) cannot promise offsets that only grow: a consumer is told to
    // retry, as Kafka does (LEADER_NOT_AVAILABLE before v5).
    let lagging = asker.isolation.is_some()
        && part
            .leader_epoch_start_offset()
            .is_some_and(|start| start > high_watermark);
    let not_available = || {
        if asker.version >= 5 {
            ErrorCode::OFFSET_NOT_AVAILABLE
        } else {
            ErrorCode::LEADER_NOT_AVAILABLE
        }
    };
    let at = |offset: i64, timestamp: i64| -> Result<Found, ErrorCode> {
        Ok(Found {
            offset,
            timestamp,
            leader_epoch: part.epoch_for_offset(offset)?,
        })
    };
    let found = match p.timestamp {
        LATEST if lagging => return Err(not_available()),
        LATEST => {
            return Ok(Some(Found {
                offset: last_fetchable,
                timestamp: -1,
                leader_epoch: Some(part.leader_epoch()),
            }))
        }
        EARLIEST | EARLIEST_LOCAL => {
            let (start, _) = part.offsets()?;
            return at(start, -1).map(Some);
        }
        // No remote storage: nothing tiered, nothing pending upload ("none", no epoch).
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => return Ok(None),
        MAX_TIMESTAMP => part.max_timestamp()?,
        ts if ts < 0 => return Err(ErrorCode::UNSUPPORTED_VERSION),
        ts => part.offset_for_timestamp(ts)?,
    };
    // Kafka's `fetchOffset`: only a record the asker may read (below the high watermark or
    // the LSO); beyond it, or nothing found, a lagging leader answers "not available yet".
    match found {
        Some((offset, ts)) if offset < last_fetchable => at(offset, ts).map(Some),
        _ if lagging => Err(not_available()),
        _ => Ok(None),
    }
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

    /// (error code, offset, timestamp, leader epoch) of partition 0 of `t` for `timestamp`, as
    /// a consumer asks (replica id -1, no leader epoch).
    fn list(broker: &Arc<Broker>, version: i16, timestamp: i64) -> (i16, i64, i64, i32) {
        list_as(broker, version, timestamp, CONSUMER_REPLICA_ID, -1)
    }

    /// [`list`] by `ctx`.
    fn list_by(broker: &Arc<Broker>, ctx: &RequestContext, timestamp: i64) -> (i16, i64, i64, i32) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(gregor_protocol::messages::BrokerId(CONSUMER_REPLICA_ID))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let resp = handle(broker, ctx, req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    }

    /// [`list`] from `replica_id` with `current_leader_epoch`.
    fn list_as(
        broker: &Arc<Broker>,
        version: i16,
        timestamp: i64,
        replica_id: i32,
        current_leader_epoch: i32,
    ) -> (i16, i64, i64, i32) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(gregor_protocol::messages::BrokerId(replica_id))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_timestamp(timestamp)])]);
        let resp = handle(broker, &ctx(version), req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    }

    /// A leader elected while its high watermark lags behind the start of its epoch (the
    /// previous leader acknowledged records the followers had, but had not yet told them the
    /// high watermark) answers a consumer's latest offset OFFSET_NOT_AVAILABLE (v5+;
    /// LEADER_NOT_AVAILABLE before), and a timestamp lookup beyond the high watermark too,
    /// until the followers catch up; then the records' epochs come with the offsets. As
    /// Kafka's `fetchOffsetForTimestamp`: a consumer must never see the end offset go back.
    #[test]
    fn a_new_leader_with_a_lagging_high_watermark_says_offsets_are_not_available() {
        use crate::partition::tests::{batch, follower_fetch, with_follower};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_broker_in(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        // Epoch 1 with node 2 in the ISR: three records, not yet fetched by node 2.
        with_follower(part, vec![1, 2]);
        part.append(&batch(3), &topic.settings).expect("append");
        assert_eq!((part.high_watermark(), part.log_end_offset()), (0, 3));
        // Re-elected in epoch 2: the epoch starts at 3, the high watermark is still 0.
        part.become_leader(&gregor_replication::LeaderAndIsr {
            leader: 1,
            leader_epoch: 2,
            partition_epoch: 2,
            replicas: vec![1, 2],
            isr: vec![1, 2],
        })
        .expect("new epoch");
        let not_available = ErrorCode::OFFSET_NOT_AVAILABLE.code();
        assert_eq!(list(&b, 11, LATEST), (not_available, -1, -1, -1));
        assert_eq!(list(&b, 5, LATEST).0, not_available);
        assert_eq!(
            list(&b, 4, LATEST).0,
            ErrorCode::LEADER_NOT_AVAILABLE.code()
        );
        // Nothing readable at or after timestamp 0 yet: not available either.
        assert_eq!(list(&b, 11, 0).0, not_available);
        assert_eq!(list(&b, 11, MAX_TIMESTAMP).0, not_available);
        // The earliest offset does not depend on the high watermark.
        assert_eq!(list(&b, 11, EARLIEST), (0, 0, -1, 1));
        // A broker (replica id >= 0) reads the log end, lagging or not.
        assert_eq!(list_as(&b, 11, LATEST, 2, -1), (0, 3, -1, 2));
        // Node 2 fetches from 3 in epoch 2: the high watermark reaches the epoch's start.
        let mut fetch = follower_fetch(3);
        fetch.current_leader_epoch = Some(2);
        part.follower_fetch(&fetch).expect("follower fetch");
        assert_eq!(part.high_watermark(), 3);
        assert_eq!(list(&b, 11, LATEST), (0, 3, -1, 2));
        let (code, offset, _, epoch) = list(&b, 11, 0);
        assert_eq!(
            (code, offset, epoch),
            (0, 0, 1),
            "the first record, written in epoch 1"
        );
        assert_eq!(
            list(&b, 3, LATEST),
            (0, 3, -1, -1),
            "no leader epoch before v4"
        );
    }

    /// Only the leader answers, in the epoch the asker names: an older one is fenced, a newer
    /// one unknown; a follower answers NOT_LEADER_OR_FOLLOWER except to the debugging replica
    /// id (-2), which reads its log end.
    #[test]
    fn only_the_leader_answers_in_its_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_records(dir.path());
        let (_, part) = b.replicas.partition("t", 0).expect("partition");
        assert_eq!(list_as(&b, 11, LATEST, -1, 0), (0, 3, -1, 0));
        assert_eq!(
            list_as(&b, 11, LATEST, -1, 1).0,
            ErrorCode::UNKNOWN_LEADER_EPOCH.code()
        );
        crate::partition::tests::with_leader_2(&part, 1, 1);
        assert_eq!(
            list_as(&b, 11, LATEST, -1, 0).0,
            ErrorCode::FENCED_LEADER_EPOCH.code()
        );
        assert_eq!(
            list(&b, 11, LATEST).0,
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        );
        assert_eq!(
            list(&b, 11, EARLIEST).0,
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        );
        assert_eq!(
            list_as(&b, 11, LATEST, DEBUGGING_REPLICA_ID, -1),
            (0, 3, -1, 1)
        );
    }

    /// A test broker on `dir` with one offsets partition.
    fn test_broker_in(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        crate::broker::test_broker(config)
    }

    fn broker_with_records(dir: &std::path::Path) -> Arc<Broker> {
        let b = test_broker_in(dir);
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

    /// DESCRIBE on the topic, else TOPIC_AUTHORIZATION_FAILED with offset, timestamp and leader
    /// epoch -1.
    #[test]
    fn an_authorizer_asks_for_describe_on_each_topic() {
        use crate::authorizer::test_support::{allow_topic, ctx_of, secured_broker};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        topic.partitions[&0]
            .append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let alice = ctx_of("alice", KEY, 11);
        assert_eq!(
            list_by(&b, &alice, LATEST),
            (ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(), -1, -1, -1)
        );
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        assert_eq!(list_by(&b, &alice, LATEST), (0, 3, -1, 0));
    }
}
