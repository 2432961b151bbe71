//! Shared plumbing of the group API handlers: turning a parked core reply into a wire reply,
//! answering at once (a refused authorization), and the READ check on a group that the
//! membership APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! ConsumerGroupHeartbeat) make first, as Kafka's `KafkaApis` does.

use std::sync::Arc;

use gregor_group::consumer_group::OffsetCheck;
use gregor_group::{
    OffsetCommitPartition, OffsetCommitTopic, Output, Response, TopicPartitionErrors,
};
use gregor_protocol::protocol::{Encodable, HeaderVersion};
use tokio::sync::oneshot;

use gregor_metadata::{AclOperation, ResourceType};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// May the request's principal do `op` on group `group_id`? (A denial is logged.)
pub fn authorize_group(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
    group_id: &str,
) -> bool {
    authorizer::authorize(broker, ctx, op, ResourceType::Group, group_id)
}

/// Parks a reply and runs `call` on the core with its request id and the time, then carries
/// out the outputs; if this broker does not coordinate `group_id`, the core is not called and
/// the reply answers COORDINATOR_NOT_AVAILABLE (the client looks the coordinator up again).
pub fn call_core<F>(broker: &Arc<Broker>, group_id: &str, call: F) -> oneshot::Receiver<Response>
where
    F: FnOnce(&mut gregor_group::GroupCoordinator, gregor_group::RequestId, i64) -> Vec<Output>,
{
    let (id, rx) = broker.groups.park();
    if broker.groups.not_coordinator(group_id).is_some() {
        broker.groups.cancel(id);
    } else {
        let now = broker.clock.now_ms();
        broker
            .groups
            .run(&broker.replicas, |core| call(core, id, now));
    }
    rx
}

/// A reply that completes when the core answers `rx`; `to_wire` gets `None` if the coordinator
/// dropped the request (it then answers COORDINATOR_NOT_AVAILABLE).
pub fn pending<R, F>(ctx: RequestContext, rx: oneshot::Receiver<Response>, to_wire: F) -> Reply
where
    R: Encodable + HeaderVersion + Send + 'static,
    F: FnOnce(Option<Response>) -> R + Send + 'static,
{
    Reply::Pending(Box::pin(async move {
        let resp = rx.await.ok();
        encode(&ctx, &to_wire(resp))
    }))
}

/// COORDINATOR_NOT_AVAILABLE, for replies the coordinator could not produce.
pub const NOT_AVAILABLE: i16 = gregor_protocol::error::ErrorCode::COORDINATOR_NOT_AVAILABLE.0;

/// The partitions of an offset commit (OffsetCommit, TxnOffsetCommit) in the coordinator's
/// terms, and those of topics or partitions the cluster does not have, which are refused
/// before the coordinator sees them. Offsets are committed for any partition of the cluster,
/// hosted here or not. `partition` turns one wire partition into the core's.
pub fn commit_topics<'a, T: 'a, P: 'a>(
    broker: &Broker,
    topics: impl IntoIterator<Item = &'a T>,
    wire: impl Fn(&'a T) -> (String, &'a [P]),
    partition: impl Fn(&P) -> OffsetCommitPartition,
) -> (Vec<OffsetCommitTopic>, Vec<(String, i32)>) {
    let mut rejected = Vec::new();
    let mut committed = Vec::new();
    for t in topics {
        let (name, wire_partitions) = wire(t);
        let known = broker.replicas.topic(&name);
        let mut partitions = Vec::new();
        for p in wire_partitions.iter().map(&partition) {
            if known
                .as_ref()
                .is_some_and(|t| t.has_partition(p.partition_index))
            {
                partitions.push(p);
            } else {
                rejected.push((name.clone(), p.partition_index));
            }
        }
        committed.push(OffsetCommitTopic { name, partitions });
    }
    (committed, rejected)
}

/// The membership of an offset commit, as a KIP-848 consumer group checks it.
pub struct CommitMember<'a> {
    pub group_id: &'a str,
    pub member_id: &'a mut String,
    /// The generation field: a consumer group's member epoch.
    pub generation_id: &'a mut i32,
    pub group_instance_id: &'a mut Option<String>,
}

/// A consumer group's (KIP-848) or streams group's (KIP-1071) check of the member and its
/// epoch before an offset commit.
/// Accepted offsets are stored as a standalone commit's, so the membership fields are
/// cleared; a refusal is every partition of `topics` with the group's error. A classic group
/// is not checked here.
pub fn check_consumer_member(
    broker: &Broker,
    member: CommitMember<'_>,
    topics: &[OffsetCommitTopic],
    transactional: bool,
    version: i16,
) -> Result<(), Vec<TopicPartitionErrors>> {
    // A share group (KIP-932) takes no offsets: "Group {id} is not a consumer group."
    if broker.groups.is_share_group(member.group_id) {
        let code = gregor_group::code::GROUP_ID_NOT_FOUND;
        return Err(gregor_group::errors_for_all(topics, code));
    }
    let mut check = broker.groups.consumer().validate_offset_commit(
        member.group_id,
        member.member_id,
        *member.generation_id,
        transactional,
        version,
    );
    if check == OffsetCheck::NotConsumerGroup {
        // A streams group (KIP-1071) checks the member, its epoch and, for an older epoch,
        // that each partition's task is still the member's.
        let offsets: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.clone(), p.partition_index))
            })
            .collect();
        check = broker.groups.streams().validate_offset_commit(
            member.group_id,
            member.member_id,
            *member.generation_id,
            transactional,
            version,
            &offsets,
        );
    }
    match check {
        OffsetCheck::NotConsumerGroup => Ok(()),
        OffsetCheck::Accepted => {
            *member.generation_id = -1;
            member.member_id.clear();
            *member.group_instance_id = None;
            Ok(())
        }
        OffsetCheck::Rejected { error_code, .. } => {
            Err(gregor_group::errors_for_all(topics, error_code))
        }
    }
}

/// Test support for the group and metadata handlers' authorization tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use crate::authorizer::test_support::secured_broker_with;
    use crate::broker::Broker;

    /// A broker with the standard authorizer (`User:admin` a super user, nothing allowed to
    /// anyone else without an ACL), coordinating every group (`__consumer_offsets` has one
    /// partition, led here), with a topic `t` of `partitions` partitions.
    pub(crate) fn auth_group_broker(dir: &std::path::Path, partitions: i32) -> Arc<Broker> {
        let b = secured_broker_with(dir, |c| c.group.offsets_topic_num_partitions = 1);
        b.replicas
            .create_topic("t", partitions, 1, Default::default())
            .expect("create");
        b
    }

    /// `admin` commits offset 5 on partition 0 of each of `topics` for `group`: a simple
    /// commit, which leaves an Empty group.
    pub(crate) async fn admin_commit(b: &Arc<Broker>, group: &str, topics: &[&str]) {
        use gregor_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        use gregor_protocol::messages::{ApiKey, GroupId, OffsetCommitRequest, TopicName};
        use gregor_protocol::protocol::StrBytes;

        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(vec![OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(5)])
                    })
                    .collect(),
            );
        let ctx = crate::authorizer::test_support::ctx_of("admin", ApiKey::OffsetCommit, 2);
        let reply = crate::handlers::offset_commit::handle(b, ctx, req);
        crate::request::reply_body(reply).await;
    }
}
