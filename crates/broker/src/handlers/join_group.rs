//! JoinGroup (key 11): parks the member until the group's join phase completes. A consumer
//! group (KIP-848) with members takes the member in as a classic member (online migration,
//! the consumer core decides); an empty one is deleted and the classic group takes its id,
//! as in Kafka. Joining needs READ on the group (else GROUP_AUTHORIZATION_FAILED, before the
//! coordinator sees it).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_protocol::messages::join_group_response::JoinGroupResponseMember;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;

use super::group_common::{authorize_group, call_core, pending, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::JoinGroup;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=9;

/// Kafka's answer to a JoinGroup that fails as a whole: no generation, member or leader, and
/// a null protocol name from v7 (empty before).
fn error_response(version: i16, code: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_protocol_name((version < 7).then(|| str_bytes(String::new())))
}

/// Handles a JoinGroup request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: JoinGroupRequest) -> Reply {
    if !authorize_group(broker, &ctx, AclOperation::Read, &req.group_id.0) {
        let code = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        return ready(&ctx, &error_response(ctx.api_version, code));
    }
    let core_req = gregor_group::JoinGroupRequest {
        group_id: req.group_id.0.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if ctx.api_version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| gregor_group::Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        require_known_member_id: ctx.api_version >= 4,
    };
    let group_id = core_req.group_id.clone();
    let rx = call_core(broker, &group_id, |core, id, now| {
        // A share group's id (KIP-932): Kafka's `classicGroupJoin` answers
        // INCONSISTENT_GROUP_PROTOCOL with no member id.
        if broker.groups.is_share_group(&group_id) {
            let code = gregor_group::code::INCONSISTENT_GROUP_PROTOCOL;
            return vec![Output::Respond {
                request: id,
                response: Response::JoinGroup(gregor_group::JoinGroupResponse::error("", code)),
            }];
        }
        // A streams group's id (KIP-1071): INCONSISTENT_GROUP_PROTOCOL while it has members;
        // an empty one is deleted and the join goes on, as Kafka converts it.
        if let Some(empty) = broker.groups.streams_group_is_empty(&group_id) {
            if !empty {
                let code = gregor_group::code::INCONSISTENT_GROUP_PROTOCOL;
                return vec![Output::Respond {
                    request: id,
                    response: Response::JoinGroup(gregor_group::JoinGroupResponse::error("", code)),
                }];
            }
            broker
                .groups
                .delete_empty_streams_group(&broker.replicas, &group_id);
        }
        // One id, one group: a consumer group (KIP-848) with members takes classic members
        // in (checked under the classic core's lock, which a heartbeat also holds).
        let cfg = core.config();
        let session_ok = (cfg.min_session_timeout_ms..=cfg.max_session_timeout_ms)
            .contains(&core_req.session_timeout_ms);
        let routed = broker.groups.classic_call(
            &broker.replicas,
            core,
            &group_id,
            true,
            now,
            |consumer, topics| {
                if !session_ok {
                    let resp = gregor_group::JoinGroupResponse::error(
                        &core_req.member_id,
                        gregor_group::code::INVALID_SESSION_TIMEOUT,
                    );
                    return vec![Output::Respond {
                        request: id,
                        response: Response::JoinGroup(resp),
                    }];
                }
                consumer.classic_join(id, &core_req, topics, now)
            },
        );
        match routed {
            Some(outputs) => outputs,
            None => core.join_group(id, core_req, now),
        }
    });
    let version = ctx.api_version;
    pending(ctx, rx, move |resp| match resp {
        Some(Response::JoinGroup(r)) => {
            let mut w = JoinGroupResponse::default()
                .with_error_code(r.error_code)
                .with_generation_id(r.generation_id)
                .with_protocol_name(r.protocol_name.map(str_bytes))
                .with_leader(str_bytes(r.leader))
                .with_member_id(str_bytes(r.member_id))
                .with_members(
                    r.members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                                .with_metadata(m.metadata)
                        })
                        .collect(),
                );
            if version >= 7 {
                w = w.with_protocol_type(r.protocol_type.map(str_bytes));
            }
            w
        }
        other => JoinGroupResponse::default()
            .with_error_code(other.map_or(NOT_AVAILABLE, |r| r.error_code()))
            .with_generation_id(-1),
    })
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use gregor_protocol::messages::GroupId;
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;
    use crate::request::decode_reply;

    /// READ on the group: GROUP_AUTHORIZATION_FAILED (null protocol name from v7) without
    /// it; with it a first join is asked for its member id (v4+).
    #[tokio::test]
    async fn join_needs_read_on_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))
            ]);
        let join = |version: i16| handle(&b, ctx_of("alice", KEY, version), req.clone());
        let r: JoinGroupResponse = decode_reply(join(9), 9).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        assert_eq!((r.generation_id, r.protocol_name), (-1, None));
        let r: JoinGroupResponse = decode_reply(join(5), 5).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        let r: JoinGroupResponse = decode_reply(join(9), 9).await;
        assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED.code());
    }
}
