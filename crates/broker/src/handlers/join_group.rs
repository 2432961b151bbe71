//! JoinGroup (key 11): parks the member until the group's join phase completes. The id of a
//! consumer group (KIP-848) answers INCONSISTENT_GROUP_PROTOCOL, as Kafka does.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_protocol::messages::join_group_response::JoinGroupResponseMember;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::group_common::{call_core, pending, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::JoinGroup;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=9;

/// Handles a JoinGroup request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: JoinGroupRequest) -> Reply {
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
        // One id, one group: a consumer group (KIP-848) refuses classic members (checked
        // under the classic core's lock, which a first heartbeat also holds).
        if broker.groups.consumer().contains_group(&core_req.group_id) {
            let resp = gregor_group::JoinGroupResponse::error(
                &core_req.member_id,
                gregor_group::code::INCONSISTENT_GROUP_PROTOCOL,
            );
            return vec![Output::Respond {
                request: id,
                response: Response::JoinGroup(resp),
            }];
        }
        core.join_group(id, core_req, now)
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
