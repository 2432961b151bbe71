//! SyncGroup (key 14): the leader hands in assignments; every member gets its own once the
//! leader's arrives. Syncing needs READ on the group (else GROUP_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;

use super::group_common::{authorize_group, call_core, pending, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::SyncGroup;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Handles a SyncGroup request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: SyncGroupRequest) -> Reply {
    if !authorize_group(broker, &ctx, AclOperation::Read, &req.group_id.0) {
        let resp = SyncGroupResponse::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        return ready(&ctx, &resp);
    }
    let core_req = gregor_group::SyncGroupRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let group_id = core_req.group_id.clone();
    let rx = call_core(broker, &group_id, |core, id, now| {
        // A share group's id (KIP-932): UNKNOWN_MEMBER_ID, as Kafka's `classicGroupSync`.
        if broker.groups.is_share_group(&group_id) {
            return vec![Output::Respond {
                request: id,
                response: Response::SyncGroup(gregor_group::SyncGroupResponse {
                    error_code: gregor_group::code::UNKNOWN_MEMBER_ID,
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Default::default(),
                }),
            }];
        }
        // A classic member of a consumer group (KIP-848 online migration).
        let routed = broker.groups.classic_call(
            &broker.replicas,
            core,
            &group_id,
            false,
            now,
            |consumer, topics| {
                let response = consumer.classic_sync(&core_req, topics, now);
                vec![Output::Respond {
                    request: id,
                    response: Response::SyncGroup(response),
                }]
            },
        );
        match routed {
            Some(outputs) => outputs,
            None => core.sync_group(id, core_req, now),
        }
    });
    let version = ctx.api_version;
    pending(ctx, rx, move |resp| match resp {
        Some(Response::SyncGroup(r)) => {
            let mut w = SyncGroupResponse::default()
                .with_error_code(r.error_code)
                .with_assignment(r.assignment);
            if version >= 5 {
                w = w
                    .with_protocol_type(r.protocol_type.map(str_bytes))
                    .with_protocol_name(r.protocol_name.map(str_bytes));
            }
            w
        }
        other => SyncGroupResponse::default()
            .with_error_code(other.map_or(NOT_AVAILABLE, |r| r.error_code())),
    })
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::GroupId;
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;
    use crate::request::decode_reply;

    /// READ on the group: GROUP_AUTHORIZATION_FAILED without it; with it the coordinator
    /// answers (the member is unknown).
    #[tokio::test]
    async fn sync_needs_read_on_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_static_str("m"))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")));
        let sync = || handle(&b, ctx_of("alice", KEY, 5), req.clone());
        let r: SyncGroupResponse = decode_reply(sync(), 5).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        let r: SyncGroupResponse = decode_reply(sync(), 5).await;
        assert_ne!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        assert_ne!(r.error_code, 0);
    }
}
