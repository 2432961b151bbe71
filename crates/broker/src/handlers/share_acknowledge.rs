//! ShareAcknowledge (key 79, KIP-932): a share group member acknowledges records it fetched,
//! in its share session, without fetching more. The epoch must be the session's next one
//! (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH; 0 is never valid); -1 acknowledges
//! and closes the session, releasing what the member still holds. Each partition's answer
//! waits until its share-partition's new state is durable (written to the share coordinator).
//! READ on the group and on each topic, as ShareFetch.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionData, ShareAcknowledgeTopicResponse,
};
use gregor_protocol::messages::{
    ApiKey, BrokerId, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
};

use super::share_fetch::{
    ack_batches, acknowledge_one, leader_endpoints, readable_topics, resolve, session_member,
};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ShareAcknowledge;
/// The versions served: v2 adds IsRenewAck, RENEW acknowledgements and the response's
/// AcquisitionLockTimeoutMs (KIP-1222).
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// Handles a ShareAcknowledge request; the reply completes once the acknowledgements are
/// durable.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: ShareAcknowledgeRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let resp = share_acknowledge(&broker, &ctx, req).await;
        encode(&ctx, &resp)
    }))
}

fn top_level(code: ErrorCode) -> ShareAcknowledgeResponse {
    ShareAcknowledgeResponse::default().with_error_code(code.code())
}

async fn share_acknowledge(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let (group, member) =
        match session_member(broker, ctx, req.group_id.as_ref(), req.member_id.as_ref()) {
            Ok(named) => named,
            Err(code) => return top_level(code),
        };
    let manager = &broker.share_partitions;
    let epoch = req.share_session_epoch;
    let step = if epoch == -1 {
        manager.close_session(&group, &member)
    } else {
        manager.acknowledge_session(
            &group,
            &member,
            epoch,
            ctx.connection,
            broker.clock.now_ms(),
        )
    };
    if let Err(code) = step {
        return top_level(code);
    }
    let readable = readable_topics(broker, ctx, req.topics.iter().map(|t| t.topic_id));
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    let mut leaders = HashSet::new();
    for t in &req.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let target = resolve(broker, &readable, t.topic_id, p.partition_index);
            let batches = ack_batches(
                p.acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                ctx.api_version,
                req.is_renew_ack,
            );
            let code = acknowledge_one(broker, &group, &member, &target, batches).await;
            let mut current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(-1)
                .with_leader_epoch(-1);
            if let (ErrorCode::NOT_LEADER_OR_FOLLOWER, Some((id, ep))) = (code, target.leader) {
                leaders.insert(id);
                current_leader = current_leader.with_leader_id(id).with_leader_epoch(ep);
            }
            partitions.push(
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
                    .with_current_leader(current_leader),
            );
        }
        topics.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    if epoch == -1 {
        manager.release_member(broker, &group, &member).await;
    }
    let node_endpoints = leader_endpoints(broker, ctx, &leaders)
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(rack.map(str_bytes))
        })
        .collect();
    // Read by v2 clients as the new lock of what they renewed.
    let lock_ms =
        crate::share_partitions::SharePartitionManager::record_lock_duration_ms(broker, &group);
    ShareAcknowledgeResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms)
        .with_responses(topics)
        .with_node_endpoints(node_endpoints)
}
