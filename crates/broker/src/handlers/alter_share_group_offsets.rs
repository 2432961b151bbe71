//! AlterShareGroupOffsets (key 91, KIP-932): sets the start offset of an Empty share
//! group's share-partitions (`kafka-share-groups.sh --reset-offsets`), through the share
//! coordinators (`GroupRuntime::alter_share_group_offsets`). A group with members answers
//! NON_EMPTY_GROUP; an unknown group GROUP_ID_NOT_FOUND; unknown topics or partitions
//! UNKNOWN_TOPIC_OR_PARTITION.
//!
//! Authorization, as Kafka's `handleAlterShareGroupOffsetsRequest`: READ on the group (else
//! GROUP_AUTHORIZATION_FAILED for the request), READ on each topic (else
//! TOPIC_AUTHORIZATION_FAILED on its partitions, which are not altered).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as PartitionOut,
    AlterShareGroupOffsetsResponseTopic as TopicOut,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::group_coordinator::{ShareOffsetsTopic, ShareTopicResult};
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterShareGroupOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

fn topic_out(t: ShareTopicResult) -> TopicOut {
    TopicOut::default()
        .with_topic_name(topic_name(&t.topic_name))
        .with_topic_id(t.topic_id)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|(p, _, _, code, message)| {
                    PartitionOut::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect(),
        )
}

/// Handles an AlterShareGroupOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: AlterShareGroupOffsetsRequest,
) -> Reply {
    let group_id = req.group_id.0.to_string();
    if !crate::group_coordinator::share_groups_enabled(&broker.replicas) {
        let resp = AlterShareGroupOffsetsResponse::default()
            .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            .with_error_message(Some(str_bytes(
                super::share_group_heartbeat::UNSUPPORTED_MESSAGE,
            )));
        return ready(&ctx, &resp);
    }
    if !authorize_group(broker, &ctx, AclOperation::Read, &group_id) {
        let code = ErrorCode::GROUP_AUTHORIZATION_FAILED;
        let resp = AlterShareGroupOffsetsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(code.name())));
        return ready(&ctx, &resp);
    }
    let mut refused = Vec::new();
    let topics: Vec<ShareOffsetsTopic> = req
        .topics
        .into_iter()
        .filter_map(|t| {
            let name = t.topic_name.0.to_string();
            let partitions: Vec<(i32, i64)> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.start_offset))
                .collect();
            if authorizer::authorize(broker, &ctx, AclOperation::Read, ResourceType::Topic, &name) {
                return Some(ShareOffsetsTopic {
                    topic_name: name,
                    partitions,
                });
            }
            let code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
            refused.push(ShareTopicResult {
                topic_name: name,
                topic_id: uuid::Uuid::nil(),
                partitions: partitions
                    .iter()
                    .map(|(p, _)| (*p, -1, -1, code, None))
                    .collect(),
                error_code: code,
                error_message: None,
            });
            None
        })
        .collect();
    let altered = broker.groups.alter_share_group_offsets(
        &broker.replicas,
        &broker.share_persister,
        group_id,
        topics,
    );
    Reply::Pending(Box::pin(async move {
        let resp = match altered.await {
            Ok(mut results) => {
                results.extend(refused);
                AlterShareGroupOffsetsResponse::default()
                    .with_responses(results.into_iter().map(topic_out).collect())
            }
            Err((code, message)) => AlterShareGroupOffsetsResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        };
        encode(&ctx, &resp)
    }))
}
