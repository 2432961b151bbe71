//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin. Needs READ on
//! the group (else GROUP_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;

use super::group_common::authorize_group;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Heartbeat;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Handles a Heartbeat request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if !authorize_group(broker, ctx, AclOperation::Read, &req.group_id.0) {
        return HeartbeatResponse::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
    }
    let core_req = gregor_group::HeartbeatRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    if let Some(code) = broker.groups.not_coordinator(&core_req.group_id) {
        return HeartbeatResponse::default().with_error_code(code.code());
    }
    let now = broker.clock.now_ms();
    let mut core = broker.groups.core();
    // A share group's id (KIP-932): UNKNOWN_MEMBER_ID, as Kafka's `classicGroupHeartbeat`.
    if broker.groups.is_share_group(&core_req.group_id) {
        return HeartbeatResponse::default().with_error_code(ErrorCode::UNKNOWN_MEMBER_ID.code());
    }
    // A classic member of a consumer group (KIP-848 online migration); no records.
    let mut consumer = broker.groups.consumer();
    if consumer
        .group(&core_req.group_id)
        .is_some_and(|g| !g.members().is_empty())
    {
        let r = consumer.classic_heartbeat(&core_req, now);
        return HeartbeatResponse::default().with_error_code(r.error_code);
    }
    drop(consumer);
    let r = core.heartbeat(&core_req, now);
    HeartbeatResponse::default().with_error_code(r.error_code)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::GroupId;
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;

    /// READ on the group: GROUP_AUTHORIZATION_FAILED without it; with it the coordinator
    /// answers (an unknown member here).
    #[tokio::test]
    async fn heartbeat_needs_read_on_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_static_str("m"));
        let r = handle(&b, &ctx_of("alice", KEY, 4), req.clone());
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        let r = handle(&b, &ctx_of("alice", KEY, 4), req);
        assert_ne!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
    }
}
