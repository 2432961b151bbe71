//! ShareGroupDescribe (key 77, KIP-932): the state, epochs, assignor and members (with their
//! assignments) of share groups, from the share group core. A group this broker does not
//! coordinate gets NOT_COORDINATOR (or COORDINATOR_LOAD_IN_PROGRESS); an unknown id
//! GROUP_ID_NOT_FOUND, a group of another type GROUP_ID_NOT_FOUND "Group {id} is not a share
//! group.".
//!
//! Authorization, as Kafka's `handleShareGroupDescribe`: DESCRIBE on each group, else it is
//! answered GROUP_AUTHORIZATION_FAILED (those first); with an authorizer, a group whose
//! members' assignments name a topic the principal may not DESCRIBE is answered
//! TOPIC_AUTHORIZATION_FAILED with no members. Authorized operations, when asked, are the
//! principal's on each group described without error.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::consumer_group::DescribedTopicPartitions;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{GroupId, ShareGroupDescribeRequest, ShareGroupDescribeResponse};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ShareGroupDescribe;
/// The versions served (and advertised in ApiVersions): v1, what Kafka 4.1+ speaks.
pub const VERSIONS: RangeInclusive<i16> = 1..=1;

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

/// Handles a ShareGroupDescribe request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    if !crate::group_coordinator::share_groups_enabled(&broker.replicas) {
        let code = ErrorCode::UNSUPPORTED_VERSION.code();
        let message = super::share_group_heartbeat::UNSUPPORTED_MESSAGE;
        return ShareGroupDescribeResponse::default().with_groups(
            req.group_ids
                .into_iter()
                .map(|id| {
                    DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message)))
                })
                .collect(),
        );
    }
    let (ids, denied): (Vec<String>, Vec<String>) = req
        .group_ids
        .iter()
        .map(|id| id.0.to_string())
        .partition(|id| authorize_group(broker, ctx, AclOperation::Describe, id));
    let refused = denied.into_iter().map(|id| {
        DescribedGroup::default()
            .with_group_id(GroupId(str_bytes(id)))
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
    });
    let described = broker.groups.describe_share_groups(&broker.replicas, &ids);
    let groups = described.into_iter().map(|mut g| {
        // Every topic its members are assigned must be describable.
        let names: HashSet<&str> = g
            .members
            .iter()
            .flat_map(|m| m.assignment.iter().map(|t| t.topic_name.as_str()))
            .collect();
        let describable = authorizer::filter_authorized(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::Topic,
            names.iter().copied(),
        );
        if describable.len() < names.len() {
            g.error_code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
            g.error_message = None;
            g.members.clear();
        }
        let authorized_operations = if g.error_code == 0 && req.include_authorized_operations {
            authorizer::authorized_operations(broker, ctx, ResourceType::Group, &g.group_id)
        } else {
            super::OPS_NOT_REQUESTED
        };
        DescribedGroup::default()
            .with_error_code(g.error_code)
            .with_error_message(g.error_message.map(str_bytes))
            .with_group_id(GroupId(str_bytes(g.group_id)))
            .with_group_state(str_bytes(g.group_state))
            .with_group_epoch(g.group_epoch)
            .with_assignment_epoch(g.assignment_epoch)
            .with_assignor_name(str_bytes(g.assignor_name))
            .with_authorized_operations(authorized_operations)
            .with_members(
                g.members
                    .into_iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(m.member_id))
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
                            .with_assignment(assignment(m.assignment))
                    })
                    .collect(),
            )
    });
    ShareGroupDescribeResponse::default().with_groups(refused.chain(groups).collect())
}
