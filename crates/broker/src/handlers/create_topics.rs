//! CreateTopics (key 19): validates names, partition counts, replication factors and configs,
//! then creates the topics (or, with `validate_only`, only checks them).

use std::collections::BTreeMap;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use gregor_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{str_bytes, topic_name};
use crate::router::RequestContext;
use crate::server::Broker;
use crate::topic_config::{validate, validate_topic_name};

/// Brokers in this cluster (a single node until the controller lands).
const LIVE_BROKERS: i16 = 1;

fn failed(name: &str, code: ErrorCode, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// Handles a CreateTopics request.
pub fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let config = &broker.config;
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        if !seen.insert(name.clone()) {
            results.push(failed(
                &name,
                ErrorCode::INVALID_REQUEST,
                format!("Topic '{name}' appears more than once in the request."),
            ));
            continue;
        }
        if let Err(m) = validate_topic_name(&name) {
            results.push(failed(&name, ErrorCode::INVALID_TOPIC_EXCEPTION, m));
            continue;
        }
        if broker.replicas.topic(&name).is_some() {
            results.push(failed(
                &name,
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("Topic '{name}' already exists."),
            ));
            continue;
        }
        let (partitions, rf) = if t.assignments.is_empty() {
            let p = if t.num_partitions == -1 {
                config.num_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                config.default_replication_factor
            } else {
                t.replication_factor
            };
            (p, rf)
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                results.push(failed(
                    &name,
                    ErrorCode::INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set."
                        .into(),
                ));
                continue;
            }
            let node = config.node_id;
            let bad = t.assignments.iter().enumerate().any(|(i, a)| {
                a.partition_index != i as i32
                    || a.broker_ids.is_empty()
                    || a.broker_ids.iter().any(|b| b.0 != node)
            });
            if bad {
                results.push(failed(
                    &name,
                    ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                    format!("Replica assignments must name partitions 0..n in order and only broker {node}."),
                ));
                continue;
            }
            (
                t.assignments.len() as i32,
                t.assignments[0].broker_ids.len() as i16,
            )
        };
        if partitions <= 0 {
            results.push(failed(
                &name,
                ErrorCode::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.".into(),
            ));
            continue;
        }
        if rf <= 0 {
            results.push(failed(
                &name,
                ErrorCode::INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0.".into(),
            ));
            continue;
        }
        if rf > LIVE_BROKERS {
            results.push(failed(
                &name,
                ErrorCode::INVALID_REPLICATION_FACTOR,
                format!("Replication factor: {rf} larger than available brokers: {LIVE_BROKERS}."),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut config_error = None;
        for c in &t.configs {
            let key = c.name.to_string();
            let Some(value) = c.value.as_ref().map(|v| v.to_string()) else {
                config_error = Some(format!("Null value not supported for topic config {key}"));
                break;
            };
            if let Err(m) = validate(&key, &value) {
                config_error = Some(format!(
                    "Invalid value {value:?} for configuration {key}: {m}"
                ));
                break;
            }
            configs.insert(key, value);
        }
        if let Some(m) = config_error {
            results.push(failed(&name, ErrorCode::INVALID_CONFIG, m));
            continue;
        }
        let described: Vec<CreatableTopicConfigs> = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfigs::default()
                    .with_name(str_bytes(k.clone()))
                    .with_value(Some(str_bytes(v.clone())))
                    .with_config_source(1) // DYNAMIC_TOPIC_CONFIG
            })
            .collect();
        if req.validate_only {
            results.push(
                CreatableTopicResult::default()
                    .with_name(topic_name(&name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf)
                    .with_configs(Some(described)),
            );
            continue;
        }
        match broker.replicas.create_topic(&name, partitions, rf, configs) {
            Ok(topic) => results.push(
                CreatableTopicResult::default()
                    .with_name(topic_name(&name))
                    .with_topic_id(topic.record.id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf)
                    .with_configs(Some(described)),
            ),
            Err(e) => results.push(failed(&name, e.code, e.message)),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
