//! ConsumerGroupDescribe (key 69, KIP-848): the state, epochs, assignor and members (with
//! their current and target assignments) of consumer groups, from the consumer group core.
//! A group this broker does not coordinate gets NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS); an unknown id, or a classic group's, GROUP_ID_NOT_FOUND.
//!
//! Authorization, as Kafka's `handleConsumerGroupDescribe` (with KAFKA-18813): DESCRIBE on each
//! group, else it is answered GROUP_AUTHORIZATION_FAILED (those first); authorized operations,
//! when asked, are the principal's on each group described without error. With an authorizer,
//! a group whose members' assignments or target assignments name a topic the principal may
//! not DESCRIBE is answered TOPIC_AUTHORIZATION_FAILED with no members instead.
//!
//! With the cluster's `group.version` below 1 every group is answered UNSUPPORTED_VERSION, as
//! Kafka's.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::consumer_group::{DescribedConsumerGroup, DescribedTopicPartitions};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
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
    if !crate::group_coordinator::consumer_groups_enabled(&broker.replicas) {
        let groups = req
            .group_ids
            .iter()
            .map(|id| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            })
            .collect();
        return ConsumerGroupDescribeResponse::default().with_groups(groups);
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
    let topics = ImageTopics(broker.replicas.image());
    let described = ids
        .into_iter()
        .map(|id| {
            if let Some(code) = broker.groups.not_coordinator(&id) {
                let mut g = DescribedConsumerGroup::not_found(&id, "");
                g.error_code = code.code();
                g.error_message = None;
                return g;
            }
            // A classic group, or a share group (KIP-932): "not a consumer group".
            let classic = broker.groups.core().group_state(&id).is_some()
                || broker.groups.is_share_group(&id);
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
        });
    let mut groups: Vec<DescribedGroup> = refused.chain(described).collect();
    if authorizer::enabled(broker) {
        hide_undescribable_topics(broker, ctx, &mut groups);
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// The topics of the members' assignments and target assignments of `group`.
fn assigned_topics(group: &DescribedGroup) -> impl Iterator<Item = &str> {
    group.members.iter().flat_map(|m| {
        m.assignment
            .topic_partitions
            .iter()
            .chain(&m.target_assignment.topic_partitions)
            .map(|tp| tp.topic_name.0.as_str())
    })
}

/// Kafka's rule that a client does not see topics it may not DESCRIBE: a group that assigns
/// one is replaced by a TOPIC_AUTHORIZATION_FAILED answer without members.
fn hide_undescribable_topics(broker: &Broker, ctx: &RequestContext, groups: &mut [DescribedGroup]) {
    let names: HashSet<&str> = groups.iter().flat_map(assigned_topics).collect();
    let describable = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Describe,
        ResourceType::Topic,
        names,
    );
    for g in groups.iter_mut() {
        if assigned_topics(g).any(|t| !describable.contains(t)) {
            *g = DescribedGroup::default()
                .with_group_id(g.group_id.clone())
                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                .with_error_message(Some(str_bytes(
                    "The group has described topic(s) that the client is not authorized to \
                     describe."
                        .to_string(),
                )));
        }
    }
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;
    use gregor_protocol::messages::{ConsumerGroupHeartbeatRequest, TopicName};
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, allow_topic, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;

    /// DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) and on every topic its members
    /// are assigned (else TOPIC_AUTHORIZATION_FAILED without members); the authorized
    /// operations asked for are the principal's.
    #[tokio::test]
    async fn describing_needs_describe_on_the_group_and_its_topics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 2);
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("t"))]))
            .with_topic_partitions(Some(Vec::<Owned>::new()));
        let ctx = ctx_of("admin", ApiKey::ConsumerGroupHeartbeat, 1);
        let reply = super::super::consumer_group_heartbeat::handle(&b, ctx, join);
        crate::request::reply_body(reply).await;

        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![
                GroupId(StrBytes::from_static_str("g")),
                GroupId(StrBytes::from_static_str("h")),
            ])
            .with_include_authorized_operations(true);
        let describe = || handle(&b, &ctx_of("alice", KEY, 1), req.clone());
        let codes = |r: &ConsumerGroupDescribeResponse| -> Vec<(String, i16)> {
            r.groups
                .iter()
                .map(|g| (g.group_id.0.to_string(), g.error_code))
                .collect()
        };
        let group_refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        assert_eq!(
            codes(&describe()),
            vec![("g".into(), group_refused), ("h".into(), group_refused)]
        );
        allow_group(&b, "User:alice", AclOperation::Describe, "g");
        let r = describe();
        assert_eq!(
            codes(&r),
            vec![
                ("h".into(), group_refused),
                ("g".into(), ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
            ]
        );
        assert!(r.groups[1].members.is_empty());
        assert_eq!(
            r.groups[1].error_message.as_deref(),
            Some("The group has described topic(s) that the client is not authorized to describe.")
        );
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let r = describe();
        let g = &r.groups[1];
        assert_eq!((g.error_code, g.members.len()), (0, 1));
        assert_eq!(g.authorized_operations, 1 << AclOperation::Describe.code());
    }
}
