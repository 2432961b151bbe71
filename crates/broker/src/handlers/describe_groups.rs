//! DescribeGroups (key 15): state, protocol and members of each group. A group that does not
//! exist is described as Dead with no error up to v5, and from v6 answered GROUP_ID_NOT_FOUND
//! with a message (KIP-1043), as Kafka answers. A consumer group (KIP-848) is described as
//! Kafka 4.x does in this classic API: Dead, from v6 GROUP_ID_NOT_FOUND.
//!
//! Authorization, as Kafka's `handleDescribeGroupsRequest`: DESCRIBE on each group, else it is
//! answered GROUP_AUTHORIZATION_FAILED (those first, then the groups described). Authorized
//! operations (v3+), when asked, are the principal's on each group described without error
//! (every operation without an authorizer).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use gregor_metadata::{AclOperation, ResourceType};

use super::group_common::authorize_group;
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeGroups;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=6;

/// Handles a DescribeGroups request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let (ids, denied): (Vec<String>, Vec<String>) = req
        .groups
        .iter()
        .map(|g| g.0.to_string())
        .partition(|id| authorize_group(broker, ctx, AclOperation::Describe, id));
    let ops_asked = ctx.api_version >= 3 && req.include_authorized_operations;
    let core = broker.groups.core();
    let mut described = core.describe_groups(&ids);
    // A consumer group (KIP-848) is not described here, as in Kafka: Dead, and from v6
    // GROUP_ID_NOT_FOUND "Group {id} is not a classic group." (ConsumerGroupDescribe has it).
    let mut messages: Vec<Option<String>> = vec![None; described.len()];
    {
        let consumer = broker.groups.consumer();
        // A share group (KIP-932) likewise: ShareGroupDescribe has it.
        let share = broker.groups.share();
        // And a streams group (KIP-1071): StreamsGroupDescribe has it.
        let streams = broker.groups.streams();
        for (g, message) in described.iter_mut().zip(messages.iter_mut()) {
            let answer = consumer
                .classic_describe(&g.group_id, ctx.api_version)
                .or_else(|| share.classic_describe(&g.group_id, ctx.api_version))
                .or_else(|| streams.classic_describe(&g.group_id, ctx.api_version));
            if let Some(answer) = answer {
                g.error_code = answer.error_code;
                g.group_state = answer.group_state;
                g.protocol_type = String::new();
                g.protocol_data = String::new();
                g.members = Vec::new();
                *message = answer.error_message;
            }
        }
    }
    drop(core);
    for g in &mut described {
        if let Some(code) = broker.groups.not_coordinator(&g.group_id) {
            g.error_code = code.code();
        }
    }
    let refused = denied.into_iter().map(|id| {
        DescribedGroup::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())
            .with_group_id(GroupId(str_bytes(id)))
    });
    let groups = refused
        .chain(described.into_iter().zip(messages).map(|(g, message)| {
            let not_found = ctx.api_version >= 6 && g.error_code == 0 && g.group_state == "Dead";
            let (error_code, error_message) = if not_found {
                (
                    ErrorCode::GROUP_ID_NOT_FOUND.code(),
                    Some(str_bytes(format!("Group {} not found.", g.group_id))),
                )
            } else {
                (g.error_code, message.map(str_bytes))
            };
            // Only a group described without error carries them, as from Kafka.
            let authorized_operations = if ops_asked && error_code == 0 {
                authorizer::authorized_operations(broker, ctx, ResourceType::Group, &g.group_id)
            } else {
                super::OPS_NOT_REQUESTED
            };
            DescribedGroup::default()
                .with_authorized_operations(authorized_operations)
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_group_state(str_bytes(g.group_state))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_protocol_data(str_bytes(g.protocol_data))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(m.member_metadata)
                                .with_member_assignment(m.member_assignment);
                            if ctx.api_version >= 4 {
                                dm = dm.with_group_instance_id(m.group_instance_id.map(str_bytes));
                            }
                            dm
                        })
                        .collect(),
                )
        }))
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::{admin_commit, auth_group_broker};

    /// DESCRIBE on each group: GROUP_AUTHORIZATION_FAILED (first) without it; the authorized
    /// operations of a group described are the principal's.
    #[tokio::test]
    async fn groups_need_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        admin_commit(&b, "h", &["t"]).await;
        allow_group(&b, "User:alice", AclOperation::Describe, "h");
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![
                GroupId(StrBytes::from_static_str("h")),
                GroupId(StrBytes::from_static_str("g")),
            ])
            .with_include_authorized_operations(true);
        let r = handle(&b, &ctx_of("alice", KEY, 5), req);
        let answered: Vec<(&str, i16, &str, i32)> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.0.as_str(),
                    g.error_code,
                    g.group_state.as_str(),
                    g.authorized_operations,
                )
            })
            .collect();
        let refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        let describe = 1 << AclOperation::Describe.code();
        assert_eq!(
            answered,
            vec![
                ("g", refused, "", super::super::OPS_NOT_REQUESTED),
                ("h", 0, "Empty", describe)
            ]
        );
    }
}
