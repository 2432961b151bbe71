//! DescribeConfigs (key 32): a topic's configuration, every key gregor knows with its
//! effective value and where it comes from (the topic's override in the metadata image, or the
//! broker's default), as `kafka-topics --describe` and `kafka-configs --describe` show it; and
//! a broker's (resource type 4, this broker's id: every key it reads, see
//! [`crate::broker_configs`]; the empty name, the cluster-wide dynamic defaults: none yet),
//! and a group's (resource type 32: Kafka's group config keys, set on the group or the
//! broker's, [`crate::group_configs`]), and a client metrics subscription's (resource type 16,
//! [`crate::client_metrics`]), and this broker's loggers (resource type 8, its own id: the
//! levels of [`crate::log_levels`]). Other resource types are refused with INVALID_REQUEST.
//!
//! Authorization is Kafka's (`ConfigHelper.handleDescribeConfigsRequest`): DESCRIBE_CONFIGS on
//! the topic (TOPIC_AUTHORIZATION_FAILED), on the cluster for broker, broker-logger and
//! client-metrics resources (CLUSTER_AUTHORIZATION_FAILED), on the group for group resources
//! (GROUP_AUTHORIZATION_FAILED); checked before whether the topic exists.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use gregor_metadata::{AclOperation, MetadataImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::admin_common::authorize_config_resource;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::broker_configs::{
    describe as describe_broker_key, DescribedKey, Layers, BROKER_KEYS, SOURCE_DEFAULT,
};
use crate::config::BrokerConfig;
use crate::request::RequestContext;
use crate::topic_config::TOPIC_CONFIG_KEYS;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeConfigs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=4;

/// Kafka's `ConfigResource.Type.TOPIC`.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type.BROKER`.
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigResource.Type.BROKER_LOGGER` (this broker's log levels,
/// [`crate::log_levels`]).
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Kafka's `ConfigResource.Type.CLIENT_METRICS` (a subscription's configs,
/// [`crate::client_metrics`]).
pub const RESOURCE_CLIENT_METRICS: i8 = 16;
/// Kafka's `ConfigResource.Type.GROUP` (a group's configs, [`crate::group_configs`]).
pub const RESOURCE_GROUP: i8 = 32;
/// Kafka's `ConfigSource`: a topic override.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// Kafka's `ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG`: a logger's level.
const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;

/// Kafka's `ConfigType` codes (v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// A topic key's broker-level default: its value, the broker key it comes from (a synonym), and
/// whether the broker's configuration sets it (`false`: gregor's built-in default).
fn topic_default(c: &BrokerConfig, key: &str) -> Option<(String, Option<&'static str>, i8)> {
    let long_max = i64::MAX.to_string();
    let d = match key {
        "cleanup.policy" => (
            c.cleanup_policy.clone(),
            Some("log.cleanup.policy"),
            TYPE_LIST,
        ),
        "compression.type" => (
            c.compression.name().into(),
            Some("compression.type"),
            TYPE_STRING,
        ),
        "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => (
            c.compression_levels.get(key)?.to_string(),
            Some(match key {
                "compression.gzip.level" => "compression.gzip.level",
                "compression.lz4.level" => "compression.lz4.level",
                _ => "compression.zstd.level",
            }),
            TYPE_INT,
        ),
        "delete.retention.ms" => (
            c.log.delete_retention_ms.to_string(),
            Some("log.cleaner.delete.retention.ms"),
            TYPE_LONG,
        ),
        "file.delete.delay.ms" => ("60000".into(), None, TYPE_LONG),
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => {
            (String::new(), None, TYPE_LIST)
        }
        "flush.messages" => (
            match c.flush {
                crate::config::FlushPolicy::Interval { messages, .. } => messages.to_string(),
                crate::config::FlushPolicy::OnAcksAll => long_max.clone(),
            },
            Some("log.flush.interval.messages"),
            TYPE_LONG,
        ),
        "flush.ms" => (
            match c.flush {
                crate::config::FlushPolicy::Interval { interval_ms, .. } => interval_ms.to_string(),
                crate::config::FlushPolicy::OnAcksAll => long_max.clone(),
            },
            Some("log.flush.interval.ms"),
            TYPE_LONG,
        ),
        "index.interval.bytes" => (
            c.log.index_interval_bytes.to_string(),
            Some("log.index.interval.bytes"),
            TYPE_INT,
        ),
        "max.compaction.lag.ms" => (
            c.log.max_compaction_lag_ms.to_string(),
            Some("log.cleaner.max.compaction.lag.ms"),
            TYPE_LONG,
        ),
        "max.decompressed.message.bytes" => (
            c.max_decompressed_message_bytes.to_string(),
            Some("max.decompressed.message.bytes"),
            TYPE_INT,
        ),
        "max.message.bytes" => (
            c.message_max_bytes.to_string(),
            Some("message.max.bytes"),
            TYPE_INT,
        ),
        "message.timestamp.type" => (
            if c.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .into(),
            Some("log.message.timestamp.type"),
            TYPE_STRING,
        ),
        "message.timestamp.after.max.ms" => (
            c.timestamp_after_max_ms.to_string(),
            Some("log.message.timestamp.after.max.ms"),
            TYPE_LONG,
        ),
        "message.timestamp.before.max.ms" => (
            c.timestamp_before_max_ms.to_string(),
            Some("log.message.timestamp.before.max.ms"),
            TYPE_LONG,
        ),
        "min.cleanable.dirty.ratio" => (
            c.log.min_cleanable_dirty_ratio.to_string(),
            Some("log.cleaner.min.cleanable.ratio"),
            TYPE_DOUBLE,
        ),
        "min.compaction.lag.ms" => (
            c.log.min_compaction_lag_ms.to_string(),
            Some("log.cleaner.min.compaction.lag.ms"),
            TYPE_LONG,
        ),
        "min.insync.replicas" => (
            c.min_insync_replicas.to_string(),
            Some("min.insync.replicas"),
            TYPE_INT,
        ),
        "retention.bytes" => (
            c.log.retention_bytes.to_string(),
            Some("log.retention.bytes"),
            TYPE_LONG,
        ),
        "retention.ms" => (
            c.log.retention_ms.to_string(),
            Some("log.retention.ms"),
            TYPE_LONG,
        ),
        "segment.bytes" => (
            c.log.segment_bytes.to_string(),
            Some("log.segment.bytes"),
            TYPE_INT,
        ),
        "segment.index.bytes" => (
            c.log.segment_index_bytes.to_string(),
            Some("log.index.size.max.bytes"),
            TYPE_INT,
        ),
        "segment.jitter.ms" => (
            c.log.segment_jitter_ms.to_string(),
            Some("log.roll.jitter.ms"),
            TYPE_LONG,
        ),
        "local.retention.ms" => (
            c.remote_storage.local_retention_ms.to_string(),
            Some("log.local.retention.ms"),
            TYPE_LONG,
        ),
        "local.retention.bytes" => (
            c.remote_storage.local_retention_bytes.to_string(),
            Some("log.local.retention.bytes"),
            TYPE_LONG,
        ),
        "remote.copy.lag.ms" => (
            c.remote_storage.copy_lag_ms.to_string(),
            Some("log.remote.copy.lag.ms"),
            TYPE_LONG,
        ),
        "remote.copy.lag.bytes" => (
            c.remote_storage.copy_lag_bytes.to_string(),
            Some("log.remote.copy.lag.bytes"),
            TYPE_LONG,
        ),
        "remote.storage.enable"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable"
        | "errors.deadletterqueue.group.enable" => ("false".into(), None, TYPE_BOOLEAN),
        "preallocate" => (
            c.log.preallocate.to_string(),
            Some("log.preallocate"),
            TYPE_BOOLEAN,
        ),
        "segment.ms" => (c.log.segment_ms.to_string(), Some("log.roll.ms"), TYPE_LONG),
        "unclean.leader.election.enable" => (
            c.cluster.unclean_leader_election_enable.to_string(),
            Some("unclean.leader.election.enable"),
            TYPE_BOOLEAN,
        ),
        _ => return None,
    };
    Some(d)
}

/// One topic's configuration entries.
fn describe_topic(
    node: &dyn AdminNode,
    topic: &str,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
    synonyms: bool,
    documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let wanted = |k: &str| keys.is_none_or(|ks| ks.iter().any(|w| w == k));
    let image = node.image();
    let effective = node.effective_config();
    let layers = Layers {
        config: node.config(),
        effective: &effective,
        configs: image.configs(),
    };
    let mut out = Vec::new();
    for &key in TOPIC_CONFIG_KEYS {
        if !wanted(key) {
            continue;
        }
        let Some((default, broker_key, config_type)) = topic_default(&effective, key) else {
            continue;
        };
        // The broker key's own description: its source and its synonyms' layers.
        let broker_side = broker_key.and_then(|bk| {
            BROKER_KEYS
                .iter()
                .find(|k| k.name == bk)
                .map(|k| describe_broker_key(&layers, k))
        });
        let default_source = broker_side.as_ref().map_or(SOURCE_DEFAULT, |d| d.source);
        // A BOOLEAN set in another case (`TRUE`) is shown as Kafka parses it.
        let own = overrides.get(key).map(|v| {
            if config_type == TYPE_BOOLEAN {
                v.trim().to_ascii_lowercase()
            } else {
                v.clone()
            }
        });
        let (value, source) = match &own {
            Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
            None => (default.clone(), default_source),
        };
        let mut entry = DescribeConfigsResourceResult::default()
            .with_name(str_bytes(key))
            .with_value(Some(str_bytes(value)))
            .with_read_only(false)
            .with_config_source(source)
            .with_is_sensitive(false)
            .with_config_type(config_type);
        if synonyms {
            let mut list = Vec::new();
            if let Some(v) = &own {
                list.push(
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(key))
                        .with_value(Some(str_bytes(v.clone())))
                        .with_source(SOURCE_DYNAMIC_TOPIC),
                );
            }
            match (&broker_side, broker_key) {
                (Some(d), _) => list.extend(d.synonyms.iter().map(|(n, v, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(n.clone()))
                        .with_value(v.clone().map(str_bytes))
                        .with_source(*source)
                })),
                (None, Some(bk)) => list.push(
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(bk))
                        .with_value(Some(str_bytes(default.clone())))
                        .with_source(default_source),
                ),
                (None, None) => {}
            }
            entry = entry.with_synonyms(list);
        }
        // Null unless asked for, as Kafka answers.
        entry = entry.with_documentation(
            crate::config_docs::documentation(key)
                .filter(|_| documentation)
                .map(str_bytes),
        );
        out.push(entry);
    }
    let _ = topic;
    out
}

/// Handles a DescribeConfigs request. A resource the principal may not DESCRIBE_CONFIGS
/// (the topic's, the group's, or the cluster's for broker resources) gets its
/// `*_AUTHORIZATION_FAILED` without configs; as in Kafka's `ConfigHelper`, the refused
/// resources come after the described ones.
pub fn handle(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = node.image();
    let mut results = Vec::with_capacity(req.resources.len());
    let mut denied = Vec::new();
    for r in &req.resources {
        let base = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match authorize_config_resource(
            node,
            ctx,
            AclOperation::DescribeConfigs,
            r.resource_type,
            &r.resource_name,
        ) {
            Ok(()) => results.push(describe_resource(node, ctx, &req, r, &image, base)),
            Err((code, message)) => denied.push(
                base.with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_configs(Vec::new()),
            ),
        }
    }
    results.extend(denied);
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource the principal may describe.
fn describe_resource(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &DescribeConfigsRequest,
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
    image: &MetadataImage,
    base: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let name = r.resource_name.to_string();
    if r.resource_type == RESOURCE_BROKER {
        return describe_broker(node, ctx, req, r, base);
    }
    if r.resource_type == RESOURCE_GROUP {
        return describe_group(node, ctx, req, r, image, base);
    }
    if r.resource_type == RESOURCE_CLIENT_METRICS {
        return describe_client_metrics(ctx, req, r, image, base);
    }
    if r.resource_type == RESOURCE_BROKER_LOGGER {
        return describe_broker_logger(node, r, base);
    }
    if r.resource_type != RESOURCE_TOPIC {
        return base
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(
                "gregor describes topic, broker, broker logger, group and client metrics \
                 configurations only",
            )));
    }
    // Kafka's answers (`ConfigHelper.describeConfigs`): the empty name is no topic name; a
    // topic that does not exist gets its code with an empty message.
    if name.is_empty() {
        return base
            .with_error_code(ErrorCode::INVALID_TOPIC_EXCEPTION.code())
            .with_error_message(Some(str_bytes(
                "Topic name is invalid: the empty string is not allowed",
            )));
    }
    if image.topics().topic_by_name(&name).is_none() {
        return base
            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
            .with_error_message(Some(str_bytes("")));
    }
    let overrides: BTreeMap<String, String> = image
        .configs()
        .topic_configs(&name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let keys = requested_keys(r);
    let configs = describe_topic(
        node,
        &name,
        &overrides,
        keys.as_deref(),
        req.include_synonyms,
        ctx.api_version >= 3 && req.include_documentation,
    );
    base.with_error_code(0).with_configs(configs)
}

/// The configuration keys a resource asks for: `None`, every key, when the list is null (or,
/// as some clients send, empty).
fn requested_keys(
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
) -> Option<Vec<String>> {
    r.configuration_keys
        .as_ref()
        .filter(|ks| !ks.is_empty())
        .map(|ks| ks.iter().map(|k| k.to_string()).collect())
}

/// A described key's synonyms, (name, value, source) most specific first, as DescribeConfigs
/// answers them.
fn synonyms_of(synonyms: Vec<(String, Option<String>, i8)>) -> Vec<DescribeConfigsSynonym> {
    synonyms
        .into_iter()
        .map(|(n, v, source)| {
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(n))
                .with_value(v.map(str_bytes))
                .with_source(source)
        })
        .collect()
}

/// The entries of a group's or a client metrics subscription's described keys: those of
/// `keys` (all when `None`), with documentation and synonyms when asked for.
fn described_entries(
    described: Vec<DescribedKey>,
    keys: Option<&[String]>,
    documentation: bool,
    synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    described
        .into_iter()
        .filter(|d| keys.is_none_or(|ks| ks.iter().any(|k| k == d.name)))
        .map(|d| {
            let entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(d.value)))
                .with_read_only(false)
                .with_config_source(d.source)
                .with_is_sensitive(false)
                .with_config_type(d.config_type)
                .with_documentation(documentation.then(|| str_bytes(d.documentation)));
            if synonyms {
                entry.with_synonyms(synonyms_of(d.synonyms))
            } else {
                entry
            }
        })
        .collect()
}

/// One GROUP resource: every group config key with the group's value or the broker's (see
/// [`crate::group_configs::describe`]); a group without configs, or that does not exist,
/// shows the broker's values, as Kafka shows them.
fn describe_group(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &DescribeConfigsRequest,
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
    image: &MetadataImage,
    base: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let name = r.resource_name.to_string();
    if name.is_empty() {
        return base
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes("Group name must not be empty")));
    }
    let keys = requested_keys(r);
    let documentation = ctx.api_version >= 3 && req.include_documentation;
    let effective = node.effective_config();
    let layers = Layers {
        config: node.config(),
        effective: &effective,
        configs: image.configs(),
    };
    let overrides: BTreeMap<String, String> = image
        .configs()
        .group_configs(&name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let configs = described_entries(
        crate::group_configs::describe(&layers, &overrides),
        keys.as_deref(),
        documentation,
        req.include_synonyms,
    );
    base.with_error_code(0).with_configs(configs)
}

/// One CLIENT_METRICS resource: the subscription's three keys, set or default (see
/// [`crate::client_metrics::describe`]); a subscription that does not exist shows the
/// defaults, as Kafka 4.4 answers.
/// This broker's loggers and their levels (Kafka's `LoggingController.loggers`), each with
/// source DYNAMIC_BROKER_LOGGER_CONFIG, no type, synonyms or documentation, as Kafka answers;
/// only for this broker's own id.
fn describe_broker_logger(
    node: &dyn AdminNode,
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
    base: DescribeConfigsResult,
) -> DescribeConfigsResult {
    if let Err((code, message)) =
        crate::log_levels::check_describe_name(&r.resource_name, node.config().node_id)
    {
        return base
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let keys = requested_keys(r);
    let entries = node
        .log_levels()
        .loggers()
        .into_iter()
        .filter(|(name, _)| keys.as_ref().is_none_or(|ks| ks.contains(name)))
        .map(|(name, level)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(level)))
                .with_read_only(false)
                .with_config_source(SOURCE_DYNAMIC_BROKER_LOGGER)
                .with_is_sensitive(false)
        })
        .collect();
    base.with_configs(entries)
}

fn describe_client_metrics(
    ctx: &RequestContext,
    req: &DescribeConfigsRequest,
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
    image: &MetadataImage,
    base: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let name = r.resource_name.to_string();
    if name.is_empty() {
        return base
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(
                "Client metrics subscription name must not be empty",
            )));
    }
    let keys = requested_keys(r);
    let documentation = ctx.api_version >= 3 && req.include_documentation;
    let configs: BTreeMap<String, String> = image
        .configs()
        .client_metrics_configs(&name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let entries = described_entries(
        crate::client_metrics::describe(&configs),
        keys.as_deref(),
        documentation,
        req.include_synonyms,
    );
    base.with_error_code(0).with_configs(entries)
}

/// One BROKER resource: this broker's keys, or the cluster-wide dynamic defaults (the empty
/// name; none exist yet). Another broker's id is INVALID_REQUEST, as Kafka answers: clients
/// send a broker's resource to that broker.
fn describe_broker(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &DescribeConfigsRequest,
    r: &gregor_protocol::messages::describe_configs_request::DescribeConfigsResource,
    base: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let name = r.resource_name.to_string();
    let image = node.image();
    if name.is_empty() {
        // The cluster-wide dynamic defaults, as Kafka lists them for the empty name.
        let configs = image
            .configs()
            .broker_configs("")
            .map(|(k, v)| {
                let source = crate::broker_configs::SOURCE_DYNAMIC_DEFAULT_BROKER;
                let entry = DescribeConfigsResourceResult::default()
                    .with_name(str_bytes(k))
                    .with_value(Some(str_bytes(v)))
                    .with_read_only(false)
                    .with_config_source(source)
                    .with_is_sensitive(false)
                    .with_config_type(
                        BROKER_KEYS
                            .iter()
                            .find(|b| b.name == k)
                            .map_or(0, |b| b.config_type),
                    );
                if req.include_synonyms {
                    entry.with_synonyms(vec![DescribeConfigsSynonym::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                        .with_source(source)])
                } else {
                    entry
                }
            })
            .collect();
        return base.with_error_code(0).with_configs(configs);
    }
    let own = node.config().node_id;
    if name.trim().parse::<i32>().ok() != Some(own) {
        return base
            .with_error_code(ErrorCode::INVALID_REQUEST.code())
            .with_error_message(Some(str_bytes(format!(
                "Unexpected broker id, expected {own} or empty string, but received {name}"
            ))));
    }
    let keys = requested_keys(r);
    let documentation = ctx.api_version >= 3 && req.include_documentation;
    let effective = node.effective_config();
    let layers = Layers {
        config: node.config(),
        effective: &effective,
        configs: image.configs(),
    };
    let wanted = |name: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|w| w == name));
    // This broker's dynamic listener SSL configs (the stores it reloads without a restart).
    let own_dynamic: Vec<(String, String)> = image
        .configs()
        .broker_configs(&node.config().node_id.to_string())
        .filter(|(k, _)| crate::tls::listener_ssl_config(k).is_some())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let security = security_entries(node.config(), &own_dynamic)
        .into_iter()
        .filter(|e| wanted(&e.name))
        .map(|e| {
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(e.name.clone()))
                .with_value(e.value.map(str_bytes))
                .with_read_only(e.read_only)
                .with_config_source(e.source)
                .with_is_sensitive(e.sensitive)
                .with_config_type(e.config_type);
            if req.include_synonyms {
                entry = entry.with_synonyms(synonyms_of(e.synonyms));
            }
            entry.with_documentation(
                crate::config_docs::documentation(&e.base)
                    .or_else(|| security_documentation(&e.base))
                    .filter(|_| documentation)
                    .map(str_bytes),
            )
        });
    let mut configs: Vec<DescribeConfigsResourceResult> = BROKER_KEYS
        .iter()
        .filter(|k| wanted(k.name))
        .map(|k| {
            let d = describe_broker_key(&layers, k);
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(d.name))
                .with_value(d.value.map(str_bytes))
                .with_read_only(d.read_only)
                .with_config_source(d.source)
                .with_is_sensitive(false)
                .with_config_type(d.config_type);
            if req.include_synonyms {
                entry = entry.with_synonyms(synonyms_of(d.synonyms));
            }
            entry = entry.with_documentation(
                crate::config_docs::documentation(k.name)
                    .filter(|_| documentation)
                    .map(str_bytes),
            );
            entry
        })
        .chain(security)
        .collect();
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    base.with_error_code(0).with_configs(configs)
}

/// Kafka's `ConfigType.PASSWORD`.
const TYPE_PASSWORD: i8 = 9;

/// The type (Kafka's `ConfigType` code) and default of a security key gregor reads; `None`
/// for a key this table does not know, which is then described as Kafka describes a key of
/// unknown type: sensitive, its value hidden.
fn security_key(key: &str) -> Option<(i8, Option<&'static str>)> {
    Some(match key {
        "ssl.keystore.type" | "ssl.truststore.type" => (TYPE_STRING, Some("JKS")),
        "ssl.keystore.location" | "ssl.truststore.location" => (TYPE_STRING, None),
        "ssl.keystore.password"
        | "ssl.key.password"
        | "ssl.truststore.password"
        | "ssl.keystore.key"
        | "ssl.keystore.certificate.chain"
        | "ssl.truststore.certificates"
        | "sasl.jaas.config" => (TYPE_PASSWORD, None),
        "ssl.client.auth" => (TYPE_STRING, Some("none")),
        "ssl.allow.dn.changes" | "ssl.allow.san.changes" => (TYPE_BOOLEAN, Some("false")),
        "ssl.enabled.protocols" => (TYPE_LIST, Some("TLSv1.2,TLSv1.3")),
        "ssl.protocol" => (TYPE_STRING, Some("TLSv1.3")),
        "ssl.principal.mapping.rules" => (TYPE_STRING, Some("DEFAULT")),
        // gregor serves no GSSAPI, Kafka's default: a SASL listener offers PLAIN unless told.
        "sasl.enabled.mechanisms" => (TYPE_LIST, Some("PLAIN")),
        // OAUTHBEARER's token validation (KIP-768), Kafka's types and defaults.
        "sasl.oauthbearer.clock.skew.seconds" => (TYPE_INT, Some("30")),
        "sasl.oauthbearer.expected.audience" => (TYPE_LIST, Some("")),
        "sasl.oauthbearer.expected.issuer" | "sasl.oauthbearer.jwks.endpoint.url" => {
            (TYPE_STRING, None)
        }
        "sasl.oauthbearer.jwks.endpoint.refresh.ms" => (TYPE_LONG, Some("3600000")),
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms" => (TYPE_LONG, Some("10000")),
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms" => (TYPE_LONG, Some("100")),
        "sasl.oauthbearer.scope.claim.name" => (TYPE_STRING, Some("scope")),
        "sasl.oauthbearer.sub.claim.name" => (TYPE_STRING, Some("sub")),
        _ => return None,
    })
}

/// The documentation of a security key (DescribeConfigs v3+ with `include_documentation`).
fn security_documentation(key: &str) -> Option<&'static str> {
    Some(match key {
        "ssl.keystore.type" => "The keystore's format: JKS, PKCS12 or PEM.",
        "ssl.keystore.location" => "The keystore file: the broker's key and certificate chain.",
        "ssl.keystore.password" => "The keystore's password (a JKS or PKCS12 store).",
        "ssl.keystore.key" => "The broker's private key, PEM, inline (with ssl.keystore.type=PEM).",
        "ssl.keystore.certificate.chain" => "The broker's certificate chain, PEM, inline (with ssl.keystore.type=PEM).",
        "ssl.key.password" => "The private key's own password: a JKS entry's, or an encrypted PEM key's.",
        "ssl.truststore.type" => "The truststore's format: JKS, PKCS12 or PEM.",
        "ssl.truststore.location" => "The truststore file: the certificates client certificates are checked against.",
        "ssl.truststore.password" => "The truststore's password (optional).",
        "ssl.truststore.certificates" => "Trusted certificates, PEM, inline (with ssl.truststore.type=PEM).",
        "ssl.client.auth" => "Client certificates: required, requested, or none.",
        "ssl.allow.dn.changes" => "Whether a listener's keystore reloaded at run time may name another subject.",
        "ssl.allow.san.changes" => "Whether a listener's keystore reloaded at run time may carry other subject alternative names.",
        "ssl.enabled.protocols" => "The TLS versions served: TLSv1.2 and/or TLSv1.3.",
        "ssl.protocol" => "The TLS protocol named by Kafka's SSLContext; gregor serves the versions in ssl.enabled.protocols.",
        "ssl.principal.mapping.rules" => "Rules (RULE:pattern/replacement/[LU] or DEFAULT, the first that matches wins) mapping an SSL client certificate's subject to its principal name; no match fails authentication.",
        "sasl.enabled.mechanisms" => "The SASL mechanisms a SASL listener offers: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.",
        "sasl.jaas.config" => "The JAAS login configuration of a SASL listener (PLAIN's users as user_<name>=\"<password>\").",
        "sasl.oauthbearer.clock.skew.seconds" => "Seconds of clock difference allowed with the token issuer when checking a token's times.",
        "sasl.oauthbearer.expected.audience" => "Audiences a token must name one of (its aud claim); any when empty.",
        "sasl.oauthbearer.expected.issuer" => "The issuer a token must name (its iss claim); any when not set.",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms" => "Milliseconds between fetches of the issuer's signing keys (JWKS).",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms" => "The longest pause between retries of a failed JWKS fetch.",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms" => "The first pause before retrying a failed JWKS fetch.",
        "sasl.oauthbearer.jwks.endpoint.url" => "Where the issuer's signing keys (JWKS) are read: an https:// URL or a file: path.",
        "sasl.oauthbearer.scope.claim.name" => "The token claim that holds its scopes.",
        "sasl.oauthbearer.sub.claim.name" => "The token claim that names its principal.",
        _ => return None,
    })
}

/// One `ssl.*` or `sasl.*` entry of a broker's DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecurityEntry {
    /// As Kafka names it: the key, or `listener.name.<listener>.<key>`.
    name: String,
    /// The key without its listener prefix, and `<mechanism>.sasl.jaas.config` as
    /// `sasl.jaas.config`: the key its type, default and documentation are those of.
    base: String,
    /// Null for a sensitive key, and for a key with no value and no default.
    value: Option<String>,
    source: i8,
    sensitive: bool,
    config_type: i8,
    synonyms: Vec<(String, Option<String>, i8)>,
    /// Kafka's read-only flag: every key but the bare names of the reloadable stores
    /// ([`crate::tls::RECONFIGURABLE_SSL_CONFIGS`]).
    read_only: bool,
}

/// The broker's `ssl.*` and `sasl.*` keys as Kafka's `ConfigHelper` describes them: every key
/// gregor reads ([`crate::tls::SSL_KEYS`], [`crate::config::is_sasl_key`]) with its value or
/// default, and every listener's own `listener.name.<listener>.` key given. A password (or a
/// key of unknown type) is sensitive and its value, and its synonyms' values, are null, so no
/// secret leaves the broker. Synonyms as Kafka lists them: the listener's key, the global key
/// given, then the default. `dynamic`: this broker's dynamic
/// `listener.name.<listener>.ssl.*` configs, which come first (DYNAMIC_BROKER_CONFIG).
fn security_entries(config: &BrokerConfig, dynamic: &[(String, String)]) -> Vec<SecurityEntry> {
    let static_broker = crate::broker_configs::SOURCE_STATIC_BROKER;
    let base_of = |key: &str| -> String {
        if key.ends_with(".sasl.jaas.config") {
            "sasl.jaas.config".to_string()
        } else {
            key.to_string()
        }
    };
    let describe = |name: String, base: String, own: Option<&String>| -> SecurityEntry {
        let known = security_key(&base);
        let sensitive = known.is_none_or(|(t, _)| t == TYPE_PASSWORD);
        let shown = |v: &str| (!sensitive).then(|| v.to_string());
        let default = known.and_then(|(_, d)| d);
        let global = if name == base {
            None
        } else {
            config.security.get(&base)
        };
        let mut synonyms = Vec::new();
        let dynamic_value = dynamic.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
        if let Some(v) = dynamic_value {
            synonyms.push((
                name.clone(),
                shown(v),
                crate::broker_configs::SOURCE_DYNAMIC_BROKER,
            ));
        }
        if let Some(v) = own {
            synonyms.push((name.clone(), shown(v), static_broker));
        }
        if let Some(v) = global {
            synonyms.push((base.clone(), shown(v), static_broker));
        }
        if let Some(d) = default {
            synonyms.push((base.clone(), shown(d), SOURCE_DEFAULT));
        }
        let value = dynamic_value
            .or(own)
            .or(global)
            .map(String::as_str)
            .or(default);
        SecurityEntry {
            // Kafka's rule (`!DynamicBrokerConfig.AllDynamicConfigs.contains(name)`): the
            // bare reconfigurable keys are not read-only, and the listener-prefixed ones, which
            // are what is set and reloaded, are (Kafka 4.4 answers so).
            read_only: !crate::tls::RECONFIGURABLE_SSL_CONFIGS.contains(&name.as_str()),
            value: value.and_then(shown),
            source: synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2),
            sensitive,
            config_type: known.map_or(0, |(t, _)| t),
            synonyms,
            name,
            base,
        }
    };
    let mut out: Vec<SecurityEntry> = crate::tls::SSL_KEYS
        .iter()
        .chain(["sasl.enabled.mechanisms", "sasl.jaas.config"].iter())
        .chain(crate::oauthbearer::VALIDATION_KEYS.iter())
        .filter(|k| !BROKER_KEYS.iter().any(|b| b.name == **k))
        .map(|k| describe(k.to_string(), k.to_string(), config.security.get(*k)))
        .collect();
    // Global keys given that the list above does not name (another mechanism's JAAS config).
    for (k, v) in &config.security {
        if !out.iter().any(|e| &e.name == k) {
            out.push(describe(k.clone(), base_of(k), Some(v)));
        }
    }
    for (listener, keys) in &config.listener_security {
        for (k, v) in keys {
            if crate::tls::is_ssl_key(k) || crate::config::is_sasl_key(k) {
                let name = format!("listener.name.{}.{k}", listener.to_ascii_lowercase());
                out.push(describe(name, base_of(k), Some(v)));
            }
        }
    }
    // Dynamic listener keys the static configuration does not give.
    for (name, _) in dynamic {
        if !out.iter().any(|e| e.name == *name) {
            if let Some((_, key)) = crate::tls::listener_ssl_config(name) {
                out.push(describe(name.clone(), key.to_string(), None));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker_configs::SOURCE_STATIC_BROKER;
    use gregor_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use gregor_protocol::protocol::StrBytes;

    fn ctx(version: i16) -> RequestContext {
        RequestContext::for_test(KEY, version)
    }

    /// The broker's `ssl.*` and `sasl.*` keys: passwords (and a mechanism's JAAS config under
    /// a listener) are sensitive with null values in the entry and its synonyms; other keys
    /// show their value, the global key given and the default as synonyms, as Kafka lists
    /// them.
    #[test]
    fn security_keys_are_described_without_their_secrets() {
        let mut config = BrokerConfig::default();
        for (k, v) in [
            ("ssl.keystore.password", "ks-secret"),
            ("ssl.client.auth", "required"),
            ("sasl.jaas.config", "x required user_a=\"jaas-secret\";"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            (
                "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config",
                "y-secret",
            ),
            ("listener.name.sasl_ssl.sasl.enabled.mechanisms", "PLAIN"),
        ] {
            config.set(k, v).expect("applies");
        }
        let entries = security_entries(&config, &[]);
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n} listed"))
        };
        let e = find("ssl.keystore.password");
        assert_eq!((e.value.as_deref(), e.sensitive), (None, true));
        assert_eq!(
            e.synonyms,
            vec![(
                "ssl.keystore.password".to_string(),
                None,
                SOURCE_STATIC_BROKER
            )]
        );
        let e = find("listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config");
        assert!(e.sensitive && e.value.is_none());
        assert_eq!(e.config_type, TYPE_PASSWORD);
        assert_eq!(
            e.synonyms,
            vec![
                (e.name.clone(), None, SOURCE_STATIC_BROKER),
                ("sasl.jaas.config".to_string(), None, SOURCE_STATIC_BROKER),
            ]
        );
        let e = find("listener.name.sasl_ssl.sasl.enabled.mechanisms");
        assert_eq!((e.value.as_deref(), e.sensitive), (Some("PLAIN"), false));
        assert_eq!(e.synonyms.len(), 3);
        let e = find("ssl.client.auth");
        assert_eq!(e.value.as_deref(), Some("required"));
        let e = find("ssl.keystore.key");
        assert_eq!((e.value.as_deref(), e.source), (None, SOURCE_DEFAULT));
        assert!(e.sensitive && e.synonyms.is_empty());
        let e = find("ssl.keystore.type");
        assert_eq!(
            (e.value.as_deref(), e.source),
            (Some("JKS"), SOURCE_DEFAULT)
        );
        let text = format!("{entries:?}");
        assert!(!text.contains("secret"), "{text}");
    }

    /// A listener's store set at run time is this broker's dynamic config, first among the
    /// synonyms, a password among them still without its value; flagged read-only as Kafka
    /// flags listener keys, the bare names of the reloadable keys not.
    #[test]
    fn dynamic_listener_stores_come_first() {
        let mut config = BrokerConfig::default();
        config
            .set("listener.name.ssl.ssl.keystore.location", "/old.jks")
            .expect("applies");
        let dynamic = vec![
            (
                "listener.name.ssl.ssl.keystore.location".to_string(),
                "/new.jks".to_string(),
            ),
            (
                "listener.name.ssl.ssl.keystore.password".to_string(),
                "new-secret".to_string(),
            ),
        ];
        let entries = security_entries(&config, &dynamic);
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n} listed"))
        };
        let e = find("listener.name.ssl.ssl.keystore.location");
        assert_eq!(
            (e.value.as_deref(), e.source, e.read_only),
            (
                Some("/new.jks"),
                crate::broker_configs::SOURCE_DYNAMIC_BROKER,
                true
            )
        );
        assert_eq!(
            e.synonyms[1],
            (
                e.name.clone(),
                Some("/old.jks".to_string()),
                SOURCE_STATIC_BROKER
            )
        );
        let e = find("listener.name.ssl.ssl.keystore.password");
        assert_eq!(
            (e.value.as_deref(), e.source, e.sensitive),
            (None, crate::broker_configs::SOURCE_DYNAMIC_BROKER, true)
        );
        assert!(!find("ssl.keystore.location").read_only);
        assert!(find("ssl.client.auth").read_only);
        assert!(!format!("{entries:?}").contains("new-secret"));
    }

    /// With `include_documentation` (v3+) every topic and broker entry carries its
    /// documentation; without it, or below v3, none does.
    #[test]
    fn documentation_is_returned_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        b.replicas
            .create_topic("t", 1, 1, BTreeMap::new())
            .expect("create");
        let request = |docs: bool| {
            DescribeConfigsRequest::default()
                .with_include_documentation(docs)
                .with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_static_str("t")),
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_BROKER)
                        .with_resource_name(StrBytes::from_static_str("1")),
                ])
        };
        let resp = handle(&b, &ctx(4), request(true));
        for r in &resp.results {
            assert_eq!(r.error_code, 0);
            assert!(!r.configs.is_empty());
            for c in &r.configs {
                assert!(
                    c.documentation.as_ref().is_some_and(|d| !d.is_empty()),
                    "{} has documentation",
                    c.name.as_str()
                );
            }
        }
        let retention = resp.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .expect("retention.ms");
        assert!(retention
            .documentation
            .as_deref()
            .is_some_and(|d| d.contains("kept")));
        for (version, docs) in [(4, false), (2, true)] {
            let resp = handle(&b, &ctx(version), request(docs));
            assert!(resp
                .results
                .iter()
                .flat_map(|r| &r.configs)
                .all(|c| c.documentation.is_none()));
        }
    }

    #[test]
    fn topic_configs_show_overrides_and_defaults_with_their_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        b.replicas.create_topic("t", 1, 1, configs).expect("create");
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_static_str("t")),
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_static_str("missing")),
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_BROKER)
                    .with_resource_name(StrBytes::from_static_str("2")),
            ]);
        let resp = handle(&b, &ctx(4), req);
        let t = &resp.results[0];
        assert_eq!(t.error_code, 0);
        let get = |k: &str| {
            t.configs
                .iter()
                .find(|c| c.name.as_str() == k)
                .unwrap_or_else(|| panic!("{k} described"))
        };
        let retention = get("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC);
        // The override alone, as Kafka 4.4 lists it: the broker side's list starts at
        // log.retention.ms, which nothing sets (log.retention.hours=168 is dropped).
        assert_eq!(retention.synonyms.len(), 1, "the override only");
        let segment = get("segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1073741824"));
        assert_eq!(segment.config_source, SOURCE_DEFAULT);
        assert_eq!(t.configs.len(), TOPIC_CONFIG_KEYS.len());
        assert_eq!(
            resp.results[1].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        assert_eq!(
            resp.results[2].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        // A subset of keys.
        let one = handle(
            &b,
            &ctx(4),
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                        "cleanup.policy",
                    )])),
            ]),
        );
        assert_eq!(one.results[0].configs.len(), 1);
    }

    #[test]
    fn a_broker_describes_its_own_keys_with_their_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.set("num.partitions", "4").expect("valid");
        config.set("log.retention.hours", "2").expect("valid");
        let b = crate::broker::test_broker(config);
        b.replicas
            .create_topic("t", 1, 1, BTreeMap::new())
            .expect("create");
        let broker = |name: &'static str| {
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_static_str(name))
        };
        let resp = handle(
            &b,
            &ctx(4),
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![
                    broker("1"),
                    broker(""),
                    broker("2"),
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_static_str("t")),
                ]),
        );
        let own = &resp.results[0];
        assert_eq!(own.error_code, 0);
        assert_eq!(
            own.configs.len(),
            crate::broker_configs::BROKER_KEYS.len() + security_entries(&b.config, &[]).len()
        );
        let get = |k: &str| {
            own.configs
                .iter()
                .find(|c| c.name.as_str() == k)
                .unwrap_or_else(|| panic!("{k} described"))
        };
        let partitions = get("num.partitions");
        assert_eq!(partitions.value.as_deref(), Some("4"));
        assert_eq!(partitions.config_source, SOURCE_STATIC_BROKER);
        // Set in hours: log.retention.ms lists no synonym (Kafka's list starts at the key's
        // own name) and so has Kafka's DEFAULT_CONFIG source; its value is the hours'.
        let retention = get("log.retention.ms");
        assert_eq!(retention.value.as_deref(), Some("7200000"));
        assert_eq!(retention.config_source, SOURCE_DEFAULT);
        assert!(retention.synonyms.is_empty(), "{:?}", retention.synonyms);
        let hours = get("log.retention.hours");
        assert_eq!(hours.config_source, SOURCE_STATIC_BROKER);
        let synonyms: Vec<(&str, Option<&str>, i8)> = hours
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            synonyms,
            vec![
                ("log.retention.hours", Some("2"), SOURCE_STATIC_BROKER),
                ("log.retention.hours", Some("168"), SOURCE_DEFAULT)
            ]
        );
        let min_isr = get("min.insync.replicas");
        assert_eq!(min_isr.value.as_deref(), Some("1"));
        assert_eq!(min_isr.config_source, SOURCE_DEFAULT);
        assert_eq!(
            get("log.dirs").value.as_deref(),
            Some(dir.path().display().to_string().as_str())
        );
        // The cluster-wide dynamic defaults: none.
        assert_eq!(resp.results[1].error_code, 0);
        assert!(resp.results[1].configs.is_empty());
        // Another broker's id.
        assert_eq!(
            resp.results[2].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        // A topic's defaults follow the broker's given keys: retention from the broker's
        // configuration, segment size from gregor's default.
        let topic = &resp.results[3];
        let tget = |k: &str| {
            topic
                .configs
                .iter()
                .find(|c| c.name.as_str() == k)
                .unwrap_or_else(|| panic!("{k} described"))
        };
        // The broker's value, with Kafka 4.4's source: DEFAULT_CONFIG, since no synonym from
        // log.retention.ms on is set (a static log.retention.hours is not listed).
        assert_eq!(tget("retention.ms").value.as_deref(), Some("7200000"));
        assert_eq!(tget("retention.ms").config_source, SOURCE_DEFAULT);
        assert_eq!(tget("segment.bytes").config_source, SOURCE_DEFAULT);
    }

    /// With an authorizer, each resource needs DESCRIBE_CONFIGS on its ACL resource: the
    /// topic for a topic, the cluster for a broker. Refused resources come last, without
    /// configs; an unknown topic the principal may not describe is refused, not revealed.
    #[test]
    fn resources_need_describe_configs() {
        use crate::authorizer::test_support::{allow_cluster, allow_topic, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        b.replicas
            .create_topic("t", 1, 1, BTreeMap::new())
            .expect("create");
        let resource = |resource_type: i8, name: &'static str| {
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_static_str(name))
        };
        let req = DescribeConfigsRequest::default().with_resources(vec![
            resource(RESOURCE_BROKER, "1"),
            resource(RESOURCE_TOPIC, "t"),
            resource(RESOURCE_TOPIC, "hidden"),
        ]);
        let outcome = |resp: &DescribeConfigsResponse| {
            resp.results
                .iter()
                .map(|r| (r.resource_name.to_string(), r.error_code, r.configs.len()))
                .collect::<Vec<_>>()
        };
        let alice = ctx_of("alice", KEY, 4);
        let topic_denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let cluster_denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let resp = handle(&b, &alice, req.clone());
        assert_eq!(
            outcome(&resp),
            vec![
                ("1".into(), cluster_denied, 0),
                ("t".into(), topic_denied, 0),
                ("hidden".into(), topic_denied, 0),
            ]
        );
        assert_eq!(
            resp.results[1].error_message.as_deref(),
            Some("Topic authorization failed.")
        );
        allow_topic(&b, "User:alice", AclOperation::DescribeConfigs, "t");
        let resp = handle(&b, &alice, req.clone());
        assert_eq!(
            outcome(&resp),
            vec![
                ("t".into(), 0, TOPIC_CONFIG_KEYS.len()),
                ("1".into(), cluster_denied, 0),
                ("hidden".into(), topic_denied, 0),
            ]
        );
        allow_cluster(&b, "User:alice", AclOperation::DescribeConfigs);
        let resp = handle(&b, &alice, req);
        assert_eq!(resp.results[0].error_code, 0);
        assert_eq!(
            resp.results[0].configs.len(),
            crate::broker_configs::BROKER_KEYS.len() + security_entries(&b.config, &[]).len()
        );
        assert_eq!(resp.results[1].error_code, 0);
        assert_eq!(resp.results[2].error_code, topic_denied);
    }
}
