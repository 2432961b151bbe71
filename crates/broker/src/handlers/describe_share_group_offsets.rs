//! DescribeShareGroupOffsets (key 90, KIP-932): the start offset of share groups'
//! share-partitions (`kafka-share-groups.sh --describe`), read from the share coordinators
//! (`GroupRuntime::describe_share_group_offsets`): every initialized share-partition of the
//! group when the topics are null, else those asked; -1 where there is no state. v0 has no
//! lag.
//!
//! Authorization, as Kafka's `handleDescribeShareGroupOffsetsRequest`: DESCRIBE on each group
//! (else GROUP_AUTHORIZATION_FAILED for the group), DESCRIBE on each topic (else
//! TOPIC_AUTHORIZATION_FAILED on its partitions; with all topics, the topics the principal
//! may not describe are left out).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as GroupOut,
    DescribeShareGroupOffsetsResponsePartition as PartitionOut,
    DescribeShareGroupOffsetsResponseTopic as TopicOut,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::group_coordinator::{ShareOffsetsTopic, ShareTopicResult};
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeShareGroupOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

fn topic_out(t: ShareTopicResult) -> TopicOut {
    TopicOut::default()
        .with_topic_name(topic_name(&t.topic_name))
        .with_topic_id(t.topic_id)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|(p, start_offset, leader_epoch, code, message)| {
                    PartitionOut::default()
                        .with_partition_index(p)
                        .with_start_offset(start_offset)
                        .with_leader_epoch(leader_epoch)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect(),
        )
}

/// Handles a DescribeShareGroupOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: DescribeShareGroupOffsetsRequest,
) -> Reply {
    let enabled = crate::group_coordinator::share_groups_enabled(&broker.replicas);
    let mut answers = Vec::new();
    for g in req.groups {
        let group_id = g.group_id.0.to_string();
        if !enabled {
            let message = super::share_group_heartbeat::UNSUPPORTED_MESSAGE;
            answers.push(futures::future::Either::Left(std::future::ready(
                GroupOut::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
                    .with_error_message(Some(str_bytes(message))),
            )));
            continue;
        }
        if !authorize_group(broker, &ctx, AclOperation::Describe, &group_id) {
            let code = ErrorCode::GROUP_AUTHORIZATION_FAILED;
            answers.push(futures::future::Either::Left(std::future::ready(
                GroupOut::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_error_code(code.code()),
            )));
            continue;
        }
        // Topics the principal may not describe: refused here, never read.
        let mut refused = Vec::new();
        let topics = g.topics.map(|topics| {
            topics
                .into_iter()
                .filter_map(|t| {
                    let name = t.topic_name.0.to_string();
                    let ok = authorizer::authorize(
                        broker,
                        &ctx,
                        AclOperation::Describe,
                        ResourceType::Topic,
                        &name,
                    );
                    if ok {
                        return Some(ShareOffsetsTopic {
                            topic_name: name,
                            partitions: t.partitions.iter().map(|p| (*p, -1)).collect(),
                        });
                    }
                    refused.push(ShareTopicResult {
                        topic_name: name,
                        topic_id: uuid::Uuid::nil(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| {
                                let code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
                                (*p, -1, -1, code, None)
                            })
                            .collect(),
                        error_code: 0,
                        error_message: None,
                    });
                    None
                })
                .collect()
        });
        let all_topics = topics.is_none();
        let described = broker.groups.describe_share_group_offsets(
            &broker.replicas,
            &broker.share_persister,
            group_id.clone(),
            topics,
        );
        let broker = Arc::clone(broker);
        let ctx = ctx.clone();
        answers.push(futures::future::Either::Right(async move {
            let out = GroupOut::default().with_group_id(GroupId(str_bytes(group_id)));
            match described.await {
                Ok(mut results) => {
                    if all_topics {
                        results.retain(|t| {
                            authorizer::authorize_quietly(
                                &broker,
                                &ctx,
                                AclOperation::Describe,
                                ResourceType::Topic,
                                &t.topic_name,
                            )
                        });
                    }
                    results.extend(refused);
                    out.with_topics(results.into_iter().map(topic_out).collect())
                }
                Err((code, message)) => out
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            }
        }));
    }
    Reply::Pending(Box::pin(async move {
        let groups = futures::future::join_all(answers).await;
        encode(
            &ctx,
            &DescribeShareGroupOffsetsResponse::default().with_groups(groups),
        )
    }))
}
