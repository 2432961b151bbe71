//! StreamsGroupDescribe (key 89, KIP-1071): the state, epochs, topology and members (with
//! their tasks and target tasks) of streams groups, from the streams group core. What
//! `kafka-streams-groups.sh --describe` prints.
//!
//! As Kafka 4.4's `handleStreamsGroupDescribe`: with streams groups disabled every group is
//! answered UNSUPPORTED_VERSION; DESCRIBE on each group, else GROUP_AUTHORIZATION_FAILED
//! (those first); a group this broker does not coordinate gets NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS); an unknown id GROUP_ID_NOT_FOUND "Group {id} not found.",
//! another kind of group's "Group {id} is not a streams group."; with an authorizer, a group
//! whose topology names a topic the principal may not DESCRIBE is answered
//! TOPIC_AUTHORIZATION_FAILED. v1: no topology description plugin, so the description is
//! NOT_REQUESTED (0) or NOT_STORED (1); the assignor is "sticky".

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::streams_group::records::TopicInfo;
use gregor_group::streams_group::{DescribedStreamsGroup, TaskMap};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::streams_group_describe_response::{
    Assignment, DescribedGroup, Endpoint, KeyValue, Member, Subtopology, TaskIds,
    TopicInfo as WireTopicInfo, Topology,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    GroupId, StreamsGroupDescribeRequest, StreamsGroupDescribeResponse,
};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::StreamsGroupDescribe;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// TopologyDescriptionStatus: the client did not ask for the description.
const DESCRIPTION_NOT_REQUESTED: i8 = 0;
/// TopologyDescriptionStatus: no description is stored (gregor has no description plugin).
const DESCRIPTION_NOT_STORED: i8 = 1;

fn tasks(map: TaskMap) -> Vec<TaskIds> {
    map.into_iter()
        .map(|(id, partitions)| {
            TaskIds::default()
                .with_subtopology_id(str_bytes(id))
                .with_partitions(partitions.into_iter().collect())
        })
        .collect()
}

fn assignment(t: gregor_group::streams_group::Tasks) -> Assignment {
    Assignment::default()
        .with_active_tasks(tasks(t.active))
        .with_standby_tasks(tasks(t.standby))
        .with_warmup_tasks(tasks(t.warmup))
}

fn topic_infos(infos: Vec<TopicInfo>) -> Vec<WireTopicInfo> {
    infos
        .into_iter()
        .map(|t| {
            WireTopicInfo::default()
                .with_name(topic_name(&t.name))
                .with_partitions(t.partitions)
                .with_replication_factor(t.replication_factor.max(0))
                .with_topic_configs(
                    t.topic_configs
                        .into_iter()
                        .map(|(k, v)| {
                            KeyValue::default()
                                .with_key(str_bytes(k))
                                .with_value(str_bytes(v))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Every topic a described group's topology names.
fn topology_topics(g: &DescribedGroup) -> Vec<&str> {
    let Some(t) = &g.topology else {
        return Vec::new();
    };
    t.subtopologies
        .iter()
        .flatten()
        .flat_map(|s| {
            s.source_topics
                .iter()
                .chain(&s.repartition_sink_topics)
                .map(|n| n.0.as_str())
                .chain(
                    s.state_changelog_topics
                        .iter()
                        .chain(&s.repartition_source_topics)
                        .map(|i| i.name.0.as_str()),
                )
        })
        .collect()
}

/// Handles a StreamsGroupDescribe request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: StreamsGroupDescribeRequest,
) -> StreamsGroupDescribeResponse {
    if !crate::group_coordinator::streams_groups_enabled(&broker.replicas) {
        let groups = req
            .group_ids
            .iter()
            .map(|id| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            })
            .collect();
        return StreamsGroupDescribeResponse::default().with_groups(groups);
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
    let description_status = if req.include_topology_description {
        DESCRIPTION_NOT_STORED
    } else {
        DESCRIPTION_NOT_REQUESTED
    };
    let described = ids
        .into_iter()
        .map(|id| {
            if id.is_empty() {
                return DescribedStreamsGroup::error(&id, ErrorCode::INVALID_GROUP_ID.code(), "");
            }
            if let Some(code) = broker.groups.not_coordinator(&id) {
                let mut g = DescribedStreamsGroup::error(&id, code.code(), "");
                g.error_message = None;
                return g;
            }
            let other_kind = broker.groups.consumer().contains_group(&id)
                || broker.groups.is_share_group(&id)
                || broker
                    .groups
                    .core()
                    .group_state(&id)
                    .is_some_and(|s| !matches!(s, gregor_group::GroupState::Empty));
            let mut g = broker
                .groups
                .streams()
                .describe(std::slice::from_ref(&id))
                .pop()
                .unwrap_or_else(|| {
                    DescribedStreamsGroup::error(&id, ErrorCode::GROUP_ID_NOT_FOUND.code(), "")
                });
            if g.error_code != 0 && other_kind {
                g.error_message = Some(format!("Group {id} is not a streams group."));
            }
            g
        })
        .map(|g| {
            let authorized_operations = if g.error_code == 0 && req.include_authorized_operations {
                authorizer::authorized_operations(broker, ctx, ResourceType::Group, &g.group_id)
            } else {
                super::OPS_NOT_REQUESTED
            };
            let ok = g.error_code == 0;
            let mut out = DescribedGroup::default()
                .with_error_code(g.error_code)
                .with_error_message(g.error_message.map(str_bytes))
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_group_state(str_bytes(g.group_state))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_authorized_operations(authorized_operations)
                .with_topology(g.topology.map(|t| {
                    Topology::default()
                        .with_epoch(t.epoch)
                        .with_subtopologies(Some(
                            t.subtopologies
                                .into_iter()
                                .map(|s| {
                                    Subtopology::default()
                                        .with_subtopology_id(str_bytes(s.subtopology_id))
                                        .with_source_topics(
                                            s.source_topics.iter().map(|n| topic_name(n)).collect(),
                                        )
                                        .with_repartition_sink_topics(
                                            s.repartition_sink_topics
                                                .iter()
                                                .map(|n| topic_name(n))
                                                .collect(),
                                        )
                                        .with_state_changelog_topics(topic_infos(
                                            s.state_changelog_topics,
                                        ))
                                        .with_repartition_source_topics(topic_infos(
                                            s.repartition_source_topics,
                                        ))
                                })
                                .collect(),
                        ))
                }))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_member_epoch(m.member_epoch)
                                .with_instance_id(m.instance_id.map(str_bytes))
                                .with_rack_id(m.rack_id.map(str_bytes))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_topology_epoch(m.topology_epoch)
                                .with_process_id(str_bytes(m.process_id))
                                .with_user_endpoint(m.user_endpoint.map(|e| {
                                    Endpoint::default()
                                        .with_host(str_bytes(e.host))
                                        .with_port(e.port)
                                }))
                                .with_client_tags(
                                    m.client_tags
                                        .into_iter()
                                        .map(|(k, v)| {
                                            KeyValue::default()
                                                .with_key(str_bytes(k))
                                                .with_value(str_bytes(v))
                                        })
                                        .collect(),
                                )
                                .with_assignment(assignment(m.assignment))
                                .with_target_assignment(assignment(m.target_assignment))
                        })
                        .collect(),
                );
            if ctx.api_version >= 1 && ok {
                out = out
                    .with_topology_description_status(description_status)
                    .with_assignor_name(g.assignor_name.map(str_bytes));
            }
            out
        });
    let mut groups: Vec<DescribedGroup> = refused.chain(described).collect();
    if authorizer::enabled(broker) {
        let names: Vec<&str> = groups.iter().flat_map(topology_topics).collect();
        let describable = authorizer::filter_authorized(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::Topic,
            names.iter().copied(),
        );
        for g in groups.iter_mut() {
            let hidden = topology_topics(g).iter().any(|t| !describable.contains(*t));
            if hidden {
                let id = g.group_id.clone();
                *g = DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                    .with_error_message(Some(str_bytes(
                        "The described group uses topics that the client is not authorized to describe.".to_string(),
                    )));
            }
        }
    }
    StreamsGroupDescribeResponse::default().with_groups(groups)
}
