//! ConsumerGroupDescribe (key 69, KIP-848): the state, epochs, assignor and members (with
//! their current and target assignments) of consumer groups, from the consumer group core.
//! A group this broker does not coordinate gets NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS); an unknown id, or a classic group's, GROUP_ID_NOT_FOUND.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::consumer_group::{DescribedConsumerGroup, DescribedTopicPartitions};
use gregor_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::group_coordinator::ImageTopics;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ConsumerGroupDescribe;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

fn assignment(tps: Vec<DescribedTopicPartitions>) -> Assignment {
    Assignment::default().with_topic_partitions(
        tps.into_iter()
            .map(|tp| {
                TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_bytes(tp.topic_id.0))
                    .with_topic_name(topic_name(&tp.topic_name))
                    .with_partitions(tp.partitions)
            })
            .collect(),
    )
}

/// Handles a ConsumerGroupDescribe request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let authorized_operations = if req.include_authorized_operations {
        super::GROUP_AUTHORIZED_OPERATIONS
    } else {
        super::OPS_NOT_REQUESTED
    };
    let topics = ImageTopics(broker.replicas.image());
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let id = id.0.to_string();
            if let Some(code) = broker.groups.not_coordinator(&id) {
                let mut g = DescribedConsumerGroup::not_found(&id, "");
                g.error_code = code.code();
                g.error_message = None;
                return g;
            }
            let classic = broker.groups.core().group_state(&id).is_some();
            let mut g = broker
                .groups
                .consumer()
                .describe(std::slice::from_ref(&id), &topics)
                .pop()
                .unwrap_or_else(|| DescribedConsumerGroup::not_found(&id, ""));
            if g.error_code != 0 && classic {
                g.error_message = Some(format!("Group {id} is not a consumer group."));
            }
            g
        })
        .map(|g| {
            let ok = g.error_code == 0;
            DescribedGroup::default()
                .with_error_code(g.error_code)
                .with_error_message(g.error_message.map(str_bytes))
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_group_state(str_bytes(g.group_state))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(str_bytes(g.assignor_name))
                .with_authorized_operations(if ok {
                    authorized_operations
                } else {
                    super::OPS_NOT_REQUESTED
                })
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_instance_id(m.instance_id.map(str_bytes))
                                .with_rack_id(m.rack_id.map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .iter()
                                        .map(|n| topic_name(n))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.map(str_bytes),
                                )
                                .with_assignment(assignment(m.assignment))
                                .with_target_assignment(assignment(m.target_assignment));
                            if ctx.api_version >= 1 {
                                member = member.with_member_type(m.member_type);
                            }
                            member
                        })
                        .collect(),
                )
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
