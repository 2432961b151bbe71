//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use std::sync::Arc;

use gregor_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::replica_manager::now_ms;
use crate::router::RequestContext;
use crate::server::Broker;

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
    let r = broker.groups.core().heartbeat(&core_req, now_ms());
    HeartbeatResponse::default().with_error_code(r.error_code)
}
