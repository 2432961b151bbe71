//! LeaveGroup (key 13): one member (v0–v2) or a batch of members (v3+) leave; the group
//! rebalances or becomes Empty. Leaving needs READ on the group (else
//! GROUP_AUTHORIZATION_FAILED for the whole request).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::messages::leave_group_response::MemberResponse;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;

use super::group_common::{authorize_group, call_core, pending, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::LeaveGroup;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Handles a LeaveGroup request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: LeaveGroupRequest) -> Reply {
    if !authorize_group(broker, &ctx, AclOperation::Read, &req.group_id.0) {
        let resp = LeaveGroupResponse::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        return ready(&ctx, &resp);
    }
    let members = if ctx.api_version >= 3 {
        req.members
            .iter()
            .map(|m| gregor_group::MemberIdentity {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![gregor_group::MemberIdentity {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let core_req = gregor_group::LeaveGroupRequest {
        group_id: req.group_id.0.to_string(),
        members,
    };
    let group_id = core_req.group_id.clone();
    let rx = call_core(broker, &group_id, |core, id, now| {
        // A share group's id (KIP-932): UNKNOWN_MEMBER_ID, as Kafka's `classicGroupLeave`.
        if broker.groups.is_share_group(&group_id) {
            return vec![gregor_group::Output::Respond {
                request: id,
                response: Response::LeaveGroup(gregor_group::LeaveGroupResponse {
                    error_code: gregor_group::code::UNKNOWN_MEMBER_ID,
                    members: Vec::new(),
                }),
            }];
        }
        // Classic members of a consumer group (KIP-848 online migration).
        let routed = broker.groups.classic_call(
            &broker.replicas,
            core,
            &group_id,
            false,
            now,
            |consumer, topics| consumer.classic_leave(id, &core_req, topics),
        );
        match routed {
            Some(outputs) => outputs,
            None => core.leave_group(id, core_req, now),
        }
    });
    let version = ctx.api_version;
    pending(ctx, rx, move |resp| match resp {
        Some(Response::LeaveGroup(r)) => {
            if version >= 3 {
                LeaveGroupResponse::default()
                    .with_error_code(r.error_code)
                    .with_members(
                        r.members
                            .into_iter()
                            .map(|m| {
                                MemberResponse::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                    .with_error_code(m.error_code)
                            })
                            .collect(),
                    )
            } else {
                // v0–v2 carry one member; its error is the response's error.
                let code = r
                    .members
                    .first()
                    .map(|m| m.error_code)
                    .filter(|c| *c != 0)
                    .unwrap_or(r.error_code);
                LeaveGroupResponse::default().with_error_code(code)
            }
        }
        other => LeaveGroupResponse::default()
            .with_error_code(other.map_or(NOT_AVAILABLE, |r| r.error_code())),
    })
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::leave_group_request::MemberIdentity;
    use gregor_protocol::messages::GroupId;
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;
    use crate::request::decode_reply;

    /// READ on the group: GROUP_AUTHORIZATION_FAILED for the whole request without it, no
    /// member answered; with it the coordinator answers each member.
    #[tokio::test]
    async fn leave_needs_read_on_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_members(vec![
                MemberIdentity::default().with_member_id(StrBytes::from_static_str("m"))
            ]);
        let leave = || handle(&b, ctx_of("alice", KEY, 5), req.clone());
        let r: LeaveGroupResponse = decode_reply(leave(), 5).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        assert!(r.members.is_empty());
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        let r: LeaveGroupResponse = decode_reply(leave(), 5).await;
        assert_ne!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
    }
}
