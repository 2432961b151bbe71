//! Controller decisions over an image: what records to propose for a request or an event.
//!
//! The part of Kafka's `ReplicationControlManager` that decides, without the quorum around it.
//! Each function reads the current [`MetadataImage`] (the controller's own, including records
//! it proposed and that are not yet committed) and returns the records to append, in order, or
//! the [`ControllerError`] for the response. Nothing here appends, waits or times out: the
//! controller runtime proposes the records to the Raft log, and they take effect when
//! replayed. Every list returned here replays without error on the image it was computed from
//! (the tests check it).
//!
//! ```text
//! CreateTopics  ─► create_topic      ─► TopicRecord, ConfigRecord…, PartitionRecord…
//! CreatePartitions ► create_partitions ► PartitionRecord…
//! DeleteTopics  ─► delete_topic      ─► RemoveTopicRecord
//! BrokerRegistration ► register_broker ► (fence of the old incarnation), RegisterBrokerRecord
//! session lost  ─► fence_broker      ─► FenceBrokerRecord, PartitionChangeRecord… (leave ISRs,
//!                                       new leaders)
//! UnregisterBroker ► unregister_broker ► PartitionChangeRecord… (leave ISRs), UnregisterBrokerRecord
//! replicas in a failed log directory (heartbeat) ► take_replicas_offline ►
//!                                       PartitionChangeRecord… (leave ISRs and ELRs, new leaders)
//! cordoned dirs (heartbeat) ► set_broker_cordoned ► BrokerRegistrationChangeRecord
//! caught up     ─► unfence_broker    ─► UnfenceBrokerRecord, PartitionChangeRecord… (leaderless
//!                                       partitions get a leader)
//! ElectLeaders  ─► elect_leader      ─► PartitionChangeRecord
//! AlterPartition ► alter_partition   ─► PartitionChangeRecord (the leader's ISR shrink/expand;
//!                                       completes a reassignment once the new replicas are in)
//! AlterPartitionReassignments ► alter_partition_reassignment ► PartitionChangeRecord
//! AllocateProducerIds ► allocate_producer_ids ► ProducerIdsRecord
//! AlterClientQuotas ► alter_client_quota ► ClientQuotaRecord
//! AlterUserScramCredentials ► alter_user_scram_credentials ► UserScramCredentialRecord…,
//!                                       RemoveUserScramCredentialRecord…
//! CreateAcls   ─► create_acls        ─► AccessControlEntryRecord…
//! DeleteAcls   ─► delete_acls        ─► RemoveAccessControlEntryRecord…
//! IncrementalAlterConfigs / AlterConfigs ► alter_topic_config, alter_broker_config,
//!                                       alter_group_config, alter_client_metrics_config ►
//!                                       ConfigRecord
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::acl::{AclBindingFilter, StandardAcl};
use crate::delta::topic_name_invalid_reason;
use crate::election::{Election, ElectionResult, PartitionChangeBuilder};
use crate::error::ControllerError;
use crate::image::{MetadataImage, PartitionRegistration};
use crate::placement::{place, PlacementSpec};
use crate::records::{
    AccessControlEntryRecord, BrokerId, BrokerRegistrationChangeRecord, ClientQuotaEntity,
    ClientQuotaRecord, ConfigRecord, ConfigResource, Endpoint, FenceBrokerRecord, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord,
    RemoveAccessControlEntryRecord, RemoveTopicRecord, RemoveUserScramCredentialRecord,
    ReplicaDirectory, TopicIdPartition, TopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord,
    UserScramCredentialRecord, ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE, MAX_STRING_LEN,
    PRODUCER_ID_BLOCK_SIZE,
};
use crate::scram::{ScramKeys, ScramMechanism, SCRAM_MAX_ITERATIONS};

/// The topic config that allows unclean leader election.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// The topic config (and broker default) the ELR (KIP-966) forms below.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// The broker config that turns KIP-890's transaction verification on (dynamic, as in Kafka).
pub const TRANSACTION_PARTITION_VERIFICATION_ENABLE: &str =
    "transaction.partition.verification.enable";

/// Broker-level defaults the controller's decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerDefaults {
    /// `unclean.leader.election.enable` for topics that do not override it (Kafka: false).
    pub unclean_leader_election_enable: bool,
    /// The static `min.insync.replicas` for topics that do not override it and no cluster-wide
    /// dynamic value (Kafka: 1).
    pub min_insync_replicas: i32,
}

/// A CreateTopics entry, after the broker filled in its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    /// A fresh random id (the caller draws it: this module has no randomness of its own).
    pub topic_id: uuid::Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Config overrides, validated by the caller except for the ones decided here.
    pub configs: Vec<(String, String)>,
    /// Seed of the placement's random start.
    pub placement_seed: u64,
}

/// The records that create a topic: its record, its config overrides, and its partitions with
/// replicas placed on the unfenced brokers, the preferred replica leading and all replicas in
/// the ISR (they are all empty). Epochs start at 0.
pub fn create_topic(
    image: &MetadataImage,
    req: &CreateTopic,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_new_topic(image, &req.name, req.topic_id, &req.configs)?;
    let assignments = place(
        image.cluster(),
        PlacementSpec {
            start_partition: 0,
            partitions: req.partitions,
            replication_factor: req.replication_factor,
        },
        req.placement_seed,
    )?;
    let mut records = topic_header_records(&req.name, req.topic_id, &req.configs);
    records.extend(partition_records(image, req.topic_id, 0, assignments));
    Ok(records)
}

/// The records that create a topic with replicas chosen by the client (CreateTopics with
/// `assignments`; `assignments[p]` holds partition `p`'s replicas, preferred leader first).
/// Kafka's checks: at least one partition, no empty or duplicate replica list entries, the same
/// replication factor for every partition, every replica registered and at least one of each
/// partition's replicas unfenced. The ISR is the unfenced replicas, led by the first of them.
/// `req.partitions`, `req.replication_factor` and `req.placement_seed` are not used.
pub fn create_topic_with_assignments(
    image: &MetadataImage,
    req: &CreateTopic,
    assignments: &[Vec<BrokerId>],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_new_topic(image, &req.name, req.topic_id, &req.configs)?;
    if assignments.is_empty() {
        return Err(ControllerError::InvalidPartitions(0));
    }
    if assignments.len() > crate::placement::MAX_PARTITIONS_PER_BATCH as usize {
        return Err(ControllerError::PolicyViolation(
            "excessively large number of partitions per request",
        ));
    }
    let rf = assignments[0].len();
    let mut records = topic_header_records(&req.name, req.topic_id, &req.configs);
    for (partition_id, replicas) in (0..).zip(assignments) {
        records.push(assigned_partition(
            image,
            req.topic_id,
            partition_id,
            replicas,
            rf,
        )?);
    }
    Ok(records)
}

/// A new partition on exactly `replicas` (an explicit assignment), checked as Kafka checks
/// one: `rf` replicas, none twice, every broker registered, at least one unfenced. The ISR is
/// the unfenced replicas, led by the first of them.
fn assigned_partition(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    partition_id: i32,
    replicas: &[BrokerId],
    rf: usize,
) -> Result<MetadataRecord, ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(
            "a partition has no replicas",
        ));
    }
    if replicas.len() != rf {
        return Err(ControllerError::InvalidReplicaAssignment(
            "all partitions must have the same number of replicas",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if !replicas.iter().all(|b| seen.insert(*b)) {
        return Err(ControllerError::InvalidReplicaAssignment(
            "duplicate replica",
        ));
    }
    if replicas
        .iter()
        .any(|b| image.cluster().broker(*b).is_none())
    {
        return Err(ControllerError::InvalidReplicaAssignment(
            "the assignment names a broker that is not registered",
        ));
    }
    // KIP-1066: a broker whose log directories are all cordoned takes no new replica, not
    // even one named explicitly.
    if replicas.iter().any(|b| image.cluster().is_cordoned(*b)) {
        return Err(ControllerError::InvalidReplicaAssignment(
            "the assignment names a broker whose log directories are all cordoned",
        ));
    }
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|b| image.cluster().is_unfenced(*b))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(ControllerError::InvalidReplicaAssignment(
            "all brokers of a partition's assignment are fenced",
        ));
    };
    Ok(MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition_id,
        leader,
        isr,
        replicas: replicas.to_vec(),
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: vec![],
        removing_replicas: vec![],
        eligible_leader_replicas: vec![],
        last_known_elr: vec![],
        directories: default_directories(image, replicas),
    }))
}

/// The checks every new topic passes, whatever places its replicas.
fn check_new_topic(
    image: &MetadataImage,
    name: &str,
    topic_id: uuid::Uuid,
    configs: &[(String, String)],
) -> Result<(), ControllerError> {
    if let Some(reason) = topic_name_invalid_reason(name) {
        return Err(ControllerError::InvalidTopic {
            name: name.to_string(),
            reason,
        });
    }
    if image.topics().topic_by_name(name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(name.to_string()));
    }
    if topic_id.is_nil() || image.topics().topic(topic_id).is_some() {
        return Err(ControllerError::InvalidTopic {
            name: name.to_string(),
            reason: "topic id is nil or taken",
        });
    }
    for (name, value) in configs {
        validate_config(name, value)?;
    }
    Ok(())
}

/// The topic record and its config overrides.
fn topic_header_records(
    name: &str,
    topic_id: uuid::Uuid,
    configs: &[(String, String)],
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id,
    })];
    for (config, value) in configs {
        records.push(MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic(name.to_string()),
            name: config.clone(),
            value: Some(value.clone()),
        }));
    }
    records
}

/// The record that sets (`Some`) or removes (`None`, back to the default) one config override
/// of an existing topic (IncrementalAlterConfigs / AlterConfigs on a topic).
pub fn alter_topic_config(
    image: &MetadataImage,
    topic: &str,
    name: &str,
    value: Option<&str>,
) -> Result<MetadataRecord, ControllerError> {
    if image.topics().topic_by_name(topic).is_none() {
        return Err(ControllerError::UnknownTopicOrPartition);
    }
    match value {
        Some(value) => validate_config(name, value)?,
        // Removing an override: only the name must be one.
        None => validate_config(name, "").or_else(|e| {
            if name == UNCLEAN_LEADER_ELECTION_ENABLE {
                Ok(())
            } else {
                Err(e)
            }
        })?,
    }
    Ok(MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Topic(topic.to_string()),
        name: name.to_string(),
        value: value.map(str::to_string),
    }))
}

/// The broker configs that can be set at run time (dynamic broker configs), cluster-wide (the
/// empty resource name) or per broker: the brokers' defaults for topic configs, as Kafka's
/// `DynamicLogConfig` allows them, and `transaction.partition.verification.enable`. The broker
/// checks the values; the controller checks the names.
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "cordoned.log.dirs",
    "errors.deadletterqueue.auto.create.topics.enable",
    "errors.deadletterqueue.topic.name.prefix",
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.threads",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.local.retention.bytes",
    "log.local.retention.ms",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.preallocate",
    "log.remote.copy.lag.bytes",
    "log.remote.copy.lag.ms",
    "log.retention.bytes",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.jitter.hours",
    "log.roll.jitter.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.decompressed.message.bytes",
    "message.max.bytes",
    "min.insync.replicas",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "producer.id.expiration.ms",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    // Kafka's dynamic SASL settings for Kerberos; gregor keeps them (no GSSAPI is served).
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    TRANSACTION_PARTITION_VERIFICATION_ENABLE,
    UNCLEAN_LEADER_ELECTION_ENABLE,
];

/// The `ssl.*` keys a broker reloads without a restart (Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`):
/// dynamic only per broker and per listener, as `listener.name.<listener>.<key>` (Kafka's
/// `DynamicBrokerConfig` refuses them without the prefix and at the cluster-wide default). The
/// broker the change is for checks that the new stores load and fit before it is committed.
pub const RECONFIGURABLE_SSL_CONFIGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
];

/// `listener.name.<listener>.<key>` with a key of [`RECONFIGURABLE_SSL_CONFIGS`]: the listener
/// (as given) and the key.
pub fn listener_ssl_config(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("listener.name.")?;
    let (listener, key) = rest.split_once('.')?;
    (!listener.is_empty() && RECONFIGURABLE_SSL_CONFIGS.contains(&key)).then_some((listener, key))
}

/// The record that sets (`Some`) or removes (`None`) one dynamic broker config of `resource`:
/// `""` for the cluster-wide default, a broker id for one broker (IncrementalAlterConfigs /
/// AlterConfigs on a BROKER resource).
/// Whether `name` is `listener.name.<listener>.max.connection.creation.rate` (KIP-612) or
/// `listener.name.<listener>.max.connections` (KIP-402): a listener's own connection limits,
/// dynamic cluster-wide or per broker, as in Kafka's `DynamicListenerConfig`.
pub fn is_listener_connection_config(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("listener.name.") else {
        return false;
    };
    [".max.connection.creation.rate", ".max.connections"]
        .iter()
        .filter_map(|suffix| rest.strip_suffix(suffix))
        .any(|listener| !listener.is_empty() && !listener.contains('.'))
}

pub fn alter_broker_config(
    resource: &str,
    name: &str,
    value: Option<&str>,
) -> Result<MetadataRecord, ControllerError> {
    if !resource.is_empty() && resource.parse::<BrokerId>().is_err() {
        return Err(ControllerError::InvalidConfig {
            name: resource.chars().take(64).collect(),
            reason: "a broker resource is a broker id or the empty name",
        });
    }
    let per_listener_ssl = listener_ssl_config(name).is_some();
    if per_listener_ssl && resource.is_empty() {
        return Err(ControllerError::InvalidConfig {
            name: name.chars().take(64).collect(),
            reason: "a listener's SSL stores are set per broker, not as the cluster-wide default",
        });
    }
    if !DYNAMIC_BROKER_CONFIGS.contains(&name)
        && !per_listener_ssl
        && !is_listener_connection_config(name)
    {
        return Err(ControllerError::InvalidConfig {
            name: name.chars().take(64).collect(),
            reason: "not a dynamic broker config",
        });
    }
    if let Some(value) = value {
        validate_config(name, value)?;
    }
    Ok(MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Broker(resource.to_string()),
        name: name.to_string(),
        value: value.map(str::to_string),
    }))
}

/// Kafka 4.4's group config keys (`GroupConfig`): the KIP-848 consumer group keys, the KIP-932
/// share group keys, the streams group keys and the share groups' dead-letter queue. The broker
/// checks the values against its `group.*` bounds; the controller checks the names.
pub const GROUP_CONFIGS: &[&str] = &[
    "consumer.session.timeout.ms",
    "consumer.heartbeat.interval.ms",
    "consumer.assignment.interval.ms",
    "consumer.assignor.offload.enable",
    "share.session.timeout.ms",
    "share.heartbeat.interval.ms",
    "share.record.lock.duration.ms",
    "share.delivery.count.limit",
    "share.partition.max.record.locks",
    "share.auto.offset.reset",
    "share.isolation.level",
    "share.renew.acknowledge.enable",
    "share.assignment.interval.ms",
    "share.assignor.offload.enable",
    "streams.session.timeout.ms",
    "streams.heartbeat.interval.ms",
    "streams.num.standby.replicas",
    "streams.initial.rebalance.delay.ms",
    "streams.assignment.interval.ms",
    "streams.rack.aware.assignment.tags",
    "streams.assignor.offload.enable",
    "streams.task.offset.interval.ms",
    "streams.num.warmup.replicas",
    "streams.acceptable.recovery.lag",
    "streams.assignor.name",
    "errors.deadletterqueue.topic.name",
    "errors.deadletterqueue.copy.record.enable",
];

/// The record that sets (`Some`) or removes (`None`) one config of group `group`
/// (IncrementalAlterConfigs / AlterConfigs on a GROUP resource). The group need not exist:
/// Kafka keeps a group's configs apart from the group, before it is created and after it is
/// deleted.
pub fn alter_group_config(
    group: &str,
    name: &str,
    value: Option<&str>,
) -> Result<MetadataRecord, ControllerError> {
    if group.is_empty() {
        return Err(ControllerError::InvalidConfig {
            name: String::new(),
            reason: "a group resource names a group id",
        });
    }
    if group.len() > MAX_STRING_LEN {
        return Err(ControllerError::InvalidConfig {
            name: group.chars().take(64).collect(),
            reason: "a group id longer than 32767 bytes",
        });
    }
    if !GROUP_CONFIGS.contains(&name) {
        return Err(ControllerError::InvalidConfig {
            name: name.chars().take(64).collect(),
            reason: "Unknown group config name",
        });
    }
    if let Some(value) = value {
        validate_config(name, value)?;
    }
    Ok(MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Group(group.to_string()),
        name: name.to_string(),
        value: value.map(str::to_string),
    }))
}

/// Kafka 4.4's client metrics subscription keys (`ClientMetricsConfigs`, KIP-714): the metric
/// name prefixes, the push interval and the client match patterns. The broker checks the
/// values; the controller checks the names.
pub const CLIENT_METRICS_CONFIGS: &[&str] = &["metrics", "interval.ms", "match"];

/// The record that sets (`Some`) or removes (`None`) one config of client metrics subscription
/// `subscription` (IncrementalAlterConfigs / AlterConfigs on a CLIENT_METRICS resource). A
/// subscription exists while one of its configs is set.
pub fn alter_client_metrics_config(
    subscription: &str,
    name: &str,
    value: Option<&str>,
) -> Result<MetadataRecord, ControllerError> {
    if subscription.is_empty() {
        return Err(ControllerError::InvalidRequest(
            "Subscription name can't be empty",
        ));
    }
    if subscription.len() > MAX_STRING_LEN {
        return Err(ControllerError::InvalidConfig {
            name: subscription.chars().take(64).collect(),
            reason: "a subscription name longer than 32767 bytes",
        });
    }
    if !CLIENT_METRICS_CONFIGS.contains(&name) {
        return Err(ControllerError::InvalidRequest(
            "Unknown client metrics configuration",
        ));
    }
    if let Some(value) = value {
        validate_config(name, value)?;
    }
    Ok(MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::ClientMetrics(subscription.to_string()),
        name: name.to_string(),
        value: value.map(str::to_string),
    }))
}

/// The client quota keys of the `user` and `client-id` entity types (Kafka's `QuotaConfig`):
/// bytes per second of produce and of fetch, and the share of request-handler time in percent.
pub const CLIENT_QUOTA_KEYS: &[&str] = &[
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
];

/// The quota keys of the `ip` entity type (Kafka's `QuotaConfig.ipConfigs`): new connections a
/// second from one address (KIP-612).
pub const IP_QUOTA_KEYS: &[&str] = &["connection_creation_rate"];

/// Why `value` cannot be the `ip` quota `key`, or `None` if it can: Kafka's checks and
/// messages (`ClientQuotaControlManager.validateQuotaKeyValue`, an INT quota).
pub fn ip_quota_invalid_reason(key: &str, value: f64) -> Option<String> {
    if !IP_QUOTA_KEYS.contains(&key) {
        return Some(format!("Invalid configuration key {key}"));
    }
    if !value.is_finite() || value <= 0.0 {
        return Some(format!("Quota {key} must be greater than 0"));
    }
    if value > f64::from(i32::MAX) {
        return Some(format!("Proposed value for {key} is too large for an INT."));
    }
    if value.fract().abs() > 1e-6 {
        return Some(format!("{key} cannot be a fractional value."));
    }
    None
}

/// Whether `name` is written as a host name (RFC 1123: dot-separated labels of letters, digits
/// and inner hyphens, 253 characters at most).
pub fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Why `value` cannot be the client quota `key`, or `None` if it can. The byte rates are
/// whole numbers of bytes per second (Kafka's LONG quota types); the percentage any positive
/// number.
pub fn client_quota_invalid_reason(key: &str, value: f64) -> Option<String> {
    if !CLIENT_QUOTA_KEYS.contains(&key) {
        return Some(format!(
            "Invalid configuration key {key} (client quota keys: {})",
            CLIENT_QUOTA_KEYS.join(", ")
        ));
    }
    if !value.is_finite() || value <= 0.0 {
        return Some(format!(
            "Invalid value {value} for quota {key}: must be positive"
        ));
    }
    if key != "request_percentage" && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return Some(format!(
            "Invalid value {value} for quota {key}: must be an integer"
        ));
    }
    None
}

/// The record that sets (`Some`) or removes (`None`) one client quota (AlterClientQuotas).
/// Removing a quota that is not set replays as a no-op, as in Kafka.
pub fn alter_client_quota(
    entity: &ClientQuotaEntity,
    key: &str,
    value: Option<f64>,
) -> Result<MetadataRecord, ControllerError> {
    if entity.user.is_none() && entity.client_id.is_none() && entity.ip.is_none() {
        return Err(ControllerError::InvalidRequest("empty client quota entity"));
    }
    if let Some(ip) = &entity.ip {
        // Kafka's message, its missing space included.
        if entity.user.is_some() || entity.client_id.is_some() {
            return Err(ControllerError::InvalidClientQuota(
                "Invalid quota entity combination, IP entity shouldnot be combined with User \
                 or ClientId"
                    .to_string(),
            ));
        }
        // An address, or a host name: the broker that took the request resolved it (as
        // Kafka's controller does), and its brokers resolve it again to apply the quota.
        if let Some(name) = ip.as_option() {
            if name.parse::<std::net::IpAddr>().is_err() && !is_host_name(name) {
                return Err(ControllerError::InvalidClientQuota(format!(
                    "{} is not a valid IP or resolvable host.",
                    name.chars().take(256).collect::<String>()
                )));
            }
        }
        if let Some(reason) = ip_quota_invalid_reason(key, value.unwrap_or(1.0)) {
            return Err(ControllerError::InvalidClientQuota(reason));
        }
        return Ok(MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: entity.clone(),
            key: key.to_string(),
            value: value.unwrap_or(0.0),
            remove: value.is_none(),
        }));
    }
    let named_too_long = [&entity.user, &entity.client_id].into_iter().any(|n| {
        n.as_ref()
            .and_then(|n| n.as_option())
            .is_some_and(|n| n.len() > MAX_STRING_LEN)
    });
    if named_too_long {
        return Err(ControllerError::InvalidRequest(
            "client quota entity name too long",
        ));
    }
    if let Some(reason) = client_quota_invalid_reason(key, value.unwrap_or(1.0)) {
        return Err(ControllerError::InvalidClientQuota(reason));
    }
    Ok(MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: entity.clone(),
        key: key.to_string(),
        value: value.unwrap_or(0.0),
        remove: value.is_none(),
    }))
}

/// One SCRAM credential to delete (AlterUserScramCredentials' `deletions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialDeletion {
    pub name: String,
    /// Kafka's `ScramMechanism` type.
    pub mechanism: i8,
}

/// One SCRAM credential to set (AlterUserScramCredentials' `upsertions`): the salted password
/// is `Hi(password, salt, iterations)`, computed by the client. `Debug` hides the salt and
/// salted password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentialUpsertion {
    pub name: String,
    /// Kafka's `ScramMechanism` type.
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramCredentialUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .field("salt", &"[hidden]")
            .field("salted_password", &"[hidden]")
            .finish()
    }
}

/// What AlterUserScramCredentials decides: the records to propose together, and one outcome
/// per user named in the request, in the order they first appear (deletions, then upsertions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramAlteration {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<(String, Result<(), ControllerError>)>,
}

const DUPLICATE_SCRAM_USER: &str = "A user credential cannot be altered twice in the same request";

/// Kafka's `validateScramUsernameAndMechanism`, plus a name a record can hold.
fn check_scram_user_and_mechanism(
    name: &str,
    mechanism: i8,
) -> Result<ScramMechanism, ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::UnacceptableCredential(
            "Username must not be empty",
        ));
    }
    let mechanism = ScramMechanism::from_type(mechanism).ok_or(
        ControllerError::UnsupportedSaslMechanism("Unknown SCRAM mechanism"),
    )?;
    if name.len() > MAX_STRING_LEN {
        return Err(ControllerError::UnacceptableCredential("Username too long"));
    }
    Ok(mechanism)
}

/// The record that sets one credential: the stored and server keys derived from the salted
/// password, which itself goes no further.
fn scram_upsertion(u: &ScramCredentialUpsertion) -> Result<MetadataRecord, ControllerError> {
    let mechanism = check_scram_user_and_mechanism(&u.name, u.mechanism)?;
    if u.iterations < mechanism.min_iterations() {
        return Err(ControllerError::UnacceptableCredential(
            "Too few iterations",
        ));
    }
    if u.iterations > SCRAM_MAX_ITERATIONS {
        return Err(ControllerError::UnacceptableCredential(
            "Too many iterations",
        ));
    }
    // Kafka fails here too (an empty HMAC key), with UNKNOWN_SERVER_ERROR; no Admin client
    // sends one (a salted password is a hash).
    if u.salted_password.is_empty() {
        return Err(ControllerError::UnacceptableCredential(
            "Salted password must not be empty",
        ));
    }
    let keys = ScramKeys::derive(mechanism, &u.salted_password);
    Ok(MetadataRecord::UserScramCredential(
        UserScramCredentialRecord {
            name: u.name.clone(),
            mechanism: u.mechanism,
            salt: u.salt.clone(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
            iterations: u.iterations,
        },
    ))
}

/// The record that deletes one credential, which must exist in `image`.
fn scram_deletion(
    image: &MetadataImage,
    d: &ScramCredentialDeletion,
) -> Result<MetadataRecord, ControllerError> {
    check_scram_user_and_mechanism(&d.name, d.mechanism)?;
    if image.scram().credential(&d.name, d.mechanism).is_none() {
        return Err(ControllerError::ResourceNotFound(
            "Attempt to delete a user credential that does not exist",
        ));
    }
    Ok(MetadataRecord::RemoveUserScramCredential(
        RemoveUserScramCredentialRecord {
            name: d.name.clone(),
            mechanism: d.mechanism,
        },
    ))
}

/// AlterUserScramCredentials (KIP-554), as Kafka's `ScramControlManager.alterCredentials`
/// decides it: each user at most once per request (a second alteration of the same user,
/// whatever its mechanism, makes that user DUPLICATE_RESOURCE and drops both), an unknown
/// mechanism is UNSUPPORTED_SASL_MECHANISM, an empty name or iterations outside
/// 4096..=16384 UNACCEPTABLE_CREDENTIAL, deleting a credential that does not exist
/// RESOURCE_NOT_FOUND. The records of every accepted user are meant to be committed together.
pub fn alter_user_scram_credentials(
    image: &MetadataImage,
    deletions: &[ScramCredentialDeletion],
    upsertions: &[ScramCredentialUpsertion],
) -> ScramAlteration {
    use std::collections::BTreeMap;
    // Users in the order they first appear, each with its record or its error.
    let mut order: Vec<String> = Vec::new();
    let mut decided: BTreeMap<String, Result<MetadataRecord, ControllerError>> = BTreeMap::new();
    let mut decide =
        |name: &str, decision: &dyn Fn() -> Result<MetadataRecord, ControllerError>| {
            match decided.get_mut(name) {
                // A user already refused stays refused with its first error.
                Some(Err(_)) => {}
                Some(slot) => {
                    *slot = Err(ControllerError::DuplicateResource(DUPLICATE_SCRAM_USER));
                }
                None => {
                    order.push(name.to_string());
                    decided.insert(name.to_string(), decision());
                }
            }
        };
    for d in deletions {
        decide(&d.name, &|| scram_deletion(image, d));
    }
    for u in upsertions {
        decide(&u.name, &|| scram_upsertion(u));
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(order.len());
    for name in order {
        let outcome = decided
            .remove(&name)
            .expect("every user in the order was decided");
        results.push((name, outcome.map(|record| records.push(record))));
    }
    ScramAlteration { records, results }
}

/// Kafka's limit on the records one CreateAcls or DeleteAcls may propose
/// (`QuorumController.MAX_RECORDS_PER_USER_OP`).
pub const MAX_ACL_RECORDS_PER_REQUEST: usize = 10_000;

/// What CreateAcls decides: the records to propose together, and one outcome per ACL asked
/// for, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclCreation {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<Result<(), ControllerError>>,
}

/// CreateAcls, as Kafka's `AclControlManager.createAcls`: each valid ACL gets a record with a
/// fresh id from `new_id`, unless an identical ACL exists (in the image or earlier in the
/// request), which succeeds without a record.
pub fn create_acls(
    image: &MetadataImage,
    acls: &[StandardAcl],
    new_id: &mut dyn FnMut() -> uuid::Uuid,
) -> AclCreation {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(acls.len());
    let mut created: Vec<&StandardAcl> = Vec::new();
    for acl in acls {
        if let Err(reason) = crate::acl::validate_new_acl(acl) {
            results.push(Err(ControllerError::InvalidAcl(reason)));
            continue;
        }
        if records.len() >= MAX_ACL_RECORDS_PER_REQUEST {
            results.push(Err(ControllerError::InvalidAcl(format!(
                "Cannot create more than {MAX_ACL_RECORDS_PER_REQUEST} ACLs in a single request"
            ))));
            continue;
        }
        if !image.acls().contains(acl) && !created.contains(&acl) {
            let id = loop {
                let id = new_id();
                let taken = id.is_nil()
                    || image.acls().contains_id(&id)
                    || records
                        .iter()
                        .any(|r| matches!(r, MetadataRecord::AccessControlEntry(e) if e.id == id));
                if !taken {
                    break id;
                }
            };
            records.push(MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id,
                    acl: acl.clone(),
                },
            ));
            created.push(acl);
        }
        results.push(Ok(()));
    }
    AclCreation { records, results }
}

/// What DeleteAcls decides: the records to propose together, and per filter either the ACLs
/// it matched (and deletes) or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDeletion {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<Result<Vec<StandardAcl>, ControllerError>>,
}

/// DeleteAcls, as Kafka's `AclControlManager.deleteAcls`: every ACL a filter matches is
/// removed (an ACL two filters match is removed once, and reported by both); a filter with an
/// UNKNOWN field is refused; more than [`MAX_ACL_RECORDS_PER_REQUEST`] removals refuse the
/// filter that passes the limit.
pub fn delete_acls(image: &MetadataImage, filters: &[AclBindingFilter]) -> AclDeletion {
    let mut removed: BTreeSet<uuid::Uuid> = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in filters {
        if filter.is_unknown() {
            results.push(Err(ControllerError::InvalidAcl(
                "Unknown patternFilter or entryFilter.".to_string(),
            )));
            continue;
        }
        let matched = image.acls().matching(filter);
        let fresh: Vec<uuid::Uuid> = matched
            .iter()
            .map(|(id, _)| **id)
            .filter(|id| !removed.contains(id))
            .collect();
        if removed.len() + fresh.len() > MAX_ACL_RECORDS_PER_REQUEST {
            results.push(Err(ControllerError::InvalidAcl(format!(
                "Cannot remove more than {MAX_ACL_RECORDS_PER_REQUEST} acls in a single delete operation."
            ))));
            continue;
        }
        removed.extend(fresh);
        results.push(Ok(matched
            .into_iter()
            .map(|(_, acl)| acl.clone())
            .collect()));
    }
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id }))
        .collect();
    AclDeletion { records, results }
}

/// The records that grow `topic` to `total_partitions` partitions (CreatePartitions), with the
/// replication factor of its existing partitions.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    total_partitions: i32,
    placement_seed: u64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    create_partitions_on(image, topic, total_partitions, None, placement_seed)
}

/// [`create_partitions`] with, optionally, the replicas of each new partition given
/// (CreatePartitions' `assignments`): one list per new partition, each with the topic's
/// replication factor, checked like a new topic's assignment (INVALID_REPLICA_ASSIGNMENT).
pub fn create_partitions_on(
    image: &MetadataImage,
    topic: &str,
    total_partitions: i32,
    assignments: Option<&[Vec<BrokerId>]>,
    placement_seed: u64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topics()
        .topic_by_name(topic)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let current = i32::try_from(topic.partition_count()).unwrap_or(i32::MAX);
    if total_partitions <= current {
        return Err(ControllerError::InvalidPartitions(total_partitions));
    }
    let replication_factor = topic.partitions().next().map_or(1, |(_, p)| {
        i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)
    });
    if let Some(given) = assignments {
        if i64::try_from(given.len()).unwrap_or(i64::MAX)
            != i64::from(total_partitions) - i64::from(current)
        {
            return Err(ControllerError::InvalidReplicaAssignment(
                "the assignments do not name one replica list per new partition",
            ));
        }
        return given
            .iter()
            .zip(current..)
            .map(|(replicas, partition)| {
                assigned_partition(
                    image,
                    topic.id,
                    partition,
                    replicas,
                    replication_factor as usize,
                )
            })
            .collect();
    }
    let assignments = place(
        image.cluster(),
        PlacementSpec {
            start_partition: current,
            partitions: total_partitions - current,
            replication_factor,
        },
        placement_seed,
    )?;
    Ok(partition_records(image, topic.id, current, assignments).collect())
}

fn partition_records(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    first: i32,
    assignments: Vec<Vec<BrokerId>>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    assignments
        .into_iter()
        .zip(first..)
        .map(move |(replicas, partition_id)| {
            MetadataRecord::Partition(PartitionRecord {
                directories: default_directories(image, &replicas),
                topic_id,
                partition_id,
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            })
        })
}

fn validate_config(name: &str, value: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidConfig {
            name: name.to_string(),
            reason: "empty name",
        });
    }
    if name.len() > MAX_STRING_LEN || value.len() > MAX_STRING_LEN {
        return Err(ControllerError::InvalidConfig {
            name: name.chars().take(64).collect(),
            reason: "longer than 32767 bytes",
        });
    }
    if (name == UNCLEAN_LEADER_ELECTION_ENABLE || name == TRANSACTION_PARTITION_VERIFICATION_ENABLE)
        && parse_bool(value).is_none()
    {
        return Err(ControllerError::InvalidConfig {
            name: name.to_string(),
            reason: "must be true or false",
        });
    }
    Ok(())
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The record that deletes the topic named `name`, with its partitions and configs.
pub fn delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topics()
        .topic_by_name(name)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    Ok(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
        topic_id: topic.id,
    })])
}

/// Whether `topic` allows unclean leader election: its override, else the cluster-wide
/// dynamic broker config, else the default.
pub fn unclean_election_enabled(
    image: &MetadataImage,
    topic: &str,
    defaults: &ControllerDefaults,
) -> bool {
    let configs = image.configs();
    configs
        .topic_config(topic, UNCLEAN_LEADER_ELECTION_ENABLE)
        .or_else(|| configs.broker_config("", UNCLEAN_LEADER_ELECTION_ENABLE))
        .and_then(parse_bool)
        .unwrap_or(defaults.unclean_leader_election_enable)
}

/// Whether eligible leader replicas (KIP-966) are on: `eligible.leader.replicas.version` 1,
/// which a new cluster finalizes as Kafka 4.4 formats one.
pub fn elr_enabled(image: &MetadataImage) -> bool {
    image.feature_level(ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE) >= Some(1)
}

/// `topic`'s `min.insync.replicas`: its override, else the cluster-wide dynamic broker config,
/// else the static default (Kafka's `getTopicEffectiveMinIsr` before the cap).
pub fn topic_min_isr(image: &MetadataImage, topic: &str, defaults: &ControllerDefaults) -> usize {
    let configs = image.configs();
    configs
        .topic_config(topic, MIN_INSYNC_REPLICAS)
        .or_else(|| configs.broker_config("", MIN_INSYNC_REPLICAS))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(defaults.min_insync_replicas)
        .max(1) as usize
}

/// What a [`PartitionChangeBuilder`] of `topic`'s partition `reg` is given for KIP-966: the
/// effective min ISR (capped at the replication factor) when ELR is on, else `None`.
pub fn elr_min_isr(
    image: &MetadataImage,
    topic: &str,
    reg: &PartitionRegistration,
    defaults: &ControllerDefaults,
) -> Option<usize> {
    // Capped at the replica count, reassignment's added replicas included (Kafka caps at
    // the replication factor; the broker's `effective_min_isr` counts the same replicas).
    elr_enabled(image).then(|| topic_min_isr(image, topic, defaults).min(reg.replicas.len().max(1)))
}

fn online_election(image: &MetadataImage, topic: &str, defaults: &ControllerDefaults) -> Election {
    if unclean_election_enabled(image, topic, defaults) {
        Election::Unclean
    } else {
        Election::Online
    }
}

/// `broker`'s registration, or BROKER_ID_NOT_REGISTERED.
fn registration(
    image: &MetadataImage,
    broker: BrokerId,
) -> Result<&crate::image::BrokerRegistration, ControllerError> {
    image
        .cluster()
        .broker(broker)
        .ok_or(ControllerError::BrokerNotRegistered(broker))
}

/// `broker`'s registration in `broker_epoch`: BROKER_ID_NOT_REGISTERED, or STALE_BROKER_EPOCH
/// for another epoch.
fn registration_in_epoch(
    image: &MetadataImage,
    broker: BrokerId,
    broker_epoch: i64,
) -> Result<&crate::image::BrokerRegistration, ControllerError> {
    let registration = registration(image, broker)?;
    if registration.epoch != broker_epoch {
        return Err(ControllerError::StaleBrokerEpoch {
            broker_id: broker,
            broker_epoch,
            current_epoch: registration.epoch,
        });
    }
    Ok(registration)
}

/// The records that fence `broker` (its session expired): the fence itself, then for every
/// partition whose ISR holds it, the change that takes it out of the ISR and, where it led,
/// elects a new leader from the rest of the ISR (or, if the topic allows it and no ISR member
/// is left, an unclean one). A broker that was the last ISR member stays in the ISR, leaderless,
/// so it can lead again cleanly when it comes back. Empty if the broker is already fenced.
pub fn fence_broker(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    fence_broker_avoiding(image, broker, defaults, &OfflineReplicas::default())
}

/// [`fence_broker`], electing no replica that `offline` names (its log directory failed).
pub fn fence_broker_avoiding(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let registration = registration(image, broker)?;
    if registration.fenced {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::FenceBroker(FenceBrokerRecord {
        broker_id: broker,
        broker_epoch: registration.epoch,
    })];
    leave_partitions(image, broker, false, defaults, offline, &mut records);
    Ok(records)
}

/// The records that remove `broker`'s registration (UnregisterBroker, `kafka-cluster.sh
/// unregister`; Kafka's `ReplicationControlManager.unregisterBroker`): it leaves every ISR as a
/// fenced broker does (new leaders where it led), then its `UnregisterBrokerRecord`. It stays a
/// replica of its partitions (offline) until they are reassigned. BROKER_ID_NOT_REGISTERED
/// ("Broker ID 9 is not currently registered") when there is no registration.
pub fn unregister_broker(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    unregister_broker_avoiding(image, broker, defaults, &OfflineReplicas::default())
}

/// [`unregister_broker`], electing no replica that `offline` names (its log directory failed).
pub fn unregister_broker_avoiding(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let registration = registration(image, broker)?;
    let mut records = Vec::new();
    // A broker that is gone leaves the ELR too: it cannot lead, and an ELR naming it would
    // keep its partitions from their last known leader.
    leave_partitions(image, broker, true, defaults, offline, &mut records);
    records.push(MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
        broker_id: broker,
        broker_epoch: registration.epoch,
    }));
    Ok(records)
}

/// Replicas whose log directory failed on their broker, as each broker last reported them in
/// its heartbeat (Kafka's offline replicas: before KIP-858 the broker told the controller which
/// replicas a failed directory held, and the controller kept them in memory, as here). Such a
/// replica may not lead: the controller's elections skip it. Kept by the active controller for
/// its term only; every heartbeat of the broker reports them again, and a new registration (a
/// restart, its directories open again) clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineReplicas {
    by_broker: BTreeMap<BrokerId, BTreeSet<TopicIdPartition>>,
}

impl OfflineReplicas {
    /// Whether `broker` reported its replica of `tp` offline.
    pub fn contains(&self, broker: BrokerId, tp: TopicIdPartition) -> bool {
        self.by_broker.get(&broker).is_some_and(|s| s.contains(&tp))
    }

    /// `broker`'s offline replicas, as its latest heartbeat reported them (none forgets it).
    pub fn set(&mut self, broker: BrokerId, replicas: BTreeSet<TopicIdPartition>) {
        if replicas.is_empty() {
            self.by_broker.remove(&broker);
        } else {
            self.by_broker.insert(broker, replicas);
        }
    }

    /// `broker` registered again (or left): what it reported belonged to its last process.
    pub fn forget(&mut self, broker: BrokerId) {
        self.by_broker.remove(&broker);
    }

    /// `broker`'s offline replicas.
    pub fn of(&self, broker: BrokerId) -> impl Iterator<Item = TopicIdPartition> + '_ {
        self.by_broker.get(&broker).into_iter().flatten().copied()
    }

    /// Whether `broker`'s replica of `tp` may not lead: reported offline here, or (KIP-858)
    /// assigned in `image` to a log directory its broker does not have online.
    pub fn is_offline(
        &self,
        image: &MetadataImage,
        broker: BrokerId,
        tp: TopicIdPartition,
    ) -> bool {
        self.contains(broker, tp) || image.replica_dir_offline(broker, tp)
    }
}

/// The first `metadata.version` level with directory assignment (3.7-IV2, KIP-858).
pub const DIRECTORY_ASSIGNMENT_METADATA_VERSION: i16 = 17;

/// Whether the cluster's `metadata.version` records log directories (KIP-858).
pub fn directory_assignment(image: &MetadataImage) -> bool {
    image
        .feature_level(crate::records::METADATA_VERSION_FEATURE)
        .is_none_or(|level| level >= DIRECTORY_ASSIGNMENT_METADATA_VERSION)
}

/// The directories new replicas on `replicas` start in: a broker's only online log directory
/// (Kafka's `defaultDir`); a broker with several places the replica itself and says where
/// ([`assign_replicas_to_dirs`]).
fn default_directories(image: &MetadataImage, replicas: &[BrokerId]) -> Vec<ReplicaDirectory> {
    if !directory_assignment(image) {
        return Vec::new();
    }
    replicas
        .iter()
        .filter_map(|&broker| {
            let directory = image.cluster().broker(broker)?.default_dir()?;
            Some(ReplicaDirectory { broker, directory })
        })
        .collect()
}

/// One replica's directory as its broker reports it (KIP-858's AssignReplicasToDirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAssignment {
    pub tp: TopicIdPartition,
    pub directory: uuid::Uuid,
}

/// KIP-858's AssignReplicasToDirs (Kafka's `handleAssignReplicasToDirs`): `broker` says which
/// of its log directories holds each replica. Returns the records and, per assignment, `None`
/// or its error: UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER (the
/// broker holds no replica of it). A replica assigned to a directory the broker does not have
/// online also leaves its ISR and leadership, as in a failed directory. The whole request
/// fails for a broker that is not registered, a stale broker epoch, or a `metadata.version`
/// below 3.7-IV2.
pub fn assign_replicas_to_dirs(
    image: &MetadataImage,
    broker: BrokerId,
    broker_epoch: i64,
    assignments: &[ReplicaAssignment],
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<(Vec<MetadataRecord>, Vec<Option<ControllerError>>), ControllerError> {
    if !directory_assignment(image) {
        return Err(ControllerError::UnsupportedVersion(
            "directory assignment needs metadata.version 3.7-IV2 or later",
        ));
    }
    let registration = registration_in_epoch(image, broker, broker_epoch)?;
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(assignments.len());
    let mut went_offline = Vec::new();
    for a in assignments {
        let Some(topic) = image.topics().topic(a.tp.topic_id) else {
            results.push(Some(ControllerError::UnknownTopicId(a.tp.topic_id)));
            continue;
        };
        let Some(reg) = topic.partition(a.tp.partition) else {
            results.push(Some(ControllerError::UnknownPartition(a.tp)));
            continue;
        };
        if !reg.is_replica(broker) {
            results.push(Some(ControllerError::NotReplica(a.tp)));
            continue;
        }
        results.push(None);
        if reg.directory(broker) == Some(a.directory) {
            continue;
        }
        records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: a.tp.topic_id,
            partition_id: a.tp.partition,
            leader: None,
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
            directories: Some(vec![ReplicaDirectory {
                broker,
                directory: a.directory,
            }]),
        }));
        if !registration.has_online_dir(a.directory) {
            went_offline.push(a.tp);
        }
    }
    records.extend(newly_offline(
        image,
        broker,
        went_offline,
        offline,
        defaults,
    ));
    Ok((records, results))
}

/// The records for `broker`'s heartbeat naming `offline_dirs`, its failed log directories
/// (Kafka's `handleDirectoriesOffline`): for directories it had online, its registration keeps
/// only the others (so the metadata remembers, across controller failovers, which replicas may
/// not lead) and the replicas assigned to them leave their ISRs and leaderships. Nothing when
/// they are known offline already.
pub fn take_dirs_offline(
    image: &MetadataImage,
    broker: BrokerId,
    offline_dirs: &[uuid::Uuid],
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let registration = registration(image, broker)?;
    let newly: BTreeSet<uuid::Uuid> = offline_dirs
        .iter()
        .copied()
        .filter(|d| registration.log_dirs.contains(d))
        .collect();
    if newly.is_empty() || !directory_assignment(image) {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::BrokerRegistrationChange(
        BrokerRegistrationChangeRecord {
            broker_id: broker,
            broker_epoch: registration.epoch,
            cordoned: registration.cordoned,
            log_dirs: Some({
                let online: Vec<uuid::Uuid> = registration
                    .log_dirs
                    .iter()
                    .copied()
                    .filter(|d| !newly.contains(d))
                    .collect();
                // None left (the broker stops then): an empty list would mean "unknown, all
                // online", so the registration keeps Kafka's reserved LOST id instead.
                if online.is_empty() {
                    vec![crate::image::DIRECTORY_LOST]
                } else {
                    online
                }
            }),
        },
    )];
    let mut tps = Vec::new();
    for topic in image.topics().topics() {
        for (partition, reg) in topic.partitions() {
            if reg.directory(broker).is_some_and(|d| newly.contains(&d)) {
                tps.push(TopicIdPartition {
                    topic_id: topic.id,
                    partition,
                });
            }
        }
    }
    records.extend(newly_offline(image, broker, tps, offline, defaults));
    Ok(records)
}

/// The records that take `broker`'s replicas `tps`, just found offline, out of their ISRs,
/// with them counted offline beside `offline` in the elections this makes.
fn newly_offline(
    image: &MetadataImage,
    broker: BrokerId,
    tps: Vec<TopicIdPartition>,
    offline: &OfflineReplicas,
    defaults: &ControllerDefaults,
) -> Vec<MetadataRecord> {
    let mut also_offline = offline.clone();
    let mut reported: BTreeSet<TopicIdPartition> = offline.of(broker).collect();
    reported.extend(tps.iter().copied());
    also_offline.set(broker, reported);
    replicas_offline(image, broker, tps.into_iter(), &also_offline, defaults)
}

/// The first `metadata.version` level with cordoned log directories (4.3-IV0, KIP-1066).
pub const CORDONED_LOG_DIRS_METADATA_VERSION: i16 = 30;

/// Kafka's `isCordonedLogDirsSupported`: below `metadata.version` 4.3-IV0 cordoning has no
/// effect (no registration says it, DescribeLogDirs says no directory is).
pub fn cordoned_log_dirs_supported(image: &MetadataImage) -> bool {
    image
        .feature_level(crate::records::METADATA_VERSION_FEATURE)
        .is_none_or(|level| level >= CORDONED_LOG_DIRS_METADATA_VERSION)
}

/// The record that marks `broker` cordoned, every one of its log directories in its
/// `cordoned.log.dirs`, or not (KIP-1066: its heartbeat says so once it has caught up), so that
/// placement keeps new replicas off it; `None` when the registration already says so.
pub fn set_broker_cordoned(
    image: &MetadataImage,
    broker: BrokerId,
    cordoned: bool,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let registration = registration(image, broker)?;
    Ok(
        (cordoned_log_dirs_supported(image) && registration.cordoned != cordoned).then_some(
            MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                log_dirs: None,
                broker_id: broker,
                broker_epoch: registration.epoch,
                cordoned,
            }),
        ),
    )
}

/// The records that take `broker`'s offline replicas (`offline.of(broker)`: their log directory
/// failed) out of their partitions' ISRs and ELRs, electing a new leader where it led (Kafka's
/// `handleDirectoriesOffline`, and its ZooKeeper-era `OfflineReplica` state). The broker stays
/// registered and unfenced, and goes on leading and following the partitions in its other
/// directories. As with a fenced broker, a last ISR member stays in the ISR, leaderless (unless
/// the topic allows an unclean election): it holds the partition's data, and leads again once
/// it is back with the directory readable. Replicas the image does not know, or that are in no
/// ISR or ELR any more, need no record; an unregistered broker is BROKER_ID_NOT_REGISTERED.
pub fn take_replicas_offline(
    image: &MetadataImage,
    broker: BrokerId,
    offline: &OfflineReplicas,
    defaults: &ControllerDefaults,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    registration(image, broker)?;
    Ok(replicas_offline(
        image,
        broker,
        offline.of(broker),
        offline,
        defaults,
    ))
}

/// [`take_replicas_offline`] for the replicas `tps` of `broker`.
fn replicas_offline(
    image: &MetadataImage,
    broker: BrokerId,
    tps: impl Iterator<Item = TopicIdPartition>,
    offline: &OfflineReplicas,
    defaults: &ControllerDefaults,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for tp in tps {
        let Some(topic) = image.topics().topic(tp.topic_id) else {
            continue;
        };
        let Some(reg) = topic.partition(tp.partition) else {
            continue;
        };
        if !reg.is_in_isr(broker) && !reg.elr.contains(&broker) && reg.leader != broker {
            continue;
        }
        let acceptable = |b: BrokerId| {
            b != broker && image.cluster().is_unfenced(b) && !offline.is_offline(image, b, tp)
        };
        let isr = reg.isr.iter().copied().filter(|&b| b != broker).collect();
        let (_, change) = PartitionChangeBuilder::new(reg, tp.topic_id, tp.partition, &acceptable)
            .set_election(online_election(image, &topic.name, defaults))
            .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
            // What it holds cannot be read: it is no eligible leader either.
            .set_unclean_shutdown_replicas(vec![broker])
            .set_target_isr(isr)
            .build();
        records.extend(change.map(MetadataRecord::PartitionChange));
    }
    records
}

/// For every partition whose ISR holds `broker` (and, when `unclean`, whose ELR does): the
/// change that takes it out of the ISR and, where it led, elects a new leader. With ELR
/// (KIP-966) an ISR left below min ISR keeps the ones leaving as eligible leaders and may
/// become empty; a broker back from an unclean shutdown (`unclean`) also leaves the ELR,
/// Kafka's `handleBrokerShutdown` for an unclean restart. Without ELR a last ISR member
/// stays, leaderless. No replica `offline` names is elected.
fn leave_partitions(
    image: &MetadataImage,
    broker: BrokerId,
    unclean: bool,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
    records: &mut Vec<MetadataRecord>,
) {
    for topic in image.topics().topics() {
        let election = online_election(image, &topic.name, defaults);
        for (partition, reg) in topic.partitions() {
            let tp = TopicIdPartition {
                topic_id: topic.id,
                partition,
            };
            let acceptable = |b: BrokerId| {
                b != broker && image.cluster().is_unfenced(b) && !offline.is_offline(image, b, tp)
            };
            let in_elr = unclean && reg.elr.contains(&broker);
            if !reg.is_in_isr(broker) && !in_elr {
                continue;
            }
            let isr = reg.isr.iter().copied().filter(|&b| b != broker).collect();
            let mut builder = PartitionChangeBuilder::new(reg, topic.id, partition, &acceptable)
                .set_election(election)
                .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
                .set_target_isr(isr);
            if unclean {
                builder = builder.set_unclean_shutdown_replicas(vec![broker]);
            }
            let (_, change) = builder.build();
            records.extend(change.map(MetadataRecord::PartitionChange));
        }
    }
}

/// KIP-966's follow-ups to `records`, about to be committed on `image`:
/// - `min.insync.replicas` changed for a topic (its override, or the cluster-wide default it
///   follows): a partition that has a leader forgets its ELR and last known leader, which may
///   not hold what a lower min ISR lets the leader commit (Kafka clears them too); a
///   leaderless one keeps them (nothing is committed without a leader);
/// - `eligible.leader.replicas.version` set to 0: every partition forgets them, and one whose
///   ISR is empty takes its ELR (or, without one, its last known leader) as its ISR, who lead
///   again when they are back, as before ELR.
pub fn elr_follow_ups(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<MetadataRecord> {
    let mut topics = BTreeSet::new();
    let (mut cluster_default, mut disabled) = (false, false);
    for r in records {
        match r {
            MetadataRecord::Config(c) if c.name == MIN_INSYNC_REPLICAS => match &c.resource {
                ConfigResource::Topic(t) => {
                    topics.insert(t.as_str());
                }
                ConfigResource::Broker(b) if b.is_empty() => cluster_default = true,
                _ => {}
            },
            MetadataRecord::FeatureLevel(f)
                if f.name == ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE && f.feature_level == 0 =>
            {
                disabled = true
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if topics.is_empty() && !cluster_default && !disabled {
        return out;
    }
    for topic in image.topics().topics() {
        let follows_default = cluster_default
            && image
                .configs()
                .topic_config(&topic.name, MIN_INSYNC_REPLICAS)
                .is_none();
        if !disabled && !topics.contains(topic.name.as_str()) && !follows_default {
            continue;
        }
        for (partition, reg) in topic.partitions() {
            if reg.elr.is_empty() && reg.last_known_elr.is_empty() {
                continue;
            }
            if !disabled && !reg.has_leader() {
                continue;
            }
            let isr = if disabled && reg.isr.is_empty() {
                let back = if reg.elr.is_empty() {
                    &reg.last_known_elr
                } else {
                    &reg.elr
                };
                Some(back.clone())
            } else {
                None
            };
            let cleared = |v: &Vec<BrokerId>| (!v.is_empty()).then(Vec::new);
            out.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                directories: None,
                topic_id: topic.id,
                partition_id: partition,
                leader: None,
                isr,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                eligible_leader_replicas: cleared(&reg.elr),
                last_known_elr: cleared(&reg.last_known_elr),
            }));
        }
    }
    out
}

/// The records that unfence `broker` (registered and caught up): the unfence itself, then a
/// leader for every leaderless partition it is a replica of, if one can be elected now.
/// Empty if the broker is not fenced.
pub fn unfence_broker(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    unfence_broker_avoiding(image, broker, defaults, &OfflineReplicas::default())
}

/// [`unfence_broker`], electing no replica that `offline` names (its log directory failed).
pub fn unfence_broker_avoiding(
    image: &MetadataImage,
    broker: BrokerId,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let registration = registration(image, broker)?;
    if !registration.fenced {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
        broker_id: broker,
        broker_epoch: registration.epoch,
    })];
    for topic in image.topics().topics() {
        let election = online_election(image, &topic.name, defaults);
        for (partition, reg) in topic.partitions() {
            if reg.has_leader() || !reg.is_replica(broker) {
                continue;
            }
            let tp = TopicIdPartition {
                topic_id: topic.id,
                partition,
            };
            let acceptable = |b: BrokerId| {
                (b == broker || image.cluster().is_unfenced(b)) && !offline.is_offline(image, b, tp)
            };
            let (_, change) = PartitionChangeBuilder::new(reg, topic.id, partition, &acceptable)
                .set_election(election)
                .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
                .build();
            records.extend(change.map(MetadataRecord::PartitionChange));
        }
    }
    Ok(records)
}

/// The record of an ElectLeaders request for one partition (`Preferred` or `Unclean`; an
/// `Online` election is what fencing does). Kafka's answers: `ElectionNotNeeded` if the leader
/// is already the preferred one (preferred) or the partition has a leader (unclean),
/// `PreferredLeaderNotAvailable` / `EligibleLeadersNotAvailable` if no such leader can be
/// chosen now.
pub fn elect_leader(
    image: &MetadataImage,
    tp: TopicIdPartition,
    election: Election,
    defaults: &ControllerDefaults,
) -> Result<MetadataRecord, ControllerError> {
    elect_leader_avoiding(image, tp, election, defaults, &OfflineReplicas::default())
}

/// [`elect_leader`], electing no replica that `offline` names (its log directory failed).
pub fn elect_leader_avoiding(
    image: &MetadataImage,
    tp: TopicIdPartition,
    election: Election,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<MetadataRecord, ControllerError> {
    let topic = image
        .topics()
        .topic(tp.topic_id)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let reg: &PartitionRegistration = topic
        .partition(tp.partition)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let not_possible = match election {
        Election::Preferred => ControllerError::PreferredLeaderNotAvailable,
        Election::Online | Election::Unclean => ControllerError::EligibleLeadersNotAvailable,
    };
    match election {
        Election::Preferred if Some(reg.leader) == reg.preferred_leader() => {
            return Err(ControllerError::ElectionNotNeeded)
        }
        Election::Online | Election::Unclean if reg.has_leader() => {
            return Err(ControllerError::ElectionNotNeeded)
        }
        _ => {}
    }
    let acceptable =
        |b: BrokerId| image.cluster().is_unfenced(b) && !offline.is_offline(image, b, tp);
    let (result, change) = PartitionChangeBuilder::new(reg, tp.topic_id, tp.partition, &acceptable)
        .set_election(election)
        .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
        .build();
    match (result, change) {
        (ElectionResult::Clean(b), Some(change))
        | (ElectionResult::Unclean(b), Some(change))
        | (ElectionResult::LastKnownLeader(b), Some(change))
            if election != Election::Preferred || Some(b) == reg.preferred_leader() =>
        {
            Ok(MetadataRecord::PartitionChange(change))
        }
        _ => Err(not_possible),
    }
}

/// A BrokerRegistration request, with the epoch the controller runtime assigned to it (Kafka
/// uses the offset of the registration record, which only grows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub broker_id: BrokerId,
    pub incarnation_id: uuid::Uuid,
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Whether the broker proved its last shutdown clean (Kafka's `previousBrokerEpoch`: the
    /// epoch its clean-shutdown file holds is the one the controller last registered it with).
    pub clean_shutdown: bool,
    /// KIP-858: the ids of its online log directories (empty from older brokers).
    pub log_dirs: Vec<uuid::Uuid>,
}

/// The records that register a broker. It registers fenced, and is unfenced
/// ([`unfence_broker`]) once it has caught up with the metadata log.
///
/// The same incarnation registering again (a retried request) needs no record. A new
/// incarnation (the process restarted) replaces the old registration; if the old one was still
/// unfenced it is fenced first, so its leaderships move and it leaves the ISRs before the new
/// process, whose log may be behind, is known. Refusing a second live process with the same id
/// (Kafka's DUPLICATE_BROKER_REGISTRATION) needs session timing, so the runtime decides that
/// before calling this.
pub fn register_broker(
    image: &MetadataImage,
    req: &RegisterBroker,
    defaults: &ControllerDefaults,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    register_broker_avoiding(image, req, defaults, &OfflineReplicas::default())
}

/// [`register_broker`], electing no replica that `offline` names (its log directory failed)
/// where the old incarnation's leaderships move.
pub fn register_broker_avoiding(
    image: &MetadataImage,
    req: &RegisterBroker,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if req.broker_id < 0 {
        return Err(ControllerError::InvalidRequest("negative broker id"));
    }
    let too_long = |s: &str| s.len() > MAX_STRING_LEN;
    if req
        .endpoints
        .iter()
        .any(|e| too_long(&e.name) || too_long(&e.host))
        || req.rack.as_deref().is_some_and(too_long)
    {
        return Err(ControllerError::InvalidRequest(
            "listener name, host or rack longer than 32767 bytes",
        ));
    }
    // KIP-966: a broker back from an unclean shutdown may have lost what it had (under a
    // flush policy that does not fsync every write): it leaves every ELR and ISR it is in
    // (Kafka's `handleBrokerShutdown` with `isCleanShutdown` false). A clean one, or any
    // without ELR, leaves the ISRs as a fenced broker does.
    let unclean = !req.clean_shutdown && elr_enabled(image);
    let mut records = Vec::new();
    if let Some(current) = image.cluster().broker(req.broker_id) {
        if current.incarnation_id == req.incarnation_id {
            return Ok(records);
        }
        if req.broker_epoch <= current.epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: req.broker_id,
                broker_epoch: req.broker_epoch,
                current_epoch: current.epoch,
            });
        }
        if !unclean {
            records = fence_broker_avoiding(image, req.broker_id, defaults, offline)?;
        } else if !current.fenced {
            records.push(MetadataRecord::FenceBroker(FenceBrokerRecord {
                broker_id: req.broker_id,
                broker_epoch: current.epoch,
            }));
        }
    }
    if unclean {
        // One change per partition, from the image before the fence: out of the ISR (new
        // leaders where it led) and out of the ELR at once.
        leave_partitions(image, req.broker_id, true, defaults, offline, &mut records);
    }
    records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: req.broker_id,
        incarnation_id: req.incarnation_id,
        broker_epoch: req.broker_epoch,
        endpoints: req.endpoints.clone(),
        rack: req.rack.clone(),
        fenced: true,
        log_dirs: if directory_assignment(image) {
            req.log_dirs.clone()
        } else {
            Vec::new()
        },
    }));
    Ok(records)
}

/// An AlterPartition entry: the leader asks to change its partition's ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub tp: TopicIdPartition,
    /// The broker sending the request.
    pub leader_id: BrokerId,
    /// The leader epoch and partition epoch the leader last saw.
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
    /// The members' broker epochs as the leader saw them in their fetches, in `new_isr`'s
    /// order (KIP-903); -1 (or a missing entry) where unknown.
    pub new_isr_broker_epochs: Vec<i64>,
}

/// The record for an ISR change the leader asks for (Kafka's AlterPartition, without
/// reassignment or leader recovery). Checks, in Kafka's order: the sender leads the partition,
/// in the same leader epoch, from the same partition epoch (so two changes computed from one
/// state cannot both apply); the new ISR holds the leader and only distinct replicas; every
/// member is registered and unfenced, and (KIP-903) a member whose broker epoch the leader sent
/// is still registered with that epoch: a replica that restarted since the leader judged it
/// caught up (a new incarnation, perhaps with an empty log) is INELIGIBLE_REPLICA. `Ok(None)`: the ISR is already that, nothing to append.
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartition,
    defaults: &ControllerDefaults,
) -> Result<Option<MetadataRecord>, ControllerError> {
    alter_partition_avoiding(image, req, defaults, &OfflineReplicas::default())
}

/// [`alter_partition`], where a replica that `offline` names (its log directory failed) is
/// INELIGIBLE_REPLICA as a new ISR member, as a fenced one is.
pub fn alter_partition_avoiding(
    image: &MetadataImage,
    req: &AlterPartition,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = image
        .topics()
        .topic(req.tp.topic_id)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let reg = topic
        .partition(req.tp.partition)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    if req.leader_id != reg.leader {
        return Err(ControllerError::NotLeaderOrFollower(req.leader_id));
    }
    if req.leader_epoch != reg.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            request: req.leader_epoch,
            current: reg.leader_epoch,
        });
    }
    if req.partition_epoch != reg.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            request: req.partition_epoch,
            current: reg.partition_epoch,
        });
    }
    if !req.new_isr.contains(&req.leader_id) {
        return Err(ControllerError::InvalidRequest(
            "the new ISR must hold the leader",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, &b) in req.new_isr.iter().enumerate() {
        if !reg.is_replica(b) || !seen.insert(b) {
            return Err(ControllerError::InvalidRequest(
                "the new ISR must hold distinct replicas",
            ));
        }
        if !image.cluster().is_unfenced(b) || offline.is_offline(image, b, req.tp) {
            return Err(ControllerError::IneligibleReplica(b));
        }
        // The leader's own epoch is checked on the whole request (STALE_BROKER_EPOCH).
        let sent_epoch = req.new_isr_broker_epochs.get(i).copied().unwrap_or(-1);
        if b != req.leader_id
            && sent_epoch >= 0
            && image.cluster().broker(b).map(|r| r.epoch) != Some(sent_epoch)
        {
            return Err(ControllerError::IneligibleReplica(b));
        }
    }
    let acceptable =
        |b: BrokerId| image.cluster().is_unfenced(b) && !offline.is_offline(image, b, req.tp);
    let (_, change) =
        PartitionChangeBuilder::new(reg, req.tp.topic_id, req.tp.partition, &acceptable)
            .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
            .set_target_isr(req.new_isr.clone())
            .build();
    Ok(change.map(MetadataRecord::PartitionChange))
}

/// The record that starts, replaces or cancels (`target: None`) the reassignment of one
/// partition (AlterPartitionReassignments). Kafka's steps:
///
/// ```text
/// start:    replicas = target + (original - target), adding = target - original,
///           removing = original - target              (the new replicas fetch and catch up)
/// complete: when every adding replica is in the ISR (an AlterPartition, or at once if none is
///           added): replicas = target, ISR without the removed ones, new leader if the
///           leader was removed, adding = removing = []
/// cancel:   replicas = original, ISR within them, adding = removing = []
/// ```
///
/// `Ok(None)`: the partition already has that assignment. Target brokers must be registered
/// (they may be fenced: they catch up once back).
///
/// A new target for a partition already reassigning starts from its current replicas, as
/// Kafka's KRaft controller does (`PartitionReassignmentReplicas`): a replica the replaced
/// reassignment was adding and the new target drops is *removing* now, so it stays a replica,
/// and in the ISR, until the new reassignment completes; one it was adding and the new target
/// keeps is still adding until it joins the ISR. (Starting again from the original
/// replicas dropped it at once: when it was the whole ISR, the partition lost every replica
/// known to hold its committed records.)
pub fn alter_partition_reassignment(
    image: &MetadataImage,
    tp: TopicIdPartition,
    target: Option<&[BrokerId]>,
    defaults: &ControllerDefaults,
) -> Result<Option<MetadataRecord>, ControllerError> {
    alter_partition_reassignment_avoiding(image, tp, target, defaults, &OfflineReplicas::default())
}

/// [`alter_partition_reassignment`], electing no replica that `offline` names (its log
/// directory failed).
pub fn alter_partition_reassignment_avoiding(
    image: &MetadataImage,
    tp: TopicIdPartition,
    target: Option<&[BrokerId]>,
    defaults: &ControllerDefaults,
    offline: &OfflineReplicas,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = image
        .topics()
        .topic(tp.topic_id)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let reg = topic
        .partition(tp.partition)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let original = reg.original_replicas();
    let (replicas, adding, removing) = match target {
        None => {
            if !reg.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress);
            }
            if !reg.isr.iter().any(|b| original.contains(b)) {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "no original replica is in the ISR, so the reassignment cannot be undone",
                ));
            }
            (original, Vec::new(), Vec::new())
        }
        Some(target) => {
            if target.is_empty() {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "empty replica list",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if !target.iter().all(|b| seen.insert(*b)) {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "duplicate replica",
                ));
            }
            if let Some(b) = target
                .iter()
                .find(|b| image.cluster().broker(**b).is_none())
            {
                return Err(ControllerError::BrokerNotRegistered(*b));
            }
            // KIP-1066: a replica may stay on a cordoned broker, but none is added there.
            if target
                .iter()
                .any(|b| !original.contains(b) && image.cluster().is_cordoned(*b))
            {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "the reassignment adds a replica on a broker whose log directories are all \
                     cordoned",
                ));
            }
            if !reg.is_reassigning() && target == original.as_slice() {
                return Ok(None);
            }
            let current = &reg.replicas;
            // New replicas, and those the replaced reassignment was adding that have not
            // caught up yet (Kafka counts only the first: the second would then complete the
            // reassignment before they hold the data).
            let adding: Vec<BrokerId> = target
                .iter()
                .copied()
                .filter(|b| {
                    !current.contains(b)
                        || (reg.adding_replicas.contains(b) && !reg.isr.contains(b))
                })
                .collect();
            let removing: Vec<BrokerId> = current
                .iter()
                .copied()
                .filter(|b| !target.contains(b))
                .collect();
            let mut replicas = target.to_vec();
            replicas.extend(&removing);
            (replicas, adding, removing)
        }
    };
    let acceptable =
        |b: BrokerId| image.cluster().is_unfenced(b) && !offline.is_offline(image, b, tp);
    let (_, change) = PartitionChangeBuilder::new(reg, tp.topic_id, tp.partition, &acceptable)
        .set_election(online_election(image, &topic.name, defaults))
        .set_eligible_leader_replicas(elr_min_isr(image, &topic.name, reg, defaults))
        .set_target_replicas(replicas, adding, removing)
        .build();
    Ok(change.map(MetadataRecord::PartitionChange))
}

/// A block of producer ids handed to one broker: `[first_producer_id, first_producer_id + size)`
/// (Kafka's `ProducerIdsBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdsBlock {
    pub first_producer_id: i64,
    pub size: i64,
}

/// AllocateProducerIds (KIP-730): the next block of [`PRODUCER_ID_BLOCK_SIZE`] producer ids for
/// `broker`, which must be registered with `broker_epoch` and unfenced, and the record that
/// takes the block for good (Kafka's `ProducerIdControlManager.generateNextProducerId`). Ids
/// come from the committed log's high-water mark, so no two blocks overlap, even across
/// controller failovers and restarts.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker: BrokerId,
    broker_epoch: i64,
) -> Result<(ProducerIdsBlock, MetadataRecord), ControllerError> {
    let registration = registration_in_epoch(image, broker, broker_epoch)?;
    if registration.fenced {
        return Err(ControllerError::BrokerFenced(broker));
    }
    let first_producer_id = image.next_producer_id();
    let next_producer_id = first_producer_id
        .checked_add(PRODUCER_ID_BLOCK_SIZE)
        .ok_or(ControllerError::ProducerIdsExhausted)?;
    Ok((
        ProducerIdsBlock {
            first_producer_id,
            size: PRODUCER_ID_BLOCK_SIZE,
        },
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: broker,
            broker_epoch,
            next_producer_id,
        }),
    ))
}
