//! Topic-level configuration (`cleanup.policy`, `retention.ms`, `segment.bytes`, ...): which keys
//! exist, how their values are checked, and how a topic's overrides combine with the broker's
//! defaults into the settings its logs run with.

use std::collections::BTreeMap;

use crate::config::{BrokerConfig, FlushPolicy, MAX_DECOMPRESSED_MESSAGE_BYTES};
use gregor_protocol::recompress::TopicCompression;
use gregor_protocol::record_rewrite::CompressionLevels;
use gregor_storage::LogConfig;

/// Topic config keys gregor accepts in CreateTopics (and, later, AlterConfigs).
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "errors.deadletterqueue.group.enable",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.decompressed.message.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// The values `compression.type` takes, as an error message says them.
pub const COMPRESSION_TYPES: &str =
    "expected one of uncompressed, zstd, lz4, snappy, gzip, producer";

/// Checks a `cleanup.policy` value: `delete`, `compact`, or both comma-separated.
pub fn validate_cleanup_policy(value: &str) -> Result<(), String> {
    for p in value.split(',') {
        match p.trim() {
            "delete" | "compact" => {}
            other => return Err(format!("unknown cleanup policy {other:?}")),
        }
    }
    Ok(())
}

/// A number of the key's type; Kafka's message (`ConfigDef.parseType`) otherwise.
fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim().parse::<T>().map_err(|_| {
        let kafka_type = match std::any::type_name::<T>() {
            "f64" => "DOUBLE",
            "i32" => "INT",
            _ => "LONG",
        };
        format!("Not a number of type {kafka_type}")
    })
}

/// A numeric topic key's type (true: Kafka's INT, false: its LONG) and least value, as
/// Kafka's `LogConfig` ranges them; gregor's own floors for `segment.bytes` (14, where Kafka
/// has 1 MiB) and `segment.index.bytes` (4096, where Kafka has 4). `retention.bytes` has no
/// range in Kafka (any negative is unlimited); gregor takes -1 for unlimited.
fn minimum(key: &str) -> Option<(bool, i64)> {
    Some(match key {
        "delete.retention.ms"
        | "file.delete.delay.ms"
        | "flush.ms"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "min.compaction.lag.ms"
        | "segment.jitter.ms" => (false, 0),
        "flush.messages" | "max.compaction.lag.ms" | "segment.ms" => (false, 1),
        "retention.ms" | "retention.bytes" => (false, -1),
        "local.retention.ms" | "local.retention.bytes" => (false, -2),
        "remote.copy.lag.ms" | "remote.copy.lag.bytes" => (false, -1),
        "index.interval.bytes" | "max.message.bytes" => (true, 0),
        "min.insync.replicas" => (true, 1),
        "segment.bytes" => (true, 14),
        "segment.index.bytes" => (true, 4096),
        _ => return None,
    })
}

/// A well-formed value this broker refuses whole, with Kafka's message (INVALID_CONFIG):
/// tiered storage on a topic (`remote.storage.enable=true`). gregor has no tiered storage, and
/// answers as a Kafka broker whose `remote.log.storage.system.enable` is false; the other
/// remote storage keys (`local.retention.*`, `remote.copy.lag.*`, `remote.log.copy.disable`,
/// `remote.log.delete.on.disable`) are kept and described there without effect, as here.
pub fn refusal(key: &str, value: &str) -> Option<&'static str> {
    (key == "remote.storage.enable" && value.trim().eq_ignore_ascii_case("true")).then_some(
        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured \
         with remote log storage.",
    )
}

/// Checks one topic config; the error text goes back to the client as the error message.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    match key {
        "cleanup.policy" => validate_cleanup_policy(value),
        "compression.type" => TopicCompression::parse(value)
            .map(|_| ())
            .ok_or_else(|| format!("{COMPRESSION_TYPES}, not {value:?}")),
        "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
            CompressionLevels::parse(key, value)
                .unwrap_or_else(|| Err("not a compression level".into()))
                .map(|_| ())
        }
        "message.timestamp.type" => match value.trim() {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err("expected CreateTime or LogAppendTime".into()),
        },
        // Kafka's BOOLEAN, in any case.
        "unclean.leader.election.enable"
        | "preallocate"
        | "remote.storage.enable"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable"
        | "errors.deadletterqueue.group.enable" => match value.trim().to_ascii_lowercase().as_str()
        {
            "true" | "false" => Ok(()),
            _ => Err("Expected value to be either true or false".into()),
        },
        "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
            ThrottledReplicas::parse(value).map(|_| ())
        }
        "max.decompressed.message.bytes" => {
            let n: i32 = num(value)?;
            if n < 1 {
                Err("Value must be at least 1".into())
            } else if n as usize > MAX_DECOMPRESSED_MESSAGE_BYTES {
                Err(format!(
                    "Value must be no more than {MAX_DECOMPRESSED_MESSAGE_BYTES}"
                ))
            } else {
                Ok(())
            }
        }
        "min.cleanable.dirty.ratio" => {
            let r: f64 = num(value)?;
            if r < 0.0 {
                Err("Value must be at least 0".into())
            } else if r > 1.0 {
                Err("Value must be no more than 1".into())
            } else {
                Ok(())
            }
        }
        k => match minimum(k) {
            Some((int, min)) => {
                let n: i64 = if int {
                    num::<i32>(value)?.into()
                } else {
                    num(value)?
                };
                if n < min {
                    Err(format!("Value must be at least {min}"))
                } else {
                    Ok(())
                }
            }
            None if TOPIC_CONFIG_KEYS.contains(&k) => num::<i64>(value).map(|_| ()),
            None => Err(format!("unknown topic config {key:?}")),
        },
    }
}

/// `leader.replication.throttled.replicas` or `follower.replication.throttled.replicas`
/// (KIP-73): the replicas, as `partition:broker`, whose replication the broker's
/// `*.replication.throttled.rate` holds back; `*` for every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// None (the default).
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// These `(partition, broker)` pairs.
    Listed(std::collections::BTreeSet<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Kafka's `ThrottledReplicaListValidator`: empty, `*`, or `partition:broker` entries
    /// separated by commas (blanks around each allowed).
    pub fn parse(value: &str) -> Result<ThrottledReplicas, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(ThrottledReplicas::None);
        }
        if value == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let wrong = || {
            format!(
                "{value:?} must be the literal '*' or a list of replicas in the following format: \
                 [partitionId]:[brokerId],[partitionId]:[brokerId],..."
            )
        };
        let mut pairs = std::collections::BTreeSet::new();
        // Kafka's list type drops empty entries.
        for entry in value.split(',').filter(|e| !e.trim().is_empty()) {
            let (partition, broker) = entry.trim().split_once(':').ok_or_else(wrong)?;
            let number = |s: &str| {
                let s = s.trim();
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<i32>().ok())
                    .flatten()
            };
            let (Some(p), Some(b)) = (number(partition), number(broker)) else {
                return Err(wrong());
            };
            pairs.insert((p, b));
        }
        Ok(ThrottledReplicas::Listed(pairs))
    }

    /// Whether the replica of `partition` on `broker` is throttled.
    pub fn includes(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// A topic's effective settings: broker defaults overlaid with the topic's overrides.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    /// What its partition logs run with.
    pub log: LogConfig,
    /// Largest batch accepted (`max.message.bytes`).
    pub max_message_bytes: usize,
    /// Largest record of a compressed batch, decompressed (`max.decompressed.message.bytes`).
    pub max_decompressed_record_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`: how far in the past a record's create time may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a record's create time may be.
    pub timestamp_after_max_ms: i64,
    /// `leader.replication.throttled.replicas`: the replicas this broker's reads for
    /// followers are throttled for (KIP-73).
    pub leader_throttled: ThrottledReplicas,
    /// `follower.replication.throttled.replicas`: the replicas whose fetching is throttled.
    pub follower_throttled: ThrottledReplicas,
    /// `cleanup.policy`.
    pub cleanup_policy: String,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `compression.type`: the codec the leader stores batches in.
    pub compression: TopicCompression,
    /// `compression.gzip.level`, `.lz4.level`, `.zstd.level`: how hard the leader compresses
    /// when `compression` asks it to (KIP-390).
    pub compression_levels: CompressionLevels,
    /// `flush.messages` and `flush.ms` (the broker's `log.flush.interval.*` by default): set
    /// at either level, Kafka's interval policy; set at neither, gregor's fsync before an
    /// acks=all answer.
    pub flush: FlushPolicy,
}

impl TopicSettings {
    /// Kafka's `LogValidator.validateTimestamp` (KIP-937): whether a record's create time is
    /// further in the past than `message.timestamp.before.max.ms` or further in the future
    /// than `message.timestamp.after.max.ms` from `now`. Always false on a topic that stamps
    /// records itself (`LogAppendTime`) and for a record without a timestamp (-1).
    pub fn timestamp_out_of_range(&self, timestamp: i64, now_ms: i64) -> bool {
        if self.log_append_time || timestamp == gregor_protocol::batch::NO_TIMESTAMP {
            return false;
        }
        let behind = i128::from(now_ms) - i128::from(timestamp);
        behind > i128::from(self.timestamp_before_max_ms)
            || -behind > i128::from(self.timestamp_after_max_ms)
    }

    /// The range [`TopicSettings::timestamp_out_of_range`] allows, as Kafka's message says it.
    pub fn timestamp_bounds(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(self.timestamp_before_max_ms),
            now_ms.saturating_add(self.timestamp_after_max_ms),
        )
    }

    /// Resolves settings from broker defaults and already validated overrides.
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> TopicSettings {
        let mut s = TopicSettings {
            log: broker.log.clone(),
            max_message_bytes: broker.message_max_bytes,
            max_decompressed_record_bytes: broker.max_decompressed_message_bytes,
            log_append_time: broker.log_append_time,
            timestamp_before_max_ms: broker.timestamp_before_max_ms,
            timestamp_after_max_ms: broker.timestamp_after_max_ms,
            leader_throttled: ThrottledReplicas::None,
            follower_throttled: ThrottledReplicas::None,
            cleanup_policy: broker.cleanup_policy.clone(),
            min_insync_replicas: broker.min_insync_replicas,
            compression: broker.compression,
            compression_levels: broker.compression_levels,
            flush: broker.flush,
        };
        for (k, v) in overrides {
            let v = v.trim();
            match k.as_str() {
                "retention.ms" => s.log.retention_ms = v.parse().unwrap_or(s.log.retention_ms),
                "retention.bytes" => {
                    s.log.retention_bytes = v.parse().unwrap_or(s.log.retention_bytes)
                }
                "segment.bytes" => s.log.segment_bytes = v.parse().unwrap_or(s.log.segment_bytes),
                "segment.ms" => s.log.segment_ms = v.parse().unwrap_or(s.log.segment_ms),
                "segment.jitter.ms" => {
                    s.log.segment_jitter_ms = v.parse().unwrap_or(s.log.segment_jitter_ms)
                }
                "index.interval.bytes" => {
                    s.log.index_interval_bytes = v.parse().unwrap_or(s.log.index_interval_bytes)
                }
                "segment.index.bytes" => {
                    s.log.segment_index_bytes = v.parse().unwrap_or(s.log.segment_index_bytes)
                }
                "max.message.bytes" => {
                    s.max_message_bytes = v.parse().unwrap_or(s.max_message_bytes)
                }
                "preallocate" => s.log.preallocate = v.eq_ignore_ascii_case("true"),
                "max.decompressed.message.bytes" => {
                    s.max_decompressed_record_bytes =
                        v.parse().unwrap_or(s.max_decompressed_record_bytes)
                }
                "message.timestamp.type" => s.log_append_time = v == "LogAppendTime",
                "message.timestamp.before.max.ms" => {
                    s.timestamp_before_max_ms = v.parse().unwrap_or(s.timestamp_before_max_ms)
                }
                "leader.replication.throttled.replicas" => {
                    s.leader_throttled = ThrottledReplicas::parse(v).unwrap_or_default()
                }
                "follower.replication.throttled.replicas" => {
                    s.follower_throttled = ThrottledReplicas::parse(v).unwrap_or_default()
                }
                "message.timestamp.after.max.ms" => {
                    s.timestamp_after_max_ms = v.parse().unwrap_or(s.timestamp_after_max_ms)
                }
                "cleanup.policy" => s.cleanup_policy = v.to_string(),
                "compression.type" => {
                    s.compression = TopicCompression::parse(v).unwrap_or(s.compression)
                }
                "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                    if let Some(Ok(level)) = CompressionLevels::parse(k, v) {
                        s.compression_levels.set(k, level);
                    }
                }
                "delete.retention.ms" => {
                    s.log.delete_retention_ms = v.parse().unwrap_or(s.log.delete_retention_ms)
                }
                "min.compaction.lag.ms" => {
                    s.log.min_compaction_lag_ms = v.parse().unwrap_or(s.log.min_compaction_lag_ms)
                }
                "max.compaction.lag.ms" => {
                    s.log.max_compaction_lag_ms = v.parse().unwrap_or(s.log.max_compaction_lag_ms)
                }
                "min.cleanable.dirty.ratio" => {
                    s.log.min_cleanable_dirty_ratio =
                        v.parse().unwrap_or(s.log.min_cleanable_dirty_ratio)
                }
                "min.insync.replicas" => {
                    s.min_insync_replicas = v.parse().unwrap_or(s.min_insync_replicas)
                }
                "flush.messages" | "flush.ms" => {
                    let Ok(n) = v.parse::<i64>() else { continue };
                    let (messages, interval_ms) = match s.flush {
                        FlushPolicy::Interval {
                            messages,
                            interval_ms,
                        } => (messages, interval_ms),
                        FlushPolicy::OnAcksAll => (i64::MAX, i64::MAX),
                    };
                    s.flush = if k == "flush.messages" {
                        FlushPolicy::Interval {
                            messages: n.max(1),
                            interval_ms,
                        }
                    } else {
                        FlushPolicy::Interval {
                            messages,
                            interval_ms: n.max(0),
                        }
                    };
                }
                _ => {}
            }
        }
        // The log cleaner compacts the logs of `compact` topics (compact,delete ones too).
        s.log.compact = s.cleanup_policy.split(',').any(|p| p.trim() == "compact");
        // Retention deletes segments only under the `delete` policy; a compact-only topic
        // (such as __consumer_offsets) keeps every segment until the cleaner rewrites them.
        if !s.cleanup_policy.split(',').any(|p| p.trim() == "delete") {
            s.log.retention_ms = -1;
            s.log.retention_bytes = -1;
        }
        s
    }
}

/// Kafka's topic name rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    /// Kafka's throttled-replica lists: `*`, `partition:broker` pairs, or empty; anything else
    /// is refused with Kafka's wording.
    #[test]
    fn throttled_replica_lists_are_parsed_as_kafka_does() {
        assert_eq!(ThrottledReplicas::parse(""), Ok(ThrottledReplicas::None));
        assert_eq!(ThrottledReplicas::parse(" * "), Ok(ThrottledReplicas::All));
        let listed = ThrottledReplicas::parse("0:1, 0:2,1:3").expect("pairs");
        assert!(listed.includes(0, 1) && listed.includes(0, 2) && listed.includes(1, 3));
        assert!(!listed.includes(1, 1) && !listed.includes(0, 3));
        assert!(ThrottledReplicas::All.includes(7, 9));
        assert!(!ThrottledReplicas::None.includes(0, 1));
        assert_eq!(
            ThrottledReplicas::parse("0:1,,2:3,"),
            ThrottledReplicas::parse("0:1,2:3")
        );
        for bad in ["0", "0:", ":1", "a:1", "-1:2", "0:1;1:2", "*,0:1"] {
            let e = validate("leader.replication.throttled.replicas", bad).expect_err(bad);
            assert!(e.contains("must be the literal '*'"), "{bad}: {e}");
        }
        validate("follower.replication.throttled.replicas", "3:4").expect("valid");
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "leader.replication.throttled.replicas".to_string(),
            "0:1".to_string(),
        );
        overrides.insert(
            "follower.replication.throttled.replicas".to_string(),
            "*".to_string(),
        );
        overrides.insert("segment.jitter.ms".to_string(), "60000".to_string());
        let s = TopicSettings::resolve(&broker, &overrides);
        assert_eq!(s.log.segment_jitter_ms, 60_000);
        assert!(s.leader_throttled.includes(0, 1) && !s.leader_throttled.includes(1, 1));
        assert_eq!(s.follower_throttled, ThrottledReplicas::All);
    }

    #[test]
    fn configs_are_checked_and_resolved() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("no.such.key", "1").is_err());
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "5".to_string());
        o.insert("max.message.bytes".to_string(), "77".to_string());
        let s = TopicSettings::resolve(&BrokerConfig::default(), &o);
        assert_eq!(s.log.retention_ms, 5);
        assert_eq!(s.max_message_bytes, 77);
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        let s = TopicSettings::resolve(&BrokerConfig::default(), &o);
        assert_eq!((s.log.retention_ms, s.log.retention_bytes), (-1, -1));
        assert!(s.log.compact);
    }

    /// `flush.messages` (at least 1) and `flush.ms` (at least 0), each over the broker's
    /// policy; set at neither level, gregor's default.
    #[test]
    fn flush_configs_are_checked_and_resolved() {
        assert!(validate("flush.messages", "1").is_ok());
        assert!(validate("flush.messages", "0").is_err());
        assert!(validate("flush.ms", "0").is_ok());
        assert!(validate("flush.ms", "-1").is_err());
        assert!(validate("flush.ms", "soon").is_err());
        let resolve = |broker: FlushPolicy, overrides: &[(&str, &str)]| {
            let o: BTreeMap<String, String> = overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let config = BrokerConfig {
                flush: broker,
                ..BrokerConfig::default()
            };
            TopicSettings::resolve(&config, &o).flush
        };
        let interval = |messages, interval_ms| FlushPolicy::Interval {
            messages,
            interval_ms,
        };
        assert_eq!(resolve(FlushPolicy::OnAcksAll, &[]), FlushPolicy::OnAcksAll);
        assert_eq!(
            resolve(FlushPolicy::OnAcksAll, &[("flush.messages", "1")]),
            interval(1, i64::MAX)
        );
        assert_eq!(
            resolve(FlushPolicy::OnAcksAll, &[("flush.ms", "250")]),
            interval(i64::MAX, 250)
        );
        assert_eq!(
            resolve(interval(i64::MAX, 1000), &[("flush.messages", "5")]),
            interval(5, 1000)
        );
        assert_eq!(
            resolve(
                interval(7, 1000),
                &[("flush.ms", "10"), ("flush.messages", "3")]
            ),
            interval(3, 10)
        );
        assert_eq!(resolve(interval(7, 1000), &[]), interval(7, 1000));
    }

    #[test]
    fn compaction_configs_are_checked_and_resolved() {
        for (key, good, bad) in [
            ("min.cleanable.dirty.ratio", "0.01", "1.5"),
            ("delete.retention.ms", "0", "-1"),
            ("min.compaction.lag.ms", "100", "-5"),
            ("max.compaction.lag.ms", "1", "0"),
        ] {
            assert!(validate(key, good).is_ok(), "{key}={good}");
            assert!(validate(key, bad).is_err(), "{key}={bad}");
            assert!(validate(key, "x").is_err(), "{key}=x");
        }
        let mut o = BTreeMap::new();
        let s = TopicSettings::resolve(&BrokerConfig::default(), &o);
        assert!(!s.log.compact, "delete by default");
        assert_eq!(s.log.delete_retention_ms, 86_400_000);
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        o.insert("min.cleanable.dirty.ratio".to_string(), "0.01".to_string());
        o.insert("delete.retention.ms".to_string(), "10".to_string());
        o.insert("min.compaction.lag.ms".to_string(), "20".to_string());
        o.insert("max.compaction.lag.ms".to_string(), "30".to_string());
        let s = TopicSettings::resolve(&BrokerConfig::default(), &o);
        assert!(s.log.compact);
        assert_eq!(s.log.retention_ms, BrokerConfig::default().log.retention_ms);
        assert!((s.log.min_cleanable_dirty_ratio - 0.01).abs() < 1e-12);
        assert_eq!(
            (
                s.log.delete_retention_ms,
                s.log.min_compaction_lag_ms,
                s.log.max_compaction_lag_ms
            ),
            (10, 20, 30)
        );
        // The broker's log.cleaner.* defaults are the topics' defaults.
        let mut broker = BrokerConfig::default();
        broker
            .set("log.cleaner.min.cleanable.ratio", "0.2")
            .expect("valid");
        broker
            .set("log.cleaner.delete.retention.ms", "5")
            .expect("valid");
        let s = TopicSettings::resolve(&broker, &BTreeMap::new());
        assert!((s.log.min_cleanable_dirty_ratio - 0.2).abs() < 1e-12);
        assert_eq!(s.log.delete_retention_ms, 5);
        // Those four are dynamic broker configs (as in Kafka's DynamicLogConfig), checked as the
        // broker parses them.
        for key in [
            "log.cleaner.min.cleanable.ratio",
            "log.cleaner.delete.retention.ms",
            "log.cleaner.min.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
        ] {
            assert!(
                gregor_metadata::controller::alter_broker_config("", key, Some("1")).is_ok(),
                "{key}"
            );
            assert!(broker.check_value(key, "-7").is_err(), "{key}");
        }
        assert!(broker
            .check_value("log.cleaner.min.cleanable.ratio", "1.5")
            .is_err());
        // The cleaner's own settings are dynamic too (the cleaner starts again with them), as
        // in Kafka; whether it runs at all is not.
        assert!(
            gregor_metadata::controller::alter_broker_config("", "log.cleaner.threads", Some("2"))
                .is_ok(),
            "the cleaner's threads are dynamic"
        );
        assert!(
            gregor_metadata::controller::alter_broker_config(
                "",
                "log.cleaner.enable",
                Some("false")
            )
            .is_err(),
            "log.cleaner.enable is read-only, as in Kafka"
        );
    }
}
