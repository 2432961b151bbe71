//! FindCoordinator (key 10): on a single node this broker coordinates every group. Transaction
//! coordinators are not offered (transactions are not supported yet).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::find_coordinator_response::Coordinator;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::FindCoordinator;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

const GROUP: i8 = 0;

fn lookup(broker: &Broker, key_type: i8, key: &str) -> (i16, i32, String, i32, Option<String>) {
    let (host, port) = &broker.advertised;
    if key_type != GROUP {
        return (
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
            -1,
            String::new(),
            -1,
            Some("only group coordinators are available".into()),
        );
    }
    if key.is_empty() {
        return (
            ErrorCode::INVALID_GROUP_ID.code(),
            -1,
            String::new(),
            -1,
            None,
        );
    }
    (
        0,
        broker.config.node_id,
        host.clone(),
        i32::from(*port),
        None,
    )
}

/// Handles a FindCoordinator request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if ctx.api_version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, node, host, port, msg) = lookup(broker, req.key_type, k);
                Coordinator::default()
                    .with_key(k.clone())
                    .with_error_code(code)
                    .with_error_message(msg.map(str_bytes))
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, node, host, port, msg) = lookup(broker, req.key_type, &req.key);
    let mut r = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port);
    if ctx.api_version >= 1 {
        r = r.with_error_message(msg.map(str_bytes));
    }
    r
}
