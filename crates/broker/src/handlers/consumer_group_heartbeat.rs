//! ConsumerGroupHeartbeat (key 68, KIP-848): a member of a consumer group joins, heartbeats,
//! reports the partitions it owns and receives its assignment. The consumer group core
//! decides (`GroupRuntime::consumer_group_heartbeat`); the answer waits until the records it
//! wrote to `__consumer_offsets` are on the ISR.
//!
//! Authorization, as Kafka's `handleConsumerGroupHeartbeat` (KIP-848, KAFKA-18813): READ on the
//! group, else GROUP_AUTHORIZATION_FAILED; when the heartbeat names subscribed topics, DESCRIBE
//! on every one of them, else TOPIC_AUTHORIZATION_FAILED (no message, as Kafka) and the
//! coordinator does not see the heartbeat.
//!
//! With the cluster's `group.version` below 1 (`kafka-features.sh disable --feature
//! group.version`) the answer is UNSUPPORTED_VERSION, as Kafka's.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::consumer_group::{
    ConsumerGroupHeartbeatRequest as CoreRequest, HeartbeatTopicPartitions, TopicId,
};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::group_common::authorize_group;
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ConsumerGroupHeartbeat;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// The core's request: the wire fields, the header's client id and the peer's address.
fn core_request(ctx: &RequestContext, req: &ConsumerGroupHeartbeatRequest) -> CoreRequest {
    CoreRequest {
        api_version: ctx.api_version,
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        topic_partitions: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| HeartbeatTopicPartitions {
                    topic_id: TopicId(*tp.topic_id.as_bytes()),
                    partitions: tp.partitions.clone(),
                })
                .collect()
        }),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    }
}

/// The error of a heartbeat the principal may not send: without READ on the group, or
/// subscribing to a topic it may not DESCRIBE.
fn refused(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ConsumerGroupHeartbeatRequest,
) -> Option<ErrorCode> {
    if !authorize_group(broker, ctx, AclOperation::Read, &req.group_id.0) {
        return Some(ErrorCode::GROUP_AUTHORIZATION_FAILED);
    }
    let names = req.subscribed_topic_names.as_deref().unwrap_or_default();
    let subscribed: std::collections::HashSet<&str> = names.iter().map(|n| n.0.as_str()).collect();
    let describable = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Describe,
        ResourceType::Topic,
        subscribed.iter().copied(),
    );
    (describable.len() < subscribed.len()).then_some(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
}

/// Handles a ConsumerGroupHeartbeat request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> Reply {
    if !crate::group_coordinator::consumer_groups_enabled(&broker.replicas) {
        let code = ErrorCode::UNSUPPORTED_VERSION;
        let resp = ConsumerGroupHeartbeatResponse::default().with_error_code(code.code());
        return ready(&ctx, &resp);
    }
    if let Some(code) = refused(broker, &ctx, &req) {
        let resp = ConsumerGroupHeartbeatResponse::default().with_error_code(code.code());
        return ready(&ctx, &resp);
    }
    let answer = broker
        .groups
        .consumer_group_heartbeat(&broker.replicas, core_request(&ctx, &req));
    Reply::Pending(Box::pin(async move {
        let r = answer.await;
        let resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(r.error_code)
            .with_error_message(r.error_message.map(str_bytes))
            .with_member_id(r.member_id.map(str_bytes))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|tps| {
                Assignment::default().with_topic_partitions(
                    tps.into_iter()
                        .map(|tp| {
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(tp.topic_id.0))
                                .with_partitions(tp.partitions)
                        })
                        .collect(),
                )
            }));
        encode(&ctx, &resp)
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use gregor_protocol::error::ErrorCode;
    use gregor_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
    use gregor_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use gregor_protocol::messages::{
        ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, JoinGroupRequest,
        JoinGroupResponse, ResponseHeader, TopicName,
    };
    use gregor_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

    use super::*;
    use crate::group_coordinator::{GroupRuntime, OFFSETS_TOPIC};

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        crate::broker::test_group_broker(dir, 2)
    }

    fn ctx(api: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_test(api, version)
    }

    use crate::request::reply_body as body;

    fn topic_id(b: &Broker) -> uuid::Uuid {
        b.replicas.topic("t").expect("topic t").id
    }

    /// A v1 heartbeat of `member` at `epoch`, subscribed to "t" when joining, owning
    /// `owned` partitions of "t".
    fn request(
        b: &Broker,
        group: &str,
        member: &str,
        epoch: i32,
        owned: &[i32],
    ) -> ConsumerGroupHeartbeatRequest {
        let joining = epoch == 0;
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(if joining { 30_000 } else { -1 })
            .with_subscribed_topic_names(
                joining.then(|| vec![TopicName(StrBytes::from_static_str("t"))]),
            )
            .with_topic_partitions((joining || !owned.is_empty()).then(|| {
                if owned.is_empty() {
                    Vec::new()
                } else {
                    vec![OwnedPartitions::default()
                        .with_topic_id(topic_id(b))
                        .with_partitions(owned.to_vec())]
                }
            }))
    }

    async fn heartbeat(
        b: &Arc<Broker>,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let version = 1;
        let mut bytes = body(handle(b, ctx(KEY, version), req)).await;
        ResponseHeader::decode(
            &mut bytes,
            ConsumerGroupHeartbeatResponse::header_version(version),
        )
        .expect("header");
        ConsumerGroupHeartbeatResponse::decode(&mut bytes, version).expect("decode")
    }

    /// The partitions of "t" an answer assigns (`None`: no assignment in the answer).
    fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
        r.assignment.as_ref().map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect()
        })
    }

    fn describe(b: &Arc<Broker>, group: &str) -> ConsumerGroupDescribeResponse {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
        super::super::consumer_group_describe::handle(
            b,
            &ctx(ApiKey::ConsumerGroupDescribe, 1),
            req,
        )
    }

    fn offsets_log_end(b: &Broker) -> i64 {
        let (_, part) = b.replicas.partition(OFFSETS_TOPIC, 0).expect("hosted");
        part.log_end_offset()
    }

    /// A first member joins, gets epoch 1 and both partitions, and its records are in
    /// `__consumer_offsets` before the answer; a fresh runtime loads the group back.
    #[tokio::test]
    async fn a_member_joins_and_the_group_survives_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_id.as_deref(), Some("m1"));
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.heartbeat_interval_ms, 5000);
        assert_eq!(assigned(&r), Some(BTreeSet::from([0, 1])));
        assert!(offsets_log_end(&b) > 0, "the group's records are written");

        let d = describe(&b, "g");
        let g = &d.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.group_epoch, 1);
        assert_eq!(g.assignor_name.as_str(), "uniform");
        assert_eq!(g.members.len(), 1);
        let m = &g.members[0];
        assert_eq!(m.client_id.as_str(), "cid");
        assert_eq!(m.client_host.as_str(), "/127.0.0.1");
        assert_eq!(m.member_type, 1);
        assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");

        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        let consumer = reloaded.consumer();
        let group = consumer.group("g").expect("loaded");
        assert_eq!(group.group_epoch(), 1);
        assert!(group.member("m1").is_some());
    }

    /// A second member: the first revokes one partition, then the second gets it; both
    /// end at epoch 2 with one partition each.
    #[tokio::test]
    async fn two_members_share_the_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r1 = heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        assert_eq!(assigned(&r1), Some(BTreeSet::from([0, 1])));
        let r2 = heartbeat(&b, request(&b, "g", "m2", 0, &[])).await;
        assert_eq!(r2.error_code, 0, "{:?}", r2.error_message);
        assert_eq!(r2.member_epoch, 2);
        let pending = assigned(&r2).unwrap_or_default();
        assert!(pending.len() <= 1, "nothing owned by m1 yet: {pending:?}");
        // m1 is told to give one up.
        let r1 = heartbeat(&b, request(&b, "g", "m1", 1, &[0, 1])).await;
        assert_eq!(r1.error_code, 0, "{:?}", r1.error_message);
        let kept = assigned(&r1).expect("a smaller assignment");
        assert_eq!(kept.len(), 1);
        // m1 reports it revoked; it moves to epoch 2.
        let kept_v: Vec<i32> = kept.iter().copied().collect();
        let r1 = heartbeat(&b, request(&b, "g", "m1", r1.member_epoch, &kept_v)).await;
        assert_eq!(r1.error_code, 0);
        assert_eq!(r1.member_epoch, 2);
        // m2 gets the freed partition.
        let r2 = heartbeat(&b, request(&b, "g", "m2", 2, &[])).await;
        assert_eq!(r2.error_code, 0);
        let got = assigned(&r2).expect("the freed partition");
        assert_eq!(got.len(), 1);
        assert!(got.is_disjoint(&kept));
        assert_eq!(describe(&b, "g").groups[0].group_state.as_str(), "Stable");
    }

    /// A member leaves (epoch -1): the group is Empty, ConsumerGroupDescribe says so.
    #[tokio::test]
    async fn a_member_leaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        let r = heartbeat(&b, request(&b, "g", "m1", -1, &[])).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_epoch, -1);
        let d = describe(&b, "g");
        assert_eq!(d.groups[0].group_state.as_str(), "Empty");
        assert!(d.groups[0].members.is_empty());
    }

    /// A group of a partition this broker does not lead: NOT_COORDINATOR, for both APIs.
    #[tokio::test]
    async fn not_the_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.groups.disown(0);
        let r = heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        assert_eq!(r.error_code, ErrorCode::NOT_COORDINATOR.code());
        assert_eq!(
            describe(&b, "g").groups[0].error_code,
            ErrorCode::NOT_COORDINATOR.code()
        );
    }

    /// One id names one group: a classic JoinGroup on a consumer group's id is
    /// INCONSISTENT_GROUP_PROTOCOL, a heartbeat to a classic group with members
    /// GROUP_ID_NOT_FOUND, and describing that classic group says it is not a consumer group.
    #[tokio::test]
    async fn classic_and_consumer_groups_do_not_share_an_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        let join = |group: &str| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.into())))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))])
        };
        let reply = super::super::join_group::handle(&b, ctx(ApiKey::JoinGroup, 3), join("g"));
        let mut bytes = body(reply).await;
        ResponseHeader::decode(&mut bytes, JoinGroupResponse::header_version(3)).expect("header");
        let r = JoinGroupResponse::decode(&mut bytes, 3).expect("decode");
        assert_eq!(r.error_code, ErrorCode::INCONSISTENT_GROUP_PROTOCOL.code());

        // A classic member joins "c" (its join waits for the rebalance delay: not awaited).
        let _pending = super::super::join_group::handle(&b, ctx(ApiKey::JoinGroup, 3), join("c"));
        let r = heartbeat(&b, request(&b, "c", "m1", 0, &[])).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("Group c is not a consumer group.")
        );
        let d = describe(&b, "c");
        assert_eq!(d.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            d.groups[0].error_message.as_deref(),
            Some("Group c is not a consumer group.")
        );
        assert_eq!(
            describe(&b, "nope").groups[0].error_message.as_deref(),
            Some("Group nope not found.")
        );
    }

    /// The classic group APIs around a consumer group: OffsetCommit v9 with the member epoch
    /// (a stale epoch refused), OffsetFetch v9 reading it back, ListGroups typing it
    /// "consumer" (once, not again as the classic entry holding its offsets), DescribeGroups
    /// v6 refusing it as not classic, OffsetDelete keeping a subscribed topic's offsets, and
    /// DeleteGroups refusing it while it has members and deleting it (offsets too) once Empty.
    #[tokio::test]
    async fn classic_apis_on_a_consumer_group() {
        use gregor_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        use gregor_protocol::messages::offset_delete_request::{
            OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
        };
        use gregor_protocol::messages::offset_fetch_request::{
            OffsetFetchRequestGroup, OffsetFetchRequestTopics,
        };
        use gregor_protocol::messages::{
            DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, ListGroupsRequest,
            OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
            OffsetFetchRequest,
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        let b = &b;
        let commit = |epoch: i32| async move {
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(StrBytes::from_static_str("m1"))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)])]);
            let reply = super::super::offset_commit::handle(b, ctx(ApiKey::OffsetCommit, 9), req);
            let mut bytes = body(reply).await;
            ResponseHeader::decode(&mut bytes, OffsetCommitResponse::header_version(9))
                .expect("header");
            OffsetCommitResponse::decode(&mut bytes, 9)
                .expect("decode")
                .topics[0]
                .partitions[0]
                .error_code
        };
        assert_eq!(commit(1).await, 0);
        assert_eq!(
            commit(7).await,
            gregor_group::consumer_group::codes::STALE_MEMBER_EPOCH
        );
        let fetch = |epoch: i32| {
            let req =
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_member_id(Some(StrBytes::from_static_str("m1")))
                    .with_member_epoch(epoch)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partition_indexes(vec![0])]))]);
            let r = super::super::offset_fetch::handle(b, &ctx(ApiKey::OffsetFetch, 9), req);
            let g = &r.groups[0];
            let offset = g
                .topics
                .first()
                .map_or(-1, |t| t.partitions[0].committed_offset);
            (g.error_code, offset)
        };
        assert_eq!(fetch(1), (0, 42));
        assert_eq!(
            fetch(3).0,
            gregor_group::consumer_group::codes::STALE_MEMBER_EPOCH
        );

        let listed = super::super::list_groups::handle(
            b,
            &ctx(ApiKey::ListGroups, 5),
            ListGroupsRequest::default(),
        );
        let types: Vec<(&str, &str)> = listed
            .groups
            .iter()
            .map(|g| (g.group_id.0.as_str(), g.group_type.as_str()))
            .collect();
        assert_eq!(types, vec![("g", "consumer")]);

        let described = super::super::describe_groups::handle(
            b,
            &ctx(ApiKey::DescribeGroups, 6),
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("g"))]),
        );
        assert_eq!(
            described.groups[0].error_code,
            ErrorCode::GROUP_ID_NOT_FOUND.code()
        );
        assert_eq!(
            described.groups[0].error_message.as_deref(),
            Some("Group g is not a classic group.")
        );

        let delete_offsets = || async {
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]);
            let reply = super::super::offset_delete::handle(b, ctx(ApiKey::OffsetDelete, 0), req);
            let mut bytes = body(reply).await;
            ResponseHeader::decode(&mut bytes, OffsetDeleteResponse::header_version(0))
                .expect("header");
            let r = OffsetDeleteResponse::decode(&mut bytes, 0).expect("decode");
            (r.error_code, r.topics[0].partitions[0].error_code)
        };
        assert_eq!(
            delete_offsets().await,
            (0, gregor_group::code::GROUP_SUBSCRIBED_TO_TOPIC)
        );

        let delete = || async {
            let req = DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]);
            let reply = super::super::delete_groups::handle(b, ctx(ApiKey::DeleteGroups, 2), req);
            let mut bytes = body(reply).await;
            ResponseHeader::decode(&mut bytes, DeleteGroupsResponse::header_version(2))
                .expect("header");
            DeleteGroupsResponse::decode(&mut bytes, 2)
                .expect("decode")
                .results[0]
                .error_code
        };
        assert_eq!(delete().await, ErrorCode::NON_EMPTY_GROUP.code());
        heartbeat(b, request(b, "g", "m1", -1, &[])).await;
        assert_eq!(delete().await, 0);
        assert!(!b.groups.consumer().contains_group("g"));
        assert_eq!(fetch(-1), (0, -1), "the offsets went with the group");
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        assert!(!reloaded.consumer().contains_group("g"));
    }

    /// After an offsets expiration check, an Empty consumer group without committed offsets
    /// is deleted (its tombstones written); one with offsets, or with members, stays.
    #[tokio::test]
    async fn empty_consumer_groups_without_offsets_are_cleaned_up() {
        use gregor_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        use gregor_protocol::messages::OffsetCommitRequest;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        for g in ["idle", "committed", "live"] {
            heartbeat(&b, request(&b, g, "m1", 0, &[])).await;
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("committed")))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        body(super::super::offset_commit::handle(
            &b,
            ctx(ApiKey::OffsetCommit, 9),
            req,
        ))
        .await;
        for g in ["idle", "committed"] {
            heartbeat(&b, request(&b, g, "m1", -1, &[])).await;
        }
        let end = offsets_log_end(&b);
        {
            let core = b.groups.core();
            b.groups.cleanup_consumer_groups(&b.replicas, &core);
        }
        {
            let consumer = b.groups.consumer();
            assert!(!consumer.contains_group("idle"));
            assert!(consumer.contains_group("committed"));
            assert!(consumer.contains_group("live"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(offsets_log_end(&b) > end, "the tombstones are written");
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        assert!(!reloaded.consumer().contains_group("idle"));
    }

    /// READ on the group (else GROUP_AUTHORIZATION_FAILED) and DESCRIBE on every subscribed
    /// topic (else TOPIC_AUTHORIZATION_FAILED, without a message, and no member joins).
    #[tokio::test]
    async fn heartbeats_need_read_on_the_group_and_describe_on_the_topics() {
        use crate::authorizer::test_support::{allow_group, allow_topic, ctx_of};
        use crate::handlers::group_common::test_support::auth_group_broker;
        use crate::request::decode_reply;
        use gregor_metadata::AclOperation;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 2);
        let beat = || async {
            let reply = handle(&b, ctx_of("alice", KEY, 1), request(&b, "g", "m1", 0, &[]));
            let r: ConsumerGroupHeartbeatResponse = decode_reply(reply, 1).await;
            r
        };
        let r = beat().await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        assert_eq!(r.member_id, None);
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        let r = beat().await;
        assert_eq!(r.error_code, ErrorCode::TOPIC_AUTHORIZATION_FAILED.code());
        assert_eq!(r.error_message, None);
        assert!(!b.groups.consumer().contains_group("g"), "nobody joined");
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let r = beat().await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(assigned(&r), Some(BTreeSet::from([0, 1])));
    }

    /// With `group.version` 0 (`kafka-features.sh disable --feature group.version`) the
    /// consumer group APIs answer UNSUPPORTED_VERSION and nothing is written; at 1 again the
    /// same member joins.
    #[tokio::test]
    async fn the_consumer_group_protocol_follows_the_group_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let level = |feature_level| {
            b.replicas
                .apply_records(&[gregor_metadata::MetadataRecord::FeatureLevel(
                    gregor_metadata::FeatureLevelRecord {
                        name: gregor_metadata::GROUP_VERSION_FEATURE.to_string(),
                        feature_level,
                    },
                )])
        };
        level(0);
        let before = offsets_log_end(&b);
        let r = heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION.code());
        assert_eq!(offsets_log_end(&b), before, "nothing written");
        let d = describe(&b, "g");
        assert_eq!(d.groups.len(), 1);
        assert_eq!(d.groups[0].group_id.as_str(), "g");
        assert_eq!(
            d.groups[0].error_code,
            ErrorCode::UNSUPPORTED_VERSION.code()
        );
        level(1);
        let r = heartbeat(&b, request(&b, "g", "m1", 0, &[])).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(describe(&b, "g").groups[0].error_code, 0);
    }
}
