//! FindCoordinator (key 10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition in the metadata image; a transactional id's (key type 1) is the leader of its
//! `__transaction_state` partition. The first lookup of a transactional id creates
//! `__transaction_state` (as Kafka does) and is answered COORDINATOR_NOT_AVAILABLE, which clients
//! retry. A share-partition's (v6's key type 2, `group:topicId:partition`) is the leader of
//! `__share_group_state-<abs(javaHashCode(key)) % partitions>` (Kafka's
//! `ShareCoordinatorService.partitionFor`); its first lookup creates that topic the same way.
//! v5 and v6 have v4's shape.
//!
//! Authorization, as Kafka's `getCoordinator`: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED)
//! or on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), checked first, per key
//! in v4+ batches. A refused key is answered with no node; before v4 with the error's message.
//! A share key needs CLUSTER_ACTION on the cluster (brokers ask it), as Kafka's; below v6, or
//! not of the form `group:topicId:partition`, it is INVALID_REQUEST.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::find_coordinator_response::Coordinator;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use gregor_metadata::{AclOperation, ResourceType};

use super::str_bytes;
use crate::authorizer;
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
const SHARE: i8 = 2;

/// Whether `key` has the form of a share coordinator key (Kafka's
/// `SharePartitionKey.getInstance(String)`): a non-empty group, a topic id in Kafka's base64
/// form, a partition index.
fn is_share_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split(':').collect();
    let [group, topic, partition] = parts[..] else {
        return false;
    };
    !group.is_empty()
        && topic.len() == 22
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && partition.parse::<i32>().is_ok_and(|p| p >= 0)
}

/// The error of a key the principal may not look up (DESCRIBE on its group or transactional
/// id), with the message Kafka gives it before v4.
fn denied(
    broker: &Broker,
    ctx: &RequestContext,
    key_type: i8,
    key: &str,
) -> Option<(ErrorCode, &'static str)> {
    let (resource_type, error) = match key_type {
        GROUP => (
            ResourceType::Group,
            (
                ErrorCode::GROUP_AUTHORIZATION_FAILED,
                "Group authorization failed.",
            ),
        ),
        TRANSACTION => (
            ResourceType::TransactionalId,
            (
                ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "Transactional Id authorization failed.",
            ),
        ),
        SHARE if ctx.api_version < 6 => {
            return Some((
                ErrorCode::INVALID_REQUEST,
                "Share coordinators are looked up from FindCoordinator v6.",
            ));
        }
        SHARE => {
            let allowed = authorizer::authorize_cluster(broker, ctx, AclOperation::ClusterAction);
            return (!allowed).then_some((
                ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.",
            ));
        }
        _ => return None,
    };
    let allowed = authorizer::authorize(broker, ctx, AclOperation::Describe, resource_type, key);
    (!allowed).then_some(error)
}

fn lookup(
    broker: &Broker,
    key_type: i8,
    key: &str,
    listener: &str,
) -> (i16, i32, String, i32, Option<String>) {
    if key_type == SHARE && !is_share_key(key) {
        return (
            ErrorCode::INVALID_REQUEST.code(),
            -1,
            String::new(),
            -1,
            Some(format!("invalid share coordinator key {key}")),
        );
    }
    if key_type != GROUP && key_type != TRANSACTION && key_type != SHARE {
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
    } else if key_type == SHARE {
        (
            crate::share_coordinator::SHARE_GROUP_STATE_TOPIC,
            broker.share_coordinator.partition_for_coordinator_key(key),
        )
    } else {
        (TRANSACTION_STATE_TOPIC, broker.txn.partition_for(key))
    };
    let image = broker.replicas.image();
    let Some(topic) = image.topics().topic_by_name(topic_name) else {
        if key_type == TRANSACTION {
            broker.txn.ensure_topic();
        } else if key_type == SHARE {
            broker.share_coordinator.ensure_topic();
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
                if let Some((code, _)) = denied(broker, ctx, req.key_type, k) {
                    return Coordinator::default()
                        .with_key(k.clone())
                        .with_error_code(code.code())
                        .with_error_message(None)
                        .with_node_id(BrokerId(-1))
                        .with_host(str_bytes(String::new()))
                        .with_port(-1);
                }
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
    let (code, node, host, port, msg) = match denied(broker, ctx, req.key_type, &req.key) {
        Some((code, message)) => (
            code.code(),
            -1,
            String::new(),
            -1,
            Some(message.to_string()),
        ),
        None => lookup(broker, req.key_type, &req.key, ctx.listener.as_str()),
    };
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

#[cfg(test)]
mod tests {
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;

    fn batch(key_type: i8, keys: &[&str]) -> FindCoordinatorRequest {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(keys.iter().map(|k| str_bytes(k.to_string())).collect())
    }

    /// DESCRIBE on the group or transactional id, per key in a v4+ batch; before v4 the
    /// refusal carries Kafka's message.
    #[tokio::test]
    async fn keys_need_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        allow_group(&b, "User:alice", AclOperation::Describe, "g");
        let r = handle(&b, &ctx_of("alice", KEY, 4), batch(GROUP, &["g", "h"]));
        let codes: Vec<(&str, i16, i32)> = r
            .coordinators
            .iter()
            .map(|c| (c.key.as_str(), c.error_code, c.node_id.0))
            .collect();
        let refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        assert_eq!(codes, vec![("g", 0, b.config.node_id), ("h", refused, -1)]);
        assert_eq!(r.coordinators[1].error_message, None);

        let r = handle(&b, &ctx_of("alice", KEY, 4), batch(TRANSACTION, &["tx"]));
        assert_eq!(
            r.coordinators[0].error_code,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
        );

        let old = FindCoordinatorRequest::default()
            .with_key_type(GROUP)
            .with_key(StrBytes::from_static_str("h"));
        let r = handle(&b, &ctx_of("alice", KEY, 3), old);
        assert_eq!(r.error_code, refused);
        assert_eq!(r.node_id.0, -1);
        assert_eq!(
            r.error_message.as_deref(),
            Some("Group authorization failed.")
        );
    }
}
