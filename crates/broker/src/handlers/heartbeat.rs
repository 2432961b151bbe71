//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Heartbeat;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Handles a Heartbeat request.
pub fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let core_req = gregor_group::HeartbeatRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    if let Some(code) = broker.groups.not_coordinator(&core_req.group_id) {
        return HeartbeatResponse::default().with_error_code(code.code());
    }
    let r = broker
        .groups
        .core()
        .heartbeat(&core_req, broker.clock.now_ms());
    HeartbeatResponse::default().with_error_code(r.error_code)
}
