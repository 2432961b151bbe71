//! IncrementalAlterConfigs (key 44): sets, removes, appends to or subtracts from a topic's
//! config overrides (`kafka-configs --alter --add-config / --delete-config`). The broker checks
//! each value (the same rules as CreateTopics), the active controller commits the change to the
//! metadata log, and the reply waits until this broker has applied it. A BROKER resource (a
//! broker id, or the empty name for the cluster-wide default) takes the dynamic broker configs
//! (`gregor_metadata::controller::DYNAMIC_BROKER_CONFIGS`: the brokers' defaults for topic
//! configs), checked as the broker parses them and applied without a restart. A GROUP
//! resource (a group id, KIP-848 / KIP-932) takes Kafka's group configs
//! ([`crate::group_configs`]: `share.auto.offset.reset`, `consumer.session.timeout.ms`, ...),
//! checked as Kafka's `GroupConfig` checks them, within this broker's `group.*` bounds.
//!
//! Authorization is Kafka's: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED, before
//! whether it exists), on the cluster for broker and broker-logger resources
//! (CLUSTER_AUTHORIZATION_FAILED; a broker resource's changes are checked first, as Kafka's
//! brokers do before forwarding to the controller, which authorizes), on the group for a group
//! resource (GROUP_AUTHORIZATION_FAILED). A BROKER_LOGGER resource (this broker's id) sets or
//! removes this broker's log levels ([`crate::log_levels`]), here and at once, as Kafka's
//! `RuntimeLoggerManager` does.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::admin_common::authorize_config_resource;
use super::describe_configs::RESOURCE_TOPIC;
use super::str_bytes;
use crate::admin_node::{AdminListener, AdminNode};
use crate::request::{encode, Reply, RequestContext};
use crate::topic_config::{validate, TOPIC_CONFIG_KEYS};
use gregor_metadata::controller::DYNAMIC_BROKER_CONFIGS;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// A config override set (`Some`) or removed (`None`).
pub(crate) type ConfigChange = (String, Option<String>);

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP,
};

/// Config keys whose value is a comma-separated list (APPEND and SUBTRACT apply to them).
const LIST_KEYS: &[&str] = &[
    "cleanup.policy",
    "log.cleanup.policy",
    "streams.rack.aware.assignment.tags",
    // Client metrics subscriptions' LIST keys.
    "metrics",
    "match",
];

/// What a resource's keys are checked against.
pub(crate) enum Checker<'a> {
    /// Topic configs ([`TOPIC_CONFIG_KEYS`], [`validate`]).
    Topic,
    /// Dynamic broker configs, values parsed as this broker's configuration parses them.
    Broker(&'a crate::config::BrokerConfig),
    /// Group configs ([`crate::group_configs::GROUP_KEYS`]); the whole set is checked against
    /// this broker's bounds once the changes are known.
    Group,
    /// Client metrics subscriptions ([`crate::client_metrics::KEYS`]).
    ClientMetrics,
}

impl Checker<'_> {
    /// Whether `key` may be set here; the refusal otherwise.
    pub(crate) fn known(&self, key: &str) -> Result<(), (ErrorCode, String)> {
        match self {
            Checker::Topic if TOPIC_CONFIG_KEYS.contains(&key) => Ok(()),
            Checker::Topic => Err((
                ErrorCode::INVALID_CONFIG,
                format!("Unknown topic config name: {key}"),
            )),
            Checker::Broker(_) if DYNAMIC_BROKER_CONFIGS.contains(&key) => Ok(()),
            Checker::Broker(_) if crate::tls::listener_ssl_config(key).is_some() => Ok(()),
            Checker::Broker(_)
                if gregor_metadata::controller::is_listener_connection_config(key) =>
            {
                Ok(())
            }
            // Kafka's DynamicBrokerConfig: a listener's stores are reloaded per listener.
            Checker::Broker(_) if crate::tls::RECONFIGURABLE_SSL_CONFIGS.contains(&key) => Err((
                ErrorCode::INVALID_REQUEST,
                format!(
                    "These security configs can be dynamically updated only per-listener using \
                     the listener prefix: {key} (as listener.name.<listener>.{key})"
                ),
            )),
            Checker::Broker(_) => Err((
                ErrorCode::INVALID_REQUEST,
                // Kafka's words (the keys as a Java set).
                format!("Cannot update these configs dynamically: [{key}]"),
            )),
            Checker::Group => {
                crate::group_configs::check_key(key).map_err(|m| (ErrorCode::INVALID_CONFIG, m))
            }
            Checker::ClientMetrics => crate::client_metrics::check_key(key),
        }
    }

    /// Checks a value of a known key.
    pub(crate) fn value(&self, key: &str, value: &str) -> Result<(), (ErrorCode, String)> {
        let checked = match self {
            Checker::Topic => validate(key, value),
            // Kafka's `ConfigAdminManager` turns a broker config's ConfigException into
            // INVALID_REQUEST, with the same message.
            Checker::Broker(config) => {
                return config.check_value(key, value).map_err(|e| {
                    let message = match e {
                        // The key the error names: a listener's key without its prefix.
                        crate::config::ConfigError::Invalid { key, reason, .. } => {
                            format!("Invalid value {value} for configuration {key}: {reason}")
                        }
                        other => other.to_string(),
                    };
                    (ErrorCode::INVALID_REQUEST, message)
                });
            }
            // Kafka's own message, which names the value and the key.
            Checker::Group => {
                return crate::group_configs::check_value(key, value)
                    .map_err(|m| (ErrorCode::INVALID_CONFIG, m))
            }
            // Kafka's codes differ by check (ClientMetricsConfigs.validate).
            Checker::ClientMetrics => return crate::client_metrics::check_value(key, value),
        };
        checked.map_err(|m| {
            (
                ErrorCode::INVALID_CONFIG,
                format!("Invalid value {value} for configuration {key}: {m}"),
            )
        })?;
        match crate::topic_config::refusal(key, value) {
            Some(m) => Err((ErrorCode::INVALID_CONFIG, m.to_string())),
            None => Ok(()),
        }
    }
}

/// One resource's configs after `ops`, as (key, new value or `None` to remove), or the error.
fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    checker: &Checker<'_>,
) -> Result<Vec<ConfigChange>, (ErrorCode, String)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for (key, op, value) in ops {
        if *op == OP_DELETE
            && matches!(
                checker,
                Checker::Topic | Checker::Group | Checker::ClientMetrics
            )
            && checker.known(key).is_err()
        {
            // Kafka removes the key and validates the topic configs that remain, so removing
            // a key it does not know (hence never set) succeeds and changes nothing. MirrorMaker
            // 2 removes every config that is a default on its source cluster, keys that only a
            // newer Kafka knows among them.
            continue;
        }
        checker.known(key)?;
        let now = out
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| current.get(key).cloned());
        let next = match *op {
            OP_SET => Some(value.clone().ok_or_else(|| {
                (
                    ErrorCode::INVALID_REQUEST,
                    format!("Null value not supported for SET of {key}"),
                )
            })?),
            OP_DELETE => None,
            OP_APPEND | OP_SUBTRACT => {
                if !LIST_KEYS.contains(&key.as_str()) {
                    return Err((
                        ErrorCode::INVALID_CONFIG,
                        format!("Config {key} is not a list: APPEND and SUBTRACT do not apply"),
                    ));
                }
                let mut items: Vec<String> = now
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let given: Vec<String> = value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if *op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                (!items.is_empty()).then(|| items.join(","))
            }
            other => {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Unknown config operation {other}"),
                ))
            }
        };
        if let Some(v) = &next {
            checker.value(key, v)?;
        }
        out.push((key.clone(), next));
    }
    Ok(out)
}

/// The one config resource an AlterConfigs request to the controller changes.
#[derive(Clone, Copy)]
enum ConfigTarget<'a> {
    Topic(&'a str),
    /// `""` (the cluster-wide default) or a broker id.
    Broker(&'a str),
    Group(&'a str),
    ClientMetrics(&'a str),
}

impl ConfigTarget<'_> {
    /// The controller's request for `changes` on this resource.
    fn request(self, changes: Vec<ConfigChange>, validate_only: bool) -> ControllerRequest {
        let mut request = proto::AlterConfigsRequest {
            topics: Vec::new(),
            validate_only,
            brokers: Vec::new(),
            groups: Vec::new(),
            client_metrics: Vec::new(),
        };
        match self {
            ConfigTarget::Topic(topic) => request.topics.push(proto::AlterConfigsTopic {
                topic: topic.to_string(),
                configs: changes,
            }),
            ConfigTarget::Broker(resource) => request.brokers.push(proto::AlterConfigsBroker {
                resource: resource.to_string(),
                configs: changes,
            }),
            ConfigTarget::Group(group) => request.groups.push(proto::AlterConfigsGroup {
                group: group.to_string(),
                configs: changes,
            }),
            ConfigTarget::ClientMetrics(subscription) => {
                request
                    .client_metrics
                    .push(proto::AlterConfigsClientMetrics {
                        subscription: subscription.to_string(),
                        configs: changes,
                    })
            }
        }
        ControllerRequest::AlterConfigs(request)
    }

    /// The controller's result for this resource, or the answer when it gave none.
    fn result(
        self,
        resp: proto::AlterConfigsResponse,
    ) -> Result<proto::TopicResult, (ErrorCode, Option<String>)> {
        let (results, missing) = match self {
            ConfigTarget::Topic(_) => (resp.results, None),
            ConfigTarget::Broker(_) => (
                resp.broker_results,
                Some("the controller did not answer for the broker resource"),
            ),
            ConfigTarget::Group(_) => (
                resp.group_results,
                Some("the controller did not answer for the group"),
            ),
            ConfigTarget::ClientMetrics(_) => (
                resp.client_metrics_results,
                Some("the controller did not answer for the subscription"),
            ),
        };
        results
            .into_iter()
            .next()
            .ok_or_else(|| (ErrorCode::UNKNOWN_SERVER_ERROR, missing.map(str::to_string)))
    }

    /// The value `key` has on this resource in `image`.
    fn config(self, image: &gregor_metadata::MetadataImage, key: &str) -> Option<String> {
        let configs = image.configs();
        match self {
            ConfigTarget::Topic(topic) => configs.topic_config(topic, key),
            ConfigTarget::Broker(resource) => configs.broker_config(resource, key),
            ConfigTarget::Group(group) => configs.group_config(group, key),
            ConfigTarget::ClientMetrics(subscription) => {
                configs.client_metrics_config(subscription, key)
            }
        }
        .map(str::to_string)
    }
}

/// Sends one resource's config changes to the controller and waits (a few seconds at most)
/// until this broker's image shows them.
async fn alter_configs(
    node: &dyn AdminNode,
    target: ConfigTarget<'_>,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    let request = target.request(changes.clone(), validate_only);
    match node.controller().call(request).await {
        Ok(ControllerResponse::AlterConfigs(resp)) => {
            let r = match target.result(resp) {
                Ok(r) => r,
                Err(answer) => return answer,
            };
            if r.error_code == 0 && !validate_only {
                wait_for_configs(node, &changes, |image, k| target.config(image, k)).await;
            }
            (ErrorCode(r.error_code), r.error_message)
        }
        Ok(other) => {
            let (code, message) = super::create_topics::controller_failure(&other);
            (code, Some(message))
        }
        Err(e) => (ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())),
    }
}

/// Changes a group's configs (Kafka's GROUP resource, after ALTER_CONFIGS on the group):
/// each key and value checked as Kafka's `GroupConfig` checks them, then the group's whole set
/// after the change against this broker's `group.*` bounds. The group need not exist.
async fn alter_group_resource(
    node: &dyn AdminNode,
    group: &str,
    validate_only: bool,
    changes: impl FnOnce(
        &BTreeMap<String, String>,
        &Checker<'_>,
    ) -> Result<Vec<ConfigChange>, (ErrorCode, String)>,
) -> (ErrorCode, Option<String>) {
    if group.is_empty() {
        return (
            ErrorCode::INVALID_REQUEST,
            Some("Group name must not be empty".to_string()),
        );
    }
    let current = crate::group_configs::group_configs(node, group);
    let checked = changes(&current, &Checker::Group).and_then(|changes| {
        let mut next = current.clone();
        for (k, v) in &changes {
            match v {
                Some(v) => next.insert(k.clone(), v.clone()),
                None => next.remove(k),
            };
        }
        crate::group_configs::validate(&next, node.config())
            .map(|()| changes)
            .map_err(|m| (ErrorCode::INVALID_CONFIG, m))
    });
    match checked {
        Err((code, message)) => (code, Some(message)),
        Ok(changes) if changes.is_empty() => (ErrorCode::NONE, None),
        Ok(changes) => {
            alter_configs(node, ConfigTarget::Group(group), changes, validate_only).await
        }
    }
}

/// Changes a client metrics subscription's configs (Kafka's CLIENT_METRICS resource, after
/// ALTER_CONFIGS on the cluster), each key and value checked as Kafka's
/// `ClientMetricsConfigs` checks them. Removing every key removes the subscription.
async fn alter_client_metrics_resource(
    node: &dyn AdminNode,
    subscription: &str,
    validate_only: bool,
    changes: impl FnOnce(
        &BTreeMap<String, String>,
        &Checker<'_>,
    ) -> Result<Vec<ConfigChange>, (ErrorCode, String)>,
) -> (ErrorCode, Option<String>) {
    if let Err((code, message)) = crate::client_metrics::check_name(subscription) {
        return (code, Some(message));
    }
    let current: BTreeMap<String, String> = node
        .image()
        .configs()
        .client_metrics_configs(subscription)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match changes(&current, &Checker::ClientMetrics) {
        Err((code, message)) => (code, Some(message)),
        Ok(changes) if changes.is_empty() => (ErrorCode::NONE, None),
        Ok(changes) => {
            alter_configs(
                node,
                ConfigTarget::ClientMetrics(subscription),
                changes,
                validate_only,
            )
            .await
        }
    }
}

/// Changes one config resource of an IncrementalAlterConfigs or AlterConfigs request:
/// `changes` works them out from the resource's current overrides with its checker
/// (IncrementalAlterConfigs' operations, AlterConfigs' replacement). ALTER_CONFIGS on the
/// resource is checked first, except for a broker resource, whose changes Kafka's brokers check
/// before the controller authorizes them. gregor alters topics, brokers and groups.
pub(crate) async fn alter_resource(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    changes: impl FnOnce(
        &BTreeMap<String, String>,
        &Checker<'_>,
    ) -> Result<Vec<ConfigChange>, (ErrorCode, String)>,
) -> (ErrorCode, Option<String>) {
    let authorized =
        || authorize_config_resource(node, ctx, AclOperation::AlterConfigs, resource_type, name);
    if resource_type == RESOURCE_BROKER {
        return alter_broker_resource(node, name, validate_only, changes, authorized).await;
    }
    if let Err((code, message)) = authorized() {
        return (code, Some(message.to_string()));
    }
    if resource_type == RESOURCE_GROUP {
        return alter_group_resource(node, name, validate_only, changes).await;
    }
    if resource_type == RESOURCE_CLIENT_METRICS {
        return alter_client_metrics_resource(node, name, validate_only, changes).await;
    }
    if resource_type != RESOURCE_TOPIC {
        return (
            ErrorCode::INVALID_REQUEST,
            Some(
                "gregor alters topic, broker, group and client metrics configurations only"
                    .to_string(),
            ),
        );
    }
    if node.image().topics().topic_by_name(name).is_none() {
        return (
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            Some(format!("The topic '{name}' does not exist.")),
        );
    }
    let current: BTreeMap<String, String> = node
        .image()
        .configs()
        .topic_configs(name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match changes(&current, &Checker::Topic) {
        Err((code, message)) => (code, Some(message)),
        Ok(changes) => alter_configs(node, ConfigTarget::Topic(name), changes, validate_only).await,
    }
}

/// Changes a broker resource's dynamic configs: `changes` works them out from the current ones
/// with the broker checker; `authorized` is asked once they pass (the principal's
/// ALTER_CONFIGS on the cluster).
async fn alter_broker_resource(
    node: &dyn AdminNode,
    name: &str,
    validate_only: bool,
    changes: impl FnOnce(
        &BTreeMap<String, String>,
        &Checker<'_>,
    ) -> Result<Vec<ConfigChange>, (ErrorCode, String)>,
    authorized: impl FnOnce() -> Result<(), (ErrorCode, &'static str)>,
) -> (ErrorCode, Option<String>) {
    let current: BTreeMap<String, String> = node
        .image()
        .configs()
        .broker_configs(name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let checked = check_broker_resource(node, name)
        .and_then(|()| changes(&current, &Checker::Broker(node.config())))
        .and_then(|changes| {
            authorized()
                .map(|()| changes)
                .map_err(|(code, message)| (code, message.to_string()))
        });
    let checked = checked.and_then(|changes| {
        check_listener_stores(node, name, &current, &changes).map(|()| changes)
    });
    let checked =
        checked.and_then(|changes| check_thread_counts(node, name, &changes).map(|()| changes));
    match checked {
        Err((code, message)) => (code, Some(message)),
        // Nothing to change (only throttle removals, or the configs as they are).
        Ok(changes) if changes.is_empty() => (ErrorCode::NONE, None),
        Ok(changes) => {
            let stores = changes_listener_stores(&changes) && is_this_broker(node, name);
            let (code, message) =
                alter_configs(node, ConfigTarget::Broker(name), changes, validate_only).await;
            if code != ErrorCode::NONE || validate_only || !stores {
                return (code, message);
            }
            // Applied here now, and the files reread when the same path is submitted again
            // (Kafka compares their modification times), before the answer: a client that
            // connects after it gets the new certificate.
            let refused = reload_now(node).await;
            match refused.first() {
                None => (code, message),
                Some((listener, reason)) => (
                    ErrorCode::INVALID_CONFIG,
                    Some(format!(
                        "Committed, but listener {listener} could not reload its stores: {reason}"
                    )),
                ),
            }
        }
    }
}

/// Whether a broker resource names this broker.
/// The thread counts Kafka's `DynamicThreadPool` resizes, and this broker's count now.
fn thread_count(config: &crate::config::BrokerConfig, key: &str) -> Option<usize> {
    match key {
        "num.recovery.threads.per.data.dir" => Some(config.num_recovery_threads_per_data_dir),
        "num.replica.fetchers" => Some(config.num_replica_fetchers),
        "log.cleaner.threads" => Some(config.cleaner.threads),
        _ => None,
    }
}

/// Why a thread count cannot change from `current` to `after`, in Kafka's words: the log
/// cleaner's (`LogCleaner.validateReconfiguration`) or the thread pools'
/// (`DynamicThreadPool`).
fn thread_count_refusal(key: &str, current: usize, after: usize) -> Option<String> {
    if key == "log.cleaner.threads" {
        return if after < 1 {
            Some("Log cleaner threads should be at least 1".to_string())
        } else if after < current / 2 {
            Some(format!(
                "Log cleaner threads cannot be reduced to less than half the current value \
                 {current}"
            ))
        } else if after > current.saturating_mul(2) {
            Some(format!(
                "Log cleaner threads cannot be increased to more than double the current value \
                 {current}"
            ))
        } else {
            None
        };
    }
    if after == current {
        return None;
    }
    let failed = format!("Dynamic thread count update validation failed for {key}={after}");
    if after < current / 2 {
        Some(format!(
            "{failed}, value should be at least half the current value {current}"
        ))
    } else if after > current.saturating_mul(2) {
        Some(format!(
            "{failed}, value should not be greater than double the current value {current}"
        ))
    } else {
        None
    }
}

/// Kafka's `DynamicThreadPool.validateReconfiguration`, made by the broker that takes the
/// request, for the cluster-wide default or its own configs: a thread count may change to at
/// most double, and at least half, the count the broker runs with now.
fn check_thread_counts(
    node: &dyn AdminNode,
    name: &str,
    changes: &[ConfigChange],
) -> Result<(), (ErrorCode, String)> {
    if !name.is_empty() && !is_this_broker(node, name) {
        return Ok(());
    }
    let effective = node.effective_config();
    let image = node.image();
    let dynamic = |resource: &str, key: &str| {
        image
            .configs()
            .broker_configs(resource)
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let own = node.config().node_id.to_string();
    for (key, value) in changes {
        let Some(current) = thread_count(&effective, key) else {
            continue;
        };
        let given = value.as_deref().and_then(|v| v.parse::<usize>().ok());
        // The count the broker would run with after the change.
        let after = if name.is_empty() {
            dynamic(&own, key).or(given)
        } else {
            given.or_else(|| dynamic("", key))
        };
        let after = after
            .or_else(|| thread_count(node.config(), key))
            .unwrap_or(current);
        let Some(reason) = thread_count_refusal(key, current, after) else {
            continue;
        };
        // Kafka's words, its ConfigException's text inside another.
        return Err((
            ErrorCode::INVALID_REQUEST,
            format!(
                "Invalid value org.apache.kafka.common.config.ConfigException: {reason} for \
                 configuration Invalid dynamic configuration"
            ),
        ));
    }
    Ok(())
}

fn is_this_broker(node: &dyn AdminNode, name: &str) -> bool {
    name.parse::<i32>()
        .is_ok_and(|id| id == node.config().node_id)
}

/// Whether `changes` touch a listener's reloadable `ssl.*` configs.
fn changes_listener_stores(changes: &[ConfigChange]) -> bool {
    changes
        .iter()
        .any(|(k, _)| crate::tls::listener_ssl_config(k).is_some())
}

/// Reloads the SSL listeners' stores from the configuration in effect, rereading files that
/// changed; the refusals, by listener.
async fn reload_now(node: &dyn AdminNode) -> Vec<(String, String)> {
    let tls = node.tls();
    let effective = node.effective_config();
    tokio::task::spawn_blocking(move || crate::server::reload_listeners(&tls, &effective, true))
        .await
        .unwrap_or_else(|e| vec![(String::new(), e.to_string())])
}

/// Kafka's checks of a listener's new SSL stores, made by the broker they are for before the
/// change is committed: not at the cluster-wide default; on this broker, the stores the
/// listener would serve after the change load, the key fits, and the certificates name the same
/// subject and alternative names (`ssl.allow.dn.changes`, `ssl.allow.san.changes`). Another
/// broker's stores are checked by that broker (the admin client sends the change to it).
fn check_listener_stores(
    node: &dyn AdminNode,
    name: &str,
    current: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> Result<(), (ErrorCode, String)> {
    let keys: Vec<&str> = changes
        .iter()
        .filter(|(k, _)| crate::tls::listener_ssl_config(k).is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    if name.is_empty() {
        return Err((
            ErrorCode::INVALID_REQUEST,
            format!(
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: {}",
                keys.join(", ")
            ),
        ));
    }
    if !is_this_broker(node, name) {
        return Ok(());
    }
    // This broker's configuration with its dynamic configs as they would be after the change.
    let mut own = current.clone();
    for (k, v) in changes {
        match v {
            Some(v) => own.insert(k.clone(), v.clone()),
            None => own.remove(k),
        };
    }
    let image = node.image();
    let mut next = node.config().clone();
    for (k, v) in image
        .configs()
        .broker_configs("")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(own)
    {
        let _ = next.set(&k, &v);
    }
    let mut listeners: Vec<&str> = keys
        .iter()
        .filter_map(|k| crate::tls::listener_ssl_config(k).map(|(l, _)| l))
        .collect();
    listeners.dedup();
    for listener in listeners {
        let Some(tls) = node.tls().get(listener) else {
            return Err((
                ErrorCode::INVALID_CONFIG,
                format!(
                    "Listener {listener} is not an SSL listener of this broker (its client \
                     listeners and, on a node that is also a controller, the controller listener)"
                ),
            ));
        };
        let settings = next
            .listener_tls_settings(listener)
            .and_then(|s| tls.validate(&s).map(|()| s));
        if let Err(e) = settings {
            return Err((
                ErrorCode::INVALID_CONFIG,
                format!("Validation of dynamic config update of SSLFactory failed: {e}"),
            ));
        }
    }
    Ok(())
}

/// A broker resource's name, as the node that took the request checks it: `""` (the
/// cluster-wide default), or on a broker's listener this broker's own id (Kafka's
/// `ConfigAdminManager.preprocess`: the admin client sends a broker's configs to that broker),
/// on a controller listener the id of any node of the cluster, a registered broker or a voter
/// (Kafka's `QuorumController`).
pub(crate) fn check_broker_resource(
    node: &dyn AdminNode,
    name: &str,
) -> Result<(), (ErrorCode, String)> {
    if name.is_empty() {
        return Ok(());
    }
    let id = name.parse::<i32>();
    match node.listener() {
        AdminListener::Broker => {
            let own = node.config().node_id;
            match id {
                Err(_) => Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Node id must be an integer, but it is: {name}"),
                )),
                Ok(id) if id != own => Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Unexpected broker id, expected {own}, but received {name}"),
                )),
                Ok(_) => Ok(()),
            }
        }
        AdminListener::Controller => {
            let Ok(id) = id else {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Invalid broker name {name}"),
                ));
            };
            let config = node.config();
            let known = id == config.node_id
                || config.cluster.voters.iter().any(|v| v.id == id)
                || node.image().cluster().broker(id).is_some();
            if known {
                Ok(())
            } else {
                Err((
                    ErrorCode::BROKER_ID_NOT_REGISTERED,
                    format!("No node with id {id} found."),
                ))
            }
        }
    }
}

async fn wait_for_configs(
    node: &dyn AdminNode,
    changes: &[(String, Option<String>)],
    current: impl Fn(&gregor_metadata::MetadataImage, &str) -> Option<String>,
) {
    let mut images = node.watch_image();
    let applied = async {
        loop {
            let done = {
                let image = images.borrow_and_update();
                changes
                    .iter()
                    .all(|(k, v)| current(&image, k).as_deref() == v.as_deref())
            };
            if done || images.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), applied).await;
}

/// Changes this broker's log levels (a BROKER_LOGGER resource), in Kafka's order
/// (`ConfigAdminManager.preprocess`, `RuntimeLoggerManager`): duplicate keys and null values
/// refused, ALTER_CONFIGS on the cluster, the resource naming this broker, then each operation
/// checked and, unless `validate_only`, applied here (never forwarded, never persisted).
fn alter_broker_logger(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    name: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    let keys: std::collections::BTreeSet<&str> = ops.iter().map(|(k, _, _)| k.as_str()).collect();
    if keys.len() != ops.len() {
        return (
            ErrorCode::INVALID_REQUEST,
            Some("Error due to duplicate config keys".to_string()),
        );
    }
    let nulls: Vec<&str> = ops
        .iter()
        .filter(|(_, op, v)| *op != OP_DELETE && v.is_none())
        .map(|(k, _, _)| k.as_str())
        .collect();
    if !nulls.is_empty() {
        return (
            ErrorCode::INVALID_REQUEST,
            Some(format!(
                "Null value not supported for : {}",
                nulls.join(", ")
            )),
        );
    }
    let checked = authorize_config_resource(
        node,
        ctx,
        AclOperation::AlterConfigs,
        RESOURCE_BROKER_LOGGER,
        name,
    )
    .map_err(|(code, message)| (code, message.to_string()))
    .and_then(|()| crate::log_levels::check_alter_name(name, node.config().node_id))
    .and_then(|()| node.log_levels().alter(ops, validate_only));
    match checked {
        Ok(()) => (ErrorCode::NONE, None),
        Err((code, message)) => (code, Some(message)),
    }
}

/// Handles an IncrementalAlterConfigs request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let mut responses = Vec::new();
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let ops: Vec<(String, i8, Option<String>)> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let (code, message) = if r.resource_type == RESOURCE_BROKER_LOGGER {
                alter_broker_logger(&*node, &ctx, &name, &ops, req.validate_only)
            } else {
                alter_resource(
                    &*node,
                    &ctx,
                    r.resource_type,
                    &name,
                    req.validate_only,
                    |current, checker| apply_ops(current, &ops, checker),
                )
                .await
            };
            responses.push(
                base.with_error_code(code.code())
                    .with_error_message(message.filter(|_| code.code() != 0).map(str_bytes)),
            );
        }
        encode(
            &ctx,
            &IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_set_delete_append_and_subtract() {
        let mut current = BTreeMap::new();
        current.insert("cleanup.policy".to_string(), "delete".to_string());
        let ops = vec![
            ("retention.ms".to_string(), OP_SET, Some("5000".to_string())),
            (
                "cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".to_string()),
            ),
            ("segment.ms".to_string(), OP_DELETE, None),
        ];
        assert_eq!(
            apply_ops(&current, &ops, &Checker::Topic).expect("valid"),
            vec![
                ("retention.ms".to_string(), Some("5000".to_string())),
                (
                    "cleanup.policy".to_string(),
                    Some("delete,compact".to_string())
                ),
                ("segment.ms".to_string(), None),
            ]
        );
        let sub = vec![(
            "cleanup.policy".to_string(),
            OP_SUBTRACT,
            Some("delete".to_string()),
        )];
        assert_eq!(
            apply_ops(&current, &sub, &Checker::Topic).expect("valid"),
            vec![("cleanup.policy".to_string(), None)]
        );
        let bad = |ops: Vec<(String, i8, Option<String>)>| {
            apply_ops(&current, &ops, &Checker::Topic)
                .expect_err("bad")
                .0
        };
        assert_eq!(
            bad(vec![("nope".into(), OP_SET, Some("1".into()))]),
            ErrorCode::INVALID_CONFIG
        );
        assert_eq!(
            bad(vec![("retention.ms".into(), OP_SET, Some("-5".into()))]),
            ErrorCode::INVALID_CONFIG
        );
        assert_eq!(
            bad(vec![("retention.ms".into(), OP_APPEND, Some("1".into()))]),
            ErrorCode::INVALID_CONFIG
        );
        assert_eq!(
            bad(vec![("retention.ms".into(), OP_SET, None)]),
            ErrorCode::INVALID_REQUEST
        );
        assert_eq!(
            bad(vec![("retention.ms".into(), 9, None)]),
            ErrorCode::INVALID_REQUEST
        );
    }

    /// Removing a topic config key gregor does not know is a no-op, as in Kafka (MirrorMaker 2
    /// syncing from a Confluent cluster removes `confluent.placement.constraints`);
    /// setting one stays refused, and the known keys of the same request still apply.
    #[test]
    fn deleting_an_unknown_topic_key_changes_nothing() {
        let ops = vec![
            (
                "confluent.placement.constraints".to_string(),
                OP_DELETE,
                None,
            ),
            (
                "retention.ms".to_string(),
                OP_SET,
                Some("7200000".to_string()),
            ),
        ];
        assert_eq!(
            apply_ops(&BTreeMap::new(), &ops, &Checker::Topic).expect("valid"),
            vec![("retention.ms".to_string(), Some("7200000".to_string()))]
        );
        let set = vec![(
            "confluent.placement.constraints".to_string(),
            OP_SET,
            Some("true".to_string()),
        )];
        assert_eq!(
            apply_ops(&BTreeMap::new(), &set, &Checker::Topic)
                .expect_err("unknown")
                .0,
            ErrorCode::INVALID_CONFIG
        );
    }

    #[test]
    fn broker_operations_take_dynamic_keys_checked_as_the_broker_parses_them() {
        let config = crate::config::BrokerConfig::default();
        let checker = Checker::Broker(&config);
        let current = BTreeMap::new();
        let ops = vec![
            (
                "log.retention.ms".to_string(),
                OP_SET,
                Some("60000".to_string()),
            ),
            (
                "log.cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".to_string()),
            ),
            // KIP-73's replication throttle, set and removed as any dynamic key.
            (
                "leader.replication.throttled.rate".to_string(),
                OP_SET,
                Some("1000000".to_string()),
            ),
            (
                "follower.replication.throttled.rate".to_string(),
                OP_DELETE,
                None,
            ),
        ];
        assert_eq!(
            apply_ops(&current, &ops, &checker).expect("valid"),
            vec![
                ("log.retention.ms".to_string(), Some("60000".to_string())),
                (
                    "log.cleanup.policy".to_string(),
                    Some("compact".to_string())
                ),
                (
                    "leader.replication.throttled.rate".to_string(),
                    Some("1000000".to_string())
                ),
                ("follower.replication.throttled.rate".to_string(), None),
            ]
        );
        let bad = |ops: Vec<(String, i8, Option<String>)>| {
            apply_ops(&current, &ops, &checker).expect_err("bad").0
        };
        assert_eq!(
            bad(vec![("num.partitions".into(), OP_SET, Some("3".into()))]),
            ErrorCode::INVALID_REQUEST,
            "not dynamic"
        );
        assert_eq!(
            bad(vec![(
                "log.segment.bytes".into(),
                OP_SET,
                Some("big".into())
            )]),
            ErrorCode::INVALID_REQUEST,
            "a broker value Kafka's validator refuses is INVALID_REQUEST there"
        );
        assert_eq!(
            apply_ops(
                &current,
                &[("min.insync.replicas".into(), OP_SET, Some("0".into()))],
                &checker
            )
            .expect_err("bad"),
            (
                ErrorCode::INVALID_REQUEST,
                "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
                    .to_string()
            )
        );
        // A listener's stores are dynamic with the listener prefix only, as in Kafka.
        assert_eq!(
            bad(vec![(
                "ssl.keystore.location".into(),
                OP_SET,
                Some("/x.jks".into())
            )]),
            ErrorCode::INVALID_REQUEST
        );
        assert!(apply_ops(
            &current,
            &[(
                "listener.name.ssl.ssl.keystore.location".into(),
                OP_SET,
                Some("/x.jks".into())
            )],
            &checker
        )
        .is_ok());
        assert_eq!(
            bad(vec![(
                "listener.name.ssl.ssl.client.auth".into(),
                OP_SET,
                Some("required".into())
            )]),
            ErrorCode::INVALID_REQUEST,
            "not reloadable"
        );
        // On a broker's listener: the cluster default or this broker (node 1) only.
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        assert!(check_broker_resource(&b, "").is_ok());
        assert!(check_broker_resource(&b, "1").is_ok());
        assert_eq!(
            check_broker_resource(&b, "3"),
            Err((
                ErrorCode::INVALID_REQUEST,
                "Unexpected broker id, expected 1, but received 3".to_string()
            ))
        );
        assert_eq!(
            check_broker_resource(&b, "broker-3"),
            Err((
                ErrorCode::INVALID_REQUEST,
                "Node id must be an integer, but it is: broker-3".to_string()
            ))
        );
    }

    /// With an authorizer: ALTER_CONFIGS on the topic (before whether it exists), on the
    /// cluster for broker and broker-logger resources, on the group for a group resource.
    #[tokio::test]
    async fn resources_need_alter_configs() {
        use crate::authorizer::test_support::{allow, ctx_of};
        use crate::request::decode_reply;
        use gregor_metadata::ResourceType;
        use gregor_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use gregor_protocol::protocol::StrBytes;

        use crate::handlers::describe_configs::{RESOURCE_BROKER_LOGGER, RESOURCE_GROUP};

        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        b.replicas
            .create_topic("t", 1, 1, BTreeMap::new())
            .expect("create");
        let resource = |resource_type: i8, name: &'static str, key: &'static str| {
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_static_str(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_static_str("60000")))])
        };
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            resource(RESOURCE_TOPIC, "t", "retention.ms"),
            resource(RESOURCE_TOPIC, "missing", "retention.ms"),
            resource(RESOURCE_BROKER, "1", "log.retention.ms"),
            resource(RESOURCE_BROKER_LOGGER, "1", "kafka.server"),
            resource(RESOURCE_GROUP, "g", "consumer.session.timeout.ms"),
        ]);
        let alter = |req: IncrementalAlterConfigsRequest| {
            let b = Arc::clone(&b);
            async move {
                let reply = handle(&b, ctx_of("alice", KEY, 1), req);
                let resp: IncrementalAlterConfigsResponse = decode_reply(reply, 1).await;
                resp.responses
                    .iter()
                    .map(|r| r.error_code)
                    .collect::<Vec<_>>()
            }
        };
        let topic_denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let cluster_denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        assert_eq!(
            alter(req.clone()).await,
            vec![
                topic_denied,
                topic_denied,
                cluster_denied,
                cluster_denied,
                ErrorCode::GROUP_AUTHORIZATION_FAILED.code()
            ]
        );
        for (rt, name) in [
            (ResourceType::Topic, "t"),
            (ResourceType::Cluster, gregor_metadata::CLUSTER_NAME),
            (ResourceType::Group, "g"),
        ] {
            allow(&b, "User:alice", AclOperation::AlterConfigs, rt, name);
        }
        // Allowed, the changes go to the controller, which unit tests do not have for topic and
        // broker configs (the group's it decides); this broker has no logger `kafka.server`.
        let asked = ErrorCode(gregor_metadata::code::NOT_CONTROLLER).code();
        assert_eq!(
            alter(req).await,
            vec![
                asked,
                topic_denied,
                asked,
                ErrorCode::INVALID_CONFIG.code(),
                0
            ]
        );
    }
}
