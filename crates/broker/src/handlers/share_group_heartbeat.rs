//! ShareGroupHeartbeat (key 76, KIP-932): a share consumer joins its share group, heartbeats,
//! and receives the share-partitions it may fetch from. The share group core decides
//! (`GroupRuntime::share_group_heartbeat`); the answer waits until the records it wrote to
//! `__consumer_offsets` are on the ISR; new share-partitions' state is initialized with the
//! persister afterwards.
//!
//! With `share.version` 0 (share groups disabled) every share group API answers
//! UNSUPPORTED_VERSION, as Kafka's `isShareGroupProtocolEnabled` check.
//!
//! Authorization, as Kafka's `handleShareGroupHeartbeat`: READ on the group, else
//! GROUP_AUTHORIZATION_FAILED; when the heartbeat names subscribed topics, DESCRIBE on every
//! one of them, else TOPIC_AUTHORIZATION_FAILED and the coordinator does not see it.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::share_group::ShareGroupHeartbeatRequest as CoreRequest;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};

use super::group_common::authorize_group;
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::group_coordinator::share_groups_enabled;
use crate::request::{encode, ready, Reply, RequestContext};

/// Kafka's message for UNSUPPORTED_VERSION, what the share group APIs answer while the
/// cluster's `share.version` is 0.
pub(crate) const UNSUPPORTED_MESSAGE: &str = "The version of API is not supported.";

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ShareGroupHeartbeat;
/// The versions served (and advertised in ApiVersions): v1, what Kafka 4.1+ speaks.
pub const VERSIONS: RangeInclusive<i16> = 1..=1;

/// The core's request: the wire fields, the header's client id and the peer's address.
fn core_request(ctx: &RequestContext, req: &ShareGroupHeartbeatRequest) -> CoreRequest {
    CoreRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    }
}

/// The error of a heartbeat the principal may not send.
fn refused(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ShareGroupHeartbeatRequest,
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

/// Handles a ShareGroupHeartbeat request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: ShareGroupHeartbeatRequest) -> Reply {
    if !share_groups_enabled(&broker.replicas) {
        let code = ErrorCode::UNSUPPORTED_VERSION;
        let resp = ShareGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(UNSUPPORTED_MESSAGE)));
        return ready(&ctx, &resp);
    }
    if let Some(code) = refused(broker, &ctx, &req) {
        let resp = ShareGroupHeartbeatResponse::default().with_error_code(code.code());
        return ready(&ctx, &resp);
    }
    let answer = broker.groups.share_group_heartbeat(
        &broker.replicas,
        &broker.share_persister,
        core_request(&ctx, &req),
    );
    Reply::Pending(Box::pin(async move {
        let r = answer.await;
        let resp = ShareGroupHeartbeatResponse::default()
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
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use gregor_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    use gregor_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    use gregor_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    use gregor_protocol::messages::{
        AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse,
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
        DeleteGroupsResponse, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
        DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse,
        GroupId, ListGroupsRequest, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
        TopicName,
    };
    use gregor_protocol::protocol::StrBytes;
    use gregor_share::{PersistError, PersistedState, ShareKey, StateSummary};

    use super::*;
    use crate::group_coordinator::GroupRuntime;
    use crate::request::decode_reply;
    use crate::share_persister::{PersistFuture, Persister};

    /// The share coordinators as a map: key → (state epoch, start offset); calls fail with
    /// Unavailable while `down`.
    #[derive(Default)]
    struct MemPersister {
        states: Mutex<BTreeMap<ShareKey, (i32, i64)>>,
        down: AtomicBool,
    }

    impl MemPersister {
        fn check(&self) -> Result<(), PersistError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(PersistError::Unavailable("down".into()));
            }
            Ok(())
        }

        fn states(&self) -> BTreeMap<ShareKey, (i32, i64)> {
            self.states.lock().expect("lock").clone()
        }
    }

    impl Persister for MemPersister {
        fn read(&self, key: &ShareKey, _: i32) -> PersistFuture<'_, PersistedState> {
            let r = self.check().and_then(|()| {
                self.states()
                    .get(key)
                    .map(|(e, o)| PersistedState {
                        state_epoch: *e,
                        start_offset: *o,
                        state_batches: Vec::new(),
                    })
                    .ok_or(PersistError::NotInitialized)
            });
            Box::pin(async move { r })
        }
        fn write(&self, _: &ShareKey, _: i32, _: &PersistedState) -> PersistFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
        fn initialize(&self, key: &ShareKey, epoch: i32, offset: i64) -> PersistFuture<'_, ()> {
            let r = self.check().and_then(|()| {
                let mut states = self.states.lock().expect("lock");
                // The share coordinator's rule: an older state epoch is fenced.
                if states.get(key).is_some_and(|(e, _)| *e > epoch) {
                    return Err(PersistError::FencedStateEpoch);
                }
                states.insert(key.clone(), (epoch, offset));
                Ok(())
            });
            Box::pin(async move { r })
        }
        fn read_summary(&self, key: &ShareKey) -> PersistFuture<'_, StateSummary> {
            let r = self.check().and_then(|()| {
                self.states()
                    .get(key)
                    .map(|(e, o)| StateSummary {
                        state_epoch: *e,
                        leader_epoch: 0,
                        start_offset: *o,
                        // As the share coordinator after an initialize: nothing delivered.
                        delivery_complete_count: if *o < 0 { -1 } else { 0 },
                    })
                    .ok_or(PersistError::NotInitialized)
            });
            Box::pin(async move { r })
        }
        fn delete(&self, key: &ShareKey) -> PersistFuture<'_, ()> {
            let r = self.check().map(|()| {
                self.states.lock().expect("lock").remove(key);
            });
            Box::pin(async move { r })
        }
    }

    fn broker(dir: &std::path::Path) -> (Arc<Broker>, Arc<MemPersister>) {
        let b = crate::broker::test_group_broker(dir, 2);
        let persister = Arc::new(MemPersister::default());
        assert!(b.groups.use_share_persister(persister.clone()));
        (b, persister)
    }

    fn ctx(api: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_test(api, version)
    }

    fn gid(g: &str) -> GroupId {
        GroupId(StrBytes::from_string(g.into()))
    }

    fn request(group: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatRequest {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names(
                (epoch == 0).then(|| vec![TopicName(StrBytes::from_static_str("t"))]),
            )
    }

    async fn heartbeat(
        b: &Arc<Broker>,
        req: ShareGroupHeartbeatRequest,
    ) -> ShareGroupHeartbeatResponse {
        decode_reply(handle(b, ctx(KEY, 1), req), 1).await
    }

    fn assigned(r: &ShareGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
        r.assignment.as_ref().map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect()
        })
    }

    /// Waits until the group's share-partitions of "t" are initialized (the persister call
    /// runs after the heartbeat's answer).
    async fn initialized(b: &Broker, group: &str, n: usize) {
        for _ in 0..200 {
            let count = b
                .groups
                .share()
                .group(group)
                .map(|g| {
                    g.state_metadata
                        .initialized
                        .values()
                        .map(|t| t.partitions.len())
                        .sum::<usize>()
                })
                .unwrap_or(0);
            if count >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the share-partitions were not initialized");
    }

    fn describe(b: &Arc<Broker>, group: &str) -> ShareGroupDescribeResponse {
        let req = ShareGroupDescribeRequest::default().with_group_ids(vec![gid(group)]);
        super::super::share_group_describe::handle(b, &ctx(ApiKey::ShareGroupDescribe, 1), req)
    }

    /// A member joins: nothing is assigned until the share-partitions are initialized, then
    /// the next heartbeat brings both; the group and its initialized share-partitions
    /// survive a reload of `__consumer_offsets`.
    #[tokio::test]
    async fn a_member_joins_and_gets_its_share_partitions_once_initialized() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, persister) = broker(dir.path());
        let r = heartbeat(&b, request("g", "m1", 0)).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_id.as_deref(), Some("m1"));
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.heartbeat_interval_ms, 5000);
        assert_eq!(assigned(&r), Some(BTreeSet::new()));
        initialized(&b, "g", 2).await;
        let states = persister.states();
        assert_eq!(states.len(), 2);
        // Initialized at the group epoch, start offset decided by the leader later.
        assert!(states
            .values()
            .all(|(epoch, offset)| *epoch == 1 && *offset == -1));
        let r = heartbeat(&b, request("g", "m1", 1)).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.member_epoch, 2);
        assert_eq!(assigned(&r), Some(BTreeSet::from([0, 1])));

        let d = describe(&b, "g");
        let g = &d.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.assignor_name.as_str(), "simple");
        assert_eq!(g.members[0].client_id.as_str(), "cid");
        assert_eq!(
            g.members[0].assignment.topic_partitions[0]
                .topic_name
                .0
                .as_str(),
            "t"
        );

        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        let share = reloaded.share();
        let group = share.group("g").expect("loaded");
        assert_eq!(group.group_epoch, 2);
        assert_eq!(group.member("m1").map(|m| m.member_epoch), Some(2));
        assert_eq!(
            group
                .state_metadata
                .initialized
                .values()
                .next()
                .map(|t| t.partitions.len()),
            Some(2)
        );
    }

    /// The share coordinators are down: the member gets nothing, and a later heartbeat
    /// initializes the share-partitions once they are back.
    #[tokio::test]
    async fn initialization_is_retried_while_the_persister_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, persister) = broker(dir.path());
        persister.down.store(true, Ordering::SeqCst);
        let r = heartbeat(&b, request("g", "m1", 0)).await;
        assert_eq!(r.error_code, 0);
        // The failed initialization is recorded (the partitions leave initializing).
        for _ in 0..200 {
            let idle = b
                .groups
                .share()
                .group("g")
                .is_some_and(|g| g.state_metadata.initializing.is_empty());
            if idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(persister.states().is_empty());
        persister.down.store(false, Ordering::SeqCst);
        let r = heartbeat(&b, request("g", "m1", 1)).await;
        assert_eq!(r.error_code, 0);
        initialized(&b, "g", 2).await;
        let r = heartbeat(&b, request("g", "m1", 1)).await;
        assert_eq!(assigned(&r), Some(BTreeSet::from([0, 1])));
    }

    /// A consumer group (KIP-848) member's first heartbeat to `group`, subscribed to "t".
    fn consumer_join(group: &str) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(StrBytes::from_static_str("c1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("t"))]))
            .with_topic_partitions(Some(Vec::new()))
    }

    /// One id names one group: a consumer-protocol heartbeat on a share group's id and a
    /// share heartbeat on a consumer group's id are GROUP_ID_NOT_FOUND; DescribeGroups says
    /// a share group is not a classic group; ListGroups lists it with type "share".
    #[tokio::test]
    async fn share_groups_do_not_share_their_id_and_are_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        heartbeat(&b, request("sg", "m1", 0)).await;
        let consumer = consumer_join("sg");
        let reply = super::super::consumer_group_heartbeat::handle(
            &b,
            ctx(ApiKey::ConsumerGroupHeartbeat, 1),
            consumer.clone(),
        );
        let r: ConsumerGroupHeartbeatResponse = decode_reply(reply, 1).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("Group sg is not a consumer group.")
        );
        let d = super::super::consumer_group_describe::handle(
            &b,
            &ctx(ApiKey::ConsumerGroupDescribe, 1),
            gregor_protocol::messages::ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![gid("sg")]),
        );
        assert_eq!(d.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            d.groups[0].error_message.as_deref(),
            Some("Group sg is not a consumer group.")
        );

        let reply = super::super::consumer_group_heartbeat::handle(
            &b,
            ctx(ApiKey::ConsumerGroupHeartbeat, 1),
            consumer.with_group_id(gid("cg")),
        );
        let r: ConsumerGroupHeartbeatResponse = decode_reply(reply, 1).await;
        assert_eq!(r.error_code, 0);
        let r = heartbeat(&b, request("cg", "m1", 0)).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("Group cg is not a share group.")
        );
        let d = describe(&b, "cg");
        assert_eq!(d.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            d.groups[0].error_message.as_deref(),
            Some("Group cg is not a share group.")
        );

        let d = super::super::describe_groups::handle(
            &b,
            &ctx(ApiKey::DescribeGroups, 6),
            DescribeGroupsRequest::default().with_groups(vec![gid("sg")]),
        );
        assert_eq!(d.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(d.groups[0].group_state.as_str(), "Dead");
        assert_eq!(
            d.groups[0].error_message.as_deref(),
            Some("Group sg is not a classic group.")
        );

        let list = |types: &[&str]| {
            let req = ListGroupsRequest::default().with_types_filter(
                types
                    .iter()
                    .map(|t| StrBytes::from_string(t.to_string()))
                    .collect(),
            );
            super::super::list_groups::handle(&b, &ctx(ApiKey::ListGroups, 5), req)
        };
        let all = list(&[]);
        let sg = all
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == "sg")
            .expect("listed");
        assert_eq!(sg.group_type.as_str(), "share");
        assert_eq!(sg.protocol_type.as_str(), "share");
        assert_eq!(sg.group_state.as_str(), "Stable");
        let shares = list(&["share"]);
        assert_eq!(shares.groups.len(), 1);
        assert!(list(&["classic"])
            .groups
            .iter()
            .all(|g| g.group_id.0.as_str() != "sg"));
    }

    /// DeleteGroups: a share group with members is NON_EMPTY_GROUP; once Empty its state is
    /// deleted from the share coordinators and the group is gone, also after a reload.
    #[tokio::test]
    async fn deleting_a_share_group_deletes_its_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, persister) = broker(dir.path());
        heartbeat(&b, request("g", "m1", 0)).await;
        initialized(&b, "g", 2).await;
        let delete = |b: &Arc<Broker>| {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]);
            super::super::delete_groups::handle(b, ctx(ApiKey::DeleteGroups, 2), req)
        };
        let r: DeleteGroupsResponse = decode_reply(delete(&b), 2).await;
        assert_eq!(r.results[0].error_code, ErrorCode::NON_EMPTY_GROUP.code());
        assert_eq!(persister.states().len(), 2);
        let r = heartbeat(&b, request("g", "m1", -1)).await;
        assert_eq!(r.error_code, 0);
        // The share coordinators are down: the deletion fails and the group stays.
        persister.down.store(true, Ordering::SeqCst);
        let r: DeleteGroupsResponse = decode_reply(delete(&b), 2).await;
        assert_eq!(
            r.results[0].error_code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
        assert!(b.groups.is_share_group("g"));
        persister.down.store(false, Ordering::SeqCst);
        let r: DeleteGroupsResponse = decode_reply(delete(&b), 2).await;
        assert_eq!(r.results[0].error_code, 0);
        assert!(persister.states().is_empty());
        assert!(!b.groups.is_share_group("g"));
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        assert!(!reloaded.is_share_group("g"));
        let r: DeleteGroupsResponse = decode_reply(delete(&b), 2).await;
        assert_eq!(
            r.results[0].error_code,
            ErrorCode::GROUP_ID_NOT_FOUND.code()
        );
    }

    /// The share admin APIs: describe the start offsets, alter them (Empty groups only),
    /// delete a topic's state.
    #[tokio::test]
    async fn share_group_offsets_are_described_altered_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, persister) = broker(dir.path());
        heartbeat(&b, request("g", "m1", 0)).await;
        initialized(&b, "g", 2).await;
        let describe_offsets = |b: &Arc<Broker>, group: &str| {
            let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(gid(group))
                    .with_topics(None),
            ]);
            super::super::describe_share_group_offsets::handle(
                b,
                ctx(ApiKey::DescribeShareGroupOffsets, 0),
                req,
            )
        };
        let r: DescribeShareGroupOffsetsResponse = decode_reply(describe_offsets(&b, "g"), 0).await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.topics.len(), 1);
        assert_eq!(g.topics[0].topic_name.0.as_str(), "t");
        let offsets: Vec<(i32, i64)> = g.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.start_offset))
            .collect();
        assert_eq!(offsets, vec![(0, -1), (1, -1)]);
        // An unknown group has no initialized share-partitions (no error, as Kafka).
        let r: DescribeShareGroupOffsetsResponse =
            decode_reply(describe_offsets(&b, "nope"), 0).await;
        assert_eq!(r.groups[0].error_code, 0);
        assert!(r.groups[0].topics.is_empty());

        let alter = |b: &Arc<Broker>, topic: &str, offset: i64| {
            let req = AlterShareGroupOffsetsRequest::default()
                .with_group_id(gid("g"))
                .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partitions(vec![
                        AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(0)
                            .with_start_offset(offset),
                        AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(7)
                            .with_start_offset(offset),
                    ])]);
            super::super::alter_share_group_offsets::handle(
                b,
                ctx(ApiKey::AlterShareGroupOffsets, 0),
                req,
            )
        };
        let r: AlterShareGroupOffsetsResponse = decode_reply(alter(&b, "t", 42), 0).await;
        assert_eq!(r.error_code, ErrorCode::NON_EMPTY_GROUP.code());
        heartbeat(&b, request("g", "m1", -1)).await;
        let r: AlterShareGroupOffsetsResponse = decode_reply(alter(&b, "t", 42), 0).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        let parts: Vec<(i32, i16)> = r.responses[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(
            parts,
            vec![(0, 0), (7, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())]
        );
        let r: AlterShareGroupOffsetsResponse = decode_reply(alter(&b, "nosuch", 1), 0).await;
        assert_eq!(
            r.responses[0].partitions[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        // A new state epoch at the new start offset.
        let topic = b.replicas.topic("t").expect("t").id;
        let key = |p| ShareKey {
            group_id: "g".into(),
            topic_id: topic,
            partition: p,
        };
        assert_eq!(persister.states().get(&key(0)), Some(&(2, 42)));
        let r: DescribeShareGroupOffsetsResponse = decode_reply(describe_offsets(&b, "g"), 0).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].start_offset, 42);

        let delete = |b: &Arc<Broker>, topics: &[&str]| {
            let req = DeleteShareGroupOffsetsRequest::default()
                .with_group_id(gid("g"))
                .with_topics(
                    topics
                        .iter()
                        .map(|t| {
                            DeleteShareGroupOffsetsRequestTopic::default()
                                .with_topic_name(TopicName(StrBytes::from_string(t.to_string())))
                        })
                        .collect(),
                );
            super::super::delete_share_group_offsets::handle(
                b,
                ctx(ApiKey::DeleteShareGroupOffsets, 0),
                req,
            )
        };
        let r: DeleteShareGroupOffsetsResponse =
            decode_reply(delete(&b, &["t", "nosuch"]), 0).await;
        assert_eq!(r.error_code, 0);
        let codes: Vec<(&str, i16)> = r
            .responses
            .iter()
            .map(|t| (t.topic_name.0.as_str(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("t", 0),
                ("nosuch", ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
            ]
        );
        assert!(persister.states().is_empty());
        let r: DescribeShareGroupOffsetsResponse = decode_reply(describe_offsets(&b, "g"), 0).await;
        assert!(r.groups[0].topics.is_empty());
        // A topic without state in the group.
        let r: DeleteShareGroupOffsetsResponse = decode_reply(delete(&b, &["t"]), 0).await;
        assert_eq!(
            r.responses[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
    }

    /// The classic APIs on a share group's id answer as Kafka's: JoinGroup
    /// INCONSISTENT_GROUP_PROTOCOL, Heartbeat UNKNOWN_MEMBER_ID, OffsetCommit and OffsetFetch
    /// GROUP_ID_NOT_FOUND (a share group has no committed offsets).
    #[tokio::test]
    async fn classic_apis_on_a_share_group_id() {
        use gregor_protocol::messages::join_group_request::JoinGroupRequestProtocol;
        use gregor_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        use gregor_protocol::messages::{
            HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
            OffsetCommitResponse, OffsetFetchRequest,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        heartbeat(&b, request("g", "m1", 0)).await;
        let join = JoinGroupRequest::default()
            .with_group_id(gid("g"))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))
            ]);
        let r: JoinGroupResponse = decode_reply(
            super::super::join_group::handle(&b, ctx(ApiKey::JoinGroup, 5), join),
            5,
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::INCONSISTENT_GROUP_PROTOCOL.code());
        assert_eq!(r.member_id.as_str(), "");
        let hb = HeartbeatRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(StrBytes::from_static_str("m1"));
        let r = super::super::heartbeat::handle(&b, &ctx(ApiKey::Heartbeat, 3), hb);
        assert_eq!(r.error_code, ErrorCode::UNKNOWN_MEMBER_ID.code());
        let commit = OffsetCommitRequest::default()
            .with_group_id(gid("g"))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])]);
        let r: OffsetCommitResponse = decode_reply(
            super::super::offset_commit::handle(&b, ctx(ApiKey::OffsetCommit, 8), commit),
            8,
        )
        .await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ErrorCode::GROUP_ID_NOT_FOUND.code()
        );
        let fetch = OffsetFetchRequest::default()
            .with_group_id(gid("g"))
            .with_topics(None);
        let r = super::super::offset_fetch::handle(&b, &ctx(ApiKey::OffsetFetch, 7), fetch);
        assert_eq!(r.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        // Nothing reached the classic core.
        assert!(b.groups.core().group_state("g").is_none());
    }

    /// AlterShareGroupOffsets on an unknown id creates an Empty share group with the
    /// share-partitions' state at the offsets given; on another type's id it is
    /// GROUP_ID_NOT_FOUND.
    #[tokio::test]
    async fn altering_offsets_creates_the_share_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, persister) = broker(dir.path());
        let alter = |group: &str| {
            let req = AlterShareGroupOffsetsRequest::default()
                .with_group_id(gid(group))
                .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(1)
                            .with_start_offset(7),
                    ])]);
            super::super::alter_share_group_offsets::handle(
                &b,
                ctx(ApiKey::AlterShareGroupOffsets, 0),
                req,
            )
        };
        let r: AlterShareGroupOffsetsResponse = decode_reply(alter("new"), 0).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
        assert!(b.groups.is_share_group("new"));
        assert_eq!(persister.states().values().next(), Some(&(0, 7)));
        assert_eq!(describe(&b, "new").groups[0].group_state.as_str(), "Empty");
        // A consumer group's id is not a share group's.
        let consumer = consumer_join("cg");
        let reply = super::super::consumer_group_heartbeat::handle(
            &b,
            ctx(ApiKey::ConsumerGroupHeartbeat, 1),
            consumer,
        );
        let r: ConsumerGroupHeartbeatResponse = decode_reply(reply, 1).await;
        assert_eq!(r.error_code, 0);
        let r: AlterShareGroupOffsetsResponse = decode_reply(alter("cg"), 0).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("Group cg is not a share group.")
        );
        assert!(!b.groups.is_share_group("cg"));
    }

    /// A member that stops heartbeating is removed by the ticker once its session (the
    /// group's `share.session.timeout.ms`) expires; the group is Empty, also after a reload.
    #[tokio::test]
    async fn an_expired_member_leaves_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        heartbeat(&b, request("g", "m1", 0)).await;
        let deadline = b.groups.share().next_deadline().expect("a session");
        let now = b.clock.now_ms();
        assert!(
            (now + 44_000..=now + 46_000).contains(&deadline),
            "{deadline} vs {now}"
        );
        b.groups.tick_share_groups(&b.replicas, deadline - 1);
        assert_eq!(describe(&b, "g").groups[0].group_state.as_str(), "Stable");
        b.groups.tick_share_groups(&b.replicas, deadline);
        assert_eq!(describe(&b, "g").groups[0].group_state.as_str(), "Empty");
        let r = heartbeat(&b, request("g", "m1", 1)).await;
        assert_eq!(r.error_code, ErrorCode::UNKNOWN_MEMBER_ID.code());
        // The fencing records are in the log.
        for _ in 0..200 {
            let reloaded = GroupRuntime::open(&b.replicas).expect("load");
            let empty = reloaded
                .share()
                .group("g")
                .is_some_and(|g| g.members.is_empty());
            if empty {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the expired member's records are not in the log");
    }

    /// The five APIs through the router (frames in, frames out, at the versions served).
    #[tokio::test]
    async fn the_share_group_apis_through_the_router() {
        use crate::txn_coordinator::tests::call;
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        let r = call(&b, 1, &request("g", "m1", 0)).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_epoch, 1);
        initialized(&b, "g", 2).await;
        let r = call(&b, 1, &request("g", "m1", 1)).await;
        assert_eq!(assigned(&r), Some(BTreeSet::from([0, 1])));
        let d = call(
            &b,
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![gid("g")]),
        )
        .await;
        assert_eq!(d.groups[0].group_state.as_str(), "Stable");
        assert_eq!(d.groups[0].members[0].member_id.as_str(), "m1");
        let o = call(
            &b,
            0,
            &DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(gid("g"))
                    .with_topics(None),
            ]),
        )
        .await;
        assert_eq!(o.groups[0].topics[0].partitions.len(), 2);
        // The group has a member: the offsets cannot change.
        let a = call(
            &b,
            0,
            &AlterShareGroupOffsetsRequest::default()
                .with_group_id(gid("g"))
                .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))]),
        )
        .await;
        assert_eq!(a.error_code, ErrorCode::NON_EMPTY_GROUP.code());
        let d = call(
            &b,
            0,
            &DeleteShareGroupOffsetsRequest::default()
                .with_group_id(gid("g"))
                .with_topics(vec![DeleteShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))]),
        )
        .await;
        assert_eq!(d.error_code, ErrorCode::NON_EMPTY_GROUP.code());
        assert_eq!(d.error_message.as_deref(), Some("The group is not empty."));
    }

    /// With `share.version` 0 the share group APIs answer UNSUPPORTED_VERSION.
    #[tokio::test]
    async fn share_groups_disabled_by_the_share_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        b.replicas
            .apply_records(&[gregor_metadata::MetadataRecord::FeatureLevel(
                gregor_metadata::FeatureLevelRecord {
                    name: gregor_metadata::SHARE_VERSION_FEATURE.to_string(),
                    feature_level: 0,
                },
            )]);
        let r = heartbeat(&b, request("g", "m1", 0)).await;
        assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION.code());
        assert!(!b.groups.is_share_group("g"));
        assert_eq!(
            describe(&b, "g").groups[0].error_code,
            ErrorCode::UNSUPPORTED_VERSION.code()
        );
    }

    /// A group of a partition this broker does not lead: NOT_COORDINATOR.
    #[tokio::test]
    async fn not_the_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, _) = broker(dir.path());
        b.groups.disown(0);
        let r = heartbeat(&b, request("g", "m1", 0)).await;
        assert_eq!(r.error_code, ErrorCode::NOT_COORDINATOR.code());
        // An invalid heartbeat is refused before the coordinator is looked for.
        let r = heartbeat(&b, request("g", "", 0)).await;
        assert_eq!(r.error_code, ErrorCode::INVALID_REQUEST.code());
        assert_eq!(r.error_message.as_deref(), Some("MemberId can't be empty."));
        assert_eq!(
            describe(&b, "g").groups[0].error_code,
            ErrorCode::NOT_COORDINATOR.code()
        );
    }
}
