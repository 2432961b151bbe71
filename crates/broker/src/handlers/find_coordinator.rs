//! FindCoordinator (key 10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition in the metadata image. Transaction coordinators are not offered (transactions
//! are not supported yet): a transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a
//! fatal error for the Java producer and librdkafka, so `initTransactions` fails at once instead
//! of retrying COORDINATOR_NOT_AVAILABLE until its timeout. The transaction coordinator will
//! answer here with the leader of the id's `__transaction_state` partition. Share-group
//! coordinators (v6's key type 2) are not served either. v5 and v6 have v4's shape.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::find_coordinator_response::Coordinator;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::metadata::CLIENT_LISTENER;
use super::str_bytes;
use crate::broker::Broker;
use crate::group_coordinator::OFFSETS_TOPIC;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::FindCoordinator;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=6;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

fn lookup(broker: &Broker, key_type: i8, key: &str) -> (i16, i32, String, i32, Option<String>) {
    if key_type == TRANSACTION {
        return (
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code(),
            -1,
            String::new(),
            -1,
            Some("transactions are not supported by this broker yet".into()),
        );
    }
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
    // The coordinator is the leader of the group's `__consumer_offsets` partition.
    let not_available = |why: &str| {
        (
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
            -1,
            String::new(),
            -1,
            Some(why.to_string()),
        )
    };
    let partition = broker.groups.core().partition_for(key);
    let image = broker.replicas.image();
    let Some(topic) = image.topics().topic_by_name(OFFSETS_TOPIC) else {
        return not_available("the offsets topic does not exist yet");
    };
    let Some(leader) = topic
        .partition(partition)
        .map(|p| p.leader)
        .filter(|&l| l >= 0)
    else {
        return not_available("the group's offsets partition has no leader");
    };
    if leader == broker.config.node_id {
        let (host, port) = &broker.advertised;
        return (0, leader, host.clone(), i32::from(*port), None);
    }
    let endpoint = image
        .cluster()
        .live_endpoints(CLIENT_LISTENER)
        .find(|(b, _)| b.id == leader)
        .map(|(_, e)| (e.host.clone(), i32::from(e.port)));
    match endpoint {
        Some((host, port)) => (0, leader, host, port, None),
        None => not_available("the group's coordinator is not live"),
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
