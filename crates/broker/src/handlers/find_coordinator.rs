//! FindCoordinator (key 10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition in the metadata image; a transactional id's (key type 1) is the leader of its
//! `__transaction_state` partition. The first lookup of a transactional id creates
//! `__transaction_state` (as Kafka does) and is answered COORDINATOR_NOT_AVAILABLE, which clients
//! retry. Share-group coordinators (v6's key type 2) are not served. v5 and v6 have v4's shape.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::find_coordinator_response::Coordinator;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::group_coordinator::OFFSETS_TOPIC;
use crate::request::RequestContext;
use crate::txn_coordinator::TRANSACTION_STATE_TOPIC;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::FindCoordinator;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=6;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

fn lookup(
    broker: &Broker,
    key_type: i8,
    key: &str,
    listener: &str,
) -> (i16, i32, String, i32, Option<String>) {
    if key_type != GROUP && key_type != TRANSACTION {
        return (
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
            -1,
            String::new(),
            -1,
            Some("only group and transaction coordinators are available".into()),
        );
    }
    if key.is_empty() {
        let invalid = if key_type == GROUP {
            ErrorCode::INVALID_GROUP_ID
        } else {
            ErrorCode::INVALID_REQUEST
        };
        return (invalid.code(), -1, String::new(), -1, None);
    }
    // The coordinator is the leader of the key's partition of its internal topic.
    let not_available = |why: &str| {
        (
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
            -1,
            String::new(),
            -1,
            Some(why.to_string()),
        )
    };
    let (topic_name, partition) = if key_type == GROUP {
        (OFFSETS_TOPIC, broker.groups.core().partition_for(key))
    } else {
        (TRANSACTION_STATE_TOPIC, broker.txn.partition_for(key))
    };
    let image = broker.replicas.image();
    let Some(topic) = image.topics().topic_by_name(topic_name) else {
        if key_type == TRANSACTION {
            broker.txn.ensure_topic();
        }
        return not_available(&format!("{topic_name} does not exist yet"));
    };
    let Some(leader) = topic
        .partition(partition)
        .map(|p| p.leader)
        .filter(|&l| l >= 0)
    else {
        return not_available(&format!("{topic_name}-{partition} has no leader"));
    };
    if leader == broker.config.node_id {
        let (host, port) = broker.advertised_on(listener);
        return (0, leader, host.clone(), i32::from(*port), None);
    }
    let endpoint = image
        .cluster()
        .live_endpoints(listener)
        .find(|(b, _)| b.id == leader)
        .map(|(_, e)| (e.host.clone(), i32::from(e.port)));
    match endpoint {
        Some((host, port)) => (0, leader, host, port, None),
        None => not_available("the coordinator is not live"),
    }
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
                let (code, node, host, port, msg) =
                    lookup(broker, req.key_type, k, ctx.listener.as_str());
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
    let (code, node, host, port, msg) =
        lookup(broker, req.key_type, &req.key, ctx.listener.as_str());
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
