//! OffsetDelete (key 47): drops a group's committed offsets for topics it no longer consumes.
//! A consumer group (KIP-848) keeps those of topics a member subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::group_common::{call_core, pending, NOT_AVAILABLE};
use super::topic_name;
use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetDelete;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles an OffsetDelete request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: OffsetDeleteRequest) -> Reply {
    let mut core_req = gregor_group::OffsetDeleteRequest {
        group_id: req.group_id.0.to_string(),
        topics: req
            .topics
            .iter()
            .map(|t| gregor_group::TopicPartitions {
                name: t.name.0.to_string(),
                partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
            })
            .collect(),
    };
    let group_id = core_req.group_id.clone();
    // The topics a consumer group (KIP-848) still subscribes to keep their offsets
    // (GROUP_SUBSCRIBED_TO_TOPIC on each of their partitions).
    let mut subscribed: Vec<gregor_group::TopicPartitionErrors> = Vec::new();
    let rx = call_core(broker, &group_id, |core, id, now| {
        let consumer = broker.groups.consumer();
        core_req.topics.retain(|t| {
            let keep = consumer.is_subscribed_to_topic(&core_req.group_id, &t.name) != Some(true);
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
                r.topics
                    .into_iter()
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
