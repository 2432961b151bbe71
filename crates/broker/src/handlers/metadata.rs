//! Metadata (key 3): brokers, controller, and topics with their partitions, leaders and ISR.
//! Unknown topics are auto-created when `auto.create.topics.enable` and the client allow it,
//! within CreateTopics' limits (a `num.partitions` over them is refused and logged).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use tracing::{info, warn};

use super::create_topics::{topic_records, MAX_PARTITIONS_PER_REQUEST, MAX_RECORDS_PER_USER_OP};
use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::replica_manager::Topic;
use crate::request::RequestContext;
use crate::topic_config::validate_topic_name;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Metadata;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=12;

/// Kafka's "authorized operations not requested" marker.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// Describes one topic hosted here.
pub fn describe_topic(t: &Topic) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(p.tp.partition)
                .with_leader_id(p.leader().map_or(BrokerId(-1), BrokerId))
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(p.replicas().into_iter().map(BrokerId).collect())
                .with_isr_nodes(p.isr().into_iter().map(BrokerId).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(topic_name(&t.record.name)))
        .with_topic_id(t.record.id)
        .with_is_internal(t.record.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

fn topic_error(name: Option<&str>, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(topic_name))
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

/// Handles a Metadata request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let rm = &broker.replicas;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.api_version == 0,
    };
    let allow_auto_create = ctx.api_version < 4 || req.allow_auto_topic_creation;
    let topics = if all {
        rm.topics().iter().map(|t| describe_topic(t)).collect()
    } else {
        let mut out = Vec::new();
        for rt in req.topics.unwrap_or_default() {
            let Some(name) = rt.name.as_ref().map(|n| n.0.to_string()) else {
                match rm.topic_by_id(rt.topic_id) {
                    Some(t) => out.push(describe_topic(&t)),
                    None => out.push(
                        topic_error(None, ErrorCode::UNKNOWN_TOPIC_ID).with_topic_id(rt.topic_id),
                    ),
                }
                continue;
            };
            if let Some(t) = rm.topic(&name) {
                out.push(describe_topic(&t));
                continue;
            }
            if validate_topic_name(&name).is_err() {
                out.push(topic_error(Some(&name), ErrorCode::INVALID_TOPIC_EXCEPTION));
                continue;
            }
            if !(allow_auto_create && broker.config.auto_create_topics) {
                out.push(topic_error(
                    Some(&name),
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            }
            let partitions = broker.config.num_partitions;
            if i64::from(partitions) > MAX_PARTITIONS_PER_REQUEST
                || topic_records(partitions, 0) > MAX_RECORDS_PER_USER_OP
            {
                // Kafka's controller refuses this creation with POLICY_VIOLATION; the
                // Metadata answer for a topic whose auto-creation did not happen is
                // LEADER_NOT_AVAILABLE, and the refusal is only logged.
                warn!(topic = %name, partitions, "not auto-creating topic: num.partitions is over the per-request limit");
                out.push(topic_error(Some(&name), ErrorCode::LEADER_NOT_AVAILABLE));
                continue;
            }
            let created = rm.create_topic(
                &name,
                broker.config.num_partitions,
                broker.config.default_replication_factor.min(1),
                BTreeMap::new(),
            );
            match created {
                Ok(t) => {
                    info!(topic = %name, "auto-created topic");
                    out.push(describe_topic(&t));
                }
                // Lost a race with another creator: describe what exists.
                Err(e) if e.code == ErrorCode::TOPIC_ALREADY_EXISTS => match rm.topic(&name) {
                    Some(t) => out.push(describe_topic(&t)),
                    None => out.push(topic_error(Some(&name), ErrorCode::LEADER_NOT_AVAILABLE)),
                },
                Err(e) => out.push(topic_error(Some(&name), e.code)),
            }
        }
        out
    };
    let (host, port) = &broker.advertised;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.config.node_id))
            .with_host(str_bytes(host.clone()))
            .with_port(i32::from(*port))])
        .with_cluster_id(Some(str_bytes(rm.cluster_id())))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED)
}
