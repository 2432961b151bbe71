//! OffsetDelete (key 47): drops a group's committed offsets for topics it no longer consumes.
//! A consumer group (KIP-848) keeps those of topics a member subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC).
//!
//! Authorization, as Kafka's `handleOffsetDeleteRequest`: DELETE on the group, else the
//! request answers GROUP_AUTHORIZATION_FAILED; READ on each topic, else its partitions answer
//! TOPIC_AUTHORIZATION_FAILED (listed first, and dropped when the group itself fails) and keep
//! their offsets.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;

use super::group_common::{authorize_group, call_core, pending, NOT_AVAILABLE};
use super::topic_name;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetDelete;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles an OffsetDelete request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: OffsetDeleteRequest) -> Reply {
    if !authorize_group(broker, &ctx, AclOperation::Delete, &req.group_id.0) {
        let resp = OffsetDeleteResponse::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        return ready(&ctx, &resp);
    }
    let readable = authorizer::filter_authorized(
        broker,
        &ctx,
        AclOperation::Read,
        ResourceType::Topic,
        req.topics.iter().map(|t| t.name.0.as_str()),
    );
    let (topics, unreadable): (Vec<_>, Vec<_>) = req
        .topics
        .iter()
        .map(|t| gregor_group::TopicPartitions {
            name: t.name.0.to_string(),
            partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
        })
        .partition(|t| readable.contains(&t.name));
    let refused: Vec<gregor_group::TopicPartitionErrors> = unreadable
        .into_iter()
        .map(|t| gregor_group::TopicPartitionErrors {
            name: t.name,
            partitions: t
                .partitions
                .into_iter()
                .map(|partition_index| gregor_group::PartitionError {
                    partition_index,
                    error_code: ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(),
                })
                .collect(),
        })
        .collect();
    let mut core_req = gregor_group::OffsetDeleteRequest {
        group_id: req.group_id.0.to_string(),
        topics,
    };
    let group_id = core_req.group_id.clone();
    // The topics a consumer group (KIP-848) still subscribes to keep their offsets
    // (GROUP_SUBSCRIBED_TO_TOPIC on each of their partitions).
    let mut subscribed: Vec<gregor_group::TopicPartitionErrors> = Vec::new();
    let rx = call_core(broker, &group_id, |core, id, now| {
        // A share group (KIP-932) has no committed offsets: GROUP_ID_NOT_FOUND, as Kafka.
        if broker.groups.is_share_group(&group_id) {
            return vec![gregor_group::Output::Respond {
                request: id,
                response: Response::OffsetDelete(gregor_group::OffsetDeleteResponse {
                    error_code: gregor_group::code::GROUP_ID_NOT_FOUND,
                    topics: Vec::new(),
                }),
            }];
        }
        let consumer = broker.groups.consumer();
        let streams = broker.groups.streams();
        core_req.topics.retain(|t| {
            let keep = consumer.is_subscribed_to_topic(&core_req.group_id, &t.name) != Some(true)
                && streams.is_subscribed_to_topic(&core_req.group_id, &t.name) != Some(true);
            if !keep {
                subscribed.push(gregor_group::TopicPartitionErrors {
                    name: t.name.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|&partition_index| gregor_group::PartitionError {
                            partition_index,
                            error_code: gregor_group::code::GROUP_SUBSCRIBED_TO_TOPIC,
                        })
                        .collect(),
                });
            }
            keep
        });
        drop(consumer);
        core.delete_offsets(id, core_req, now)
    });
    pending(ctx, rx, move |resp| match resp {
        Some(Response::OffsetDelete(r)) => OffsetDeleteResponse::default()
            .with_error_code(r.error_code)
            .with_topics(
                // The group's own error replaces the topics refused here, as in Kafka.
                refused
                    .into_iter()
                    .filter(|_| r.error_code == 0)
                    .chain(r.topics)
                    .chain(subscribed)
                    .map(|t| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_partitions(
                                t.partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(p.error_code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        other => OffsetDeleteResponse::default()
            .with_error_code(other.map_or(NOT_AVAILABLE, |r| r.error_code())),
    })
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use gregor_protocol::messages::{GroupId, TopicName};
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, allow_topic, ctx_of};
    use crate::handlers::group_common::test_support::{admin_commit, auth_group_broker};
    use crate::request::decode_reply;

    /// DELETE on the group (else the request fails with GROUP_AUTHORIZATION_FAILED) and READ
    /// on each topic (else its partitions answer TOPIC_AUTHORIZATION_FAILED).
    #[tokio::test]
    async fn deleting_offsets_needs_delete_on_the_group_and_read_on_the_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        admin_commit(&b, "g", &["t"]).await;
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]);
        let delete = || async {
            let reply = handle(&b, ctx_of("alice", KEY, 0), req.clone());
            let r: OffsetDeleteResponse = decode_reply(reply, 0).await;
            let codes: Vec<i16> = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect();
            (r.error_code, codes)
        };
        assert_eq!(
            delete().await,
            (ErrorCode::GROUP_AUTHORIZATION_FAILED.code(), vec![])
        );
        allow_group(&b, "User:alice", AclOperation::Delete, "g");
        assert_eq!(
            delete().await,
            (0, vec![ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()])
        );
        allow_topic(&b, "User:alice", AclOperation::Read, "t");
        assert_eq!(delete().await, (0, vec![0]));
    }
}
