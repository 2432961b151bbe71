//! Group configs (Kafka's `ConfigResource.Type.GROUP`, KIP-848 and KIP-932): a group's own
//! settings over the broker's `group.*` defaults.
//!
//! ```text
//! kafka-configs --entity-type groups --alter ─► IncrementalAlterConfigs / AlterConfigs (GROUP)
//!    ─► check_key / check_value (Kafka's GroupConfig.CONFIG_DEF: names, types, validators)
//!    ─► validate (GroupConfig.validateValues: the broker's group.* min/max bounds, session
//!       timeout above heartbeat interval, ...) on the group's whole set after the change
//!    ─► the controller (ConfigRecord, resource type 32) ─► every broker's image
//! share group coordinator / share-partitions ─► share_settings(broker, group): the image's
//!    group configs over the broker's group.share.* keys, clamped into the broker's bounds
//! ConsumerGroupHeartbeat ─► consumer_overrides_of(the group's configs) ─► the consumer group
//!    core's set_group_overrides: consumer.session.timeout.ms / consumer.heartbeat.interval.ms
//!    over group.consumer.*, read at every heartbeat
//! DescribeConfigs (GROUP) ─► describe: every key, GROUP_CONFIG when set, else the broker's
//!    value with its synonyms (as Kafka's ConfigHelper.createGroupConfigEntry)
//! ```
//!
//! [`GroupBrokerConfig`] holds the broker keys (`group.share.*` and the `group.consumer.*`
//! bounds) that [`crate::config::BrokerConfig`] reads. The `streams.*` and `*.assignment.*`
//! group keys are accepted and described with Kafka's broker defaults and bounds as constants;
//! a streams group takes its `streams.session.timeout.ms`, `streams.heartbeat.interval.ms`,
//! `streams.num.standby.replicas` and `streams.initial.rebalance.delay.ms` over the broker's
//! `group.streams.*` values ([`streams_overrides_of`]). A group's configs outlive the group:
//! Kafka 4.4's DeleteGroups leaves them, and so does
//! gregor's.

use std::collections::BTreeMap;

use gregor_share::{AutoOffsetReset, ShareGroupSettings};

use crate::admin_node::AdminNode;
use crate::broker::Broker;
use crate::broker_configs::{
    config_type, describe as describe_broker_key, DescribedKey, Layers, BROKER_KEYS, SOURCE_DEFAULT,
};
use crate::config::{BrokerConfig, ConfigError};

/// Kafka's `ConfigSource.GROUP_CONFIG` (`DYNAMIC_GROUP_CONFIG` in the admin client).
pub const SOURCE_GROUP: i8 = 8;

/// The broker keys group configs default to and are bounded by: Kafka's `ShareGroupConfig`
/// (`group.share.record.lock.*`, `group.share.delivery.count.limit`, ...) and the share and
/// consumer parts of `GroupCoordinatorConfig`, with Kafka 4.4's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBrokerConfig {
    /// `group.consumer.min.session.timeout.ms` (45000).
    pub consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms` (60000).
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms` (5000).
    pub consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms` (15000).
    pub consumer_max_heartbeat_interval_ms: i32,
    /// `group.share.session.timeout.ms` (45000).
    pub share_session_timeout_ms: i32,
    /// `group.share.min.session.timeout.ms` (45000).
    pub share_min_session_timeout_ms: i32,
    /// `group.share.max.session.timeout.ms` (60000).
    pub share_max_session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms` (5000).
    pub share_heartbeat_interval_ms: i32,
    /// `group.share.min.heartbeat.interval.ms` (5000).
    pub share_min_heartbeat_interval_ms: i32,
    /// `group.share.max.heartbeat.interval.ms` (15000).
    pub share_max_heartbeat_interval_ms: i32,
    /// `group.share.record.lock.duration.ms` (30000): how long a delivered record stays
    /// acquired before it is available again.
    pub share_record_lock_duration_ms: i32,
    /// `group.share.min.record.lock.duration.ms` (15000).
    pub share_min_record_lock_duration_ms: i32,
    /// `group.share.max.record.lock.duration.ms` (60000).
    pub share_max_record_lock_duration_ms: i32,
    /// `group.share.delivery.count.limit` (5).
    pub share_delivery_count_limit: i32,
    /// `group.share.min.delivery.count.limit` (2).
    pub share_min_delivery_count_limit: i32,
    /// `group.share.max.delivery.count.limit` (10).
    pub share_max_delivery_count_limit: i32,
    /// `group.share.partition.max.record.locks` (2000): records in flight per share-partition.
    pub share_partition_max_record_locks: i32,
    /// `group.share.min.partition.max.record.locks` (100).
    pub share_min_partition_max_record_locks: i32,
    /// `group.share.max.partition.max.record.locks` (4000).
    pub share_max_partition_max_record_locks: i32,
    /// `group.share.max.size` (200): members per share group.
    pub share_max_size: i32,
    /// `group.share.max.share.sessions` (2000): share sessions a broker keeps.
    pub share_max_share_sessions: i32,
}

impl Default for GroupBrokerConfig {
    fn default() -> Self {
        GroupBrokerConfig {
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_min_heartbeat_interval_ms: 5_000,
            consumer_max_heartbeat_interval_ms: 15_000,
            share_session_timeout_ms: 45_000,
            share_min_session_timeout_ms: 45_000,
            share_max_session_timeout_ms: 60_000,
            share_heartbeat_interval_ms: 5_000,
            share_min_heartbeat_interval_ms: 5_000,
            share_max_heartbeat_interval_ms: 15_000,
            share_record_lock_duration_ms: 30_000,
            share_min_record_lock_duration_ms: 15_000,
            share_max_record_lock_duration_ms: 60_000,
            share_delivery_count_limit: 5,
            share_min_delivery_count_limit: 2,
            share_max_delivery_count_limit: 10,
            share_partition_max_record_locks: 2_000,
            share_min_partition_max_record_locks: 100,
            share_max_partition_max_record_locks: 4_000,
            share_max_size: 200,
            share_max_share_sessions: 2_000,
        }
    }
}

/// The broker keys [`GroupBrokerConfig`] reads, each with Kafka's range (inclusive;
/// `i32::MAX` where Kafka has no upper bound).
pub const BROKER_KEY_RANGES: &[(&str, i32, i32)] = &[
    ("group.consumer.max.heartbeat.interval.ms", 1, i32::MAX),
    ("group.consumer.max.session.timeout.ms", 1, i32::MAX),
    ("group.consumer.min.heartbeat.interval.ms", 1, i32::MAX),
    ("group.consumer.min.session.timeout.ms", 1, i32::MAX),
    ("group.share.delivery.count.limit", 2, 10),
    ("group.share.heartbeat.interval.ms", 1, i32::MAX),
    ("group.share.max.delivery.count.limit", 5, 25),
    ("group.share.max.heartbeat.interval.ms", 1, i32::MAX),
    ("group.share.max.partition.max.record.locks", 2_000, 10_000),
    ("group.share.max.record.lock.duration.ms", 30_000, 3_600_000),
    ("group.share.max.session.timeout.ms", 1, i32::MAX),
    ("group.share.max.share.sessions", 1, i32::MAX),
    ("group.share.max.size", 1, 1_000),
    ("group.share.min.delivery.count.limit", 2, 5),
    ("group.share.min.heartbeat.interval.ms", 1, i32::MAX),
    ("group.share.min.partition.max.record.locks", 100, 2_000),
    ("group.share.min.record.lock.duration.ms", 1_000, 30_000),
    ("group.share.min.session.timeout.ms", 1, i32::MAX),
    ("group.share.partition.max.record.locks", 100, 10_000),
    ("group.share.record.lock.duration.ms", 1_000, 3_600_000),
    ("group.share.session.timeout.ms", 1, i32::MAX),
];

impl GroupBrokerConfig {
    fn field(&mut self, key: &str) -> Option<&mut i32> {
        Some(match key {
            "group.consumer.max.heartbeat.interval.ms" => {
                &mut self.consumer_max_heartbeat_interval_ms
            }
            "group.consumer.max.session.timeout.ms" => &mut self.consumer_max_session_timeout_ms,
            "group.consumer.min.heartbeat.interval.ms" => {
                &mut self.consumer_min_heartbeat_interval_ms
            }
            "group.consumer.min.session.timeout.ms" => &mut self.consumer_min_session_timeout_ms,
            "group.share.delivery.count.limit" => &mut self.share_delivery_count_limit,
            "group.share.heartbeat.interval.ms" => &mut self.share_heartbeat_interval_ms,
            "group.share.max.delivery.count.limit" => &mut self.share_max_delivery_count_limit,
            "group.share.max.heartbeat.interval.ms" => &mut self.share_max_heartbeat_interval_ms,
            "group.share.max.partition.max.record.locks" => {
                &mut self.share_max_partition_max_record_locks
            }
            "group.share.max.record.lock.duration.ms" => {
                &mut self.share_max_record_lock_duration_ms
            }
            "group.share.max.session.timeout.ms" => &mut self.share_max_session_timeout_ms,
            "group.share.max.share.sessions" => &mut self.share_max_share_sessions,
            "group.share.max.size" => &mut self.share_max_size,
            "group.share.min.delivery.count.limit" => &mut self.share_min_delivery_count_limit,
            "group.share.min.heartbeat.interval.ms" => &mut self.share_min_heartbeat_interval_ms,
            "group.share.min.partition.max.record.locks" => {
                &mut self.share_min_partition_max_record_locks
            }
            "group.share.min.record.lock.duration.ms" => {
                &mut self.share_min_record_lock_duration_ms
            }
            "group.share.min.session.timeout.ms" => &mut self.share_min_session_timeout_ms,
            "group.share.partition.max.record.locks" => &mut self.share_partition_max_record_locks,
            "group.share.record.lock.duration.ms" => &mut self.share_record_lock_duration_ms,
            "group.share.session.timeout.ms" => &mut self.share_session_timeout_ms,
            _ => return None,
        })
    }

    /// Applies one broker key; `Ok(false)` when `key` is not one of [`BROKER_KEY_RANGES`].
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let Some(&(_, min, max)) = BROKER_KEY_RANGES.iter().find(|(k, _, _)| *k == key) else {
            return Ok(false);
        };
        let invalid = |reason: String| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let n: i32 = value
            .trim()
            .parse()
            .map_err(|_| invalid("expected a number".to_string()))?;
        if n < min || n > max {
            return Err(invalid(if max == i32::MAX {
                format!("must be at least {min}")
            } else {
                format!("must be in [{min}, {max}]")
            }));
        }
        if let Some(field) = self.field(key) {
            *field = n;
        }
        Ok(true)
    }

    /// Kafka's cross-checks of these keys (`ShareGroupConfig`, `GroupCoordinatorConfig`): each
    /// default within its min and max, and the session timeouts above the heartbeat intervals.
    pub fn check(&self) -> Result<(), ConfigError> {
        let within = |key: &str, value: i32, min: (&str, i32), max: (&str, i32)| {
            let fail = |reason: String| ConfigError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                reason,
            };
            if value < min.1 {
                return Err(fail(format!(
                    "{key} must be greater than or equal to {}",
                    min.0
                )));
            }
            if value > max.1 {
                return Err(fail(format!(
                    "{key} must be less than or equal to {}",
                    max.0
                )));
            }
            Ok(())
        };
        within(
            "group.share.record.lock.duration.ms",
            self.share_record_lock_duration_ms,
            (
                "group.share.min.record.lock.duration.ms",
                self.share_min_record_lock_duration_ms,
            ),
            (
                "group.share.max.record.lock.duration.ms",
                self.share_max_record_lock_duration_ms,
            ),
        )?;
        within(
            "group.share.delivery.count.limit",
            self.share_delivery_count_limit,
            (
                "group.share.min.delivery.count.limit",
                self.share_min_delivery_count_limit,
            ),
            (
                "group.share.max.delivery.count.limit",
                self.share_max_delivery_count_limit,
            ),
        )?;
        within(
            "group.share.partition.max.record.locks",
            self.share_partition_max_record_locks,
            (
                "group.share.min.partition.max.record.locks",
                self.share_min_partition_max_record_locks,
            ),
            (
                "group.share.max.partition.max.record.locks",
                self.share_max_partition_max_record_locks,
            ),
        )?;
        within(
            "group.share.session.timeout.ms",
            self.share_session_timeout_ms,
            (
                "group.share.min.session.timeout.ms",
                self.share_min_session_timeout_ms,
            ),
            (
                "group.share.max.session.timeout.ms",
                self.share_max_session_timeout_ms,
            ),
        )?;
        within(
            "group.share.heartbeat.interval.ms",
            self.share_heartbeat_interval_ms,
            (
                "group.share.min.heartbeat.interval.ms",
                self.share_min_heartbeat_interval_ms,
            ),
            (
                "group.share.max.heartbeat.interval.ms",
                self.share_max_heartbeat_interval_ms,
            ),
        )?;
        if self.share_heartbeat_interval_ms >= self.share_session_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "group.share.heartbeat.interval.ms".to_string(),
                value: self.share_heartbeat_interval_ms.to_string(),
                reason: "group.share.heartbeat.interval.ms must be less than \
                         group.share.session.timeout.ms"
                    .to_string(),
            });
        }
        Ok(())
    }
}

/// How a group key's value is typed and checked (Kafka's `ConfigDef` type and validator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// INT, at least this much.
    Int(i32),
    /// LONG, at least this much.
    Long(i64),
    Bool,
    /// STRING, any value.
    Str,
    /// STRING, one of these.
    OneOf(&'static [&'static str]),
    /// `share.auto.offset.reset`.
    AutoOffsetReset,
    /// LIST (comma-separated).
    List,
}

/// One of Kafka 4.4's group config keys.
#[derive(Debug, Clone, Copy)]
pub struct GroupKey {
    pub name: &'static str,
    kind: Kind,
    /// The broker key a group without this config takes its value from (Kafka's
    /// `GroupConfig.brokerSynonym`).
    pub broker_synonym: Option<&'static str>,
    /// Kafka's default, used when gregor's broker has no key of that name.
    pub default: &'static str,
    /// Kafka's internal keys: accepted, described only when set.
    pub internal: bool,
    pub documentation: &'static str,
}

const fn group_key(
    name: &'static str,
    kind: Kind,
    broker_synonym: Option<&'static str>,
    default: &'static str,
    internal: bool,
    documentation: &'static str,
) -> GroupKey {
    GroupKey {
        name,
        kind,
        broker_synonym,
        default,
        internal,
        documentation,
    }
}

/// The streams group assignors Kafka 4.4 registers by default (`group.streams.assignors`).
const STREAMS_ASSIGNORS: &[&str] = &["sticky"];

/// Kafka 4.4's `GroupConfig.CONFIG_DEF`, in its order (`gregor_metadata::controller::
/// GROUP_CONFIGS` holds the same names; a test checks).
pub const GROUP_KEYS: &[GroupKey] = &[
    group_key("consumer.session.timeout.ms", Kind::Int(1), Some("group.consumer.session.timeout.ms"), "45000", false,
        "The timeout to detect client failures when using the consumer group protocol."),
    group_key("consumer.heartbeat.interval.ms", Kind::Int(1), Some("group.consumer.heartbeat.interval.ms"), "5000", false,
        "The heartbeat interval given to the members of a consumer group."),
    group_key("consumer.assignment.interval.ms", Kind::Int(0), Some("group.consumer.assignment.interval.ms"), "1000", false,
        "The interval between assignment updates for a consumer group."),
    group_key("consumer.assignor.offload.enable", Kind::Bool, Some("group.consumer.assignor.offload.enable"), "true", true,
        "Whether to offload consumer group assignment to a group coordinator background thread."),
    group_key("share.session.timeout.ms", Kind::Int(1), Some("group.share.session.timeout.ms"), "45000", false,
        "The timeout to detect client failures when using the share group protocol."),
    group_key("share.heartbeat.interval.ms", Kind::Int(1), Some("group.share.heartbeat.interval.ms"), "5000", false,
        "The heartbeat interval given to the members of a share group."),
    group_key("share.record.lock.duration.ms", Kind::Int(1000), Some("group.share.record.lock.duration.ms"), "30000", false,
        "The record acquisition lock duration in milliseconds for share groups."),
    group_key("share.delivery.count.limit", Kind::Int(2), Some("group.share.delivery.count.limit"), "5", false,
        "The maximum number of delivery attempts for a record delivered to a share group."),
    group_key("share.partition.max.record.locks", Kind::Int(100), Some("group.share.partition.max.record.locks"), "2000", false,
        "Share-group record lock limit per share-partition."),
    group_key("share.auto.offset.reset", Kind::AutoOffsetReset, None, "latest", false,
        "The strategy to initialize the share-partition start offset: earliest, latest, or by_duration:<ISO-8601 duration> (PnDTnHnMn.nS, not negative) from the current time."),
    group_key("share.isolation.level", Kind::OneOf(&["read_committed", "read_uncommitted"]), None, "read_uncommitted", false,
        "Controls how to read records written transactionally: read_committed delivers only committed transactional records, read_uncommitted every record."),
    group_key("share.renew.acknowledge.enable", Kind::Bool, None, "true", false,
        "Whether the renew acknowledge type is enabled for the share group."),
    group_key("share.assignment.interval.ms", Kind::Int(0), Some("group.share.assignment.interval.ms"), "1000", false,
        "The interval between assignment updates for a share group."),
    group_key("share.assignor.offload.enable", Kind::Bool, Some("group.share.assignor.offload.enable"), "true", true,
        "Whether to offload share group assignment to a group coordinator background thread."),
    group_key("streams.session.timeout.ms", Kind::Int(1), Some("group.streams.session.timeout.ms"), "45000", false,
        "The timeout to detect client failures when using the streams group protocol."),
    group_key("streams.heartbeat.interval.ms", Kind::Int(1), Some("group.streams.heartbeat.interval.ms"), "5000", false,
        "The heartbeat interval given to the members."),
    group_key("streams.num.standby.replicas", Kind::Int(0), Some("group.streams.num.standby.replicas"), "0", false,
        "The number of standby replicas for each task."),
    group_key("streams.initial.rebalance.delay.ms", Kind::Int(0), Some("group.streams.initial.rebalance.delay.ms"), "3000", false,
        "The amount of time the group coordinator will wait for more streams clients to join a new group before performing the first rebalance."),
    group_key("streams.assignment.interval.ms", Kind::Int(0), Some("group.streams.assignment.interval.ms"), "1000", false,
        "The interval between assignment updates for a streams group."),
    group_key("streams.rack.aware.assignment.tags", Kind::List, Some("group.streams.rack.aware.assignment.tags"), "", false,
        "List of client tag keys used to distribute standby replicas across Kafka Streams instances."),
    group_key("streams.assignor.offload.enable", Kind::Bool, Some("group.streams.assignor.offload.enable"), "true", true,
        "Whether to offload streams group assignment to a group coordinator background thread."),
    group_key("streams.task.offset.interval.ms", Kind::Int(1), Some("group.streams.task.offset.interval.ms"), "60000", true,
        "The interval in which the warmup task changelog offsets on a client are updated on the broker."),
    group_key("streams.num.warmup.replicas", Kind::Int(0), Some("group.streams.num.warmup.replicas"), "2", true,
        "The maximum number of warmup task replicas."),
    group_key("streams.acceptable.recovery.lag", Kind::Long(0), Some("group.streams.acceptable.recovery.lag"), "10000", true,
        "The maximum acceptable lag (number of offsets to catch up) for a client to be considered caught-up enough to receive an active task assignment."),
    group_key("streams.assignor.name", Kind::Str, Some("group.streams.assignors"), "sticky", false,
        "The task assignor to use for this streams group, by short name from the broker's group.streams.assignors."),
    group_key("errors.deadletterqueue.topic.name", Kind::Str, None, "", false,
        "The name of the topic to be used as the dead-letter queue (DLQ) topic for this share group. If blank (the default), the group does not have a DLQ topic."),
    group_key("errors.deadletterqueue.copy.record.enable", Kind::Bool, None, "false", false,
        "When writing onto the dead-letter queue topic, whether to copy the original record onto the DLQ topic, or just write a record containing the context information headers."),
];

/// The group key named `name`.
pub fn group_key_named(name: &str) -> Option<&'static GroupKey> {
    GROUP_KEYS.iter().find(|k| k.name == name)
}

/// Kafka's `GroupConfig.validateNames`: the message for a key that is not a group config.
pub fn check_key(name: &str) -> Result<(), String> {
    match group_key_named(name) {
        Some(_) => Ok(()),
        None => Err(format!("Unknown group config name: {name}")),
    }
}

/// Kafka's `ConfigDef.parse` of one group config: its type and validator, with Kafka's
/// message (`Invalid value V for configuration K: ...`).
pub fn check_value(name: &str, value: &str) -> Result<(), String> {
    let key = group_key_named(name).ok_or_else(|| format!("Unknown group config name: {name}"))?;
    let fail = |m: String| format!("Invalid value {value} for configuration {name}: {m}");
    let v = value.trim();
    match key.kind {
        Kind::Int(min) => {
            let n: i32 = v
                .parse()
                .map_err(|_| fail("Not a number of type INT".into()))?;
            if n < min {
                return Err(fail(format!("Value must be at least {min}")));
            }
        }
        Kind::Long(min) => {
            let n: i64 = v
                .parse()
                .map_err(|_| fail("Not a number of type LONG".into()))?;
            if n < min {
                return Err(fail(format!("Value must be at least {min}")));
            }
        }
        Kind::Bool => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(fail("Expected value to be either true or false".into()));
            }
        }
        Kind::OneOf(allowed) => {
            if !allowed.contains(&v) {
                return Err(fail(format!(
                    "String must be one of: {}",
                    allowed.join(", ")
                )));
            }
        }
        Kind::AutoOffsetReset => {
            if parse_auto_offset_reset(v).is_none() {
                return Err(fail(format!(
                    "Invalid value `{v}` for configuration {name}. The value must be either \
                     'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
                )));
            }
        }
        Kind::Str | Kind::List => {}
    }
    Ok(())
}

/// A numeric group config of a valid set (0 when it does not parse, which
/// [`check_value`] refuses first).
fn number(configs: &BTreeMap<String, String>, name: &str) -> Option<i64> {
    configs
        .get(name)
        .map(|v| v.trim().parse::<i64>().unwrap_or(0))
}

/// The broker bounds of the numeric group keys: (min, max), inclusive.
fn bounds(c: &BrokerConfig, name: &str) -> Option<(i64, i64)> {
    let g = &c.group_configs;
    let b = |min: i32, max: i32| Some((i64::from(min), i64::from(max)));
    match name {
        "consumer.heartbeat.interval.ms" => b(
            g.consumer_min_heartbeat_interval_ms,
            g.consumer_max_heartbeat_interval_ms,
        ),
        "consumer.session.timeout.ms" => b(
            g.consumer_min_session_timeout_ms,
            g.consumer_max_session_timeout_ms,
        ),
        "share.heartbeat.interval.ms" => b(
            g.share_min_heartbeat_interval_ms,
            g.share_max_heartbeat_interval_ms,
        ),
        "share.session.timeout.ms" => b(
            g.share_min_session_timeout_ms,
            g.share_max_session_timeout_ms,
        ),
        "share.record.lock.duration.ms" => b(
            g.share_min_record_lock_duration_ms,
            g.share_max_record_lock_duration_ms,
        ),
        "share.delivery.count.limit" => b(
            g.share_min_delivery_count_limit,
            g.share_max_delivery_count_limit,
        ),
        "share.partition.max.record.locks" => b(
            g.share_min_partition_max_record_locks,
            g.share_max_partition_max_record_locks,
        ),
        // Kafka's broker defaults of keys gregor's broker does not read.
        "consumer.assignment.interval.ms"
        | "share.assignment.interval.ms"
        | "streams.assignment.interval.ms" => b(0, 15_000),
        "streams.heartbeat.interval.ms" => b(5_000, 15_000),
        "streams.session.timeout.ms" => b(45_000, 60_000),
        "streams.num.standby.replicas" => b(i32::MIN, 2),
        "streams.num.warmup.replicas" => b(i32::MIN, 20),
        "streams.task.offset.interval.ms" => b(15_000, i32::MAX),
        _ => None,
    }
}

/// Kafka's `GroupConfig.validateValues` on a group's whole set of configs after a change
/// (each already through [`check_value`]): the broker's bounds, each session timeout above
/// its heartbeat interval (the broker's value standing in for an unset one), the streams
/// assignor and tags, the dead-letter queue's name. Kafka's messages.
pub fn validate(configs: &BTreeMap<String, String>, c: &BrokerConfig) -> Result<(), String> {
    if let Some(tags) = configs.get("streams.rack.aware.assignment.tags") {
        let list: Vec<&str> = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let mut unique = list.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != list.len() {
            return Err(
                "streams.rack.aware.assignment.tags must not contain duplicate tag keys.".into(),
            );
        }
    }
    for key in GROUP_KEYS {
        let (Some(value), Some((min, max))) = (number(configs, key.name), bounds(c, key.name))
        else {
            continue;
        };
        let name = key.name;
        if min == i64::from(i32::MIN) && value > max {
            return Err(format!("{name} must be less than or equal to {max}"));
        }
        if max == i64::from(i32::MAX) && value < min {
            return Err(format!("{name} must be greater than or equal to {min}"));
        }
        if (value < min || value > max) && min != i64::from(i32::MIN) && max != i64::from(i32::MAX)
        {
            return Err(format!(
                "{name} must be in the range {min} to {max} inclusive."
            ));
        }
    }
    if let Some(assignor) = configs.get("streams.assignor.name") {
        if !STREAMS_ASSIGNORS.contains(&assignor.trim()) {
            return Err(format!(
                "streams.assignor.name '{}' is not a registered task assignor. Registered \
                 assignors are: [{}].",
                assignor.trim(),
                STREAMS_ASSIGNORS.join(", ")
            ));
        }
    }
    let g = &c.group_configs;
    for (session, session_default, heartbeat, heartbeat_default) in [
        (
            "consumer.session.timeout.ms",
            c.consumer_group.session_timeout_ms,
            "consumer.heartbeat.interval.ms",
            c.consumer_group.heartbeat_interval_ms,
        ),
        (
            "share.session.timeout.ms",
            g.share_session_timeout_ms,
            "share.heartbeat.interval.ms",
            g.share_heartbeat_interval_ms,
        ),
        (
            "streams.session.timeout.ms",
            45_000,
            "streams.heartbeat.interval.ms",
            5_000,
        ),
    ] {
        if !configs.contains_key(session) && !configs.contains_key(heartbeat) {
            continue;
        }
        let s = number(configs, session).unwrap_or(i64::from(session_default));
        let h = number(configs, heartbeat).unwrap_or(i64::from(heartbeat_default));
        if s <= h {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    if let Some(topic) = configs.get("errors.deadletterqueue.topic.name") {
        if topic.trim().starts_with("__") {
            return Err(
                "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'".into(),
            );
        }
    }
    Ok(())
}

/// `share.auto.offset.reset` as Kafka's `ShareGroupAutoOffsetResetStrategy.fromString` reads
/// it: `earliest`, `latest`, or `by_duration:` and a Java ISO-8601 duration that is not
/// negative (case matters for the strategy, not for the duration).
pub fn parse_auto_offset_reset(value: &str) -> Option<AutoOffsetReset> {
    match value {
        "earliest" => Some(AutoOffsetReset::Earliest),
        "latest" => Some(AutoOffsetReset::Latest),
        _ => {
            let duration = value.strip_prefix("by_duration:")?;
            let nanos = parse_java_duration(duration)?;
            if nanos < 0 {
                return None;
            }
            i64::try_from(nanos / 1_000_000)
                .ok()
                .map(AutoOffsetReset::ByDurationMs)
        }
    }
}

/// Java's `Duration.parse`: `[-+]P[nD][T[nH][nM][n[.fraction]S]]`, letters in either case,
/// each number with its own optional sign, at least one part, and after `T` at least one.
/// The duration in nanoseconds.
pub fn parse_java_duration(text: &str) -> Option<i128> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // A signed integer at the start of `s`, and what follows it.
    fn number(s: &str) -> Option<(i128, &str)> {
        let digits_at = usize::from(s.starts_with(['-', '+']));
        let end = s[digits_at..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(s.len(), |i| i + digits_at);
        if end == digits_at || end - digits_at > 19 {
            return None;
        }
        Some((s[..end].parse().ok()?, &s[end..]))
    }
    let mut total: i128 = 0;
    let mut parts = 0;
    if !date.is_empty() {
        let (days, after) = number(date)?;
        if !after.eq_ignore_ascii_case("D") {
            return None;
        }
        total += days * 86_400 * 1_000_000_000;
        parts += 1;
    }
    if let Some(mut time) = time {
        if time.is_empty() {
            return None;
        }
        for (unit, nanos) in [('H', 3_600_000_000_000i128), ('M', 60_000_000_000)] {
            if let Some((n, after)) = number(time) {
                if after.starts_with([unit, unit.to_ascii_lowercase()]) {
                    total += n * nanos;
                    time = &after[1..];
                    parts += 1;
                }
            }
        }
        if !time.is_empty() {
            let (seconds, after) = number(time)?;
            let negative_seconds = time.starts_with('-');
            let (fraction, after) = match after.strip_prefix(['.', ',']) {
                Some(f) => {
                    let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                    if end > 9 {
                        return None;
                    }
                    let digits = &f[..end];
                    let scaled: i128 = if digits.is_empty() {
                        0
                    } else {
                        digits.parse::<i128>().ok()? * 10i128.pow(9 - end as u32)
                    };
                    (scaled, &f[end..])
                }
                None => (0, after),
            };
            if !after.eq_ignore_ascii_case("S") {
                return None;
            }
            let fraction = if negative_seconds {
                -fraction
            } else {
                fraction
            };
            total += seconds * 1_000_000_000 + fraction;
            parts += 1;
        }
    }
    if parts == 0 {
        return None;
    }
    // Java's Duration holds seconds in a long.
    let seconds = total / 1_000_000_000;
    if seconds > i128::from(i64::MAX) || seconds < i128::from(i64::MIN) {
        return None;
    }
    Some(if negative { -total } else { total })
}

/// A group config of the set as an integer, clamped into the broker's bounds (Kafka's
/// `GroupConfig.evaluate`: a value the bounds no longer allow is capped); `default` when unset
/// or not a number.
fn clamped(configs: &BTreeMap<String, String>, c: &BrokerConfig, name: &str, default: i32) -> i64 {
    let value = configs
        .get(name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(i64::from(default));
    match bounds(c, name) {
        Some((min, max)) => value.clamp(min, max),
        None => value,
    }
}

/// The effective share group settings of a group whose configs are `configs`, over the
/// broker's `group.share.*` keys.
pub fn share_settings_of(
    configs: &BTreeMap<String, String>,
    c: &BrokerConfig,
) -> ShareGroupSettings {
    let g = &c.group_configs;
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    ShareGroupSettings {
        auto_offset_reset: configs
            .get("share.auto.offset.reset")
            .and_then(|v| parse_auto_offset_reset(v.trim()))
            .unwrap_or(AutoOffsetReset::Latest),
        read_committed: configs
            .get("share.isolation.level")
            .is_some_and(|v| v.trim() == "read_committed"),
        record_lock_duration_ms: unsigned(clamped(
            configs,
            c,
            "share.record.lock.duration.ms",
            g.share_record_lock_duration_ms,
        )),
        session_timeout_ms: unsigned(clamped(
            configs,
            c,
            "share.session.timeout.ms",
            g.share_session_timeout_ms,
        )),
        heartbeat_interval_ms: unsigned(clamped(
            configs,
            c,
            "share.heartbeat.interval.ms",
            g.share_heartbeat_interval_ms,
        )),
        delivery_count_limit: i16::try_from(clamped(
            configs,
            c,
            "share.delivery.count.limit",
            g.share_delivery_count_limit,
        ))
        .unwrap_or(i16::MAX),
        partition_max_record_locks: usize::try_from(clamped(
            configs,
            c,
            "share.partition.max.record.locks",
            g.share_partition_max_record_locks,
        ))
        .unwrap_or(0),
        max_size: usize::try_from(g.share_max_size).unwrap_or(0),
    }
}

/// The configs of group `group` in the image this node applied.
pub fn group_configs(node: &dyn AdminNode, group: &str) -> BTreeMap<String, String> {
    node.image()
        .configs()
        .group_configs(group)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A consumer group's own session timeout and heartbeat interval (its
/// `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` group configs; `None`
/// where unset), which the consumer group core puts over the broker's
/// `group.consumer.*` values (Kafka's `GroupConfigManager` lookups in `GroupMetadataManager`).
pub fn consumer_overrides_of(
    configs: &BTreeMap<String, String>,
) -> gregor_group::consumer_group::ConsumerGroupOverrides {
    let int = |name: &str| configs.get(name).and_then(|v| v.trim().parse::<i32>().ok());
    gregor_group::consumer_group::ConsumerGroupOverrides {
        session_timeout_ms: int("consumer.session.timeout.ms"),
        heartbeat_interval_ms: int("consumer.heartbeat.interval.ms"),
    }
}

/// A streams group's own settings (its `streams.*` group configs; `None` where unset), which
/// the streams group core puts over the broker's `group.streams.*` values.
pub fn streams_overrides_of(
    configs: &BTreeMap<String, String>,
) -> gregor_group::streams_group::StreamsGroupOverrides {
    let int = |name: &str| configs.get(name).and_then(|v| v.trim().parse::<i32>().ok());
    gregor_group::streams_group::StreamsGroupOverrides {
        session_timeout_ms: int("streams.session.timeout.ms"),
        heartbeat_interval_ms: int("streams.heartbeat.interval.ms"),
        num_standby_replicas: int("streams.num.standby.replicas"),
        initial_rebalance_delay_ms: int("streams.initial.rebalance.delay.ms"),
    }
}

/// The settings of share group `group`: its `share.*` group configs over the broker's
/// `group.share.*` defaults.
pub fn share_settings(broker: &Broker, group: &str) -> ShareGroupSettings {
    share_settings_of(&group_configs(broker, group), &broker.config)
}

/// Every group key of a group whose configs are `overrides` (Kafka's internal keys only when
/// set), as Kafka's `ConfigHelper.createGroupConfigEntry` describes them: the group's value
/// (GROUP_CONFIG), else its broker synonym's with that key's source and synonyms (a broker
/// key gregor does not read, or a key without a synonym, at DEFAULT_CONFIG).
pub fn describe(layers: &Layers<'_>, overrides: &BTreeMap<String, String>) -> Vec<DescribedKey> {
    let mut out = Vec::new();
    for key in GROUP_KEYS {
        let own = overrides.get(key.name);
        if key.internal && own.is_none() {
            continue;
        }
        let broker_key = key
            .broker_synonym
            .and_then(|s| BROKER_KEYS.iter().find(|b| b.name == s));
        let mut synonyms: Vec<(String, Option<String>, i8)> = Vec::new();
        if let Some(v) = own {
            synonyms.push((key.name.to_string(), Some(v.clone()), SOURCE_GROUP));
        }
        let broker_value = match broker_key {
            Some(b) => {
                let d = describe_broker_key(layers, b);
                synonyms.extend(d.synonyms);
                d.value.unwrap_or_default()
            }
            None => {
                synonyms.push((
                    key.broker_synonym.unwrap_or(key.name).to_string(),
                    Some(key.default.to_string()),
                    SOURCE_DEFAULT,
                ));
                key.default.to_string()
            }
        };
        let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
        out.push(DescribedKey {
            name: key.name,
            value: own.cloned().unwrap_or(broker_value),
            source,
            config_type: match key.kind {
                Kind::Int(_) => config_type::INT,
                Kind::Long(_) => config_type::LONG,
                Kind::Bool => config_type::BOOLEAN,
                Kind::List => config_type::LIST,
                Kind::Str | Kind::OneOf(_) | Kind::AutoOffsetReset => config_type::STRING,
            },
            synonyms,
            documentation: key.documentation,
        });
    }
    out.sort_by_key(|d| d.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_keys_are_the_ones_the_controller_accepts() {
        let names: Vec<&str> = GROUP_KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names, gregor_metadata::controller::GROUP_CONFIGS);
    }

    /// Kafka 4.4's answers, asked of a real broker with `kafka-configs --entity-type groups`.
    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        assert_eq!(
            check_key("nope.key"),
            Err("Unknown group config name: nope.key".to_string())
        );
        assert!(check_key("share.auto.offset.reset").is_ok());
        for ok in [
            ("share.auto.offset.reset", "earliest"),
            ("share.auto.offset.reset", "by_duration:PT5M"),
            ("share.auto.offset.reset", " latest "),
            ("share.isolation.level", "read_committed"),
            ("share.renew.acknowledge.enable", "FALSE"),
            ("streams.rack.aware.assignment.tags", "a,b"),
            ("errors.deadletterqueue.topic.name", "dlq"),
        ] {
            assert_eq!(check_value(ok.0, ok.1), Ok(()), "{ok:?}");
        }
        let refused = |k: &str, v: &str| check_value(k, v).expect_err("refused");
        assert_eq!(
            refused("share.auto.offset.reset", "bogus"),
            "Invalid value bogus for configuration share.auto.offset.reset: Invalid value \
             `bogus` for configuration share.auto.offset.reset. The value must be either \
             'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
        );
        assert!(refused("share.auto.offset.reset", "by_duration:-PT5M").contains("by_duration"));
        assert!(check_value("share.auto.offset.reset", "EARLIEST").is_err());
        assert_eq!(
            refused("share.record.lock.duration.ms", "500"),
            "Invalid value 500 for configuration share.record.lock.duration.ms: Value must be \
             at least 1000"
        );
        assert_eq!(
            refused("share.record.lock.duration.ms", "abc"),
            "Invalid value abc for configuration share.record.lock.duration.ms: Not a number \
             of type INT"
        );
        assert_eq!(
            refused("share.isolation.level", "READ_COMMITTED"),
            "Invalid value READ_COMMITTED for configuration share.isolation.level: String must \
             be one of: read_committed, read_uncommitted"
        );
        assert_eq!(
            refused("streams.acceptable.recovery.lag", "-1"),
            "Invalid value -1 for configuration streams.acceptable.recovery.lag: Value must be \
             at least 0"
        );
        assert!(refused("consumer.assignor.offload.enable", "yes").contains("true or false"));
    }

    #[test]
    fn a_group_set_is_bounded_by_the_broker() {
        let c = BrokerConfig::default();
        let check = |pairs: &[(&str, &str)]| validate(&set(pairs), &c);
        assert_eq!(check(&[("share.auto.offset.reset", "earliest")]), Ok(()));
        assert_eq!(
            check(&[("share.record.lock.duration.ms", "70000")]),
            Err(
                "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive."
                    .into()
            )
        );
        assert_eq!(
            check(&[("consumer.session.timeout.ms", "5000")]),
            Err(
                "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.".into()
            )
        );
        assert_eq!(
            check(&[("share.delivery.count.limit", "11")]),
            Err("share.delivery.count.limit must be in the range 2 to 10 inclusive.".into())
        );
        assert_eq!(
            check(&[("streams.num.standby.replicas", "3")]),
            Err("streams.num.standby.replicas must be less than or equal to 2".into())
        );
        assert_eq!(
            check(&[("streams.task.offset.interval.ms", "1000")]),
            Err("streams.task.offset.interval.ms must be greater than or equal to 15000".into())
        );
        assert_eq!(
            check(&[("errors.deadletterqueue.topic.name", "__x")]),
            Err(
                "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'".into()
            )
        );
        assert_eq!(
            check(&[("streams.assignor.name", "foo")]),
            Err(
                "streams.assignor.name 'foo' is not a registered task assignor. Registered \
                 assignors are: [sticky]."
                    .into()
            )
        );
        assert_eq!(
            check(&[("streams.rack.aware.assignment.tags", "a,a")]),
            Err("streams.rack.aware.assignment.tags must not contain duplicate tag keys.".into())
        );
        // Within the bounds both ways, with wider broker bounds the session must still exceed
        // the heartbeat, the broker's value standing in for the unset one.
        assert_eq!(
            check(&[
                ("share.session.timeout.ms", "50000"),
                ("share.heartbeat.interval.ms", "6000")
            ]),
            Ok(())
        );
        let mut wide = BrokerConfig::default();
        wide.group_configs.share_min_session_timeout_ms = 1_000;
        wide.group_configs.share_max_heartbeat_interval_ms = 60_000;
        assert_eq!(
            validate(&set(&[("share.session.timeout.ms", "5000")]), &wide),
            Err("share.session.timeout.ms must be greater than share.heartbeat.interval.ms".into())
        );
        assert_eq!(
            validate(&set(&[("share.heartbeat.interval.ms", "50000")]), &wide),
            Err("share.session.timeout.ms must be greater than share.heartbeat.interval.ms".into())
        );
    }

    #[test]
    fn java_durations_parse_as_java_parses_them() {
        let ms = |s: &str| parse_java_duration(s).map(|n| n / 1_000_000);
        assert_eq!(ms("PT5M"), Some(300_000));
        assert_eq!(ms("pt5m"), Some(300_000));
        assert_eq!(ms("P1DT2H"), Some(26 * 3_600_000));
        assert_eq!(ms("PT1.5S"), Some(1_500));
        assert_eq!(ms("PT0S"), Some(0));
        assert_eq!(ms("+PT5M"), Some(300_000));
        assert_eq!(ms("P-1DT25H"), Some(3_600_000));
        assert_eq!(ms("-PT5M"), Some(-300_000));
        assert_eq!(ms("PT-5M"), Some(-300_000));
        assert_eq!(ms("PT-0.5S"), Some(-500));
        for bad in [
            "",
            "P",
            "PT",
            "P1W",
            "5M",
            "PT5",
            "PT5M:x",
            "P1DT",
            "PT1.1234567891S",
        ] {
            assert_eq!(parse_java_duration(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_auto_offset_reset("by_duration:PT5M"),
            Some(AutoOffsetReset::ByDurationMs(300_000))
        );
        assert_eq!(parse_auto_offset_reset("by_duration:-PT5M"), None);
        assert_eq!(parse_auto_offset_reset("by_duration:PT-5M"), None);
        assert_eq!(parse_auto_offset_reset("by_duration"), None);
        assert_eq!(parse_auto_offset_reset("by_duration:"), None);
        assert_eq!(parse_auto_offset_reset("none"), None);
        assert_eq!(parse_auto_offset_reset("earliest:x"), None);
    }

    #[test]
    fn share_settings_take_the_group_over_the_broker_within_its_bounds() {
        let mut c = BrokerConfig::default();
        assert_eq!(
            share_settings_of(&BTreeMap::new(), &c),
            ShareGroupSettings::default()
        );
        c.set("group.share.delivery.count.limit", "7")
            .expect("valid");
        c.set("group.share.max.size", "10").expect("valid");
        let s = share_settings_of(
            &set(&[
                ("share.auto.offset.reset", "by_duration:PT1H"),
                ("share.isolation.level", "read_committed"),
                ("share.record.lock.duration.ms", "20000"),
                // Set when the bounds were wider: capped as Kafka's evaluate caps it.
                ("share.session.timeout.ms", "90000"),
            ]),
            &c,
        );
        assert_eq!(
            s.auto_offset_reset,
            AutoOffsetReset::ByDurationMs(3_600_000)
        );
        assert!(s.read_committed);
        assert_eq!(s.record_lock_duration_ms, 20_000);
        assert_eq!(s.session_timeout_ms, 60_000);
        assert_eq!(s.heartbeat_interval_ms, 5_000);
        assert_eq!(s.delivery_count_limit, 7);
        assert_eq!(s.max_size, 10);
    }

    #[test]
    fn broker_keys_are_checked_alone_and_together() {
        let mut c = BrokerConfig::default();
        assert!(c.set("group.share.max.size", "1001").is_err());
        assert!(c.set("group.share.delivery.count.limit", "1").is_err());
        assert!(c.set("group.share.record.lock.duration.ms", "x").is_err());
        c.set("group.share.record.lock.duration.ms", "90000")
            .expect("in its own range");
        assert!(c.group_configs.check().is_err(), "above the max");
        c.set("group.share.max.record.lock.duration.ms", "120000")
            .expect("valid");
        assert!(c.group_configs.check().is_ok());
        assert!(GroupBrokerConfig::default().check().is_ok());
    }

    #[test]
    fn a_consumer_groups_overrides_are_its_two_timing_configs() {
        let none = consumer_overrides_of(&BTreeMap::new());
        assert_eq!(none, Default::default());
        let o = consumer_overrides_of(&set(&[
            ("consumer.session.timeout.ms", "50000"),
            ("consumer.heartbeat.interval.ms", " 6000 "),
            ("share.session.timeout.ms", "55000"),
        ]));
        assert_eq!(o.session_timeout_ms, Some(50_000));
        assert_eq!(o.heartbeat_interval_ms, Some(6_000));
        let only = consumer_overrides_of(&set(&[("consumer.heartbeat.interval.ms", "7000")]));
        assert_eq!(
            (only.session_timeout_ms, only.heartbeat_interval_ms),
            (None, Some(7_000))
        );
    }

    #[test]
    fn a_group_is_described_with_its_values_and_the_brokers() {
        let mut c = BrokerConfig::default();
        c.set("group.share.record.lock.duration.ms", "40000")
            .expect("valid");
        let image = gregor_metadata::MetadataImage::empty();
        let layers = Layers {
            config: &c,
            effective: &c,
            configs: image.configs(),
        };
        let overrides = set(&[
            ("share.auto.offset.reset", "earliest"),
            ("consumer.assignor.offload.enable", "false"),
        ]);
        let described = describe(&layers, &overrides);
        let find = |name: &str| {
            described
                .iter()
                .find(|d| d.name == name)
                .unwrap_or_else(|| panic!("{name} described"))
                .clone()
        };
        // 21 keys as Kafka 4.4 lists them, plus the internal one that is set.
        assert_eq!(described.len(), 22);
        assert!(described
            .iter()
            .all(|d| d.name != "streams.num.warmup.replicas"));
        let d = find("share.auto.offset.reset");
        assert_eq!((d.value.as_str(), d.source), ("earliest", SOURCE_GROUP));
        assert_eq!(
            d.synonyms,
            vec![
                (
                    "share.auto.offset.reset".into(),
                    Some("earliest".into()),
                    SOURCE_GROUP
                ),
                (
                    "share.auto.offset.reset".into(),
                    Some("latest".into()),
                    SOURCE_DEFAULT
                ),
            ]
        );
        let d = find("share.record.lock.duration.ms");
        assert_eq!(
            (d.value.as_str(), d.source, d.config_type),
            (
                "40000",
                crate::broker_configs::SOURCE_STATIC_BROKER,
                config_type::INT
            )
        );
        let d = find("share.session.timeout.ms");
        assert_eq!((d.value.as_str(), d.source), ("45000", SOURCE_DEFAULT));
        assert_eq!(
            d.synonyms,
            vec![(
                "group.share.session.timeout.ms".into(),
                Some("45000".into()),
                SOURCE_DEFAULT
            )]
        );
        let d = find("streams.assignor.name");
        assert_eq!(d.value, "sticky");
        assert_eq!(d.synonyms[0].0, "group.streams.assignors");
        assert_eq!(find("consumer.assignor.offload.enable").value, "false");
    }
}

/// The GROUP resource through the router: IncrementalAlterConfigs, AlterConfigs and
/// DescribeConfigs as `kafka-configs --entity-type groups` sends them.
#[cfg(test)]
mod handler_tests {
    use std::sync::Arc;

    use gregor_metadata::{AclOperation, ResourceType};
    use gregor_protocol::error::ErrorCode;
    use gregor_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use gregor_protocol::messages::{
        alter_configs_request, AlterConfigsRequest, DescribeConfigsRequest,
        IncrementalAlterConfigsRequest,
    };
    use gregor_protocol::protocol::StrBytes;
    use gregor_share::AutoOffsetReset;

    use super::*;
    use crate::handlers::admin_common::test_cluster::temp_broker as broker;
    use crate::handlers::admin_common::test_configs;
    use crate::handlers::describe_configs::RESOURCE_GROUP;
    use crate::txn_coordinator::tests::call;

    const SET: i8 = 0;
    const DELETE: i8 = 1;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn incremental(
        group: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> IncrementalAlterConfigsRequest {
        test_configs::incremental_request(RESOURCE_GROUP, group, ops, validate_only)
    }

    async fn alter(
        b: &Arc<Broker>,
        group: &str,
        ops: &[(&str, i8, Option<&str>)],
    ) -> (i16, Option<String>) {
        test_configs::incremental_alter(b, RESOURCE_GROUP, group, ops).await
    }

    async fn describe_group(
        b: &Arc<Broker>,
        group: &str,
    ) -> gregor_protocol::messages::DescribeConfigsResponse {
        test_configs::describe(b, RESOURCE_GROUP, group).await
    }

    #[tokio::test]
    async fn a_set_group_config_is_described_and_reaches_the_share_settings() {
        let (_dir, b) = broker();
        assert_eq!(
            alter(
                &b,
                "g",
                &[
                    ("share.auto.offset.reset", SET, Some("earliest")),
                    ("share.record.lock.duration.ms", SET, Some("20000")),
                ]
            )
            .await,
            (0, None)
        );
        let settings = share_settings(&b, "g");
        assert_eq!(settings.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!(settings.record_lock_duration_ms, 20_000);
        assert_eq!(share_settings(&b, "other"), ShareGroupSettings::default());

        let resp = describe_group(&b, "g").await;
        let result = &resp.results[0];
        assert_eq!(result.error_code, 0);
        assert_eq!(
            result.configs.len(),
            21,
            "Kafka 4.4's keys, internal ones left out"
        );
        let entry = |name: &str| {
            result
                .configs
                .iter()
                .find(|c| c.name.as_str() == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let reset = entry("share.auto.offset.reset");
        assert_eq!(
            (reset.value.as_deref(), reset.config_source),
            (Some("earliest"), SOURCE_GROUP)
        );
        assert_eq!(reset.synonyms.len(), 2);
        let session = entry("share.session.timeout.ms");
        assert_eq!(
            (session.value.as_deref(), session.config_source),
            (Some("45000"), SOURCE_DEFAULT)
        );
        assert_eq!(
            session.synonyms[0].name.as_str(),
            "group.share.session.timeout.ms"
        );

        // Removed: back to the broker's default.
        assert_eq!(
            alter(&b, "g", &[("share.auto.offset.reset", DELETE, None)]).await,
            (0, None)
        );
        assert_eq!(
            share_settings(&b, "g").auto_offset_reset,
            AutoOffsetReset::Latest
        );
    }

    #[tokio::test]
    async fn refused_changes_get_kafkas_errors_and_change_nothing() {
        let (_dir, b) = broker();
        let invalid = ErrorCode::INVALID_CONFIG.code();
        assert_eq!(
            alter(&b, "g", &[("nope.key", SET, Some("1"))]).await,
            (invalid, Some("Unknown group config name: nope.key".into()))
        );
        assert_eq!(
            alter(
                &b,
                "g",
                &[("share.record.lock.duration.ms", SET, Some("70000"))]
            )
            .await,
            (
                invalid,
                Some(
                    "share.record.lock.duration.ms must be in the range 15000 to 60000 \
                     inclusive."
                        .into()
                )
            )
        );
        let (code, message) = alter(&b, "g", &[("share.auto.offset.reset", SET, Some("x"))]).await;
        assert_eq!(code, invalid);
        assert!(message.unwrap_or_default().contains("by_duration"));
        // One bad key refuses the resource's whole change.
        assert_eq!(
            alter(
                &b,
                "g",
                &[
                    ("share.auto.offset.reset", SET, Some("earliest")),
                    ("share.delivery.count.limit", SET, Some("1")),
                ]
            )
            .await
            .0,
            invalid
        );
        assert_eq!(b.replicas.image().configs().group_configs("g").count(), 0);
        // Removing a key Kafka does not know succeeds (nothing to remove).
        assert_eq!(
            alter(&b, "g", &[("nope.key", DELETE, None)]).await,
            (0, None)
        );
        assert_eq!(
            alter(
                &b,
                "",
                &[("share.auto.offset.reset", SET, Some("earliest"))]
            )
            .await
            .0,
            ErrorCode::INVALID_REQUEST.code()
        );
        // validate_only checks and keeps nothing.
        let resp = call(
            &b,
            1,
            &incremental(
                "g",
                &[("share.auto.offset.reset", SET, Some("earliest"))],
                true,
            ),
        )
        .await;
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(b.replicas.image().configs().group_configs("g").count(), 0);
    }

    /// AlterConfigs (the legacy, non-incremental form) replaces the group's whole set.
    #[tokio::test]
    async fn alter_configs_replaces_the_whole_set() {
        let (_dir, b) = broker();
        assert_eq!(
            alter(
                &b,
                "g",
                &[
                    ("share.auto.offset.reset", SET, Some("earliest")),
                    ("share.isolation.level", SET, Some("read_committed")),
                ]
            )
            .await,
            (0, None)
        );
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_GROUP)
                .with_resource_name(s("g"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("share.isolation.level"))
                    .with_value(Some(s("read_uncommitted")))]),
        ]);
        let resp = call(&b, 2, &req).await;
        assert_eq!(resp.responses[0].error_code, 0);
        assert_eq!(
            group_configs(&b, "g"),
            BTreeMap::from([(
                "share.isolation.level".to_string(),
                "read_uncommitted".to_string()
            )])
        );
    }

    /// With an authorizer, a group's configs need DESCRIBE_CONFIGS / ALTER_CONFIGS on the group.
    #[tokio::test]
    async fn group_configs_need_the_groups_acls() {
        use crate::authorizer::test_support::{allow, ctx_of};
        use crate::request::decode_reply;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let describe = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_GROUP)
                .with_resource_name(s("g")),
        ]);
        let alice_describe = ctx_of("alice", crate::handlers::describe_configs::KEY, 4);
        let denied = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        let resp = crate::handlers::describe_configs::handle(&b, &alice_describe, describe.clone());
        assert_eq!(resp.results[0].error_code, denied);
        allow(
            &b,
            "User:alice",
            AclOperation::DescribeConfigs,
            ResourceType::Group,
            "g",
        );
        let resp = crate::handlers::describe_configs::handle(&b, &alice_describe, describe);
        assert_eq!(resp.results[0].error_code, 0);
        let ops = [("share.auto.offset.reset", SET, Some("earliest"))];
        let alter_as_alice = |b: &Arc<Broker>| {
            crate::handlers::incremental_alter_configs::handle(
                b,
                ctx_of("alice", crate::handlers::incremental_alter_configs::KEY, 1),
                incremental("g", &ops, false),
            )
        };
        let resp: gregor_protocol::messages::IncrementalAlterConfigsResponse =
            decode_reply(alter_as_alice(&b), 1).await;
        assert_eq!(resp.responses[0].error_code, denied);
        allow(
            &b,
            "User:alice",
            AclOperation::AlterConfigs,
            ResourceType::Group,
            "g",
        );
        let resp: gregor_protocol::messages::IncrementalAlterConfigsResponse =
            decode_reply(alter_as_alice(&b), 1).await;
        assert_eq!(resp.responses[0].error_code, 0);
    }
}
