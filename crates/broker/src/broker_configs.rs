//! The broker's own configuration as DescribeConfigs shows it for a BROKER resource
//! (`kafka-configs --describe --entity-type brokers --entity-name <id> --all`): every key gregor
//! reads, its current value, its type, and where the value comes from. A key the server's
//! properties file, `--set` or a dedicated flag gave is a STATIC_BROKER_CONFIG
//! ([`BrokerConfig::given`]); any other is gregor's default, DEFAULT_CONFIG. Above both, the
//! dynamic broker configs of the metadata image: this broker's own (DYNAMIC_BROKER_CONFIG) and
//! the cluster-wide default (DYNAMIC_DEFAULT_BROKER_CONFIG), set with IncrementalAlterConfigs.
//!
//! [`BROKER_KEYS`] lists the keys. A key has either a fixed default text, which a unit test
//! holds equal to [`BrokerConfig::default`] by applying it, or a value derived from the parsed
//! configuration (listeners, directories, the quorum, settings kept in a different shape).

use crate::config::{voters_text, BrokerConfig, FlushPolicy};

/// Kafka's `ConfigType` codes (DescribeConfigs v3+).
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const SHORT: i8 = 4;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
    pub const CLASS: i8 = 8;
}

/// Kafka's `ConfigSource`: a dynamic config of this broker.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
/// Kafka's `ConfigSource`: a dynamic cluster-wide default of every broker.
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
/// Kafka's `ConfigSource`: a broker setting from its configuration file (or flags).
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's `ConfigSource`: a built-in default.
pub const SOURCE_DEFAULT: i8 = 5;

/// One broker key.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    /// Kafka's name of the key.
    pub name: &'static str,
    /// Kafka's `ConfigType` code.
    pub config_type: i8,
    /// The default as text; `None`: derived from the parsed configuration ([`derived`]).
    pub default: Option<&'static str>,
    /// Keys that set the same value (Kafka's synonyms, most specific first after the key).
    pub synonyms: &'static [&'static str],
}

const fn key(name: &'static str, config_type: i8, default: &'static str) -> BrokerKey {
    BrokerKey {
        name,
        config_type,
        default: Some(default),
        synonyms: &[],
    }
}

const fn derived_key(name: &'static str, config_type: i8) -> BrokerKey {
    BrokerKey {
        name,
        config_type,
        default: None,
        synonyms: &[],
    }
}

use config_type::*;

/// Every key gregor reads from its configuration, sorted by name (a test checks).
pub const BROKER_KEYS: &[BrokerKey] = &[
    key("add.partitions.to.txn.retry.backoff.max.ms", INT, "100"),
    key("add.partitions.to.txn.retry.backoff.ms", INT, "20"),
    derived_key("advertised.listeners", LIST),
    key("allow.everyone.if.no.acl.found", BOOLEAN, "false"),
    key("authorizer.class.name", STRING, ""),
    key("auto.create.topics.enable", BOOLEAN, "true"),
    key("auto.leader.rebalance.enable", BOOLEAN, "true"),
    key("broker.heartbeat.interval.ms", INT, "500"),
    derived_key("broker.id", INT),
    derived_key("broker.rack", STRING),
    key("broker.session.timeout.ms", INT, "3000"),
    derived_key("cluster.id", STRING),
    key("compression.gzip.level", INT, "-1"),
    key("compression.lz4.level", INT, "9"),
    key("compression.type", STRING, "producer"),
    key("compression.zstd.level", INT, "3"),
    // Read by `config_providers` at start; static here, dynamic in Kafka 4.4.
    key("config.providers", LIST, ""),
    key("connection.failed.authentication.delay.ms", INT, "100"),
    key("connections.max.idle.ms", LONG, "600000"),
    key("connections.max.reauth.ms", LONG, "0"),
    key("controlled.shutdown.enable", BOOLEAN, "true"),
    derived_key("controller.listener.names", LIST),
    key("controller.quorum.auto.join.enable", BOOLEAN, "false"),
    derived_key("controller.quorum.bootstrap.servers", LIST),
    key("controller.quorum.election.timeout.ms", INT, "1000"),
    key("controller.quorum.heartbeat.interval.ms", INT, "500"),
    derived_key("controller.quorum.voters", LIST),
    key("cordoned.log.dirs", LIST, ""),
    key("default.replication.factor", INT, "1"),
    key("delegation.token.expiry.check.interval.ms", LONG, "3600000"),
    key("delegation.token.expiry.time.ms", LONG, "86400000"),
    key("delegation.token.max.lifetime.ms", LONG, "604800000"),
    key("delete.topic.enable", BOOLEAN, "true"),
    key(
        "errors.deadletterqueue.auto.create.topics.enable",
        BOOLEAN,
        "false",
    ),
    key("errors.deadletterqueue.topic.name.prefix", STRING, "dlq."),
    key("fetch.max.bytes", INT, "57671680"),
    key(
        "follower.replication.throttled.rate",
        LONG,
        "9223372036854775807",
    ),
    key("group.consumer.assignors", LIST, "uniform,range"),
    key("group.consumer.heartbeat.interval.ms", INT, "5000"),
    key("group.consumer.max.heartbeat.interval.ms", INT, "15000"),
    key("group.consumer.max.session.timeout.ms", INT, "60000"),
    key("group.consumer.max.size", INT, "2147483647"),
    key("group.consumer.migration.policy", STRING, "bidirectional"),
    key("group.consumer.min.heartbeat.interval.ms", INT, "5000"),
    key("group.consumer.min.session.timeout.ms", INT, "45000"),
    key("group.consumer.session.timeout.ms", INT, "45000"),
    key(
        "group.coordinator.rebalance.protocols",
        LIST,
        "classic,consumer,streams",
    ),
    key("group.initial.rebalance.delay.ms", INT, "3000"),
    key("group.max.session.timeout.ms", INT, "1800000"),
    derived_key("group.max.size", INT),
    key("group.min.session.timeout.ms", INT, "6000"),
    key("group.share.delivery.count.limit", INT, "5"),
    key("group.share.heartbeat.interval.ms", INT, "5000"),
    key("group.share.max.delivery.count.limit", INT, "10"),
    key("group.share.max.heartbeat.interval.ms", INT, "15000"),
    key("group.share.max.partition.max.record.locks", INT, "4000"),
    key("group.share.max.record.lock.duration.ms", INT, "60000"),
    key("group.share.max.session.timeout.ms", INT, "60000"),
    key("group.share.max.share.sessions", INT, "2000"),
    key("group.share.max.size", INT, "200"),
    key("group.share.min.delivery.count.limit", INT, "2"),
    key("group.share.min.heartbeat.interval.ms", INT, "5000"),
    key("group.share.min.partition.max.record.locks", INT, "100"),
    key("group.share.min.record.lock.duration.ms", INT, "15000"),
    key("group.share.min.session.timeout.ms", INT, "45000"),
    key("group.share.partition.max.record.locks", INT, "2000"),
    key("group.share.record.lock.duration.ms", INT, "30000"),
    key("group.share.session.timeout.ms", INT, "45000"),
    key("group.streams.assignment.interval.ms", INT, "1000"),
    key("group.streams.heartbeat.interval.ms", INT, "5000"),
    key("group.streams.initial.rebalance.delay.ms", INT, "3000"),
    key("group.streams.max.size", INT, "2147483647"),
    key("group.streams.num.standby.replicas", INT, "0"),
    key("group.streams.session.timeout.ms", INT, "45000"),
    derived_key("http.listener", STRING),
    derived_key("inter.broker.listener.name", STRING),
    key("leader.imbalance.check.interval.seconds", LONG, "300"),
    key(
        "leader.replication.throttled.rate",
        LONG,
        "9223372036854775807",
    ),
    derived_key("listener.security.protocol.map", STRING),
    derived_key("listeners", LIST),
    key("log.cleaner.backoff.ms", LONG, "15000"),
    key("log.cleaner.dedupe.buffer.size", LONG, "134217728"),
    key("log.cleaner.delete.retention.ms", LONG, "86400000"),
    key("log.cleaner.enable", BOOLEAN, "true"),
    key(
        "log.cleaner.io.max.bytes.per.second",
        DOUBLE,
        "1.7976931348623157E308",
    ),
    key(
        "log.cleaner.max.compaction.lag.ms",
        LONG,
        "9223372036854775807",
    ),
    key("log.cleaner.min.cleanable.ratio", DOUBLE, "0.5"),
    key("log.cleaner.min.compaction.lag.ms", LONG, "0"),
    key("log.cleaner.threads", INT, "1"),
    key("log.cleanup.policy", LIST, "delete"),
    key("log.dir.failure.timeout.ms", LONG, "30000"),
    derived_key("log.dirs", LIST),
    derived_key("log.flush.interval.messages", LONG),
    derived_key("log.flush.interval.ms", LONG),
    key("log.flush.offset.checkpoint.interval.ms", INT, "1000"),
    key("log.flush.scheduler.interval.ms", LONG, "100"),
    key("log.index.interval.bytes", INT, "4096"),
    key("log.index.size.max.bytes", INT, "10485760"),
    key("log.local.retention.bytes", LONG, "-2"),
    key("log.local.retention.ms", LONG, "-2"),
    key("log.message.timestamp.after.max.ms", LONG, "3600000"),
    key(
        "log.message.timestamp.before.max.ms",
        LONG,
        "9223372036854775807",
    ),
    key("log.message.timestamp.type", STRING, "CreateTime"),
    key("log.preallocate", BOOLEAN, "false"),
    key("log.remote.copy.lag.bytes", LONG, "-1"),
    key("log.remote.copy.lag.ms", LONG, "0"),
    key("log.retention.bytes", LONG, "-1"),
    key("log.retention.check.interval.ms", LONG, "300000"),
    key("log.retention.hours", INT, "168"),
    BrokerKey {
        name: "log.retention.ms",
        config_type: LONG,
        default: None,
        synonyms: &["log.retention.minutes", "log.retention.hours"],
    },
    key("log.roll.hours", INT, "168"),
    key("log.roll.jitter.hours", INT, "0"),
    BrokerKey {
        name: "log.roll.jitter.ms",
        config_type: LONG,
        default: None,
        synonyms: &["log.roll.jitter.hours"],
    },
    BrokerKey {
        name: "log.roll.ms",
        config_type: LONG,
        default: None,
        synonyms: &["log.roll.hours"],
    },
    key("log.segment.bytes", INT, "1073741824"),
    key("max.connection.creation.rate", INT, "2147483647"),
    key("max.connections", INT, "10000"),
    key("max.connections.per.ip", INT, "2147483647"),
    key("max.connections.per.ip.overrides", STRING, ""),
    key("max.decompressed.message.bytes", INT, "2147483639"),
    key("max.incremental.fetch.session.cache.slots", INT, "1000"),
    key("message.max.bytes", INT, "1048588"),
    derived_key("metadata.log.dir", STRING),
    key(
        "metadata.log.max.record.bytes.between.snapshots",
        LONG,
        "20971520",
    ),
    key("metadata.log.max.snapshot.interval.ms", LONG, "3600000"),
    key("metadata.log.max.snapshot.interval.records", LONG, "20000"),
    key("min.insync.replicas", INT, "1"),
    derived_key("node.id", INT),
    key("num.partitions", INT, "1"),
    key("num.recovery.threads.per.data.dir", INT, "2"),
    key("num.replica.fetchers", INT, "1"),
    key("offset.metadata.max.bytes", INT, "4096"),
    key("offsets.retention.check.interval.ms", LONG, "600000"),
    key("offsets.retention.minutes", INT, "10080"),
    key("offsets.topic.num.partitions", INT, "50"),
    key("offsets.topic.replication.factor", SHORT, "3"),
    derived_key("peer.address.overrides", LIST),
    derived_key("process.roles", LIST),
    key("producer.id.expiration.check.interval.ms", INT, "600000"),
    key("producer.id.expiration.ms", INT, "86400000"),
    key("queued.max.request.bytes", LONG, "536870912"),
    key("quota.window.num", INT, "11"),
    key("quota.window.size.seconds", INT, "1"),
    key("remote.log.storage.system.enable", BOOLEAN, "false"),
    key(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        LONG,
        "9223372036854775807",
    ),
    key("replica.fetch.backoff.ms", INT, "1000"),
    key("replica.fetch.max.bytes", INT, "1048576"),
    key("replica.fetch.response.max.bytes", INT, "10485760"),
    key("replica.fetch.wait.max.ms", INT, "500"),
    key("replica.lag.time.max.ms", LONG, "30000"),
    derived_key("replica.selector.class", STRING),
    key("replica.socket.receive.buffer.bytes", INT, "-1"),
    key("replication.quota.window.num", INT, "11"),
    key("replication.quota.window.size.seconds", INT, "1"),
    key("sasl.kerberos.kinit.cmd", STRING, "/usr/bin/kinit"),
    key("sasl.kerberos.min.time.before.relogin", LONG, "60000"),
    key("sasl.kerberos.principal.to.local.rules", LIST, "DEFAULT"),
    derived_key("sasl.kerberos.service.name", STRING),
    key("sasl.kerberos.ticket.renew.jitter", DOUBLE, "0.05"),
    key("sasl.kerberos.ticket.renew.window.factor", DOUBLE, "0.8"),
    derived_key("sasl.mechanism.controller.protocol", STRING),
    derived_key("sasl.mechanism.inter.broker.protocol", STRING),
    derived_key("security.inter.broker.protocol", STRING),
    key("share.coordinator.state.topic.min.isr", SHORT, "2"),
    key("share.coordinator.state.topic.num.partitions", INT, "50"),
    key(
        "share.coordinator.state.topic.replication.factor",
        SHORT,
        "3",
    ),
    key(
        "share.coordinator.state.topic.segment.bytes",
        INT,
        "104857600",
    ),
    key("share.coordinator.write.timeout.ms", INT, "5000"),
    key("socket.listen.backlog.size", INT, "1024"),
    key("socket.receive.buffer.bytes", INT, "-1"),
    key("socket.request.max.bytes", INT, "104857600"),
    key("socket.request.timeout.ms", LONG, "30000"),
    key("socket.send.buffer.bytes", INT, "-1"),
    key("super.users", STRING, ""),
    key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        INT,
        "10000",
    ),
    key("transaction.max.timeout.ms", INT, "900000"),
    key("transaction.partition.verification.enable", BOOLEAN, "true"),
    key(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        INT,
        "3600000",
    ),
    key("transaction.state.log.min.isr", INT, "2"),
    key("transaction.state.log.num.partitions", INT, "50"),
    key("transaction.state.log.replication.factor", SHORT, "3"),
    key("transaction.state.log.segment.bytes", INT, "104857600"),
    key("transactional.id.expiration.ms", INT, "604800000"),
    key("unclean.leader.election.enable", BOOLEAN, "false"),
];

/// The keys [`BrokerConfig::set`] records under another name (aliases): the name Kafka
/// describes.
pub fn canonical_name(key: &str) -> &str {
    match key {
        "broker.id" => "node.id",
        "log.dir" => "log.dirs",
        "advertised.listener" => "advertised.listeners",
        other => other,
    }
}

/// The value of a key without a fixed default, from the parsed configuration; `None` is a
/// null value (unset, as Kafka shows `cluster.id` on a broker without one configured).
pub fn derived(c: &BrokerConfig, name: &str) -> Option<String> {
    Some(match name {
        "advertised.listeners" | "inter.broker.listener.name" => c.given.get(name)?.clone(),
        // gregor reads `security.inter.broker.protocol` as the inter-broker listener's name
        // (a listener named after its protocol); described as given, else Kafka's default.
        "security.inter.broker.protocol" => c
            .given
            .get(name)
            .cloned()
            .unwrap_or_else(|| "PLAINTEXT".to_string()),
        "sasl.mechanism.controller.protocol" => c.controller_sasl_mechanism.clone(),
        // gregor's own default, PLAIN: it serves no GSSAPI, Kafka's default.
        "sasl.mechanism.inter.broker.protocol" => c.inter_broker_sasl_mechanism.clone(),
        "broker.id" => c.node_id.to_string(),
        "broker.rack" => c.cluster.rack.clone()?,
        "cluster.id" => c.cluster.cluster_id.clone()?,
        "controller.listener.names" => {
            if c.controller_listener_names.is_empty() {
                return None;
            }
            c.controller_listener_names.join(",")
        }
        "controller.quorum.voters" => voters_text(&c.cluster.voters),
        "controller.quorum.bootstrap.servers" => c.cluster.bootstrap_servers.join(","),
        "group.max.size" => i32::try_from(c.group.max_size)
            .unwrap_or(i32::MAX)
            .to_string(),
        "listener.security.protocol.map" => match &c.security_protocol_map {
            Some(map) => map
                .iter()
                .map(|(n, p)| format!("{n}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
            None => "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
                .to_string(),
        },
        "listeners" => {
            if !c.listener_entries.is_empty() {
                c.listener_entries.join(",")
            } else {
                let mut out = format!("PLAINTEXT://{}", c.listen);
                if let Some(controller) = c.cluster.controller_listen {
                    out.push_str(&format!(",CONTROLLER://{controller}"));
                }
                out
            }
        }
        "log.dirs" => c
            .log_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        "metadata.log.dir" => c.metadata_log_dir.as_ref()?.display().to_string(),
        "log.flush.interval.messages" => match c.flush {
            FlushPolicy::Interval { messages, .. } => messages.to_string(),
            FlushPolicy::OnAcksAll => i64::MAX.to_string(),
        },
        "log.flush.interval.ms" => match c.flush {
            FlushPolicy::Interval { interval_ms, .. } if interval_ms != i64::MAX => {
                interval_ms.to_string()
            }
            _ => return None,
        },
        "log.retention.ms" => c.log.retention_ms.to_string(),
        "log.roll.ms" => c.log.segment_ms.to_string(),
        "log.roll.jitter.ms" => c.log.segment_jitter_ms.to_string(),
        "node.id" => c.node_id.to_string(),
        "peer.address.overrides" => voters_text(&c.cluster.peer_address_overrides),
        "http.listener" => c.http_listen.map_or_else(String::new, |a| a.to_string()),
        "replica.selector.class" => c.cluster.replica_selector?.class_name().to_string(),
        "sasl.kerberos.service.name" => c.sasl_kerberos.get(name)?.clone(),
        "process.roles" => {
            let roles = c.cluster.roles;
            match (roles.broker, roles.controller) {
                (true, true) => "broker,controller",
                (true, false) => "broker",
                (false, true) => "controller",
                (false, false) => "",
            }
            .to_string()
        }
        _ => return None,
    })
}

/// One described key: its value (null when unset), Kafka's source code, and its synonyms
/// given in the configuration (name, value), the key itself first when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: i8,
    pub config_type: i8,
    pub synonyms: Vec<(String, Option<String>, i8)>,
    /// Not a dynamic broker config: only a restart with another configuration changes it.
    pub read_only: bool,
}

/// One key of a group or a client metrics subscription as DescribeConfigs shows it: always a
/// value, never read-only or sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedKey {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, Option<String>, i8)>,
    pub documentation: &'static str,
}

/// Where a broker's config values come from, most specific first.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// The static configuration (file, `--set`, flags).
    pub config: &'a BrokerConfig,
    /// The static configuration with the dynamic configs applied (derived values).
    pub effective: &'a BrokerConfig,
    /// The image's dynamic configs: this broker's own and the cluster-wide default.
    pub configs: &'a gregor_metadata::ConfigurationsImage,
}

impl Layers<'_> {
    /// The layers that hold `name`, most specific first: (value, source).
    fn values(&self, name: &str) -> Vec<(String, i8)> {
        let own = self.config.node_id.to_string();
        let mut out = Vec::new();
        if let Some(v) = self.configs.broker_config(&own, name) {
            out.push((v.to_string(), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = self.configs.broker_config("", name) {
            out.push((v.to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER));
        }
        if let Some(v) = self.config.given.get(name) {
            out.push((v.clone(), SOURCE_STATIC_BROKER));
        }
        out
    }

    /// The source of `name`'s value, counting its synonyms: the most specific layer holding
    /// any of them (DEFAULT_CONFIG when none does).
    pub fn source(&self, names: &[&str]) -> i8 {
        names
            .iter()
            .filter_map(|n| self.values(n).first().map(|(_, s)| *s))
            .min()
            .unwrap_or(SOURCE_DEFAULT)
    }
}

/// Kafka's fixed default of a key whose value gregor works out from its parsed configuration,
/// listed among the key's synonyms after the layers as Kafka lists it:
/// `log.flush.interval.messages` is Long.MAX_VALUE (never by count) in both, though setting it
/// is what puts gregor's topics under Kafka's flush policy.
fn kafka_default_of_derived(name: &str) -> Option<&'static str> {
    match name {
        "log.flush.interval.messages" => Some("9223372036854775807"),
        // Kafka's default; a KRaft node's id is `node.id`, which Kafka copies to it.
        "broker.id" => Some("-1"),
        _ => None,
    }
}

/// Describes one key.
pub fn describe(layers: &Layers<'_>, k: &BrokerKey) -> Described {
    let names: Vec<&str> = std::iter::once(k.name)
        .chain(k.synonyms.iter().copied())
        .collect();
    let value = match k.default {
        Some(d) => Some(
            layers
                .values(k.name)
                .into_iter()
                .next()
                .map_or_else(|| d.to_string(), |(v, _)| v),
        ),
        None => derived(layers.effective, k.name),
    };
    let held = layers.source(&names);
    // Kafka's synonyms: every layer's value of the key and its synonyms, most specific
    // first, then the defaults (a null default is none).
    let mut synonyms: Vec<(String, Option<String>, i8)> = Vec::new();
    for source in [
        SOURCE_DYNAMIC_BROKER,
        SOURCE_DYNAMIC_DEFAULT_BROKER,
        SOURCE_STATIC_BROKER,
    ] {
        for n in &names {
            for (v, s) in layers.values(n) {
                if s == source {
                    synonyms.push((n.to_string(), Some(v), s));
                }
            }
        }
    }
    // The defaults, in the same order: the key's own, and its synonyms' (log.retention.hours=168
    // for log.retention.ms, as Kafka lists it after the layers).
    let default_of = |n: &str| {
        BROKER_KEYS
            .iter()
            .find(|b| b.name == n)
            .and_then(|b| b.default)
            .or_else(|| kafka_default_of_derived(n))
    };
    let synonym_defaults = k.synonyms.iter().any(|n| default_of(n).is_some());
    for n in &names {
        match default_of(n) {
            Some(d) => synonyms.push((n.to_string(), Some(d.to_string()), SOURCE_DEFAULT)),
            // A value gregor works out where Kafka has a fixed default; not one worked out
            // from a synonym's default (Kafka's default of log.retention.ms is null).
            None if *n == k.name && held == SOURCE_DEFAULT && !synonym_defaults => {
                if let Some(v) = &value {
                    synonyms.push((n.to_string(), Some(v.clone()), SOURCE_DEFAULT));
                }
            }
            None => {}
        }
    }
    // Then, as Kafka's `ConfigHelper.configSynonyms`, the list starts at the key's own name:
    // a synonym in another unit listed before it is dropped (log.retention.ms describes no
    // log.retention.hours, set or default), and the key's source is the first left.
    match synonyms.iter().position(|(n, _, _)| n == k.name) {
        Some(at) => {
            synonyms.drain(..at);
        }
        None => synonyms.clear(),
    }
    let source = synonyms.first().map_or(SOURCE_DEFAULT, |(_, _, s)| *s);
    Described {
        name: k.name,
        value,
        source,
        config_type: k.config_type,
        synonyms,
        read_only: !gregor_metadata::controller::DYNAMIC_BROKER_CONFIGS.contains(&k.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_sorted_and_unique() {
        let names: Vec<&str> = BROKER_KEYS.iter().map(|k| k.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn every_fixed_default_is_what_the_broker_defaults_to() {
        let default = format!("{:?}", BrokerConfig::default());
        for k in BROKER_KEYS {
            let Some(text) = k.default else { continue };
            let mut c = BrokerConfig::default();
            assert!(
                c.set(k.name, text)
                    .unwrap_or_else(|e| panic!("{} = {text:?}: {e}", k.name)),
                "{} is not a key the broker reads",
                k.name
            );
            c.given.clear();
            assert_eq!(format!("{c:?}"), default, "{} = {text:?}", k.name);
        }
    }

    #[test]
    fn every_derived_key_is_one_the_broker_reads() {
        for k in BROKER_KEYS.iter().filter(|k| k.default.is_none()) {
            let mut c = BrokerConfig::default();
            let value = derived(&c, k.name).unwrap_or_else(|| match k.name {
                "broker.rack" => "rack-1".into(),
                "cluster.id" => "abc".into(),
                "replica.selector.class" => crate::replica_selector::RACK_AWARE_SELECTOR.into(),
                "controller.listener.names" => "CONTROLLER".into(),
                "log.flush.interval.ms" => "1000".into(),
                "metadata.log.dir" => "/data/metadata".into(),
                "sasl.kerberos.service.name" => "kafka".into(),
                "advertised.listeners" => "PLAINTEXT://127.0.0.1:1".into(),
                "inter.broker.listener.name" => "PLAINTEXT".into(),
                other => panic!("{other} has no value on a default config"),
            });
            if value.is_empty() {
                continue;
            }
            assert!(
                c.set(k.name, &value)
                    .unwrap_or_else(|e| panic!("{} = {value:?}: {e}", k.name)),
                "{} is not a key the broker reads",
                k.name
            );
        }
    }

    #[test]
    fn given_keys_are_static_and_the_rest_defaults() {
        let mut c = BrokerConfig::default();
        c.set("num.partitions", "4").expect("valid");
        c.set("log.retention.hours", "1").expect("valid");
        c.set("broker.id", "7").expect("valid");
        let mut image = gregor_metadata::MetadataDelta::new(std::sync::Arc::new(
            gregor_metadata::MetadataImage::empty(),
        ));
        for r in [
            gregor_metadata::controller::alter_broker_config("", "min.insync.replicas", Some("2")),
            gregor_metadata::controller::alter_broker_config("7", "log.retention.ms", Some("5")),
        ] {
            image.replay(&r.expect("valid")).expect("replays");
        }
        let image = image.apply(gregor_metadata::MetadataProvenance::EMPTY);
        let effective = c.with_dynamic(image.configs());
        let layers = Layers {
            config: &c,
            effective: &effective,
            configs: image.configs(),
        };
        let find = |name: &str| {
            let k = BROKER_KEYS
                .iter()
                .find(|k| k.name == name)
                .expect("a known key");
            describe(&layers, k)
        };
        let d = find("num.partitions");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("4"), SOURCE_STATIC_BROKER)
        );
        // This broker's dynamic config wins over the static synonym.
        let d = find("log.retention.ms");
        assert_eq!(
            (d.value.as_deref(), d.source, d.read_only),
            (Some("5"), SOURCE_DYNAMIC_BROKER, false)
        );
        assert_eq!(
            d.synonyms,
            vec![
                (
                    "log.retention.ms".to_string(),
                    Some("5".to_string()),
                    SOURCE_DYNAMIC_BROKER
                ),
                (
                    "log.retention.hours".to_string(),
                    Some("1".to_string()),
                    SOURCE_STATIC_BROKER
                ),
                (
                    "log.retention.hours".to_string(),
                    Some("168".to_string()),
                    SOURCE_DEFAULT
                )
            ]
        );
        let d = find("node.id");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("7"), SOURCE_STATIC_BROKER)
        );
        let d = find("min.insync.replicas");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("2"), SOURCE_DYNAMIC_DEFAULT_BROKER)
        );
        let d = find("num.partitions");
        assert!(d.read_only);
        let d = find("message.max.bytes");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("1048588"), SOURCE_DEFAULT)
        );
        let d = find("cluster.id");
        assert_eq!((d.value, d.source), (None, SOURCE_DEFAULT));
    }
}
