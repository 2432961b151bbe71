//! Broker configuration: Kafka's `server.properties` keys, their defaults, and parsing.
//!
//! Sources, later ones winning: built-in defaults (Kafka's), a properties file (`--config`),
//! `--set key=value` pairs, then the CLI's `--data-dir`/`--listen`. Unknown keys are accepted
//! with a warning (as Kafka does); a known key with a bad value is an error naming the key.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use gregor_storage::LogConfig;

/// A configuration problem, reported before the broker starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for config {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A `--set` argument without `=`.
    #[error("expected key=value, got {0:?}")]
    NotKeyValue(String),
    /// A listener gregor cannot serve, or one whose security protocol is unknown.
    #[error("listener {listener}: {reason}")]
    Listener {
        /// The `listeners` (or `advertised.listeners`) entry.
        listener: String,
        /// Why it is refused.
        reason: String,
    },
    /// Settings that do not go together (Kafka's `require` in `KafkaConfig`, its message).
    #[error("requirement failed: {0}")]
    Requirement(String),
    /// An `--add-scram` SPEC that cannot be used (the message never quotes a secret).
    #[error("{origin}: {reason}")]
    AddScram {
        /// Which SPEC: `--add-scram argument 2`, `FILE line 3`.
        origin: String,
        /// Why, in Kafka's words where Kafka has them.
        reason: String,
    },
    /// Properties text Java's `Properties.load` refuses (a malformed `\uXXXX`).
    #[error("{0}")]
    Properties(String),
    /// A config provider that cannot be made or cannot read what a variable names (Kafka's
    /// words).
    #[error("{0}")]
    Provider(String),
    /// The properties file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// The broker keys of tiered storage (KIP-405) that are topics' defaults: `log.local.retention.ms`
/// and `.bytes` (-2: the topic's retention), `log.remote.copy.lag.ms` (0) and `.bytes` (-1).
/// Without tiered storage (gregor has none; a Kafka broker whose
/// `remote.log.storage.system.enable` is false) they are only kept and described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteStorageDefaults {
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    pub copy_lag_ms: i64,
    pub copy_lag_bytes: i64,
}

impl Default for RemoteStorageDefaults {
    fn default() -> Self {
        RemoteStorageDefaults {
            local_retention_ms: -2,
            local_retention_bytes: -2,
            copy_lag_ms: 0,
            copy_lag_bytes: -1,
        }
    }
}

/// The broker keys of share groups' dead-letter queues (KIP-1191, dynamic, cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqSettings {
    /// `errors.deadletterqueue.topic.name.prefix` ("dlq."): the prefix a DLQ topic's name
    /// must have ("": any name).
    pub topic_name_prefix: String,
    /// `errors.deadletterqueue.auto.create.topics.enable` (false): a missing DLQ topic is
    /// created (the broker's defaults, the topic's flag set) when a record is written to it.
    pub auto_create_topics_enable: bool,
}

impl Default for DlqSettings {
    fn default() -> Self {
        DlqSettings {
            topic_name_prefix: "dlq.".into(),
            auto_create_topics_enable: false,
        }
    }
}

/// Kafka's default and greatest `max.decompressed.message.bytes` (the largest array a JVM
/// allocates): no bound of its own.
pub const MAX_DECOMPRESSED_MESSAGE_BYTES: usize = 2_147_483_639;

/// How produce requests relate to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// gregor's default: an acks=all produce is answered only after its records are fsynced
    /// (group commit); acks=0/1 are answered once written to the page cache.
    OnAcksAll,
    /// Kafka's behaviour, chosen by setting `log.flush.interval.messages` or
    /// `log.flush.interval.ms`: no fsync on the produce path, the log is flushed every
    /// `messages` appended records or every `interval_ms`.
    Interval {
        /// Flush after this many records (`i64::MAX` = never by count).
        messages: i64,
        /// Flush when the oldest unflushed data is this old (`i64::MAX` = never by time).
        interval_ms: i64,
    },
}

/// A client listener served beside the primary one ([`BrokerConfig::extra_listeners`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name (`SSL`, `EXTERNAL`, ...): its endpoint's name in the metadata.
    pub name: String,
    /// Where it binds.
    pub addr: SocketAddr,
    /// `advertised.listeners` entry of the same name, if any.
    pub advertised: Option<(String, u16)>,
    /// TLS settings of an SSL or SASL_SSL listener.
    pub tls: Option<crate::tls::TlsSettings>,
    /// SASL settings of a SASL_PLAINTEXT or SASL_SSL listener.
    pub sasl: Option<std::sync::Arc<crate::sasl::SaslSettings>>,
}

/// Everything the broker reads from configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`).
    pub node_id: i32,
    /// `listeners` (first PLAINTEXT listener) or `--listen`.
    pub listen: SocketAddr,
    /// `advertised.listeners`: host and port given to clients in Metadata; defaults to the
    /// bound address.
    pub advertised: Option<(String, u16)>,
    /// `log.dirs` / `log.dir` (first entry) or `--data-dir`: the node's main directory, which
    /// also holds `meta.properties`, the metadata log and the broker's own state.
    pub data_dir: PathBuf,
    /// The other entries of `log.dirs` (Kafka's JBOD): partitions only, each directory with its
    /// own `meta.properties` and checkpoints. Empty with `--data-dir`. With
    /// `metadata_dir_only`, every entry of `log.dirs`.
    pub extra_log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`: where the metadata log lives, when not in the first of `log.dirs`.
    /// [`BrokerConfig::place_metadata_log`] makes it `data_dir`.
    pub metadata_log_dir: Option<PathBuf>,
    /// `data_dir` is a `metadata.log.dir` outside `log.dirs`: it holds `meta.properties` and
    /// the metadata log, no partition ([`BrokerConfig::log_dirs`] leaves it out).
    pub metadata_dir_only: bool,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `cordoned.log.dirs` (KIP-1066): log directories that take no new partition (`*`: all of
    /// them); each must be one of `log.dirs` (checked by [`BrokerConfig::validate`] and for a
    /// dynamic change).
    pub cordoned_log_dirs: Vec<String>,
    /// `leader.replication.throttled.rate` (KIP-73, dynamic): the most bytes per second this
    /// broker sends to followers of its throttled replicas (`leader.replication.throttled.
    /// replicas`) that are not in sync.
    pub leader_replication_throttled_rate: i64,
    /// `follower.replication.throttled.rate` (KIP-73, dynamic): the most bytes per second this
    /// broker fetches for its throttled replicas (`follower.replication.throttled.replicas`)
    /// that are not in sync.
    pub follower_replication_throttled_rate: i64,
    /// `replication.quota.window.num`: samples of the replication quotas' rates (Kafka: 11).
    pub replication_quota_window_num: u32,
    /// `replication.quota.window.size.seconds`: each sample's length (Kafka: 1).
    pub replication_quota_window_size_seconds: u32,
    /// `replica.alter.log.dirs.io.max.bytes.per.second`: the most bytes per second the moves
    /// between log directories copy, together (dynamic, as Kafka's quota).
    pub alter_log_dirs_bytes_per_second: i64,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `message.max.bytes`: largest record batch accepted (per topic: `max.message.bytes`).
    pub message_max_bytes: usize,
    /// `max.decompressed.message.bytes` (Kafka 4.4, dynamic): the largest record a compressed
    /// batch may hold once decompressed (per topic: the same name).
    pub max_decompressed_message_bytes: usize,
    /// The topics' defaults of the tiered storage keys, kept and described as a Kafka broker
    /// without tiered storage keeps them (gregor has none).
    pub remote_storage: RemoteStorageDefaults,
    /// Share groups' dead-letter queues (KIP-1191; `crate::share_dlq`).
    pub dlq: DlqSettings,
    /// `socket.request.max.bytes`: largest request frame.
    pub socket_request_max_bytes: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent producer idle this long.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`: how often the log flusher looks for logs due a flush
    /// under an interval flush policy (`flush.ms`, `flush.messages`). Kafka's default is
    /// Long.MAX_VALUE, which leaves `flush.ms` without effect until it is set; gregor's is
    /// 100 ms, so that `flush.ms` does what it says.
    pub flush_scheduler_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often the recovery points (what the
    /// flushes made durable) are written to their checkpoint file, when they moved. Kafka's
    /// default is 60 s; gregor's is 1 s, because recovery treats a bad batch below the
    /// checkpointed recovery point as corruption to keep, not a torn write to cut: the closer
    /// the checkpoint follows the flushes, the less acknowledged data is left to the torn-write
    /// rule after a crash.
    pub checkpoint_interval_ms: u64,
    /// `log.dir.failure.timeout.ms` (KIP-858; Kafka's default 30 s): a broker that cannot tell
    /// the controller of a failed log directory for this long shuts down, so that the failed
    /// directory's partitions are led elsewhere.
    pub log_dir_failure_timeout_ms: u64,
    /// `num.replica.fetchers` (Kafka's default 1, dynamic): fetcher tasks per leader broker,
    /// each with its own connection and fetch session.
    pub num_replica_fetchers: usize,
    /// `num.recovery.threads.per.data.dir` (Kafka's default 2; dynamic): threads per log
    /// directory that open (and recover) the partitions' logs and apply their leadership, and
    /// that flush them at shutdown.
    pub num_recovery_threads_per_data_dir: usize,
    /// `log.message.timestamp.type` is `LogAppendTime`.
    pub log_append_time: bool,
    /// `log.message.timestamp.before.max.ms` (KIP-937): how far in the past a record's create
    /// time may be.
    pub timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms` (KIP-937): how far in the future a record's create
    /// time may be (Kafka 4's default: an hour).
    pub timestamp_after_max_ms: i64,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `log.cleanup.policy`.
    pub cleanup_policy: String,
    /// `compression.type`: the codec batches are stored in (`producer`: as sent).
    pub compression: gregor_protocol::recompress::TopicCompression,
    /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level` (KIP-390):
    /// the topics' default levels when the broker compresses.
    pub compression_levels: gregor_protocol::record_rewrite::CompressionLevels,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `fetch.max.bytes`: most record bytes one Fetch response carries, whatever the request's
    /// `max_bytes` (the first batch of the first partition with data is sent even if larger).
    pub fetch_max_bytes: usize,
    /// `max.incremental.fetch.session.cache.slots`: most fetch sessions kept (KIP-227).
    pub fetch_session_cache_slots: usize,
    /// `quota.window.num`: samples of the client quotas' rates (Kafka: 11).
    pub quota_window_num: u32,
    /// `quota.window.size.seconds`: the length of one sample (Kafka: 1).
    pub quota_window_size_seconds: u32,
    /// Fsync behaviour (see [`FlushPolicy`]).
    pub flush: FlushPolicy,
    /// Default per-log settings (`log.segment.bytes`, `log.roll.ms`, `log.retention.*`, ...).
    pub log: LogConfig,
    /// `max.connections`: connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Connection limits and timeouts (`max.connections.per.ip*`, `connections.max.idle.ms`,
    /// `socket.request.timeout.ms`, `queued.max.request.bytes`).
    pub net: NetConfig,
    /// `listeners` entries as given, `NAME://host:port` (or a bare `host:port`), checked by
    /// [`BrokerConfig::validate`] against the security-protocol map.
    pub listener_entries: Vec<String>,
    /// `advertised.listeners` entries as given, checked like `listener_entries`.
    pub advertised_entries: Vec<String>,
    /// `listener.security.protocol.map` as (listener name, protocol) pairs, if given.
    pub security_protocol_map: Option<Vec<(String, String)>>,
    /// `controller.listener.names`: with no explicit map these listeners are PLAINTEXT, as in
    /// Kafka.
    pub controller_listener_names: Vec<String>,
    /// The `ssl.*` ([`crate::tls::SSL_KEYS`]) and `sasl.*` ([`is_sasl_key`]) keys given, for
    /// every listener of the matching protocol.
    pub security: BTreeMap<String, String>,
    /// `listener.name.<name>.<key>`: one listener's own `ssl.*` and `sasl.*` keys (name
    /// upper-cased), over the global ones.
    pub listener_security: BTreeMap<String, BTreeMap<String, String>>,
    /// `inter.broker.listener.name` (or the listener `security.inter.broker.protocol` names):
    /// the listener gregor's brokers reach each other on, of any security protocol. Unset: the
    /// first PLAINTEXT client listener.
    pub inter_broker_listener: Option<String>,
    /// `sasl.mechanism.inter.broker.protocol` (Kafka's default, PLAIN): how a broker logs in to
    /// its peers when the inter-broker listener is SASL_PLAINTEXT or SASL_SSL.
    pub inter_broker_sasl_mechanism: String,
    /// `sasl.mechanism.controller.protocol` (Kafka's default, GSSAPI, is not served): how a
    /// node logs in to its peers' controller listener when it is SASL_PLAINTEXT or SASL_SSL.
    pub controller_sasl_mechanism: String,
    /// How this broker dials its peers when they listen with TLS or SASL: set at start from
    /// [`BrokerConfig::inter_broker_tls`] and [`BrokerConfig::inter_broker_sasl`] (`None`:
    /// plain TCP).
    pub inter_broker_security: Option<std::sync::Arc<gregor_client::Security>>,
    /// Group coordinator settings (`group.*`, `offsets.*`, `offset.metadata.max.bytes`).
    pub group: gregor_group::GroupConfig,
    /// Transaction coordinator settings (`transaction.*`, `transactional.id.expiration.ms`).
    pub txn: TxnSettings,
    /// Share coordinator settings (`share.coordinator.*`, KIP-932).
    pub share_coordinator: crate::share_coordinator::ShareCoordinatorSettings,
    /// The log cleaner (`log.cleaner.*`; its topic defaults live in `log`).
    pub cleaner: CleanerSettings,
    /// Consumer group (KIP-848) settings (`group.consumer.*`; its
    /// `offsets_topic_num_partitions` follows `offsets.topic.num.partitions`).
    pub consumer_group: gregor_group::consumer_group::ConsumerGroupConfig,
    /// Whether `group.coordinator.rebalance.protocols` lists `consumer` (Kafka's default
    /// `classic,consumer,streams`): without it the consumer group APIs (KIP-848) answer
    /// UNSUPPORTED_VERSION, as with `group.version` 0.
    pub consumer_protocol_enabled: bool,
    /// Streams group (KIP-1071) settings (`group.streams.*`; its
    /// `offsets_topic_num_partitions` follows `offsets.topic.num.partitions`).
    pub streams_group: gregor_group::streams_group::StreamsGroupConfig,
    /// Whether `group.coordinator.rebalance.protocols` lists `streams` (Kafka's default):
    /// without it the streams group APIs answer UNSUPPORTED_VERSION, as with
    /// `streams.version` 0.
    pub streams_protocol_enabled: bool,
    /// The broker keys group configs default to and are bounded by (`group.share.*`, the
    /// `group.consumer.*` min/max bounds; see [`crate::group_configs`]).
    pub group_configs: crate::group_configs::GroupBrokerConfig,
    /// Roles, the metadata quorum and replication (`process.roles`, `controller.quorum.voters`,
    /// `replica.*`, `broker.session.timeout.ms`, ...).
    pub cluster: ClusterConfig,
    /// `authorizer.class.name`: empty (no authorization, Kafka's default) or
    /// [`STANDARD_AUTHORIZER`].
    pub authorizer_class_name: String,
    /// `super.users`, as `User:<name>` principals.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
    /// The authorizer every request is checked by, built from the three keys above; `None`
    /// when `authorizer.class.name` is empty.
    pub authorizer: Option<gregor_metadata::StandardAuthorizer>,
    /// `http.listener` (gregor's) or `--http-listen`: where `/metrics` is served over HTTP, in
    /// Prometheus' text format; `None` (the default): no HTTP listener, and no metrics kept.
    pub http_listen: Option<SocketAddr>,
    /// Kafka's `sasl.kerberos.*` broker keys, which Kafka lets AlterConfigs change on a running
    /// broker: kept and described, with no effect, since gregor serves no GSSAPI (naming it in
    /// `sasl.enabled.mechanisms` stops the start), as on a Kafka broker without GSSAPI.
    pub sasl_kerberos: BTreeMap<String, String>,
    /// `gregor server --add-scram` (Kafka's `kafka-storage format --add-scram`): SCRAM
    /// credentials a new cluster's first active controller writes to its metadata log, once;
    /// an existing cluster ignores them (crate::scram_bootstrap). A flag, not a config key:
    /// it acts once, when the log is created, and is no setting of a running broker.
    pub scram_bootstrap: Vec<crate::scram_bootstrap::ScramBootstrap>,
    /// Delegation tokens (KIP-48): `delegation.token.secret.key` (or its old name
    /// `delegation.token.master.key`; unset: tokens disabled), `delegation.token.max.lifetime.ms`,
    /// `delegation.token.expiry.time.ms`, `delegation.token.expiry.check.interval.ms`.
    pub delegation_tokens: gregor_metadata::DelegationTokenConfig,
    /// Keys given that gregor does not use (reported once at start).
    pub ignored: Vec<String>,
    /// The keys the configuration gave (file, `--set`, flags) under Kafka's name
    /// ([`crate::broker_configs::canonical_name`]), with the text given: DescribeConfigs calls
    /// them static broker configs, every other key a default.
    pub given: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            data_dir: PathBuf::from("gregor-data"),
            extra_log_dirs: Vec::new(),
            metadata_log_dir: None,
            metadata_dir_only: false,
            auto_create_topics: true,
            alter_log_dirs_bytes_per_second: i64::MAX,
            leader_replication_throttled_rate: i64::MAX,
            follower_replication_throttled_rate: i64::MAX,
            replication_quota_window_num: crate::quota::DEFAULT_QUOTA_WINDOW_NUM,
            replication_quota_window_size_seconds: crate::quota::DEFAULT_QUOTA_WINDOW_SIZE_SECONDS,
            cordoned_log_dirs: Vec::new(),
            num_partitions: 1,
            default_replication_factor: 1,
            message_max_bytes: 1_048_588,
            max_decompressed_message_bytes: MAX_DECOMPRESSED_MESSAGE_BYTES,
            remote_storage: RemoteStorageDefaults::default(),
            dlq: DlqSettings::default(),
            socket_request_max_bytes: 104_857_600,
            retention_check_interval_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            flush_scheduler_interval_ms: 100,
            checkpoint_interval_ms: 1_000,
            log_dir_failure_timeout_ms: 30_000,
            num_replica_fetchers: 1,
            num_recovery_threads_per_data_dir: 2,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            delete_topic_enable: true,
            cleanup_policy: "delete".into(),
            compression: gregor_protocol::recompress::TopicCompression::Producer,
            compression_levels: Default::default(),
            min_insync_replicas: 1,
            fetch_max_bytes: 57_671_680,
            fetch_session_cache_slots: crate::fetch_session::DEFAULT_SLOTS,
            quota_window_num: crate::quota::DEFAULT_QUOTA_WINDOW_NUM,
            quota_window_size_seconds: crate::quota::DEFAULT_QUOTA_WINDOW_SIZE_SECONDS,
            flush: FlushPolicy::OnAcksAll,
            log: LogConfig::default(),
            max_connections: 10_000,
            net: NetConfig::default(),
            listener_entries: Vec::new(),
            advertised_entries: Vec::new(),
            security_protocol_map: None,
            controller_listener_names: Vec::new(),
            security: BTreeMap::new(),
            listener_security: BTreeMap::new(),
            inter_broker_listener: None,
            inter_broker_sasl_mechanism: "PLAIN".to_string(),
            controller_sasl_mechanism: "GSSAPI".to_string(),
            inter_broker_security: None,
            group: gregor_group::GroupConfig::default(),
            txn: TxnSettings::default(),
            share_coordinator: Default::default(),
            cleaner: CleanerSettings::default(),
            consumer_group: gregor_group::consumer_group::ConsumerGroupConfig::default(),
            consumer_protocol_enabled: true,
            streams_group: gregor_group::streams_group::StreamsGroupConfig::default(),
            streams_protocol_enabled: true,
            group_configs: crate::group_configs::GroupBrokerConfig::default(),
            cluster: ClusterConfig::default(),
            authorizer_class_name: String::new(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            authorizer: None,
            http_listen: None,
            scram_bootstrap: Vec::new(),
            delegation_tokens: Default::default(),
            sasl_kerberos: [
                ("sasl.kerberos.kinit.cmd", "/usr/bin/kinit"),
                ("sasl.kerberos.min.time.before.relogin", "60000"),
                ("sasl.kerberos.principal.to.local.rules", "DEFAULT"),
                ("sasl.kerberos.ticket.renew.jitter", "0.05"),
                ("sasl.kerberos.ticket.renew.window.factor", "0.8"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ignored: Vec::new(),
            given: BTreeMap::new(),
        }
    }
}

/// The log cleaner's settings, Kafka's keys and defaults. The topic-level defaults it also
/// reads (`log.cleaner.delete.retention.ms`, `log.cleaner.min.compaction.lag.ms`,
/// `log.cleaner.max.compaction.lag.ms`, `log.cleaner.min.cleanable.ratio`) are in
/// [`BrokerConfig::log`].
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`.
    pub threads: usize,
    /// `log.cleaner.backoff.ms`: how long a cleaner thread sleeps when no log needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the offset maps, shared by the threads.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaners' read and write rate, together.
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerSettings {
    fn default() -> Self {
        CleanerSettings {
            enable: true,
            threads: 1,
            backoff_ms: 15_000,
            dedupe_buffer_size: 134_217_728,
            io_max_bytes_per_second: f64::MAX,
        }
    }
}

/// The transaction coordinator's settings, Kafka's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (used as min(this, voters) at creation, as
    /// `offsets.topic.replication.factor` is).
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr` (the topic's `min.insync.replicas`, at most its
    /// replication factor).
    pub state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_log_segment_bytes: i64,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this long.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
    /// `transaction.partition.verification.enable` (KIP-890 part 1, dynamic): a partition
    /// leader asks the transaction coordinator whether a transactional produce's partition is
    /// in the producer's transaction before the produce may open a transaction there.
    pub partition_verification_enable: bool,
    /// `transaction.version`: the level of the `transaction.version` feature a new cluster
    /// finalizes (Kafka sets it with `kafka-storage format --feature transaction.version=N`).
    /// 2 (the default, as in Kafka 4.x) lets clients use transactions version 2 (KIP-890 part
    /// 2); 0 or 1 keep them on the classic protocol. Read by the active controller when the
    /// metadata log has no level yet; later changes to it are ignored (except after 0, which
    /// writes nothing, as the feature's absence).
    pub transaction_version: i16,
    /// `add.partitions.to.txn.retry.backoff.ms`: the pause before a partition leader asks
    /// the coordinator again to add a produce's partition that got CONCURRENT_TRANSACTIONS.
    pub add_partitions_retry_backoff_ms: u64,
    /// `add.partitions.to.txn.retry.backoff.max.ms`: how long a partition leader keeps
    /// retrying such an add before the produce fails (retriably).
    pub add_partitions_retry_backoff_max_ms: u64,
}

impl Default for TxnSettings {
    fn default() -> Self {
        TxnSettings {
            state_log_num_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            partition_verification_enable: true,
            transaction_version: 2,
            add_partitions_retry_backoff_ms: 20,
            add_partitions_retry_backoff_max_ms: 100,
        }
    }
}

/// What a node does in the cluster (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// Serves clients and hosts partition replicas.
    pub broker: bool,
    /// Votes in the metadata quorum and may become the active controller.
    pub controller: bool,
}

impl ProcessRoles {
    /// Kafka's combined mode, gregor's default: `broker,controller`.
    pub const COMBINED: ProcessRoles = ProcessRoles {
        broker: true,
        controller: true,
    };
}

/// One voter of the metadata quorum: `id@host:port` in `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// The voter's `node.id`.
    pub id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// The cluster side of the configuration: roles, the metadata quorum, broker sessions and
/// replication. With no `controller.quorum.voters` the node is a one-voter quorum of its own
/// (`gregor server` with no flags): its controller listener then binds an ephemeral port on
/// the broker's host, since no peer ever dials it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles` (default `broker,controller`).
    pub roles: ProcessRoles,
    /// `cluster.id`: the id `kafka-storage format` would have written; by default the data
    /// directory keeps the one it has, or derives one from the voters.
    pub cluster_id: Option<String>,
    /// The controller listener: `--controller-listen`, or the `listeners` entry named in
    /// `controller.listener.names`.
    pub controller_listen: Option<SocketAddr>,
    /// `controller.quorum.voters` / `--voters`: `id@host:port,...` (empty: a one-voter quorum
    /// of this node alone).
    pub voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers` (Kafka 4.x's way to find a dynamic quorum,
    /// KIP-853): controller listeners as `host:port`. Without `controller.quorum.voters` the
    /// node is in bootstrap mode ([`ClusterConfig::bootstrap_mode`]): `voters` then holds only
    /// the initial voters of a new cluster (`--standalone`, `--initial-controllers`; none for a
    /// node that joins), and the voters are the metadata log's. Beside the voters it is not
    /// used.
    pub bootstrap_servers: Vec<String>,
    /// In bootstrap mode, the voters a new metadata log starts with: this node alone
    /// (`--standalone`, Kafka's `format --standalone`), the `--initial-controllers`, or none
    /// (a node that joins an existing quorum). Only an empty log takes them.
    pub initial_voters: Vec<Voter>,
    /// The directory ids `--initial-controllers` gave the initial voters (Kafka's
    /// `id@host:port:directoryId`).
    pub initial_directory_ids: BTreeMap<i32, String>,
    /// The controller listener's address in `advertised.listeners`, if listed: what other nodes
    /// dial to reach this node's controller (default: the bound controller listener).
    pub controller_advertised: Option<String>,
    /// `controller.quorum.auto.join.enable` (Kafka 4.x, default false): a controller that is
    /// not a voter of the metadata quorum makes itself one (AddRaftVoter to the leader, after
    /// RemoveRaftVoter of a voter recorded under its id with another directory), at
    /// `kraft.version` 1 ([`crate::auto_join`]).
    pub auto_join: bool,
    /// `broker.session.timeout.ms`: a broker that has not heartbeaten for this long is fenced
    /// and its leaderships move. Kafka's 9000 puts failover near ten seconds; gregor's 3000 with
    /// a 500 ms heartbeat leaves a broker five missed heartbeats (a loaded 2-core machine
    /// delays a heartbeat by tens of milliseconds, not seconds) and keeps kill-to-new-leader
    /// under the 5 s target.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms` (gregor: 500; Kafka: 2000).
    pub broker_heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms` (T): a voter that last heard a leader starts an
    /// election after 1.8–2 T of silence (openraft waits its leader lease, T, plus a random
    /// election timeout in [4/5 T, T]; see [`election_timeout_floor_ms`]); a candidate whose
    /// election failed retries after 4/5–1 T.
    pub quorum_election_timeout_ms: u64,
    /// `controller.quorum.heartbeat.interval.ms` (gregor's): how often the quorum leader
    /// reaches its followers when idle. It is also openraft's deadline for one AppendEntries
    /// round trip, so a link slower than this (round trip) to a voter makes it call elections:
    /// 500 ms leaves room for slow links and a loaded machine, and stays half the election
    /// timeout.
    pub quorum_heartbeat_interval_ms: u64,
    /// `metadata.log.max.snapshot.interval.records` (gregor's): metadata records applied
    /// between two snapshots of the metadata image (the log before a snapshot is dropped).
    pub metadata_snapshot_interval_records: u64,
    /// `metadata.log.max.record.bytes.between.snapshots` (Kafka's, 20 MiB): bytes of metadata
    /// log after which a snapshot is taken.
    pub metadata_snapshot_max_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms` (Kafka's, an hour; 0: none): the longest a
    /// snapshot waits for newer committed records.
    pub metadata_snapshot_max_interval_ms: u64,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the
    /// ISR.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: a follower's fetch long-polls this long.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.socket.receive.buffer.bytes` (Kafka's default 64 KiB; -1: the OS's): SO_RCVBUF
    /// of a follower's connections to its leaders.
    pub replica_socket_receive_buffer_bytes: i32,
    /// `replica.fetch.max.bytes`: bytes per partition in a follower's fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes per follower fetch response.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `unclean.leader.election.enable` (broker default for topics).
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_secs: u64,
    /// `offsets.topic.replication.factor` (used as min(this, live brokers) at creation).
    pub offsets_topic_replication_factor: i16,
    /// `controlled.shutdown.enable`: SIGTERM first moves this broker's leaderships away.
    pub controlled_shutdown_enable: bool,
    /// `peer.address.overrides` (gregor's): `id@host:port,...`, where this node dials those
    /// brokers for replication instead of their registered endpoints. For test harnesses that
    /// route each link between nodes through its own proxy, and for address translation.
    pub peer_address_overrides: Vec<Voter>,
    /// `broker.rack`: this broker's rack, in its registration (Metadata, DescribeCluster) and
    /// for the rack-aware replica selector.
    pub rack: Option<String>,
    /// `replica.selector.class`: how a partition's leader picks the replica a consumer reads
    /// from (KIP-392); `None` (Kafka's default): consumers read from leaders.
    pub replica_selector: Option<crate::replica_selector::ReplicaSelector>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            roles: ProcessRoles::COMBINED,
            cluster_id: None,
            controller_listen: None,
            voters: Vec::new(),
            bootstrap_servers: Vec::new(),
            initial_voters: Vec::new(),
            initial_directory_ids: BTreeMap::new(),
            controller_advertised: None,
            auto_join: false,
            broker_session_timeout_ms: 3_000,
            broker_heartbeat_interval_ms: 500,
            quorum_election_timeout_ms: 1_000,
            quorum_heartbeat_interval_ms: 500,
            metadata_snapshot_interval_records: 20_000,
            metadata_snapshot_max_bytes: 20 * 1024 * 1024,
            metadata_snapshot_max_interval_ms: 3_600_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            replica_socket_receive_buffer_bytes: gregor_client::socket::OS_DEFAULT,
            replica_fetch_response_max_bytes: 10_485_760,
            replica_fetch_backoff_ms: 1_000,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_secs: 300,
            offsets_topic_replication_factor: 3,
            controlled_shutdown_enable: true,
            peer_address_overrides: Vec::new(),
            rack: None,
            replica_selector: None,
        }
    }
}

impl ClusterConfig {
    /// Whether this node runs alone: no voters configured, or only itself. Never in bootstrap
    /// mode, where other nodes may join at any time (a `--standalone` first controller too).
    pub fn is_single_node(&self, node_id: i32) -> bool {
        if self.bootstrap_mode() {
            return false;
        }
        self.voters.is_empty() || (self.voters.len() == 1 && self.voters[0].id == node_id)
    }

    /// The quorum is found through `controller.quorum.bootstrap.servers`, no voter set
    /// configured: Kafka 4.x's dynamic quorum (KIP-853).
    pub fn bootstrap_mode(&self) -> bool {
        self.voters.is_empty() && !self.bootstrap_servers.is_empty()
    }

    /// The voters a new metadata log starts with: the configured ones, or in bootstrap mode
    /// the initial ones (`--standalone`, `--initial-controllers`).
    pub fn starting_voters(&self) -> &[Voter] {
        if self.bootstrap_mode() {
            &self.initial_voters
        } else {
            &self.voters
        }
    }

    /// How many brokers the internal topics' replication factors are capped at: the cluster's
    /// size as configured (its voters, or a new cluster's initial voters in bootstrap mode;
    /// one for a lone node). `None` for a node that knows no voter (it joins through bootstrap
    /// servers): the configured factor stands, and the topic waits for that many live
    /// brokers, as in Kafka.
    pub fn internal_topic_nodes(&self) -> Option<usize> {
        if self.bootstrap_mode() && self.initial_voters.is_empty() {
            None
        } else {
            Some(self.starting_voters().len().max(1))
        }
    }

    /// The internal topics' replication factor: `configured` capped by
    /// [`ClusterConfig::internal_topic_nodes`], at least 1.
    pub fn internal_replication_factor(&self, configured: i16) -> usize {
        let configured = usize::try_from(configured).unwrap_or(1).max(1);
        match self.internal_topic_nodes() {
            Some(nodes) => configured.min(nodes),
            None => configured,
        }
    }
}

/// Parses Kafka's `--initial-controllers` (`kafka-storage format`): `id@host:port:directoryId`
/// entries separated by commas, the directory id optional in gregor (a new data directory
/// then draws its own).
pub fn parse_initial_controllers(
    key: &str,
    value: &str,
) -> Result<(Vec<Voter>, BTreeMap<i32, String>), ConfigError> {
    let mut plain = Vec::new();
    let mut dirs = BTreeMap::new();
    for entry in split_entries(value) {
        let (id, rest) = entry.split_once('@').ok_or_else(|| {
            invalid(
                key,
                value,
                format!("expected id@host:port:directoryId, got {entry:?}"),
            )
        })?;
        let rest = match rest.rsplit_once(':') {
            Some((hostport, dir))
                if !dir.is_empty() && !dir.bytes().all(|b| b.is_ascii_digit()) =>
            {
                if gregor_protocol::kafka_uuid::parse(dir).is_none() {
                    return Err(invalid(
                        key,
                        value,
                        format!("{dir:?} is not a directory id (22 characters of URL-safe base64)"),
                    ));
                }
                let id: i32 = parse_num(key, id)?;
                dirs.insert(id, dir.to_string());
                hostport
            }
            _ => rest,
        };
        plain.push(format!("{id}@{rest}"));
    }
    let voters = parse_voters(key, &plain.join(","))?;
    Ok((voters, dirs))
}

/// Parses `controller.quorum.bootstrap.servers`: `host:port` entries separated by commas.
pub fn parse_bootstrap_servers(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let mut servers = Vec::new();
    for entry in split_entries(value) {
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, format!("expected host:port, got {entry:?}")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(key, value, format!("bad port in {entry:?}")))?;
        if host.trim_matches(['[', ']']).is_empty() {
            return Err(invalid(key, value, format!("no host in {entry:?}")));
        }
        let server = format!("{host}:{port}");
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    Ok(servers)
}

/// Parses `controller.quorum.voters` / `--voters`: `id@host:port` entries separated by commas.
pub fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in split_entries(value) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(key, value, format!("expected id@host:port, got {entry:?}")))?;
        let id: i32 = parse_num(key, id)?;
        if id < 0 {
            return Err(invalid(key, value, "a voter id must not be negative"));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, format!("expected id@host:port, got {entry:?}")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(key, value, format!("bad port in {entry:?}")))?;
        let host = host.trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(invalid(key, value, format!("no host in {entry:?}")));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter id {id} appears twice")));
        }
        if voters.iter().any(|v| v.host == host && v.port == port) {
            return Err(invalid(key, value, format!("{host}:{port} appears twice")));
        }
        voters.push(Voter { id, host, port });
    }
    if voters.is_empty() {
        return Err(invalid(key, value, "no voters"));
    }
    Ok(voters)
}

fn parse_roles(key: &str, value: &str) -> Result<ProcessRoles, ConfigError> {
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in split_entries(value) {
        match role.to_ascii_lowercase().as_str() {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(invalid(
                    key,
                    value,
                    format!("unknown role {other:?}; expected broker, controller or both"),
                ))
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(invalid(key, value, "expected broker, controller or both"));
    }
    Ok(roles)
}

/// What a connection may cost and how long it may sit: Kafka's per-IP limits and idle timeout,
/// gregor's bound on a request being read, and the memory pool for requests being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// `max.connections.per.ip` (Kafka's default: no limit).
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `host:count,...`, hosts resolved at parse time.
    pub max_connections_per_ip_overrides: BTreeMap<IpAddr, usize>,
    /// `max.connection.creation.rate` (KIP-612; Kafka's default: no limit): the most new
    /// connections a second the broker accepts on its listeners but the inter-broker one;
    /// past it the broker waits before it accepts the next.
    pub max_connection_creation_rate: i32,
    /// `listener.name.<listener>.max.connection.creation.rate` (KIP-612), by upper-case
    /// listener name: the same bound for one listener, the inter-broker one included.
    pub listener_connection_creation_rates: BTreeMap<String, i32>,
    /// `listener.name.<listener>.max.connections` (KIP-402), by upper-case listener name: the
    /// most connections the listener holds open (no limit without it).
    pub listener_max_connections: BTreeMap<String, usize>,
    /// `connection.failed.authentication.delay.ms` (KIP-306; Kafka's default 100): how long
    /// the answer to a failed authentication, and the close after it, wait, which slows a
    /// client guessing passwords.
    pub failed_authentication_delay_ms: u64,
    /// `connections.max.idle.ms` (Kafka's default, 10 minutes): a connection with no request
    /// and no reply in flight for this long is closed.
    pub connections_max_idle_ms: u64,
    /// `socket.request.timeout.ms` (gregor's; Kafka has no such bound): a request must arrive
    /// whole within this long of its first byte, or the connection is closed. Without it a
    /// client sending one byte a second holds a connection slot (and buffer memory) forever.
    pub socket_request_timeout_ms: u64,
    /// `connections.max.reauth.ms` (KIP-368; Kafka's default 0, off): the longest a SASL
    /// session lasts before the client must re-authenticate; each SASL listener's sessions take
    /// it unless its own `listener.name.<l>.[<mechanism>.]connections.max.reauth.ms` says
    /// otherwise (`sasl::SaslSettings`).
    pub connections_max_reauth_ms: i64,
    /// `queued.max.request.bytes`: memory for request bytes being read, beyond the small
    /// buffer every connection has (`None`: unbounded, Kafka's `-1`). When it is used up,
    /// connections that need more stop reading until memory is freed.
    pub queued_max_request_bytes: Option<usize>,
    /// `socket.send.buffer.bytes`, `socket.receive.buffer.bytes` and
    /// `socket.listen.backlog.size` (Kafka's defaults): the sizes of every listener's sockets,
    /// the controller listener's too.
    pub sockets: gregor_client::socket::ListenOptions,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_connections_per_ip: i32::MAX as usize,
            max_connections_per_ip_overrides: BTreeMap::new(),
            max_connection_creation_rate: i32::MAX,
            listener_connection_creation_rates: BTreeMap::new(),
            listener_max_connections: BTreeMap::new(),
            failed_authentication_delay_ms: 100,
            connections_max_idle_ms: 600_000,
            socket_request_timeout_ms: 30_000,
            connections_max_reauth_ms: 0,
            // Room for 512 produce requests of 1 MiB being read at once (Kafka's
            // queued.max.requests is 500, its message.max.bytes 1 MiB), or five requests of the
            // largest size socket.request.max.bytes allows.
            queued_max_request_bytes: Some(512 << 20),
            sockets: gregor_client::socket::ListenOptions::default(),
        }
    }
}

/// Kafka's KRaft authorizer: the one `authorizer.class.name` gregor accepts.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The names `authorizer.class.name` accepts for it (`gregor` as a short form).
const STANDARD_AUTHORIZER_NAMES: &[&str] = &[STANDARD_AUTHORIZER, "gregor"];

impl BrokerConfig {
    /// Every log directory that holds partitions, the main one first (`log.dirs` in order,
    /// but the `metadata.log.dir` among them first; without the main one when it holds only
    /// the metadata log).
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        let main = (!self.metadata_dir_only).then(|| self.data_dir.clone());
        main.into_iter()
            .chain(self.extra_log_dirs.iter().cloned())
            .collect()
    }

    /// Makes `metadata.log.dir`, if given, the main directory (`data_dir`), as Kafka puts the
    /// metadata log there instead of in the first of `log.dirs`: one of `log.dirs` moves to
    /// the front, another directory holds the metadata log alone. Call once every key is
    /// set (again changes nothing).
    pub fn place_metadata_log(&mut self) {
        let Some(wanted) = self.metadata_log_dir.clone() else {
            return;
        };
        if wanted == self.data_dir {
            return;
        }
        if let Some(i) = self.extra_log_dirs.iter().position(|d| *d == wanted) {
            self.extra_log_dirs.remove(i);
        } else {
            self.metadata_dir_only = true;
        }
        let first = std::mem::replace(&mut self.data_dir, wanted);
        self.extra_log_dirs.insert(0, first);
    }

    /// Rebuilds [`BrokerConfig::authorizer`] after one of its keys changed.
    fn sync_authorizer(&mut self) {
        self.authorizer =
            (!self.authorizer_class_name.is_empty()).then(|| gregor_metadata::StandardAuthorizer {
                super_users: self.super_users.clone(),
                allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
            });
    }
}

impl NetConfig {
    /// The connection limit for one client address.
    pub fn max_connections_for(&self, ip: IpAddr) -> usize {
        self.max_connections_per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.max_connections_per_ip)
    }
}

/// The `sasl.*` keys gregor reads: the enabled mechanisms and the JAAS config, also as
/// `<mechanism>.sasl.jaas.config` (Kafka's broker form, under `listener.name.<name>.`).
pub fn is_sasl_key(key: &str) -> bool {
    key == "sasl.enabled.mechanisms"
        || key == "sasl.jaas.config"
        || key
            .strip_suffix(".sasl.jaas.config")
            .is_some_and(|m| !m.is_empty() && !m.contains('.'))
        // OAUTHBEARER's validator (KIP-768) and its callback handler.
        || key.starts_with("sasl.oauthbearer.")
        || key == "sasl.server.callback.handler.class"
        || key == "oauthbearer.sasl.server.callback.handler.class"
}

/// The JAAS login modules a broker's inter-broker login takes, per mechanism.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
const DEFAULT_SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Parses `max.connections.per.ip.overrides`: `host:count` entries separated by commas.
fn parse_ip_overrides(key: &str, value: &str) -> Result<BTreeMap<IpAddr, usize>, ConfigError> {
    use std::net::ToSocketAddrs;
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, format!("expected host:count, got {entry:?}")))?;
        let count: i64 = parse_num(key, count)?;
        if count < 0 {
            return Err(invalid(key, value, "a count must not be negative"));
        }
        let host = host.trim().trim_matches(['[', ']']);
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| invalid(key, value, format!("cannot resolve {host}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in ips {
            out.insert(ip, count as usize);
        }
    }
    Ok(out)
}

/// The listener name of a `listeners` entry (`PLAINTEXT` for a bare `host:port`).
fn listener_name(entry: &str) -> String {
    match entry.split_once("://") {
        Some((name, _)) => name.trim().to_ascii_uppercase(),
        None => "PLAINTEXT".to_string(),
    }
}

fn split_entries(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses Java-properties text as Kafka reads `server.properties` (Java's `Properties.load`,
/// then Kafka trimming every value it parses): `key=value`, `key: value` or `key value`,
/// `#`/`!` comment lines, backslash line continuations, Java's escapes. Malformed `\uXXXX`
/// is refused, as Java refuses it.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    Ok(parse_java_properties(text)
        .map_err(ConfigError::Properties)?
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect())
}

/// Java's `Properties.load`, exactly: the values untrimmed (what Kafka's `FileConfigProvider`
/// hands on). The keys and values in the order written, a key repeated where it is.
pub fn parse_java_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let is_blank = |c: char| c == ' ' || c == '\t' || c == '\u{c}';
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut continuing = false;
    // Java ends a line at \n, \r or \r\n.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = text.split('\n').peekable();
    while let Some(raw) = lines.next() {
        let line = raw.trim_start_matches(is_blank);
        // A comment or blank line, unless a continuation makes it part of the one before.
        if !continuing && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        // An odd number of trailing backslashes continues the line on the next one.
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continuing = true;
            if lines.peek().is_some() {
                continue;
            }
        } else {
            logical.push_str(line);
        }
        let entry = std::mem::take(&mut logical);
        continuing = false;
        out.push(split_property(&entry, is_blank)?);
    }
    Ok(out)
}

/// One logical line of a properties file into its key and value, unescaped: the key ends at
/// the first unescaped `=`, `:` or blank; then blanks, one optional `=` or `:`, blanks.
fn split_property(
    entry: &str,
    is_blank: impl Fn(char) -> bool,
) -> Result<(String, String), String> {
    let chars: Vec<char> = entry.chars().collect();
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut escaped = false;
    while key_len < chars.len() {
        let c = chars[key_len];
        if (c == '=' || c == ':') && !escaped {
            value_start = key_len + 1;
            has_separator = true;
            break;
        }
        if is_blank(c) && !escaped {
            value_start = key_len + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
        key_len += 1;
    }
    while value_start < chars.len() {
        let c = chars[value_start];
        if !is_blank(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    Ok((
        unescape(&chars[..key_len])?,
        unescape(&chars[value_start.min(chars.len())..])?,
    ))
}

/// Java's `loadConvert`: `\t`, `\n`, `\r`, `\f`, `\uXXXX`, and a backslash before any other
/// character stands for that character.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            break;
        };
        i += 1;
        match e {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars
                    .get(i..i + 4)
                    .map(|h| h.iter().collect())
                    .unwrap_or_default();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                    .ok_or_else(|| "Malformed \\uxxxx encoding.".to_string())?;
                i += 4;
                // A UTF-16 surrogate pair written as two escapes.
                if (0xD800..0xDC00).contains(&code)
                    && chars.get(i) == Some(&'\\')
                    && chars.get(i + 1) == Some(&'u')
                {
                    let low: String = chars
                        .get(i + 2..i + 6)
                        .map(|h| h.iter().collect())
                        .unwrap_or_default();
                    if let Ok(low) = u32::from_str_radix(&low, 16) {
                        if (0xDC00..0xE000).contains(&low) {
                            let joined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            out.extend(char::from_u32(joined));
                            i += 6;
                            continue;
                        }
                    }
                }
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A strictly positive `int` key.
fn positive_i32(key: &str, value: &str) -> Result<i32, ConfigError> {
    let n: i32 = parse_num(key, value)?;
    if n < 1 {
        return Err(invalid(key, value, "Value must be at least 1"));
    }
    Ok(n)
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse::<T>().map_err(|_| {
        // Kafka's message (`ConfigDef.parseType`), by the key's type.
        let kafka_type = match std::any::type_name::<T>() {
            "f64" | "f32" => "DOUBLE",
            "i32" | "u32" | "usize" => "INT",
            "i16" | "u16" => "SHORT",
            _ => "LONG",
        };
        invalid(key, value, format!("Not a number of type {kafka_type}"))
    })
}

/// A DOUBLE config (Kafka's `Double.MAX_VALUE` text, `1.7976931348623157E308`, parses).
fn parse_double(key: &str, value: &str) -> Result<f64, ConfigError> {
    let v: f64 = parse_num(key, value)?;
    if v.is_nan() {
        return Err(invalid(key, value, "not a number"));
    }
    Ok(v)
}

fn non_negative(key: &str, value: &str) -> Result<i64, ConfigError> {
    let n: i64 = parse_num(key, value)?;
    if n < 0 {
        return Err(invalid(key, value, "Value must be at least 0"));
    }
    Ok(n)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            key,
            value,
            "Expected value to be either true or false",
        )),
    }
}

fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    // Accepts `PLAINTEXT://host:port[,...]` or a bare `host:port`; the first entry wins.
    let first = value.split(',').next().unwrap_or("").trim();
    let hostport = match first.split_once("://") {
        Some((_, rest)) => rest,
        None => first,
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected [PLAINTEXT://]host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "bad port number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Resolves `host:port` (host may be a name such as `localhost`) to a socket address.
pub fn resolve_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let (host, port) = parse_listener(key, value)?;
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| invalid(key, value, e.to_string()))?
        .next()
        .ok_or_else(|| invalid(key, value, "host does not resolve"))
}

impl BrokerConfig {
    /// The replication quotas' rate window (`replication.quota.window.num` ×
    /// `replication.quota.window.size.seconds`).
    pub fn replication_quota_window(&self) -> crate::quota::QuotaWindow {
        crate::quota::QuotaWindow {
            samples: self.replication_quota_window_num,
            window_ms: i64::from(self.replication_quota_window_size_seconds) * 1000,
        }
    }

    /// The client quotas' rate window (`quota.window.num` × `quota.window.size.seconds`).
    pub fn quota_window(&self) -> crate::quota::QuotaWindow {
        crate::quota::QuotaWindow {
            samples: self.quota_window_num,
            window_ms: i64::from(self.quota_window_size_seconds) * 1000,
        }
    }
}

impl BrokerConfig {
    /// Applies one key and remembers it as given. Returns `Ok(false)` for keys gregor does not
    /// know.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let known = self.apply_key(key, value)?;
        if known {
            self.note_given(key, value);
        }
        Ok(known)
    }

    /// Records that `key` was given (a flag standing for it, such as `--data-dir` for
    /// `log.dirs`), for DescribeConfigs.
    pub fn note_given(&mut self, key: &str, value: &str) {
        let name = crate::broker_configs::canonical_name(key);
        // Kafka copies `node.id` to `broker.id` and describes both as given.
        if name == "node.id" {
            self.given
                .insert("broker.id".to_string(), value.to_string());
        }
        self.given.insert(name.to_string(), value.to_string());
    }

    /// This configuration with the image's dynamic broker configs over it: the cluster-wide
    /// default (resource `""`) first, then this broker's own (its id). A value that does not
    /// apply (the broker checks them before they are committed) is logged and skipped.
    pub fn with_dynamic(&self, configs: &gregor_metadata::ConfigurationsImage) -> BrokerConfig {
        let mut out = self.clone();
        let own = self.node_id.to_string();
        for resource in ["", own.as_str()] {
            for (key, value) in configs.broker_configs(resource) {
                if let Err(e) = out.apply_key(key, value) {
                    tracing::warn!(key, value, error = %e, "dynamic broker config not applied");
                }
            }
        }
        out
    }

    /// Checks a dynamic broker config's value as this broker would apply it.
    pub fn check_value(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        let mut changed = self.clone();
        changed.apply_key(key, value)?;
        changed.check_connection_limits()?;
        changed.cordoned_dirs().map(|_| ())
    }

    /// `max.connections.per.ip` may be 0 only with overrides that let some address in (Kafka's
    /// `DynamicConnectionQuota.validateReconfiguration` and `KafkaConfig` alike).
    fn check_connection_limits(&self) -> Result<(), ConfigError> {
        let delay = self.net.failed_authentication_delay_ms;
        if delay >= self.net.connections_max_idle_ms {
            return Err(ConfigError::Requirement(format!(
                "connection.failed.authentication.delay.ms={delay} should always be less than \
                 connections.max.idle.ms={} to prevent failed authentication responses from \
                 timing out",
                self.net.connections_max_idle_ms
            )));
        }
        if self.net.max_connections_per_ip == 0
            && self.net.max_connections_per_ip_overrides.is_empty()
        {
            return Err(ConfigError::Requirement(
                "max.connections.per.ip can be set to zero only if \
                 max.connections.per.ip.overrides property is set."
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// The indexes (in [`BrokerConfig::log_dirs`]) of the cordoned log directories; an entry
    /// that is not one of `log.dirs` is refused, as Kafka refuses it.
    pub fn cordoned_dirs(&self) -> Result<Vec<usize>, ConfigError> {
        let dirs = self.log_dirs();
        if self.cordoned_log_dirs.iter().any(|d| d == "*") {
            if self.cordoned_log_dirs.len() > 1 {
                return Err(invalid(
                    "cordoned.log.dirs",
                    &self.cordoned_log_dirs.join(","),
                    "When cordoned.log.dirs is set to *, it must not contain other values",
                ));
            }
            return Ok((0..dirs.len()).collect());
        }
        let mut out = Vec::new();
        for entry in &self.cordoned_log_dirs {
            let wanted = std::path::absolute(entry).unwrap_or_else(|_| PathBuf::from(entry));
            let Some(i) = dirs.iter().position(|d| {
                d.as_path() == std::path::Path::new(entry)
                    || std::path::absolute(d).is_ok_and(|a| a == wanted)
            }) else {
                return Err(invalid(
                    "cordoned.log.dirs",
                    &self.cordoned_log_dirs.join(","),
                    format!("{entry} is not one of log.dirs"),
                ));
            };
            out.push(i);
        }
        Ok(out)
    }

    fn apply_key(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let ms_from = |unit: i64, key: &str, v: &str| -> Result<i64, ConfigError> {
            let n: i64 = parse_num(key, v)?;
            Ok(if n < 0 { -1 } else { n.saturating_mul(unit) })
        };
        match key {
            "node.id" | "broker.id" => self.node_id = parse_num(key, value)?,
            // The providers' names: read by `config_providers` before any key is set.
            crate::config_providers::CONFIG_PROVIDERS => {}
            "listeners" => {
                self.listener_entries = split_entries(value);
                let primary = self.primary_entry().unwrap_or(value).to_string();
                self.listen = resolve_listen(key, &primary)?;
            }
            "advertised.listeners" | "advertised.listener" => {
                self.advertised_entries = split_entries(value);
                let primary = self
                    .primary_advertised()
                    .unwrap_or_else(|| value.to_string());
                self.advertised = Some(parse_listener(key, &primary)?);
            }
            "log.dirs" | "log.dir" => {
                let dirs: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .collect();
                let Some((first, rest)) = dirs.split_first() else {
                    return Err(invalid(key, value, "empty directory"));
                };
                let mut seen = std::collections::BTreeSet::new();
                if let Some(twice) = dirs.iter().find(|d| !seen.insert(**d)) {
                    return Err(invalid(key, value, format!("{twice} is listed twice")));
                }
                self.data_dir = PathBuf::from(first);
                self.extra_log_dirs = rest.iter().map(PathBuf::from).collect();
                self.metadata_dir_only = false;
            }
            "metadata.log.dir" => {
                let dir = value.trim();
                if dir.is_empty() {
                    return Err(invalid(key, value, "empty directory"));
                }
                self.metadata_log_dir = Some(PathBuf::from(dir));
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "cordoned.log.dirs" => {
                self.cordoned_log_dirs = value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "replica.alter.log.dirs.io.max.bytes.per.second" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.alter_log_dirs_bytes_per_second = n;
            }
            "leader.replication.throttled.rate" | "follower.replication.throttled.rate" => {
                // Kafka's bounds: a long, at least 0.
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                if key.starts_with("leader") {
                    self.leader_replication_throttled_rate = n;
                } else {
                    self.follower_replication_throttled_rate = n;
                }
            }
            "replication.quota.window.num" => {
                let n: u32 = parse_num(key, value)?;
                if n < 2 {
                    return Err(invalid(key, value, "Value must be at least 2"));
                }
                self.replication_quota_window_num = n;
            }
            "replication.quota.window.size.seconds" => {
                let n: u32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.replication_quota_window_size_seconds = n;
            }
            "authorizer.class.name" => {
                let class = value.trim();
                if !class.is_empty() && !STANDARD_AUTHORIZER_NAMES.contains(&class) {
                    return Err(invalid(
                        key,
                        value,
                        format!(
                            "gregor's authorizer is Kafka's KRaft one: set \
                             {STANDARD_AUTHORIZER}, or leave it empty for none"
                        ),
                    ));
                }
                self.authorizer_class_name = class.to_string();
                self.sync_authorizer();
            }
            "super.users" => {
                let users = gregor_metadata::StandardAuthorizer::parse_super_users(value);
                if let Some(bad) = users.iter().find(|u| {
                    u.split_once(':')
                        .is_none_or(|(kind, name)| kind.is_empty() || name.is_empty())
                }) {
                    return Err(invalid(
                        key,
                        value,
                        format!("{bad:?} is not a principal: expected User:<name>"),
                    ));
                }
                self.super_users = users;
                self.sync_authorizer();
            }
            "delegation.token.secret.key" | "delegation.token.master.key" => {
                // Kafka: the old name counts only when the new one is not given.
                if key == "delegation.token.secret.key"
                    || !self.given.contains_key("delegation.token.secret.key")
                {
                    let secret = value.trim();
                    self.delegation_tokens.secret_key =
                        (!secret.is_empty()).then(|| secret.to_string());
                }
            }
            "delegation.token.max.lifetime.ms"
            | "delegation.token.expiry.time.ms"
            | "delegation.token.expiry.check.interval.ms" => {
                let ms: i64 = parse_num(key, value)?;
                if ms < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                let slot = match key {
                    "delegation.token.max.lifetime.ms" => {
                        &mut self.delegation_tokens.max_lifetime_ms
                    }
                    "delegation.token.expiry.time.ms" => &mut self.delegation_tokens.expiry_time_ms,
                    _ => &mut self.delegation_tokens.expiry_check_interval_ms,
                };
                *slot = ms;
            }
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = parse_bool(key, value)?;
                self.sync_authorizer();
            }
            "num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.num_partitions = n;
            }
            "default.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.default_replication_factor = n;
            }
            "max.decompressed.message.bytes" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                if n as usize > MAX_DECOMPRESSED_MESSAGE_BYTES {
                    return Err(invalid(
                        key,
                        value,
                        format!("Value must be no more than {MAX_DECOMPRESSED_MESSAGE_BYTES}"),
                    ));
                }
                self.max_decompressed_message_bytes = n as usize;
            }
            "message.max.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.message_max_bytes = n as usize;
            }
            "socket.request.max.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.socket_request_max_bytes = n as usize;
            }
            "log.segment.bytes" => {
                // Kafka's INT.
                let n: i32 = parse_num(key, value)?;
                if n < 14 {
                    return Err(invalid(key, value, "Value must be at least 14"));
                }
                self.log.segment_bytes = n as u64;
            }
            "log.roll.ms" => self.log.segment_ms = positive_ms(key, value)?,
            "log.roll.jitter.ms" => {
                let ms: i64 = parse_num(key, value)?;
                if ms < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.log.segment_jitter_ms = ms;
            }
            "log.roll.jitter.hours" => {
                let hours: i64 = parse_num(key, value)?;
                if hours < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.log.segment_jitter_ms = hours.saturating_mul(3_600_000);
            }
            "log.roll.hours" => self.log.segment_ms = ms_from(3_600_000, key, value)?.max(1),
            "log.retention.ms" => self.log.retention_ms = ms_from(1, key, value)?,
            "log.retention.minutes" => self.log.retention_ms = ms_from(60_000, key, value)?,
            "log.retention.hours" => self.log.retention_ms = ms_from(3_600_000, key, value)?,
            "log.retention.bytes" => self.log.retention_bytes = parse_num(key, value)?,
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = positive_ms(key, value)? as u64
            }
            "producer.id.expiration.ms" => {
                // Kafka's INT, at least 1.
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.producer_id_expiration_ms = i64::from(n);
            }
            "producer.id.expiration.check.interval.ms" => {
                self.producer_id_expiration_check_interval_ms = positive_ms(key, value)? as u64
            }
            "log.flush.scheduler.interval.ms" => {
                self.flush_scheduler_interval_ms = positive_ms(key, value)? as u64
            }
            "log.flush.offset.checkpoint.interval.ms" => {
                self.checkpoint_interval_ms = positive_ms(key, value)? as u64
            }
            "num.recovery.threads.per.data.dir" => {
                // Kafka's INT, at least 1.
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.num_recovery_threads_per_data_dir = n as usize;
            }
            "num.replica.fetchers" => {
                // Kafka's INT, at least 1.
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.num_replica_fetchers = n as usize;
            }
            "log.dir.failure.timeout.ms" => {
                // Kafka's LONG, at least 1.
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.log_dir_failure_timeout_ms = n as u64;
            }
            "log.index.interval.bytes" => self.log.index_interval_bytes = parse_num(key, value)?,
            "log.index.size.max.bytes" => {
                let n: u32 = parse_num(key, value)?;
                if n < 4096 {
                    return Err(invalid(key, value, "Value must be at least 4096"));
                }
                self.log.segment_index_bytes = n;
            }
            "log.message.timestamp.type" => {
                self.log_append_time = match value.trim() {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => return Err(invalid(key, value, "expected CreateTime or LogAppendTime")),
                }
            }
            "log.message.timestamp.before.max.ms" | "log.message.timestamp.after.max.ms" => {
                let ms: i64 = parse_num(key, value)?;
                if ms < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                if key.ends_with("before.max.ms") {
                    self.timestamp_before_max_ms = ms;
                } else {
                    self.timestamp_after_max_ms = ms;
                }
            }
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(key, value)?,
            "sasl.kerberos.min.time.before.relogin" => {
                let _: i64 = parse_num(key, value)?;
                self.sasl_kerberos
                    .insert(key.to_string(), value.to_string());
            }
            "sasl.kerberos.ticket.renew.window.factor" | "sasl.kerberos.ticket.renew.jitter" => {
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| invalid(key, value, "Not a number of type DOUBLE"))?;
                self.sasl_kerberos
                    .insert(key.to_string(), value.to_string());
            }
            "sasl.kerberos.kinit.cmd"
            | "sasl.kerberos.service.name"
            | "sasl.kerberos.principal.to.local.rules" => {
                self.sasl_kerberos
                    .insert(key.to_string(), value.to_string());
            }
            "log.cleaner.enable" => self.cleaner.enable = parse_bool(key, value)?,
            "log.cleaner.threads" => {
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.cleaner.threads = n as usize;
            }
            "log.cleaner.backoff.ms" => {
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.cleaner.backoff_ms = n as u64;
            }
            "log.cleaner.dedupe.buffer.size" => {
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.cleaner.dedupe_buffer_size = n as u64;
            }
            "log.cleaner.io.max.bytes.per.second" => {
                self.cleaner.io_max_bytes_per_second = parse_double(key, value)?
            }
            "log.cleaner.min.cleanable.ratio" => {
                let r = parse_double(key, value)?;
                if r < 0.0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                if r > 1.0 {
                    return Err(invalid(key, value, "Value must be no more than 1"));
                }
                self.log.min_cleanable_dirty_ratio = r;
            }
            "log.cleaner.delete.retention.ms" => {
                self.log.delete_retention_ms = non_negative(key, value)?
            }
            "log.cleaner.min.compaction.lag.ms" => {
                self.log.min_compaction_lag_ms = non_negative(key, value)?
            }
            "log.cleaner.max.compaction.lag.ms" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.log.max_compaction_lag_ms = n;
            }
            "log.cleanup.policy" => {
                crate::topic_config::validate_cleanup_policy(value)
                    .map_err(|r| invalid(key, value, r))?;
                self.cleanup_policy = value.trim().to_string();
            }
            "compression.type" => {
                self.compression = gregor_protocol::recompress::TopicCompression::parse(value)
                    .ok_or_else(|| invalid(key, value, crate::topic_config::COMPRESSION_TYPES))?;
            }
            "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                use gregor_protocol::record_rewrite::CompressionLevels;
                let level = CompressionLevels::parse(key, value)
                    .unwrap_or_else(|| Err("not a compression level".into()))
                    .map_err(|r| invalid(key, value, r))?;
                self.compression_levels.set(key, level);
            }
            "min.insync.replicas" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.min_insync_replicas = n;
            }
            "max.incremental.fetch.session.cache.slots" => {
                // Kafka's type and bounds: an int, at least 0 (0: no session is kept).
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.fetch_session_cache_slots = n as usize;
            }
            "fetch.max.bytes" => {
                // Kafka's type and bounds: an int, at least 1024.
                let n: i32 = parse_num(key, value)?;
                if n < 1024 {
                    return Err(invalid(key, value, "Value must be at least 1024"));
                }
                self.fetch_max_bytes = n as usize;
            }
            "quota.window.num" => {
                // Kafka's bounds: an int, at least 1; a rate needs two samples here.
                let n: u32 = parse_num(key, value)?;
                if n < 2 {
                    return Err(invalid(key, value, "Value must be at least 2"));
                }
                self.quota_window_num = n;
            }
            "quota.window.size.seconds" => {
                let n: u32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.quota_window_size_seconds = n;
            }
            "max.connections" => {
                // Kafka's INT, at least 0 (0 serves nothing; gregor lets one in).
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.max_connections = n as usize;
            }
            "max.connections.per.ip" => {
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.net.max_connections_per_ip = n as usize;
            }
            "max.connections.per.ip.overrides" => {
                self.net.max_connections_per_ip_overrides = parse_ip_overrides(key, value)?
            }
            "connection.failed.authentication.delay.ms" => {
                // Kafka's INT, at least 0.
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.net.failed_authentication_delay_ms = n as u64;
            }
            "max.connection.creation.rate" => {
                let n: i32 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.net.max_connection_creation_rate = n;
            }
            "connections.max.idle.ms" => {
                self.net.connections_max_idle_ms = positive_ms(key, value)? as u64
            }
            "socket.request.timeout.ms" => {
                self.net.socket_request_timeout_ms = positive_ms(key, value)? as u64
            }
            "socket.send.buffer.bytes" => {
                self.net.sockets.send_buffer_bytes = buffer_size(key, value)?
            }
            "socket.receive.buffer.bytes" => {
                self.net.sockets.receive_buffer_bytes = buffer_size(key, value)?
            }
            "socket.listen.backlog.size" => {
                let n: i32 = parse_num(key, value)?;
                self.net.sockets.backlog = u32::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| invalid(key, value, "Value must be at least 1"))?;
            }
            "replica.socket.receive.buffer.bytes" => {
                self.cluster.replica_socket_receive_buffer_bytes = buffer_size(key, value)?
            }
            crate::sasl::CONNECTIONS_MAX_REAUTH_MS => {
                self.net.connections_max_reauth_ms = parse_num(key, value)?
            }
            "queued.max.request.bytes" => {
                let n: i64 = parse_num(key, value)?;
                self.net.queued_max_request_bytes = match n {
                    -1 => None,
                    n if n > 0 => Some(n as usize),
                    _ => return Err(invalid(key, value, "must be -1 (unbounded) or positive")),
                };
            }
            "listener.security.protocol.map" => {
                let mut map = Vec::new();
                for entry in split_entries(value) {
                    let (name, protocol) = entry.split_once(':').ok_or_else(|| {
                        invalid(key, value, format!("expected NAME:PROTOCOL, got {entry:?}"))
                    })?;
                    let protocol = protocol.trim().to_ascii_uppercase();
                    if !DEFAULT_SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
                        return Err(invalid(
                            key,
                            value,
                            format!("unknown security protocol {protocol}"),
                        ));
                    }
                    map.push((name.trim().to_ascii_uppercase(), protocol));
                }
                self.security_protocol_map = Some(map);
            }
            "inter.broker.listener.name" | "security.inter.broker.protocol" => {
                let name = value.trim().to_ascii_uppercase();
                if name.is_empty() {
                    return Err(invalid(key, value, "empty listener name"));
                }
                self.inter_broker_listener = Some(name);
            }
            "sasl.mechanism.inter.broker.protocol" => {
                let mechanism = value.trim().to_ascii_uppercase();
                if !crate::sasl::SERVED_MECHANISMS.contains(&mechanism.as_str())
                    || mechanism == crate::oauthbearer::MECHANISM
                {
                    return Err(invalid(
                        key,
                        value,
                        "gregor's brokers log in to each other with PLAIN, SCRAM-SHA-256 or \
                         SCRAM-SHA-512",
                    ));
                }
                self.inter_broker_sasl_mechanism = mechanism;
            }
            "sasl.mechanism.controller.protocol" => {
                // Checked against the controller listener by `controller_sasl`, which names
                // what gregor serves there.
                self.controller_sasl_mechanism = value.trim().to_ascii_uppercase();
            }
            k if crate::tls::is_ssl_key(k) || is_sasl_key(k) => {
                self.security.insert(k.to_string(), value.to_string());
            }
            k if k.starts_with("listener.name.") => {
                let rest = &k["listener.name.".len()..];
                let Some((name, own)) = rest.split_once('.') else {
                    return Ok(false);
                };
                if own == "max.connection.creation.rate" {
                    // Kafka's message names the key without the listener prefix.
                    let n: i32 = parse_num(own, value)?;
                    if n < 0 {
                        return Err(invalid(own, value, "Value must be at least 0"));
                    }
                    self.net
                        .listener_connection_creation_rates
                        .insert(name.to_ascii_uppercase(), n);
                    return Ok(true);
                }
                if own == "max.connections" {
                    // Kafka's message names the key without the listener prefix.
                    let n: i32 = parse_num(own, value)?;
                    let n = usize::try_from(n)
                        .map_err(|_| invalid(own, value, "Value must be at least 0"))?;
                    self.net
                        .listener_max_connections
                        .insert(name.to_ascii_uppercase(), n);
                    return Ok(true);
                }
                if !crate::tls::is_ssl_key(own)
                    && !is_sasl_key(own)
                    && !crate::sasl::is_reauth_key(own)
                {
                    return Ok(false);
                }
                self.listener_security
                    .entry(name.to_ascii_uppercase())
                    .or_default()
                    .insert(own.to_string(), value.to_string());
            }
            "controller.listener.names" => {
                self.controller_listener_names = split_entries(value)
                    .iter()
                    .map(|n| n.to_ascii_uppercase())
                    .collect()
            }
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = parse_num(key, value)?
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms = parse_num(key, value)?
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = parse_num(key, value)?
            }
            "group.max.size" => self.group.max_size = parse_num(key, value)?,
            "group.consumer.session.timeout.ms" => {
                self.consumer_group.session_timeout_ms = positive_i32(key, value)?
            }
            "group.coordinator.rebalance.protocols" => {
                // Kafka's `GroupType` names (ConfigDef.ValidList), `classic` required
                // (KafkaConfig.groupCoordinatorRebalanceProtocols).
                let protocols: Vec<String> = value
                    .split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty())
                    .collect();
                if let Some(bad) = protocols
                    .iter()
                    .find(|p| !["classic", "consumer", "share", "streams"].contains(&p.as_str()))
                {
                    return Err(invalid(
                        key,
                        value,
                        format!("{bad:?} is not one of classic, consumer, share, streams"),
                    ));
                }
                if !protocols.iter().any(|p| p == "classic") {
                    return Err(invalid(
                        key,
                        value,
                        "Disabling the 'classic' protocol is not supported.",
                    ));
                }
                self.consumer_protocol_enabled = protocols.iter().any(|p| p == "consumer");
                self.streams_protocol_enabled = protocols.iter().any(|p| p == "streams");
            }
            "group.streams.session.timeout.ms" => {
                self.streams_group.session_timeout_ms = positive_i32(key, value)?
            }
            "group.streams.heartbeat.interval.ms" => {
                self.streams_group.heartbeat_interval_ms = positive_i32(key, value)?
            }
            "group.streams.max.size" => {
                self.streams_group.max_size = positive_i32(key, value)? as usize
            }
            "group.streams.num.standby.replicas" => {
                self.streams_group.num_standby_replicas = parse_num(key, value)?
            }
            "group.streams.initial.rebalance.delay.ms" => {
                self.streams_group.initial_rebalance_delay_ms = parse_num(key, value)?
            }
            "group.streams.assignment.interval.ms" => {
                self.streams_group.assignment_interval_ms = parse_num(key, value)?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.consumer_group.heartbeat_interval_ms = positive_i32(key, value)?
            }
            "group.consumer.max.size" => {
                self.consumer_group.max_size = positive_i32(key, value)? as usize
            }
            "group.consumer.assignors" => {
                use gregor_group::consumer_group::AssignorName;
                let mut assignors = Vec::new();
                for entry in value.split(',').filter(|e| !e.trim().is_empty()) {
                    let a = AssignorName::from_config(entry).ok_or_else(|| {
                        invalid(
                            key,
                            value,
                            format!(
                                "{} is not an assignor gregor serves: the builtin uniform and \
                                 range (or their Kafka class names)",
                                entry.trim()
                            ),
                        )
                    })?;
                    if !assignors.contains(&a) {
                        assignors.push(a);
                    }
                }
                if assignors.is_empty() {
                    return Err(invalid(key, value, "name at least one assignor"));
                }
                self.consumer_group.assignors = assignors;
            }
            "group.consumer.migration.policy" => {
                self.consumer_group.migration_policy =
                    gregor_group::consumer_group::MigrationPolicy::parse(value).ok_or_else(
                        || {
                            invalid(
                                key,
                                value,
                                "must be one of disabled, downgrade, upgrade, bidirectional",
                            )
                        },
                    )?
            }
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_max_bytes = parse_num(key, value)?
            }
            "offsets.retention.minutes" => {
                let m: i64 = parse_num(key, value)?;
                if m < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.group.offsets_retention_ms = m.saturating_mul(60_000);
            }
            "offsets.retention.check.interval.ms" => {
                self.group.offsets_retention_check_interval_ms = positive_ms(key, value)?
            }
            "offsets.topic.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.group.offsets_topic_num_partitions = n;
                self.consumer_group.offsets_topic_num_partitions = n;
            }
            "log.flush.interval.messages" => {
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                let interval_ms = match self.flush {
                    FlushPolicy::Interval { interval_ms, .. } => interval_ms,
                    FlushPolicy::OnAcksAll => i64::MAX,
                };
                self.flush = FlushPolicy::Interval {
                    messages: n,
                    interval_ms,
                };
            }
            "log.flush.interval.ms" => {
                let n = positive_ms(key, value)?;
                let messages = match self.flush {
                    FlushPolicy::Interval { messages, .. } => messages,
                    FlushPolicy::OnAcksAll => i64::MAX,
                };
                self.flush = FlushPolicy::Interval {
                    messages,
                    interval_ms: n,
                };
            }
            "process.roles" => self.cluster.roles = parse_roles(key, value)?,
            "cluster.id" => {
                let id = value.trim();
                if id.is_empty()
                    || id.len() > 64
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(invalid(
                        key,
                        value,
                        "expected 1 to 64 characters of [A-Za-z0-9_-]",
                    ));
                }
                self.cluster.cluster_id = Some(id.to_string());
            }
            "controller.quorum.voters" => self.cluster.voters = parse_voters(key, value)?,
            "controller.quorum.bootstrap.servers" => {
                self.cluster.bootstrap_servers = parse_bootstrap_servers(key, value)?
            }
            "controller.quorum.auto.join.enable" => {
                self.cluster.auto_join = parse_bool(key, value)?
            }
            "broker.session.timeout.ms" => {
                self.cluster.broker_session_timeout_ms = positive_ms(key, value)? as u64
            }
            "broker.heartbeat.interval.ms" => {
                self.cluster.broker_heartbeat_interval_ms = positive_ms(key, value)? as u64
            }
            "controller.quorum.election.timeout.ms" => {
                self.cluster.quorum_election_timeout_ms = positive_ms(key, value)? as u64
            }
            "controller.quorum.heartbeat.interval.ms" => {
                self.cluster.quorum_heartbeat_interval_ms = positive_ms(key, value)? as u64
            }
            "metadata.log.max.record.bytes.between.snapshots" => {
                // Kafka's LONG, at least 1.
                let n: i64 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.cluster.metadata_snapshot_max_bytes = n as u64;
            }
            "metadata.log.max.snapshot.interval.ms" => {
                // Kafka's LONG, at least 0 (0: no snapshot by time).
                let n: i64 = parse_num(key, value)?;
                if n < 0 {
                    return Err(invalid(key, value, "Value must be at least 0"));
                }
                self.cluster.metadata_snapshot_max_interval_ms = n as u64;
            }
            "metadata.log.max.snapshot.interval.records" => {
                self.cluster.metadata_snapshot_interval_records = positive_ms(key, value)? as u64
            }
            "replica.lag.time.max.ms" => {
                self.cluster.replica_lag_time_max_ms = positive_ms(key, value)?
            }
            "replica.fetch.wait.max.ms" => {
                self.cluster.replica_fetch_wait_max_ms = i32::try_from(positive_ms(key, value)?)
                    .map_err(|_| invalid(key, value, "too large"))?
            }
            "replica.fetch.max.bytes" => {
                self.cluster.replica_fetch_max_bytes = i32::try_from(positive_ms(key, value)?)
                    .map_err(|_| invalid(key, value, "too large"))?
            }
            "replica.fetch.response.max.bytes" => {
                self.cluster.replica_fetch_response_max_bytes =
                    i32::try_from(positive_ms(key, value)?)
                        .map_err(|_| invalid(key, value, "too large"))?
            }
            "broker.rack" => {
                let rack = value.trim();
                if rack.len() > i16::MAX as usize {
                    return Err(invalid(key, value, "longer than 32767 bytes"));
                }
                self.cluster.rack = (!rack.is_empty()).then(|| rack.to_string());
            }
            "replica.selector.class" => {
                self.cluster.replica_selector =
                    crate::replica_selector::ReplicaSelector::parse(value)
                        .map_err(|r| invalid(key, value, r))?;
            }
            "replica.fetch.backoff.ms" => {
                self.cluster.replica_fetch_backoff_ms = positive_ms(key, value)? as u64
            }
            "unclean.leader.election.enable" => {
                self.cluster.unclean_leader_election_enable = parse_bool(key, value)?
            }
            "log.preallocate" => self.log.preallocate = parse_bool(key, value)?,
            "errors.deadletterqueue.topic.name.prefix" => {
                self.dlq.topic_name_prefix = value.trim().to_string()
            }
            "errors.deadletterqueue.auto.create.topics.enable" => {
                self.dlq.auto_create_topics_enable = parse_bool(key, value)?
            }
            "log.local.retention.ms"
            | "log.local.retention.bytes"
            | "log.remote.copy.lag.ms"
            | "log.remote.copy.lag.bytes" => {
                let n: i64 = parse_num(key, value)?;
                let min = if key.starts_with("log.local") { -2 } else { -1 };
                if n < min {
                    return Err(invalid(key, value, format!("Value must be at least {min}")));
                }
                let r = &mut self.remote_storage;
                match key {
                    "log.local.retention.ms" => r.local_retention_ms = n,
                    "log.local.retention.bytes" => r.local_retention_bytes = n,
                    "log.remote.copy.lag.ms" => r.copy_lag_ms = n,
                    _ => r.copy_lag_bytes = n,
                }
            }
            "remote.log.storage.system.enable" => {
                if parse_bool(key, value)? {
                    return Err(invalid(
                        key,
                        value,
                        "gregor has no tiered storage (remote log storage); it must be false",
                    ));
                }
            }
            "auto.leader.rebalance.enable" => {
                self.cluster.auto_leader_rebalance_enable = parse_bool(key, value)?
            }
            "leader.imbalance.check.interval.seconds" => {
                self.cluster.leader_imbalance_check_interval_secs = positive_ms(key, value)? as u64
            }
            "transaction.state.log.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.txn.state_log_num_partitions = n;
            }
            "transaction.state.log.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.txn.state_log_replication_factor = n;
            }
            "transaction.state.log.min.isr" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.txn.state_log_min_isr = n;
            }
            "transaction.state.log.segment.bytes" => {
                let n: i64 = parse_num(key, value)?;
                if n < 14 {
                    return Err(invalid(key, value, "Value must be at least 14"));
                }
                self.txn.state_log_segment_bytes = n;
            }
            "share.coordinator.state.topic.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.share_coordinator.state_topic_num_partitions = n;
            }
            "share.coordinator.state.topic.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.share_coordinator.state_topic_replication_factor = n;
            }
            "share.coordinator.state.topic.min.isr" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.share_coordinator.state_topic_min_isr = n;
            }
            "share.coordinator.state.topic.segment.bytes" => {
                let n: i32 = parse_num(key, value)?;
                if n < 14 {
                    return Err(invalid(key, value, "Value must be at least 14"));
                }
                self.share_coordinator.state_topic_segment_bytes = n;
            }
            "share.coordinator.write.timeout.ms" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.share_coordinator.write_timeout_ms = n;
            }
            "transaction.max.timeout.ms" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.txn.max_timeout_ms = n;
            }
            "transactional.id.expiration.ms" => {
                self.txn.transactional_id_expiration_ms = positive_ms(key, value)?
            }
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.txn.abort_timed_out_interval_ms = positive_ms(key, value)? as u64
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.txn.remove_expired_interval_ms = positive_ms(key, value)? as u64
            }
            "transaction.partition.verification.enable" => {
                self.txn.partition_verification_enable = parse_bool(key, value)?
            }
            "transaction.version" => {
                let n: i16 = parse_num(key, value)?;
                if !(0..=2).contains(&n) {
                    return Err(invalid(key, value, "must be 0, 1 or 2"));
                }
                self.txn.transaction_version = n;
            }
            "add.partitions.to.txn.retry.backoff.ms" => {
                self.txn.add_partitions_retry_backoff_ms = positive_ms(key, value)? as u64
            }
            "add.partitions.to.txn.retry.backoff.max.ms" => {
                self.txn.add_partitions_retry_backoff_max_ms = positive_ms(key, value)? as u64
            }
            "offsets.topic.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(invalid(key, value, "Value must be at least 1"));
                }
                self.cluster.offsets_topic_replication_factor = n;
            }
            "http.listener" => {
                let v = value.trim();
                let v = v.strip_prefix("http://").unwrap_or(v);
                self.http_listen = if v.is_empty() {
                    None
                } else {
                    Some(resolve_listen(key, v)?)
                };
            }
            "peer.address.overrides" => {
                self.cluster.peer_address_overrides = if value.trim().is_empty() {
                    Vec::new()
                } else {
                    parse_voters(key, value)?
                }
            }
            "controlled.shutdown.enable" => {
                self.cluster.controlled_shutdown_enable = parse_bool(key, value)?
            }
            k if k.starts_with("group.") && self.group_configs.apply(k, value)? => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Settles the listeners once every source (file, `--set`, flags) is applied. The client
    /// listener gregor's brokers also reach each other on ([`BrokerConfig::listen`]) is the
    /// first `listeners` entry that is PLAINTEXT and not named in `controller.listener.names`;
    /// the controller listener is the first entry named there, whatever their order. The other
    /// client entries are served beside it ([`BrokerConfig::extra_listeners`]). `--listen` and
    /// `--controller-listen` (already applied) win.
    /// Kafka's `kafka-storage format --standalone` / `--initial-controllers`, given to
    /// `gregor server`: the voters a new metadata log starts with in bootstrap mode. Call after
    /// [`BrokerConfig::resolve_listeners`] (`--standalone` takes this node's controller
    /// listener, as advertised).
    pub fn set_initial_controllers(
        &mut self,
        standalone: bool,
        initial_controllers: Option<&str>,
    ) -> Result<(), ConfigError> {
        match (standalone, initial_controllers) {
            (true, Some(list)) => Err(invalid(
                "--initial-controllers",
                list,
                "give either --standalone or --initial-controllers, not both",
            )),
            (true, None) => {
                let Some(listen) = self.cluster.controller_listen else {
                    return Err(invalid(
                        "--standalone",
                        "",
                        "a controller listener is needed (--controller-listen, or a listeners \
                         entry named in controller.listener.names)",
                    ));
                };
                let addr = self
                    .cluster
                    .controller_advertised
                    .clone()
                    .unwrap_or_else(|| listen.to_string());
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| {
                        Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
                    })
                    .ok_or_else(|| invalid("--standalone", &addr, "bad controller address"))?;
                self.cluster.initial_voters = vec![Voter {
                    id: self.node_id,
                    host,
                    port,
                }];
                Ok(())
            }
            (false, Some(list)) => {
                let (voters, dirs) = parse_initial_controllers("--initial-controllers", list)?;
                self.cluster.initial_voters = voters;
                self.cluster.initial_directory_ids = dirs;
                Ok(())
            }
            (false, None) => Ok(()),
        }
    }

    /// In bootstrap mode with no initial voters given: those of a data directory Kafka's own
    /// `kafka-storage format` formatted with `--standalone` or `--initial-controllers`
    /// ([`crate::kafka_format`]), if it was. Call after
    /// [`BrokerConfig::set_initial_controllers`].
    pub fn adopt_kafka_format(&mut self) -> Result<(), ConfigError> {
        if !self.cluster.bootstrap_mode() || !self.cluster.initial_voters.is_empty() {
            return Ok(());
        }
        let found = crate::kafka_format::initial_voters(&self.data_dir)
            .map_err(|e| invalid("log.dirs", &self.data_dir.display().to_string(), e))?;
        if let Some((voters, dirs)) = found {
            self.cluster.initial_voters = voters;
            self.cluster.initial_directory_ids = dirs;
        }
        Ok(())
    }

    pub fn resolve_listeners(
        &mut self,
        listen_flag: bool,
        controller_flag: bool,
    ) -> Result<(), ConfigError> {
        if !listen_flag {
            if let Some(entry) = self.primary_entry().map(str::to_string) {
                self.listen = resolve_listen("listeners", &entry)?;
            }
        }
        if let Some(advertised) = self.primary_advertised() {
            self.advertised = Some(parse_listener("advertised.listeners", &advertised)?);
        }
        if self.controller_listener_names.is_empty() {
            return Ok(());
        }
        let names = self.controller_listener_names.clone();
        if !controller_flag {
            let controller = self
                .listener_entries
                .iter()
                .find(|e| names.contains(&listener_name(e)));
            if let Some(entry) = controller {
                self.cluster.controller_listen = Some(resolve_listen("listeners", entry)?);
            }
        }
        // Kafka 4.x's configs advertise the controller listener too (a bootstrap-mode quorum
        // records each node at the address it gives).
        if let Some(entry) = self
            .advertised_entries
            .iter()
            .find(|e| names.contains(&listener_name(e)))
        {
            let (host, port) = parse_listener("advertised.listeners", entry)?;
            if !host.is_empty() {
                self.cluster.controller_advertised = Some(format!("{host}:{port}"));
            }
        }
        Ok(())
    }

    /// The security protocol a listener name maps to (`listener.security.protocol.map`, or
    /// Kafka's default map, where controller listeners are PLAINTEXT).
    pub fn protocol_of(&self, name: &str) -> Option<String> {
        match &self.security_protocol_map {
            Some(map) => map.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone()),
            None if self.controller_listener_names.iter().any(|n| n == name) => {
                Some("PLAINTEXT".to_string())
            }
            None => DEFAULT_SECURITY_PROTOCOLS
                .iter()
                .find(|p| **p == name)
                .map(|p| p.to_string()),
        }
    }

    /// The `listeners` entries clients connect to (not controller listeners).
    fn client_entries(&self) -> impl Iterator<Item = &String> {
        self.listener_entries
            .iter()
            .filter(|e| !self.controller_listener_names.contains(&listener_name(e)))
    }

    /// The client entry served as [`BrokerConfig::listen`], the one brokers reach each other
    /// on: the one `inter.broker.listener.name` names, else the first PLAINTEXT one (the first
    /// entry at all when none is, which [`BrokerConfig::validate`] then refuses).
    fn primary_entry(&self) -> Option<&str> {
        if let Some(name) = &self.inter_broker_listener {
            if let Some(e) = self.client_entries().find(|e| listener_name(e) == *name) {
                return Some(e);
            }
        }
        let mut entries = self.client_entries().peekable();
        let first = entries.peek().map(|e| e.as_str());
        self.client_entries()
            .find(|e| self.protocol_of(&listener_name(e)).as_deref() == Some("PLAINTEXT"))
            .map(String::as_str)
            .or(first)
    }

    /// The name brokers register and look each other up by: the primary listener's
    /// (`PLAINTEXT` by default).
    pub fn inter_broker_listener_name(&self) -> String {
        self.primary_entry()
            .map(listener_name)
            .or_else(|| self.inter_broker_listener.clone())
            .unwrap_or_else(|| crate::handlers::metadata::CLIENT_LISTENER.to_string())
    }

    /// One listener's `ssl.*` and `sasl.*` keys: the global ones, its
    /// `listener.name.<name>.` ones over them.
    fn listener_props(&self, name: &str) -> BTreeMap<String, String> {
        let mut props = self.security.clone();
        // KIP-368's session lifetime, which the listener's own keys may override.
        props.insert(
            crate::sasl::CONNECTIONS_MAX_REAUTH_MS.to_string(),
            self.net.connections_max_reauth_ms.to_string(),
        );
        if let Some(own) = self.listener_security.get(name) {
            props.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        props
    }

    /// One listener's TLS settings as its `ssl.*` keys give them now (a reload reads them with
    /// the dynamic configs applied).
    pub fn listener_tls_settings(
        &self,
        name: &str,
    ) -> Result<crate::tls::TlsSettings, crate::tls::TlsError> {
        crate::tls::TlsSettings::from_props(&self.listener_props(&name.to_ascii_uppercase()))
    }

    /// The TLS settings of the listener brokers reach each other on, when it is SSL or
    /// SASL_SSL: its server side, and what a broker dialling a peer trusts and shows.
    pub fn inter_broker_tls(&self) -> Result<Option<crate::tls::TlsSettings>, ConfigError> {
        let Some(entry) = self.primary_entry() else {
            return Ok(None);
        };
        let name = listener_name(entry);
        let protocol = self.protocol_of(&name).unwrap_or_default();
        if protocol != "SSL" && protocol != "SASL_SSL" {
            return Ok(None);
        }
        let settings =
            crate::tls::TlsSettings::from_props(&self.listener_props(&name)).map_err(|e| {
                ConfigError::Listener {
                    listener: entry.to_string(),
                    reason: e.to_string(),
                }
            })?;
        if !settings.has_truststore() {
            return Err(ConfigError::Listener {
                listener: entry.to_string(),
                reason: format!(
                    "brokers reach each other on this {protocol} listener, so they must trust \
                     each other's certificates: set ssl.truststore.location (PEM)"
                ),
            });
        }
        Ok(Some(settings))
    }

    /// The TLS settings of the controller listener (the first of `controller.listener.names`),
    /// when `listener.security.protocol.map` maps it to SSL: its `ssl.*` keys
    /// (`listener.name.<controller>.ssl.*` over the global ones), with which every node serves
    /// the metadata quorum and dials the others. Each node shows its keystore and checks its
    /// peers against the truststore, so both are required. SASL_SSL takes the same TLS
    /// settings (the nodes then log in with SASL: [`BrokerConfig::controller_sasl`]).
    pub fn controller_tls(&self) -> Result<Option<crate::tls::TlsSettings>, ConfigError> {
        let Some(name) = self.controller_listener_names.first() else {
            return Ok(None);
        };
        let protocol = self.protocol_of(name).unwrap_or_default();
        if protocol != "SSL" && protocol != "SASL_SSL" {
            return Ok(None);
        }
        let refused = |reason: String| ConfigError::Listener {
            listener: name.clone(),
            reason,
        };
        let props = self.listener_props(name);
        let settings =
            crate::tls::TlsSettings::from_props(&props).map_err(|e| refused(e.to_string()))?;
        let has_keystore = ["ssl.keystore.location", "ssl.keystore.key"]
            .iter()
            .any(|k| props.get(*k).is_some_and(|v| !v.trim().is_empty()));
        let key_prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
        if !settings.has_truststore() {
            return Err(refused(format!(
                "the controller listener is SSL, so the quorum's nodes check each other's \
                 certificates: set {key_prefix}ssl.truststore.location (PEM), or the global \
                 ssl.truststore.location"
            )));
        }
        if !has_keystore {
            return Err(refused(format!(
                "the controller listener is SSL, so every node shows its own certificate: \
                 set {key_prefix}ssl.keystore.location (PEM), or the global \
                 ssl.keystore.location"
            )));
        }
        Ok(Some(settings))
    }

    /// SASL on the controller listener (the first of `controller.listener.names`), when it is
    /// SASL_PLAINTEXT or SASL_SSL: the listener's server settings (its `sasl.enabled.mechanisms`
    /// and PLAIN's `user_<name>` entries), and the login every node dials its peers with: the
    /// mechanism `sasl.mechanism.controller.protocol` names, which the listener must enable, as
    /// the `username` and `password` of that mechanism's JAAS config on the listener
    /// (`listener.name.<controller>.<mechanism>.sasl.jaas.config`, or `sasl.jaas.config`).
    /// gregor's quorum logs in with PLAIN only: SCRAM's credentials live in the metadata log
    /// the quorum carries, which a node does not have before it has logged in.
    #[allow(clippy::type_complexity)]
    pub fn controller_sasl(
        &self,
    ) -> Result<
        Option<(
            std::sync::Arc<crate::sasl::SaslSettings>,
            gregor_client::SaslLogin,
        )>,
        ConfigError,
    > {
        let Some(name) = self.controller_listener_names.first() else {
            return Ok(None);
        };
        let protocol = self.protocol_of(name).unwrap_or_default();
        if !protocol.starts_with("SASL_") {
            return Ok(None);
        }
        let refused = |reason: String| ConfigError::Listener {
            listener: name.clone(),
            reason,
        };
        let props = self.listener_props(name);
        let settings =
            crate::sasl::SaslSettings::from_props(&props).map_err(|e| refused(e.to_string()))?;
        let mechanism = self.controller_sasl_mechanism.as_str();
        // SCRAM's credentials are in the metadata log the quorum carries: a node without the
        // log checks logins against its --add-scram SPECs (controller_sasl.rs).
        let (client_mechanism, module) = match mechanism {
            "PLAIN" => (gregor_client::SaslMechanism::Plain, PLAIN_LOGIN_MODULE),
            "SCRAM-SHA-256" => (
                gregor_client::SaslMechanism::ScramSha256,
                SCRAM_LOGIN_MODULE,
            ),
            "SCRAM-SHA-512" => (
                gregor_client::SaslMechanism::ScramSha512,
                SCRAM_LOGIN_MODULE,
            ),
            other => {
                return Err(refused(format!(
                    "sasl.mechanism.controller.protocol={other}{}: gregor's controllers log in \
                     to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    if other == "GSSAPI" {
                        " (Kafka's default, not served by gregor)"
                    } else {
                        ""
                    }
                )));
            }
        };
        if !settings.mechanisms.iter().any(|m| m == mechanism) {
            return Err(refused(format!(
                "controllers log in to each other on this listener with {mechanism} \
                 (sasl.mechanism.controller.protocol), which it does not enable: add it to \
                 listener.name.{}.sasl.enabled.mechanisms (enabled: {})",
                name.to_ascii_lowercase(),
                settings.mechanisms.join(",")
            )));
        }
        let own_key = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        let jaas_key = format!("listener.name.{}.{own_key}", name.to_ascii_lowercase());
        let Some(jaas) = props
            .get(&own_key)
            .or_else(|| props.get("sasl.jaas.config"))
        else {
            let users = if module == PLAIN_LOGIN_MODULE {
                " user_<user>=\"<password>\""
            } else {
                ""
            };
            return Err(refused(format!(
                "controllers log in to each other with {mechanism}, but no JAAS config gives \
                 this node's login: set {jaas_key} to {module} required \
                 username=\"<user>\" password=\"<password>\"{users};"
            )));
        };
        let (found, options) =
            crate::sasl::parse_jaas(jaas).map_err(|e| refused(format!("{jaas_key}: {e}")))?;
        if found != module {
            return Err(refused(format!(
                "{jaas_key}: {found}: controllers logging in with {mechanism} take {module}"
            )));
        }
        let option = |k: &str| crate::sasl::jaas_option(&options, k).map(str::to_string);
        let (Some(username), Some(password)) = (option("username"), option("password")) else {
            return Err(refused(format!(
                "{jaas_key} has no username=\"...\" and password=\"...\": every node logs in \
                 to the others' controller listener as that user{}",
                if module == PLAIN_LOGIN_MODULE {
                    " (also list it as user_<name>=\"<password>\")"
                } else {
                    " (its SCRAM credential made with --add-scram)"
                }
            )));
        };
        Ok(Some((
            std::sync::Arc::new(settings),
            gregor_client::SaslLogin {
                mechanism: client_mechanism,
                username,
                password,
            },
        )))
    }

    /// The SASL side of the listener brokers reach each other on, when it is SASL_PLAINTEXT or
    /// SASL_SSL: the listener's server settings, and the login a broker dialling a peer uses,
    /// as Kafka takes it: the mechanism `sasl.mechanism.inter.broker.protocol` names (which the
    /// listener must enable), and the `username` and `password` options of that mechanism's
    /// JAAS config on the listener (`listener.name.<l>.<mechanism>.sasl.jaas.config`, or
    /// `sasl.jaas.config`).
    #[allow(clippy::type_complexity)]
    pub fn inter_broker_sasl(
        &self,
    ) -> Result<
        Option<(
            std::sync::Arc<crate::sasl::SaslSettings>,
            gregor_client::SaslLogin,
        )>,
        ConfigError,
    > {
        let Some(entry) = self.primary_entry() else {
            return Ok(None);
        };
        let name = listener_name(entry);
        let protocol = self.protocol_of(&name).unwrap_or_default();
        if !protocol.starts_with("SASL_") {
            return Ok(None);
        }
        let refused = |reason: String| ConfigError::Listener {
            listener: entry.to_string(),
            reason,
        };
        let props = self.listener_props(&name);
        let settings =
            crate::sasl::SaslSettings::from_props(&props).map_err(|e| refused(e.to_string()))?;
        let mechanism = self.inter_broker_sasl_mechanism.as_str();
        if !settings.mechanisms.iter().any(|m| m == mechanism) {
            return Err(refused(format!(
                "brokers log in to each other on this listener with {mechanism} \
                 (sasl.mechanism.inter.broker.protocol), which it does not enable: add it to \
                 sasl.enabled.mechanisms (enabled: {})",
                settings.mechanisms.join(",")
            )));
        }
        let (client_mechanism, module) = match mechanism {
            "PLAIN" => (gregor_client::SaslMechanism::Plain, PLAIN_LOGIN_MODULE),
            "SCRAM-SHA-256" => (
                gregor_client::SaslMechanism::ScramSha256,
                SCRAM_LOGIN_MODULE,
            ),
            _ => (
                gregor_client::SaslMechanism::ScramSha512,
                SCRAM_LOGIN_MODULE,
            ),
        };
        let own_key = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        let jaas_key = format!("listener.name.{}.{own_key}", name.to_ascii_lowercase());
        let Some(jaas) = props
            .get(&own_key)
            .or_else(|| props.get("sasl.jaas.config"))
        else {
            return Err(refused(format!(
                "brokers log in to each other with {mechanism}, but no JAAS config gives this \
                 broker's login: set {jaas_key} to {module} required username=\"<broker user>\" \
                 password=\"<password>\" ...;"
            )));
        };
        let (found, options) =
            crate::sasl::parse_jaas(jaas).map_err(|e| refused(format!("{jaas_key}: {e}")))?;
        if found != module {
            return Err(refused(format!(
                "{jaas_key}: {found}: brokers logging in with {mechanism} take {module}"
            )));
        }
        let option = |k: &str| crate::sasl::jaas_option(&options, k).map(str::to_string);
        let (Some(username), Some(password)) = (option("username"), option("password")) else {
            return Err(refused(format!(
                "{jaas_key} has no username=\"...\" and password=\"...\": brokers log in to \
                 each other with {mechanism} as that user (for PLAIN, also list it as \
                 user_<name>=\"<password>\")"
            )));
        };
        Ok(Some((
            std::sync::Arc::new(settings),
            gregor_client::SaslLogin {
                mechanism: client_mechanism,
                username,
                password,
            },
        )))
    }

    /// The `advertised.listeners` entry of the primary listener: the one with its name, or a
    /// bare `host:port` entry.
    fn primary_advertised(&self) -> Option<String> {
        let name = self.primary_entry().map(listener_name)?;
        self.advertised_entries
            .iter()
            .find(|e| listener_name(e) == name)
            .cloned()
    }

    /// The client listeners served beside [`BrokerConfig::listen`], each with its own address
    /// and, for SSL ones, its TLS settings (global `ssl.*` keys, then its
    /// `listener.name.<name>.ssl.*` keys over them).
    pub fn extra_listeners(&self) -> Result<Vec<ListenerSpec>, ConfigError> {
        let Some(primary) = self.primary_entry() else {
            return Ok(Vec::new());
        };
        let primary_name = listener_name(primary);
        let mut out = Vec::new();
        for entry in self.client_entries() {
            let name = listener_name(entry);
            if name == primary_name {
                continue;
            }
            let protocol = self.protocol_of(&name).unwrap_or_default();
            let props = self.listener_props(&name);
            let refused = |reason: String| ConfigError::Listener {
                listener: entry.clone(),
                reason,
            };
            let tls = if protocol == "SSL" || protocol == "SASL_SSL" {
                let settings = crate::tls::TlsSettings::from_props(&props)
                    .map_err(|e| refused(e.to_string()))?;
                Some(settings)
            } else {
                None
            };
            let sasl = if protocol.starts_with("SASL_") {
                let settings = crate::sasl::SaslSettings::from_props(&props)
                    .map_err(|e| refused(e.to_string()))?;
                Some(std::sync::Arc::new(settings))
            } else {
                None
            };
            let advertised = match self
                .advertised_entries
                .iter()
                .find(|e| listener_name(e) == name)
            {
                Some(e) => Some(parse_listener("advertised.listeners", e)?),
                None => None,
            };
            out.push(ListenerSpec {
                name,
                addr: resolve_listen("listeners", entry)?,
                advertised,
                tls,
                sasl,
            });
        }
        Ok(out)
    }

    /// Checks what single keys cannot: run once every source has been applied.
    ///
    /// Every `listeners` and `advertised.listeners` entry must map to a security protocol
    /// (`listener.security.protocol.map`, Kafka's default map when unset) that gregor serves on
    /// it: any of Kafka's four on a client listener, PLAINTEXT on the controller listener. The
    /// inter-broker listener must also give a broker what it dials its peers with: a
    /// truststore when it is SSL or SASL_SSL, a login when it is SASL_*
    /// ([`BrokerConfig::inter_broker_sasl`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.cordoned_dirs()?;
        for entry in self.listener_entries.iter().chain(&self.advertised_entries) {
            let name = listener_name(entry);
            let Some(protocol) = self.protocol_of(&name) else {
                return Err(ConfigError::Listener {
                    listener: entry.clone(),
                    reason: format!(
                        "no security protocol defined for listener {name} \
                         (add it to listener.security.protocol.map)"
                    ),
                });
            };
            let served = matches!(
                protocol.as_str(),
                "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
            );
            if !served {
                return Err(ConfigError::Listener {
                    listener: entry.clone(),
                    reason: format!(
                        "unknown security protocol {protocol}: gregor serves PLAINTEXT, SSL, \
                         SASL_PLAINTEXT and SASL_SSL"
                    ),
                });
            }
        }
        let names: Vec<String> = if self.listener_entries.is_empty() {
            vec!["PLAINTEXT".to_string()]
        } else {
            self.listener_entries
                .iter()
                .map(|e| listener_name(e))
                .collect()
        };
        if let Some(entry) = self
            .advertised_entries
            .iter()
            .find(|e| !names.contains(&listener_name(e)))
        {
            return Err(ConfigError::Listener {
                listener: entry.clone(),
                reason: "advertised.listeners names a listener that listeners does not have"
                    .to_string(),
            });
        }
        if let Some(name) = &self.inter_broker_listener {
            if !self.listener_entries.is_empty()
                && !self.client_entries().any(|e| listener_name(e) == *name)
            {
                return Err(invalid(
                    "inter.broker.listener.name",
                    name,
                    "no listeners entry has this name",
                ));
            }
        }
        self.inter_broker_tls()?;
        self.inter_broker_sasl()?;
        self.controller_tls()?;
        self.controller_sasl()?;
        self.extra_listeners()?;
        self.validate_cluster()?;
        self.group_configs.check()?;
        self.check_connection_limits()?;
        if let Some(pool) = self.net.queued_max_request_bytes {
            // The pool is strict (no request may overdraw it), so a request larger than the
            // pool could never be read whole.
            if pool < self.socket_request_max_bytes {
                return Err(invalid(
                    "queued.max.request.bytes",
                    &pool.to_string(),
                    format!(
                        "must be -1 or at least socket.request.max.bytes ({})",
                        self.socket_request_max_bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Applies a list of pairs, remembering unknown keys in `ignored`.
    /// The quorum settings must describe one consistent node: a controller is among the voters
    /// and has a controller listener; a broker-only node knows the voters to join.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let bootstrap = c.bootstrap_mode();
        // A node that has run before has its metadata log, with its voters.
        let new_node = !self.data_dir.join(crate::server::METADATA_DIR).exists();
        if bootstrap && c.roles.controller && c.initial_voters.is_empty() && new_node {
            // Kafka refuses to format such a controller without --standalone,
            // --initial-controllers or --no-initial-controllers; asking only itself, it would
            // wait for a quorum forever.
            let own_port = c.controller_listen.map(|a| a.port());
            let only_itself = c.bootstrap_servers.iter().all(|server| {
                let (host, port) = server.rsplit_once(':').unwrap_or((server.as_str(), ""));
                let own_host = ["localhost", "127.0.0.1", "0.0.0.0", "[::1]", "::1"]
                    .contains(&host)
                    || c.controller_advertised.as_deref() == Some(server.as_str());
                own_port.is_some_and(|p| port == p.to_string()) && own_host
            });
            if only_itself {
                return Err(invalid(
                    "controller.quorum.bootstrap.servers",
                    &c.bootstrap_servers.join(","),
                    "this controller is its own only bootstrap server, and no quorum exists to \
                     join: start the first controller of a new cluster with --standalone (or \
                     all the first ones with --initial-controllers), as Kafka's \
                     `kafka-storage format` takes them",
                ));
            }
        }
        if !bootstrap && !c.initial_voters.is_empty() {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text(&c.voters),
                "--standalone and --initial-controllers name the first voters of a quorum found \
                 through controller.quorum.bootstrap.servers; with controller.quorum.voters the \
                 voters are those",
            ));
        }
        if bootstrap && !c.roles.controller && !c.initial_voters.is_empty() {
            return Err(invalid(
                "process.roles",
                "broker",
                "--standalone and --initial-controllers are for controllers: a broker-only node \
                 joins the quorum through controller.quorum.bootstrap.servers",
            ));
        }
        if bootstrap
            && !c.initial_voters.is_empty()
            && !c.initial_voters.iter().any(|v| v.id == self.node_id)
        {
            return Err(invalid(
                "--initial-controllers",
                &voters_text(&c.initial_voters),
                format!(
                    "node.id {} is not among them: list this controller, or start it without \
                     --initial-controllers to join the quorum as an observer",
                    self.node_id
                ),
            ));
        }
        let voter = c.voters.iter().any(|v| v.id == self.node_id);
        // A controller not among the configured voters joins the quorum as an observer, to be
        // made a voter with AddRaftVoter (`kafka-metadata-quorum add-controller`) once the
        // cluster is at kraft.version 1 (KIP-853).
        if !c.roles.controller && voter {
            return Err(invalid(
                "process.roles",
                "broker",
                format!(
                    "node.id {} is a voter in controller.quorum.voters, so it needs the \
                     controller role",
                    self.node_id
                ),
            ));
        }
        if !c.roles.controller && c.voters.is_empty() && !bootstrap {
            return Err(invalid(
                "controller.quorum.voters",
                "",
                "a broker-only node (process.roles=broker) needs the voters of the quorum it \
                 joins (controller.quorum.voters), or controllers to find it through \
                 (controller.quorum.bootstrap.servers)",
            ));
        }
        if (!c.voters.is_empty() || bootstrap) && c.controller_listen.is_none() {
            return Err(invalid(
                "listeners",
                &self.listener_entries.join(","),
                "a cluster node needs a controller listener (--controller-listen, or a \
                 listeners entry named in controller.listener.names)",
            ));
        }
        if !c.roles.broker && c.voters.is_empty() && !bootstrap {
            // A lone controller would lead a quorum with no broker to place anything on.
            return Err(invalid(
                "controller.quorum.voters",
                "",
                "a controller-only node (process.roles=controller) needs the voters of its \
                 quorum (controller.quorum.voters), or controllers to find it through \
                 (controller.quorum.bootstrap.servers)",
            ));
        }
        if let Some(addr) = c.controller_listen.filter(|_| c.roles.broker) {
            if addr == self.listen && addr.port() != 0 {
                return Err(invalid(
                    "listeners",
                    &addr.to_string(),
                    "the controller listener and the client listener need different ports",
                ));
            }
        }
        if c.broker_heartbeat_interval_ms >= c.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                &c.broker_heartbeat_interval_ms.to_string(),
                format!(
                    "must be below broker.session.timeout.ms ({})",
                    c.broker_session_timeout_ms
                ),
            ));
        }
        if c.quorum_heartbeat_interval_ms >= election_timeout_floor_ms(c.quorum_election_timeout_ms)
        {
            return Err(invalid(
                "controller.quorum.heartbeat.interval.ms",
                &c.quorum_heartbeat_interval_ms.to_string(),
                format!(
                    "must be below 4/5 of controller.quorum.election.timeout.ms ({})",
                    c.quorum_election_timeout_ms
                ),
            ));
        }
        Ok(())
    }

    pub fn apply<I, K, V>(&mut self, pairs: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut pairs: Vec<(K, V)> = pairs.into_iter().collect();
        // Kafka's precedence between synonyms, whatever their order: the most specific last.
        pairs.sort_by_key(|(k, _)| synonym_rank(k.as_ref()));
        for (k, v) in pairs {
            // Read by `config_providers` before: no setting of the broker's.
            if crate::config_providers::is_provider_setting(k.as_ref()) {
                continue;
            }
            if !self.set(k.as_ref(), v.as_ref())? {
                self.ignored.push(k.as_ref().to_string());
            }
        }
        Ok(())
    }

    /// Loads a properties file on top of the current values.
    pub fn load_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        self.load(Some(path), &[])
    }

    /// The start-up configuration: the properties file (if any), then the `--set KEY=VALUE`
    /// overrides over it, with the variables of Kafka's config providers resolved in both
    /// (`config_providers`), as Kafka resolves `server.properties` and its `--override`s
    /// together.
    pub fn load(
        &mut self,
        file: Option<&std::path::Path>,
        sets: &[String],
    ) -> Result<(), ConfigError> {
        let mut pairs = match file {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                parse_properties(&text)?
            }
        };
        let from_file = pairs.len();
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(s.clone()))?;
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut pairs =
            crate::config_providers::resolve(pairs, &crate::config_providers::process_env)?;
        let overrides = pairs.split_off(from_file);
        self.apply(pairs)?;
        self.apply_override_pairs(overrides)
    }

    /// Adds one `--add-scram` SPEC (Kafka's syntax, `SCRAM-SHA-512=[name=...,password=...]`);
    /// `origin` names it in the error. A second SPEC for the same user and mechanism is
    /// refused.
    pub fn add_scram(&mut self, origin: &str, spec: &str) -> Result<(), ConfigError> {
        use crate::scram_bootstrap::{check_distinct, ScramBootstrap};
        let error = |e: crate::scram_bootstrap::ScramSpecError| ConfigError::AddScram {
            origin: origin.to_string(),
            reason: e.0,
        };
        self.scram_bootstrap
            .push(ScramBootstrap::parse(spec).map_err(error)?);
        if let Err(e) = check_distinct(&self.scram_bootstrap) {
            self.scram_bootstrap.pop();
            return Err(error(e));
        }
        Ok(())
    }

    /// Applies `key=value` strings (the CLI's `--set`).
    pub fn apply_overrides(&mut self, sets: &[String]) -> Result<(), ConfigError> {
        self.load(None, sets)
    }

    /// `--set` overrides, parsed.
    fn apply_override_pairs(
        &mut self,
        overrides: Vec<(String, String)>,
    ) -> Result<(), ConfigError> {
        // Apply in the order given, not sorted: later --set wins over an earlier one; between
        // synonyms, Kafka's precedence (the most specific last).
        let mut ordered: Vec<String> = overrides.iter().map(|(k, _)| k.clone()).collect();
        let mut pairs: BTreeMap<String, String> = overrides.into_iter().collect();
        ordered.sort_by_key(|k| synonym_rank(k));
        for k in ordered {
            if let Some(v) = pairs.remove(&k) {
                if crate::config_providers::is_provider_setting(&k) {
                    continue;
                }
                if !self.set(&k, &v)? {
                    self.ignored.push(k);
                }
            }
        }
        Ok(())
    }
}

/// Kafka's precedence between synonyms (`log.retention.ms` over `.minutes` over `.hours`,
/// `log.roll.ms` over `.hours`, `log.roll.jitter.ms` over `.hours`, `log.dirs` over
/// `log.dir`): a more specific key ranks higher and is applied after the others, so it wins
/// whatever order a file or the flags give them in. Every other key ranks 0.
fn synonym_rank(key: &str) -> u8 {
    match key {
        "log.retention.minutes" => 1,
        "log.retention.ms" | "log.roll.ms" | "log.roll.jitter.ms" | "log.dirs" => 2,
        _ => 0,
    }
}

/// `controller.quorum.voters` as written.
pub fn voters_text(voters: &[Voter]) -> String {
    voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect::<Vec<_>>()
        .join(",")
}

/// A socket buffer size: positive, or -1 for the operating system's (Kafka takes any other
/// value too, and its listener then fails to accept).
fn buffer_size(key: &str, value: &str) -> Result<i32, ConfigError> {
    let n: i32 = parse_num(key, value)?;
    if n == gregor_client::socket::OS_DEFAULT || n > 0 {
        Ok(n)
    } else {
        Err(invalid(
            key,
            value,
            "a socket buffer size is positive, or -1 for the operating system's",
        ))
    }
}

fn positive_ms(key: &str, value: &str) -> Result<i64, ConfigError> {
    let n: i64 = parse_num(key, value)?;
    if n < 1 {
        return Err(invalid(key, value, "Value must be at least 1"));
    }
    Ok(n)
}

/// The low end of the randomized Raft election timeout for `controller.quorum.election.timeout.ms`
/// = `timeout_ms` (the high end is `timeout_ms` itself). A narrow range keeps a dead quorum
/// leader's replacement quick (openraft adds a leader lease of the high end before a follower
/// campaigns), and 1/5 of the timeout still spreads two candidates' elections far apart
/// compared with one vote round trip on a LAN.
pub fn election_timeout_floor_ms(timeout_ms: u64) -> u64 {
    timeout_ms.saturating_mul(4) / 5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pairs` applied, the listeners resolved, then validated: the config, or the error's text.
    fn resolved_and_validated(pairs: &[(&str, &str)]) -> Result<BrokerConfig, String> {
        let mut c = BrokerConfig::default();
        c.apply(pairs.iter().copied()).expect("keys parse");
        c.resolve_listeners(false, false).expect("resolves");
        c.validate().map(|_| c).map_err(|e| e.to_string())
    }

    #[test]
    fn properties_parse_like_java() {
        let p = parse_properties(
            "# comment\n! also\nnum.partitions=3\nlog.dirs : /tmp/x\nlisteners PLAINTEXT://127.0.0.1:9093\nlong=a\\\n  b\n",
        )
        .expect("parses");
        assert_eq!(
            p,
            vec![
                ("num.partitions".into(), "3".into()),
                ("log.dirs".into(), "/tmp/x".into()),
                ("listeners".into(), "PLAINTEXT://127.0.0.1:9093".into()),
                ("long".into(), "ab".into()),
            ]
        );
    }

    /// Java's `Properties.load` on this text (Java 17, printed by a side-by-side run) gave
    /// exactly these keys and values.
    #[test]
    fn properties_parse_exactly_as_java_properties_load() {
        let text = "a\\=b\\:c = v\\=1  \r\neven=x\\\\\nnext=1\ncont=one\\\n  # not a comment\\\n\n  two=2\nkeyonly\n\t key2 \t:: v\ntabs=\\t\\n\\u0041\\u00e9\\q\\\\\nsp\\ ace=x\ncolon:=y\n   !comment\nlast=tail\\";
        let mut got = parse_java_properties(text).expect("parses");
        got.sort();
        let want: Vec<(String, String)> = [
            ("a=b:c", "v=1  "),
            ("colon", "=y"),
            ("cont", "one# not a comment"),
            ("even", "x\\"),
            ("key2", ": v"),
            ("keyonly", ""),
            ("last", "tail"),
            ("next", "1"),
            ("sp ace", "x"),
            ("tabs", "\t\nA\u{e9}q\\"),
            ("two", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        // Kafka trims what it parses.
        let trimmed = parse_properties("a = v=1  \n").expect("parses");
        assert_eq!(trimmed, vec![("a".to_string(), "v=1".to_string())]);
        // Java refuses a malformed escape, and so does gregor's start.
        for bad in ["a=\\u00g1", "a=\\u12"] {
            let e = parse_properties(bad).expect_err(bad).to_string();
            assert_eq!(e, "Malformed \\uxxxx encoding.", "{bad}");
        }
    }

    /// KIP-392's keys: the rack goes in the registration, the selector by Kafka's class name;
    /// a class gregor does not have is refused with the ones it has.
    #[test]
    fn broker_rack_and_the_replica_selector() {
        use crate::replica_selector::{ReplicaSelector, RACK_AWARE_SELECTOR};
        let mut c = BrokerConfig::default();
        assert_eq!((&c.cluster.rack, c.cluster.replica_selector), (&None, None));
        c.set("broker.rack", "RACK1").expect("valid");
        c.set("replica.selector.class", RACK_AWARE_SELECTOR)
            .expect("valid");
        assert_eq!(c.cluster.rack.as_deref(), Some("RACK1"));
        assert_eq!(c.cluster.replica_selector, Some(ReplicaSelector::RackAware));
        let err = c
            .set("replica.selector.class", "com.example.Nearest")
            .expect_err("no such selector");
        assert!(err.to_string().contains(RACK_AWARE_SELECTOR), "{err}");
        c.set("replica.selector.class", "").expect("valid");
        c.set("broker.rack", "").expect("valid");
        assert_eq!((&c.cluster.rack, c.cluster.replica_selector), (&None, None));
    }

    #[test]
    fn known_keys_apply_and_bad_values_fail() {
        let mut c = BrokerConfig::default();
        c.apply([
            ("num.partitions", "3"),
            ("log.retention.hours", "1"),
            ("listeners", "PLAINTEXT://127.0.0.1:9999"),
            ("zookeeper.connect", "x"),
            ("broker.id", "4"),
            ("replica.lag.time.max.ms", "10000"),
        ])
        .expect("valid");
        assert_eq!(c.num_partitions, 3);
        assert_eq!((c.node_id, c.cluster.replica_lag_time_max_ms), (4, 10_000));
        assert!(c.clone().set("replica.lag.time.max.ms", "0").is_err());
        assert_eq!(c.log.retention_ms, 3_600_000);
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.ignored, vec!["zookeeper.connect".to_string()]);
        assert!(c.set("num.partitions", "zero").is_err());
        assert!(c.set("num.partitions", "0").is_err());
        assert!(c.set("auto.create.topics.enable", "yes").is_err());
        assert_eq!(BrokerConfig::default().fetch_max_bytes, 55 << 20);
        c.set("fetch.max.bytes", "1024").expect("valid");
        assert_eq!(c.fetch_max_bytes, 1024);
        assert!(c.set("fetch.max.bytes", "1023").is_err());
        assert!(c.set("fetch.max.bytes", "2147483648").is_err());
        assert!(c.apply_overrides(&["novalue".into()]).is_err());
    }

    /// `group.coordinator.rebalance.protocols`: Kafka's names, `classic` required; `consumer`
    /// turns the consumer group protocol on.
    #[test]
    fn rebalance_protocols_are_checked_as_kafka_checks_them() {
        let mut c = BrokerConfig::default();
        assert!(c.consumer_protocol_enabled);
        c.set("group.coordinator.rebalance.protocols", "classic")
            .expect("classic alone");
        assert!(!c.consumer_protocol_enabled);
        c.set(
            "group.coordinator.rebalance.protocols",
            " CLASSIC, consumer,share",
        )
        .expect("any case, spaces");
        assert!(c.consumer_protocol_enabled);
        let e = c
            .clone()
            .set("group.coordinator.rebalance.protocols", "consumer")
            .expect_err("classic is required")
            .to_string();
        assert!(
            e.contains("Disabling the 'classic' protocol is not supported."),
            "{e}"
        );
        let e = c
            .set("group.coordinator.rebalance.protocols", "classic,queue")
            .expect_err("unknown protocol")
            .to_string();
        assert!(e.contains("\"queue\" is not one of"), "{e}");
    }

    #[test]
    fn cordoned_log_dirs_must_be_log_dirs() {
        let mut c = BrokerConfig::default();
        c.set("log.dirs", "/data/a,/data/b,/data/c").expect("dirs");
        assert_eq!(c.cordoned_dirs().expect("none"), Vec::<usize>::new());
        c.set("cordoned.log.dirs", " /data/c, /data/a")
            .expect("two");
        assert_eq!(c.cordoned_dirs().expect("two"), vec![2, 0]);
        c.validate().expect("valid");
        c.set("cordoned.log.dirs", "*").expect("all");
        assert_eq!(c.cordoned_dirs().expect("all"), vec![0, 1, 2]);
        let e = c
            .check_value("cordoned.log.dirs", "*,/data/a")
            .expect_err("* and more")
            .to_string();
        assert!(e.contains("it must not contain other values"), "{e}");
        let e = c
            .check_value("cordoned.log.dirs", "/data/a,/data/z")
            .expect_err("not a log dir")
            .to_string();
        assert!(e.contains("/data/z is not one of log.dirs"), "{e}");
        c.set("cordoned.log.dirs", "/data/z")
            .expect("taken as given");
        assert!(c.validate().is_err(), "refused at start");
        c.check_value("cordoned.log.dirs", "").expect("cleared");
    }

    /// Kafka's precedence: the most specific synonym wins whatever the order they come in.
    #[test]
    fn the_most_specific_synonym_wins_whatever_the_order() {
        let mut c = BrokerConfig::default();
        c.apply([
            ("log.retention.ms", "1000"),
            ("log.retention.minutes", "2"),
            ("log.retention.hours", "5"),
            ("log.roll.jitter.ms", "3000"),
            ("log.roll.jitter.hours", "1"),
            ("log.dirs", "/data/a,/data/b"),
            ("log.dir", "/data/z"),
        ])
        .expect("valid");
        assert_eq!(c.log.retention_ms, 1000);
        assert_eq!(c.log.segment_jitter_ms, 3000);
        assert_eq!(c.data_dir, PathBuf::from("/data/a"));
        let mut c = BrokerConfig::default();
        c.apply([("log.retention.minutes", "2"), ("log.retention.hours", "5")])
            .expect("valid");
        assert_eq!(c.log.retention_ms, 120_000);
        let mut c = BrokerConfig::default();
        c.apply_overrides(&["log.roll.ms=7000".into(), "log.roll.hours=1".into()])
            .expect("valid");
        assert_eq!(c.log.segment_ms, 7000);
        // The same key twice: the later one.
        c.apply_overrides(&["log.roll.ms=1".into(), "log.roll.ms=2".into()])
            .expect("valid");
        assert_eq!(c.log.segment_ms, 2);
    }

    #[test]
    fn log_roll_jitter_sets_the_topics_default_segment_jitter() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.log.segment_jitter_ms, 0);
        c.set("log.roll.jitter.hours", "2").expect("hours");
        assert_eq!(c.log.segment_jitter_ms, 7_200_000);
        c.set("log.roll.jitter.ms", "5000").expect("ms");
        assert_eq!(c.log.segment_jitter_ms, 5_000);
        assert!(c.set("log.roll.jitter.ms", "-1").is_err());
    }

    #[test]
    fn metadata_log_dir_becomes_the_main_directory() {
        let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        // One of log.dirs: it moves to the front and keeps its partitions.
        let mut c = BrokerConfig::default();
        c.set("metadata.log.dir", "/data/c").expect("set first");
        c.set("log.dirs", "/data/a,/data/b,/data/c").expect("dirs");
        c.place_metadata_log();
        assert_eq!(c.data_dir, PathBuf::from("/data/c"));
        assert!(!c.metadata_dir_only);
        assert_eq!(c.log_dirs(), paths(&["/data/c", "/data/a", "/data/b"]));
        c.place_metadata_log();
        assert_eq!(c.log_dirs(), paths(&["/data/c", "/data/a", "/data/b"]));
        // The first of log.dirs: nothing moves.
        let mut c = BrokerConfig::default();
        c.set("log.dirs", "/data/a,/data/b").expect("dirs");
        c.set("metadata.log.dir", " /data/a/ ").expect("trimmed");
        c.place_metadata_log();
        assert_eq!(c.log_dirs(), paths(&["/data/a", "/data/b"]));
        assert!(!c.metadata_dir_only);
        // A directory of its own: the metadata log alone, every log.dirs entry for partitions.
        let mut c = BrokerConfig::default();
        c.set("log.dirs", "/data/a,/data/b").expect("dirs");
        c.set("metadata.log.dir", "/meta").expect("own");
        c.place_metadata_log();
        assert_eq!(c.data_dir, PathBuf::from("/meta"));
        assert!(c.metadata_dir_only);
        assert_eq!(c.log_dirs(), paths(&["/data/a", "/data/b"]));
        c.place_metadata_log();
        assert_eq!(c.log_dirs(), paths(&["/data/a", "/data/b"]));
        assert_eq!(c.cordoned_dirs().expect("none"), Vec::<usize>::new());
        c.set("cordoned.log.dirs", "/data/b").expect("cordon");
        assert_eq!(c.cordoned_dirs().expect("b"), vec![1]);
        assert!(
            c.check_value("cordoned.log.dirs", "/meta").is_err(),
            "the metadata log's own directory is no log directory"
        );
        // log.dirs set again starts over.
        c.set("log.dirs", "/data/z").expect("again");
        assert_eq!(c.log_dirs(), paths(&["/data/z"]));
        assert!(BrokerConfig::default()
            .set("metadata.log.dir", " ")
            .is_err());
        // Unset: the first of log.dirs, as before.
        let mut c = BrokerConfig::default();
        c.set("log.dirs", "/data/a,/data/b").expect("dirs");
        c.place_metadata_log();
        assert_eq!(c.data_dir, PathBuf::from("/data/a"));
    }

    #[test]
    fn log_dirs_name_the_main_directory_first_and_the_others_after_it() {
        let mut c = BrokerConfig::default();
        c.set("log.dirs", " /data/a ,").expect("one directory");
        assert_eq!(c.data_dir, PathBuf::from("/data/a"));
        assert!(c.extra_log_dirs.is_empty());
        assert_eq!(c.log_dirs(), vec![PathBuf::from("/data/a")]);
        c.set("log.dirs", "/data/a, /data/b,/data/c")
            .expect("three directories");
        assert_eq!(c.data_dir, PathBuf::from("/data/a"));
        assert_eq!(
            c.log_dirs(),
            ["/data/a", "/data/b", "/data/c"]
                .map(PathBuf::from)
                .to_vec()
        );
        // Set again with one, the others are gone.
        c.set("log.dir", "/data/z").expect("one again");
        assert_eq!(c.log_dirs(), vec![PathBuf::from("/data/z")]);
        let e = BrokerConfig::default()
            .set("log.dirs", "/data/a,/data/b,/data/a")
            .expect_err("a directory twice")
            .to_string();
        assert!(e.contains("/data/a is listed twice"), "{e}");
        assert!(BrokerConfig::default().set("log.dir", " , ").is_err());
    }

    #[test]
    fn listeners_gregor_cannot_serve_are_refused() {
        let check = |pairs: &[(&str, &str)]| {
            let mut c = BrokerConfig::default();
            c.apply(pairs.iter().copied()).expect("keys parse");
            c.validate().map_err(|e| e.to_string())
        };
        assert!(check(&[("listeners", "PLAINTEXT://127.0.0.1:9092")]).is_ok());
        assert!(check(&[("listeners", "127.0.0.1:9092")]).is_ok());
        let e = check(&[("listeners", "SSL://127.0.0.1:9093")]).expect_err("SSL");
        assert!(
            e.contains("SSL://127.0.0.1:9093") && e.contains("SSL"),
            "{e}"
        );
        let e = check(&[(
            "listeners",
            "PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:2",
        )])
        .expect_err("SASL");
        assert!(e.contains("SASL_PLAINTEXT://127.0.0.1:2"), "{e}");
        let e = check(&[
            ("listener.security.protocol.map", "CLIENT:SSL"),
            ("listeners", "CLIENT://127.0.0.1:1"),
        ])
        .expect_err("CLIENT is SSL");
        assert!(
            e.contains("CLIENT://127.0.0.1:1") && e.contains("SSL"),
            "{e}"
        );
        let e = check(&[("listeners", "CLIENT://127.0.0.1:1")]).expect_err("no mapping");
        assert!(
            e.contains("no security protocol defined for listener CLIENT"),
            "{e}"
        );
        assert!(check(&[
            (
                "listener.security.protocol.map",
                "CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            ("listeners", "CLIENT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"),
        ])
        .is_ok());
        // Kafka's KRaft rule: with no explicit map, controller listeners are PLAINTEXT.
        assert!(check(&[
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
            ),
        ])
        .is_ok());
        let e = check(&[
            ("listeners", "PLAINTEXT://127.0.0.1:1"),
            ("advertised.listeners", "SSL://127.0.0.1:1"),
        ])
        .expect_err("advertised SSL");
        assert!(e.contains("SSL://127.0.0.1:1"), "{e}");
        // SSL beside PLAINTEXT is served; SASL is not yet.
        assert!(check(&[
            ("listeners", "SSL://127.0.0.1:2,PLAINTEXT://127.0.0.1:1"),
            ("advertised.listeners", "SSL://a:2,PLAINTEXT://b:1"),
        ])
        .is_ok());
        let e = check(&[(
            "listeners",
            "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:2",
        )])
        .expect_err("SASL_SSL");
        assert!(e.contains("plain.sasl.jaas.config"), "{e}");
        let mut c = BrokerConfig::default();
        assert!(c
            .set("listener.security.protocol.map", "CLIENT:TLS")
            .is_err());
    }

    #[test]
    fn an_ssl_listener_is_served_beside_the_plaintext_one() {
        let mut c = BrokerConfig::default();
        c.apply([
            ("advertised.listeners", "SSL://a:2,PLAINTEXT://b:1"),
            ("listeners", "SSL://127.0.0.1:2,PLAINTEXT://127.0.0.1:1"),
            ("ssl.keystore.location", "server.pem"),
            ("ssl.client.auth", "requested"),
            ("ssl.truststore.location", "ca.pem"),
            ("listener.name.ssl.ssl.client.auth", "required"),
        ])
        .expect("keys parse");
        c.resolve_listeners(false, false).expect("resolves");
        c.validate().expect("valid");
        assert_eq!(c.listen, "127.0.0.1:1".parse().expect("addr"));
        assert_eq!(c.advertised, Some(("b".to_string(), 1)));
        let extra = c.extra_listeners().expect("extra listeners");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].name, "SSL");
        assert_eq!(extra[0].addr, "127.0.0.1:2".parse().expect("addr"));
        assert_eq!(extra[0].advertised, Some(("a".to_string(), 2)));
        let tls = extra[0]
            .tls
            .as_ref()
            .expect("an SSL listener has TLS settings");
        // The listener's own key wins over the global one.
        assert_eq!(tls.client_auth, crate::tls::ClientAuth::Required);
        // A bad value is refused at start, naming the listener.
        c.set("ssl.client.auth", "maybe").expect("parses");
        c.listener_security.clear();
        let e = c.validate().expect_err("bad client auth").to_string();
        assert!(
            e.contains("SSL://127.0.0.1:2") && e.contains("ssl.client.auth"),
            "{e}"
        );
    }

    #[test]
    fn brokers_may_reach_each_other_over_an_ssl_listener() {
        let check = resolved_and_validated;
        let c = check(&[
            ("listeners", "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:2"),
            ("inter.broker.listener.name", "ssl"),
            ("ssl.keystore.location", "server.pem"),
            ("ssl.truststore.location", "ca.pem"),
        ])
        .expect("SSL between brokers");
        assert_eq!(c.inter_broker_listener_name(), "SSL");
        assert_eq!(c.listen, "127.0.0.1:2".parse().expect("addr"));
        let extra = c.extra_listeners().expect("extra");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].name, "PLAINTEXT");
        // Unset: the first PLAINTEXT listener, as before.
        let c = check(&[("listeners", "SSL://127.0.0.1:2,PLAINTEXT://127.0.0.1:1")])
            .expect("PLAINTEXT between brokers");
        assert_eq!(c.inter_broker_listener_name(), "PLAINTEXT");
        assert_eq!(c.listen, "127.0.0.1:1".parse().expect("addr"));
        // A broker must trust its peers' certificates.
        let e = check(&[
            ("listeners", "SSL://127.0.0.1:2"),
            ("inter.broker.listener.name", "SSL"),
            ("ssl.keystore.location", "server.pem"),
        ])
        .expect_err("no truststore");
        assert!(e.contains("ssl.truststore.location"), "{e}");
        // A name no listener has is refused.
        let e = check(&[
            ("listeners", "PLAINTEXT://127.0.0.1:1"),
            ("inter.broker.listener.name", "INTERNAL"),
        ])
        .expect_err("unknown name");
        assert!(e.contains("inter.broker.listener.name"), "{e}");
    }

    #[test]
    fn brokers_may_log_in_to_each_other_over_sasl() {
        const PLAIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                             username=\"broker\" password=\"b-secret\" \
                             user_broker=\"b-secret\" user_alice=\"a-secret\";";
        const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                             username=\"broker\" password=\"s-secret\";";
        let check = resolved_and_validated;
        // Kafka's usual shape: one SASL_SSL listener, PLAIN between brokers by default.
        let c = check(&[
            ("listeners", "SASL_SSL://127.0.0.1:2"),
            ("security.inter.broker.protocol", "SASL_SSL"),
            ("ssl.keystore.location", "server.pem"),
            ("ssl.truststore.location", "ca.pem"),
            ("listener.name.sasl_ssl.plain.sasl.jaas.config", PLAIN),
        ])
        .expect("SASL_SSL between brokers");
        assert_eq!(c.inter_broker_listener_name(), "SASL_SSL");
        assert_eq!(c.listen, "127.0.0.1:2".parse().expect("addr"));
        assert!(c.inter_broker_tls().expect("tls").is_some());
        let (server, login) = c.inter_broker_sasl().expect("sasl").expect("a login");
        assert_eq!(server.mechanisms, ["PLAIN"]);
        assert_eq!(login.mechanism, gregor_client::SaslMechanism::Plain);
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("broker", "b-secret")
        );
        assert!(c.extra_listeners().expect("extra").is_empty());
        // SCRAM between brokers over SASL_PLAINTEXT, the login from the mechanism's JAAS key,
        // PLAIN beside it for clients.
        let c = check(&[
            (
                "listeners",
                "INTERNAL://127.0.0.1:3,PLAINTEXT://127.0.0.1:1",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "INTERNAL"),
            ("sasl.mechanism.inter.broker.protocol", "scram-sha-512"),
            (
                "listener.name.internal.sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-512",
            ),
            ("listener.name.internal.plain.sasl.jaas.config", PLAIN),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                SCRAM,
            ),
        ])
        .expect("SCRAM between brokers");
        assert_eq!(c.inter_broker_listener_name(), "INTERNAL");
        assert!(c.inter_broker_tls().expect("tls").is_none());
        let (_, login) = c.inter_broker_sasl().expect("sasl").expect("a login");
        assert_eq!(login.mechanism, gregor_client::SaslMechanism::ScramSha512);
        assert_eq!(login.password, "s-secret");
        // Refusals, each naming what to fix.
        let e = check(&[
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:2"),
            ("security.inter.broker.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", PLAIN),
        ])
        .expect_err("mechanism not enabled");
        assert!(
            e.contains("SCRAM-SHA-256") && e.contains("sasl.enabled.mechanisms"),
            "{e}"
        );
        let e = check(&[
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:2"),
            ("inter.broker.listener.name", "SASL_PLAINTEXT"),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_alice=\"a-secret\";",
            ),
        ])
        .expect_err("no username");
        assert!(
            e.contains("listener.name.sasl_plaintext.plain.sasl.jaas.config")
                && e.contains("username"),
            "{e}"
        );
        let e = check(&[
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:2"),
            ("inter.broker.listener.name", "SASL_PLAINTEXT"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
        ])
        .expect_err("no JAAS for SCRAM");
        assert!(
            e.contains("listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"),
            "{e}"
        );
        let e = check(&[
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:2"),
            ("inter.broker.listener.name", "SASL_PLAINTEXT"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            (
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
                PLAIN,
            ),
        ])
        .expect_err("the wrong login module");
        assert!(e.contains("ScramLoginModule"), "{e}");
        let e = check(&[
            ("listeners", "SASL_SSL://127.0.0.1:2"),
            ("inter.broker.listener.name", "SASL_SSL"),
            ("ssl.keystore.location", "server.pem"),
            ("listener.name.sasl_ssl.plain.sasl.jaas.config", PLAIN),
        ])
        .expect_err("no truststore");
        assert!(e.contains("ssl.truststore.location"), "{e}");
        let mut c = BrokerConfig::default();
        assert!(c
            .set("sasl.mechanism.inter.broker.protocol", "GSSAPI")
            .is_err());
    }

    #[test]
    fn the_controller_listener_may_be_ssl() {
        let check = resolved_and_validated;
        let base = [
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2",
            ),
        ];
        let with = |more: &[(&'static str, &'static str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(more);
            v
        };
        let c = check(&with(&[
            ("listener.name.controller.ssl.keystore.location", "node.pem"),
            ("listener.name.controller.ssl.truststore.location", "ca.pem"),
            ("listener.name.controller.ssl.client.auth", "required"),
        ]))
        .expect("an SSL controller listener");
        let tls = c.controller_tls().expect("tls").expect("SSL");
        assert_eq!(tls.client_auth, crate::tls::ClientAuth::Required);
        assert_eq!(
            c.cluster.controller_listen,
            Some("127.0.0.1:2".parse().expect("addr"))
        );
        // The client listener stays PLAINTEXT.
        assert!(c.inter_broker_tls().expect("tls").is_none());
        // Both stores are needed: every node shows its certificate and checks its peers'.
        let e = check(&with(&[("ssl.keystore.location", "node.pem")])).expect_err("no truststore");
        assert!(
            e.contains("listener.name.controller.ssl.truststore.location"),
            "{e}"
        );
        let e = check(&with(&[("ssl.truststore.location", "ca.pem")])).expect_err("no keystore");
        assert!(
            e.contains("listener.name.controller.ssl.keystore.location"),
            "{e}"
        );
        // PLAINTEXT by default (Kafka's KRaft rule), SASL refused.
        let c = check(&[
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2",
            ),
        ])
        .expect("PLAINTEXT controller listener");
        assert!(c.controller_tls().expect("tls").is_none());
        assert!(c.controller_sasl().expect("sasl").is_none());
    }

    #[test]
    fn the_controller_listener_may_be_sasl() {
        let check = resolved_and_validated;
        const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
            username=\"controller\" password=\"controller-secret\" \
            user_controller=\"controller-secret\" user_admin=\"admin-secret\";";
        let sasl = |protocol: &'static str, more: &[(&'static str, &'static str)]| {
            let mut v = vec![
                ("controller.listener.names", "CONTROLLER"),
                ("listener.security.protocol.map", protocol),
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2",
                ),
            ];
            v.extend_from_slice(more);
            v
        };
        const PLAINTEXT: &str = "CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT";
        let good = [
            ("sasl.mechanism.controller.protocol", "PLAIN"),
            ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.controller.plain.sasl.jaas.config", JAAS),
        ];
        let c = check(&sasl(PLAINTEXT, &good)).expect("SASL_PLAINTEXT with PLAIN");
        let (settings, login) = c.controller_sasl().expect("sasl").expect("a login");
        assert_eq!(settings.mechanisms, vec!["PLAIN".to_string()]);
        assert_eq!(login.username, "controller");
        assert_eq!(login.password, "controller-secret");
        assert!(c.controller_tls().expect("tls").is_none());
        // The global sasl.jaas.config and sasl.enabled.mechanisms do as well.
        let c = check(&sasl(
            PLAINTEXT,
            &[
                ("sasl.mechanism.controller.protocol", "plain"),
                ("sasl.jaas.config", JAAS),
            ],
        ))
        .expect("global keys");
        assert!(c.controller_sasl().expect("sasl").is_some());
        // SASL_SSL: the TLS settings as for SSL, and the login.
        let c = check(&sasl(
            "CONTROLLER:SASL_SSL,PLAINTEXT:PLAINTEXT",
            &[
                ("sasl.mechanism.controller.protocol", "PLAIN"),
                ("listener.name.controller.plain.sasl.jaas.config", JAAS),
                ("listener.name.controller.ssl.keystore.location", "node.pem"),
                ("listener.name.controller.ssl.truststore.location", "ca.pem"),
            ],
        ))
        .expect("SASL_SSL");
        assert!(c.controller_tls().expect("tls").is_some());
        assert!(c.controller_sasl().expect("sasl").is_some());
        // Kafka's default mechanism, GSSAPI, is refused by name.
        let e = check(&sasl(
            PLAINTEXT,
            &[("listener.name.controller.plain.sasl.jaas.config", JAAS)],
        ))
        .expect_err("GSSAPI");
        assert!(
            e.contains("sasl.mechanism.controller.protocol=GSSAPI"),
            "{e}"
        );
        // SCRAM between controllers: the node's login from the ScramLoginModule config.
        let scram = |jaas: &'static str| {
            check(&sasl(
                PLAINTEXT,
                &[
                    ("sasl.mechanism.controller.protocol", "SCRAM-SHA-512"),
                    (
                        "listener.name.controller.sasl.enabled.mechanisms",
                        "PLAIN,SCRAM-SHA-512",
                    ),
                    ("listener.name.controller.plain.sasl.jaas.config", JAAS),
                    (
                        "listener.name.controller.scram-sha-512.sasl.jaas.config",
                        jaas,
                    ),
                ],
            ))
        };
        let c = scram(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"controller\" password=\"s3cret\";",
        )
        .expect("SCRAM-SHA-512");
        let (_, login) = c.controller_sasl().expect("scram").expect("sasl");
        assert_eq!(
            (
                login.mechanism,
                login.username.as_str(),
                login.password.as_str()
            ),
            (
                gregor_client::SaslMechanism::ScramSha512,
                "controller",
                "s3cret"
            )
        );
        // ... which must be ScramLoginModule's.
        let e = scram(JAAS).expect_err("PLAIN's module for SCRAM");
        assert!(e.contains("ScramLoginModule"), "{e}");
        // The mechanism must be enabled on the listener.
        let e = check(&sasl(
            PLAINTEXT,
            &[
                ("sasl.mechanism.controller.protocol", "PLAIN"),
                (
                    "listener.name.controller.sasl.enabled.mechanisms",
                    "SCRAM-SHA-256",
                ),
            ],
        ))
        .expect_err("PLAIN not enabled");
        assert!(
            e.contains("listener.name.controller.sasl.enabled.mechanisms"),
            "{e}"
        );
        // No JAAS config: PLAIN's server side has no users.
        let e = check(&sasl(
            PLAINTEXT,
            &[("sasl.mechanism.controller.protocol", "PLAIN")],
        ))
        .expect_err("no JAAS config");
        assert!(e.contains("plain.sasl.jaas.config"), "{e}");
        // A JAAS config without the node's own login.
        let e = check(&sasl(
            PLAINTEXT,
            &[
                ("sasl.mechanism.controller.protocol", "PLAIN"),
                (
                    "listener.name.controller.plain.sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule required \
                     user_controller=\"controller-secret\";",
                ),
            ],
        ))
        .expect_err("no username");
        assert!(
            e.contains("listener.name.controller.plain.sasl.jaas.config has no username"),
            "{e}"
        );
    }

    #[test]
    fn connection_limits_parse_like_kafka() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.net.max_connection_creation_rate, i32::MAX);
        c.set("max.connection.creation.rate", "20").expect("rate");
        c.set("listener.name.external.max.connection.creation.rate", "7")
            .expect("listener rate");
        assert_eq!(c.net.max_connection_creation_rate, 20);
        assert_eq!(
            c.net.listener_connection_creation_rates.get("EXTERNAL"),
            Some(&7)
        );
        assert!(c.set("max.connection.creation.rate", "-1").is_err());
        assert!(c
            .set("listener.name.external.max.connection.creation.rate", "x")
            .is_err());
        assert!(gregor_metadata::controller::is_listener_connection_config(
            "listener.name.external.max.connection.creation.rate"
        ));
        assert!(!gregor_metadata::controller::is_listener_connection_config(
            "listener.name..max.connection.creation.rate"
        ));
        assert!(!gregor_metadata::controller::is_listener_connection_config(
            "max.connection.creation.rate"
        ));
        // Kafka's dynamic connection limits; a per-address 0 needs overrides.
        for key in [
            "max.connections",
            "max.connections.per.ip",
            "max.connections.per.ip.overrides",
            "max.connection.creation.rate",
        ] {
            assert!(
                gregor_metadata::controller::DYNAMIC_BROKER_CONFIGS.contains(&key),
                "{key}"
            );
        }
        assert!(c.check_value("max.connections.per.ip", "0").is_err());
        // group.consumer.assignors: builtin names or Kafka's class names of them, the first the
        // default.
        use gregor_group::consumer_group::AssignorName;
        assert_eq!(
            c.consumer_group.assignors,
            [AssignorName::Uniform, AssignorName::Range]
        );
        c.set(
            "group.consumer.assignors",
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform",
        )
        .expect("assignors");
        assert_eq!(
            c.consumer_group.assignors,
            [AssignorName::Range, AssignorName::Uniform]
        );
        assert!(c.set("group.consumer.assignors", "sticky").is_err());
        assert!(c.set("group.consumer.assignors", " , ").is_err());
        // KIP-306: below connections.max.idle.ms, as Kafka requires.
        assert_eq!(c.net.failed_authentication_delay_ms, 100);
        c.set("connection.failed.authentication.delay.ms", "0")
            .expect("no delay");
        assert_eq!(c.net.failed_authentication_delay_ms, 0);
        assert!(c
            .set("connection.failed.authentication.delay.ms", "-1")
            .is_err());
        let mut slow = BrokerConfig::default();
        slow.set("connections.max.idle.ms", "50").expect("idle");
        let e = slow
            .check_connection_limits()
            .expect_err("delay above the idle time");
        assert!(e
            .to_string()
            .contains("should always be less than connections.max.idle.ms"));
        assert!(c.check_value("max.connections.per.ip", "5").is_ok());
        assert_eq!(c.net.max_connections_per_ip, i32::MAX as usize);
        c.apply([
            ("max.connections.per.ip", "2"),
            (
                "max.connections.per.ip.overrides",
                "127.0.0.2:5, [::1]:0,localhost:7",
            ),
            ("connections.max.idle.ms", "1000"),
            ("socket.request.timeout.ms", "500"),
            ("queued.max.request.bytes", "-1"),
        ])
        .expect("valid");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(c.net.max_connections_for(ip("127.0.0.2")), 5);
        assert_eq!(c.net.max_connections_for(ip("::1")), 0);
        assert_eq!(c.net.max_connections_for(ip("127.0.0.1")), 7);
        assert_eq!(c.net.max_connections_for(ip("10.0.0.1")), 2);
        assert_eq!(c.net.connections_max_idle_ms, 1000);
        assert_eq!(c.net.socket_request_timeout_ms, 500);
        assert_eq!(c.net.queued_max_request_bytes, None);
        c.validate().expect("valid");
        assert!(c
            .set("max.connections.per.ip.overrides", "host-without-count")
            .is_err());
        assert!(c.set("queued.max.request.bytes", "0").is_err());
        c.set("max.connections.per.ip", "0").expect("parses");
        c.set("max.connections.per.ip.overrides", "")
            .expect("parses");
        assert!(c.validate().is_err(), "0 per IP needs overrides");
        let mut c = BrokerConfig::default();
        c.set("queued.max.request.bytes", "1024").expect("parses");
        assert!(
            c.validate().is_err(),
            "pool smaller than socket.request.max.bytes"
        );
    }

    #[test]
    fn metadata_snapshot_triggers_take_kafkas_keys() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.cluster.metadata_snapshot_max_bytes, 20 * 1024 * 1024);
        assert_eq!(c.cluster.metadata_snapshot_max_interval_ms, 3_600_000);
        c.apply([
            ("metadata.log.max.record.bytes.between.snapshots", "1048576"),
            ("metadata.log.max.snapshot.interval.ms", "0"),
        ])
        .expect("valid");
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        assert_eq!(c.cluster.metadata_snapshot_max_bytes, 1_048_576);
        assert_eq!(c.cluster.metadata_snapshot_max_interval_ms, 0);
        for (key, value) in [
            ("metadata.log.max.record.bytes.between.snapshots", "0"),
            ("metadata.log.max.snapshot.interval.ms", "-1"),
        ] {
            let e = c.set(key, value).expect_err(value).to_string();
            assert!(e.contains("Value must be at least"), "{e}");
        }
    }

    #[test]
    fn socket_sizes_take_kafkas_defaults_and_values() {
        let mut c = BrokerConfig::default();
        // gregor's defaults: the OS's buffers, and a backlog of 1024 (Kafka's: 102400, 65536
        // and 50).
        let defaults = gregor_client::socket::ListenOptions {
            send_buffer_bytes: -1,
            receive_buffer_bytes: -1,
            backlog: 1024,
        };
        assert_eq!(c.net.sockets, defaults);
        assert_eq!(c.cluster.replica_socket_receive_buffer_bytes, -1);
        // Kafka's stock server.properties.
        c.apply([
            ("socket.send.buffer.bytes", "102400"),
            ("socket.receive.buffer.bytes", "1048576"),
            ("socket.listen.backlog.size", "50"),
            ("replica.socket.receive.buffer.bytes", "65536"),
        ])
        .expect("valid");
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        assert_eq!(c.net.sockets.send_buffer_bytes, 102_400);
        assert_eq!(c.net.sockets.receive_buffer_bytes, 1_048_576);
        assert_eq!(c.net.sockets.backlog, 50);
        assert_eq!(c.cluster.replica_socket_receive_buffer_bytes, 65_536);
        for (key, value) in [
            ("socket.send.buffer.bytes", "0"),
            ("socket.receive.buffer.bytes", "-2"),
            ("replica.socket.receive.buffer.bytes", "0"),
            ("socket.listen.backlog.size", "0"),
            ("socket.send.buffer.bytes", "lots"),
        ] {
            let e = c.set(key, value).expect_err(value).to_string();
            assert!(e.contains(key), "{e}");
        }
        assert_eq!(
            c.net.sockets.send_buffer_bytes, 102_400,
            "unchanged by a refusal"
        );
    }

    /// The tiered storage keys: the topics' defaults kept in range (Kafka's `[-2,...]` and
    /// `[-1,...]`); tiered storage itself refused at start, as gregor has none.
    #[test]
    fn tiered_storage_keys_are_kept_and_the_system_refused() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.remote_storage, RemoteStorageDefaults::default());
        c.set("log.local.retention.ms", "60000").expect("valid");
        c.set("log.remote.copy.lag.bytes", "0").expect("valid");
        assert_eq!(c.remote_storage.local_retention_ms, 60_000);
        assert_eq!(c.remote_storage.copy_lag_bytes, 0);
        assert!(c.set("log.local.retention.bytes", "-3").is_err());
        assert!(c.set("log.remote.copy.lag.ms", "-2").is_err());
        assert!(c
            .set("remote.log.storage.system.enable", "false")
            .expect("known"));
        let refused = c
            .set("remote.log.storage.system.enable", "TRUE")
            .expect_err("no tiered storage");
        assert!(
            refused.to_string().contains("no tiered storage"),
            "{refused}"
        );
    }

    #[test]
    fn kafka_flush_keys_switch_policy() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.flush, FlushPolicy::OnAcksAll);
        c.set("log.flush.interval.ms", "1000").expect("valid");
        assert_eq!(
            c.flush,
            FlushPolicy::Interval {
                messages: i64::MAX,
                interval_ms: 1000
            }
        );
    }

    #[test]
    fn cluster_keys_parse_and_combined_listeners_split_by_name() {
        let mut c = BrokerConfig::default();
        assert!(c.cluster.is_single_node(c.node_id));
        c.apply([
            ("node.id", "2"),
            ("process.roles", "broker,controller"),
            (
                "listeners",
                "CONTROLLER://127.0.0.1:19093,PLAINTEXT://127.0.0.1:19092",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19193,2@127.0.0.1:19093,3@localhost:19293",
            ),
            ("replica.lag.time.max.ms", "10000"),
            ("unclean.leader.election.enable", "true"),
        ])
        .expect("valid");
        c.resolve_listeners(false, false).expect("resolves");
        assert_eq!(c.listen, "127.0.0.1:19092".parse().expect("addr"));
        assert_eq!(
            c.cluster.controller_listen,
            Some("127.0.0.1:19093".parse().expect("addr"))
        );
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(
            c.cluster.voters[2],
            Voter {
                id: 3,
                host: "localhost".into(),
                port: 19293
            }
        );
        assert_eq!(
            voters_text(&c.cluster.voters),
            "1@127.0.0.1:19193,2@127.0.0.1:19093,3@localhost:19293"
        );
        assert!(!c.cluster.is_single_node(2));
        assert_eq!(c.cluster.replica_lag_time_max_ms, 10_000);
        assert!(c.cluster.unclean_leader_election_enable);
        c.validate().expect("valid combined node");
    }

    #[test]
    fn inconsistent_cluster_settings_are_refused() {
        let bad_voters = [
            "1@127.0.0.1",
            "x@127.0.0.1:1",
            "1@:9093",
            "1@127.0.0.1:1,1@127.0.0.1:2",
            "1@127.0.0.1:1,2@127.0.0.1:1",
            "",
        ];
        for v in bad_voters {
            let mut c = BrokerConfig::default();
            assert!(c.set("controller.quorum.voters", v).is_err(), "{v:?}");
        }
        let mut c = BrokerConfig::default();
        assert!(c.set("process.roles", "leader").is_err());
        // Kafka 4.x's bootstrap servers (KIP-853).
        for bad in ["127.0.0.1", "127.0.0.1:x", ":9093", ""] {
            let mut c = BrokerConfig::default();
            assert!(
                c.set("controller.quorum.bootstrap.servers", bad).is_err() || bad.is_empty(),
                "{bad:?}"
            );
        }
        let bootstrap_node = |servers: &str| {
            let mut c = BrokerConfig::default();
            c.set("controller.quorum.bootstrap.servers", servers)
                .expect("parses");
            c.cluster.controller_listen = Some("127.0.0.1:9093".parse().expect("addr"));
            c
        };
        // Its own only bootstrap server, and no quorum to join: refused, naming --standalone.
        let mut c = bootstrap_node("localhost:9093");
        assert!(c.cluster.bootstrap_mode());
        let e = c.validate().expect_err("only itself").to_string();
        assert!(e.contains("--standalone"), "{e}");
        c.set_initial_controllers(true, None).expect("standalone");
        assert_eq!(voters_text(&c.cluster.initial_voters), "1@127.0.0.1:9093");
        c.validate().expect("the first controller");
        assert!(!c.cluster.is_single_node(1), "others may join");
        assert_eq!(c.cluster.internal_replication_factor(3), 1);
        assert!(c
            .set_initial_controllers(true, Some("1@127.0.0.1:9093"))
            .is_err());
        // Once it has run (its metadata log exists), the flag may go.
        let ran = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(ran.path().join(crate::server::METADATA_DIR)).expect("mkdir");
        let mut c = bootstrap_node("localhost:9093");
        c.data_dir = ran.path().to_path_buf();
        c.validate().expect("a controller that has run, no flag");
        // Advertised, the controller listener is recorded at that address.
        let mut c = bootstrap_node("localhost:9093");
        c.set("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093")
            .expect("parses");
        c.set(
            "advertised.listeners",
            "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
        )
        .expect("parses");
        c.set("controller.listener.names", "CONTROLLER")
            .expect("parses");
        c.resolve_listeners(false, false).expect("listeners");
        assert_eq!(
            c.cluster.controller_advertised.as_deref(),
            Some("localhost:9093")
        );
        c.set_initial_controllers(true, None).expect("standalone");
        assert_eq!(voters_text(&c.cluster.initial_voters), "1@localhost:9093");
        // A controller that joins through another's address; the initial controllers of a
        // new cluster, directory ids included, this node among them.
        let c = bootstrap_node("127.0.0.1:9094,127.0.0.1:9094");
        assert_eq!(c.cluster.bootstrap_servers, ["127.0.0.1:9094"]);
        c.validate().expect("a joining controller");
        assert_eq!(c.cluster.internal_topic_nodes(), None);
        let mut c = bootstrap_node("127.0.0.1:9094");
        c.set_initial_controllers(
            false,
            Some("1@127.0.0.1:9093:AAAAAAAAAAAAAAAAAAAAAQ,2@127.0.0.1:9094"),
        )
        .expect("initial controllers");
        assert_eq!(
            voters_text(&c.cluster.initial_voters),
            "1@127.0.0.1:9093,2@127.0.0.1:9094"
        );
        assert_eq!(
            c.cluster.initial_directory_ids,
            BTreeMap::from([(1, "AAAAAAAAAAAAAAAAAAAAAQ".to_string())])
        );
        c.validate().expect("an initial controller");
        assert_eq!(c.cluster.internal_replication_factor(3), 2);
        let mut c = bootstrap_node("127.0.0.1:9094");
        assert!(c
            .set_initial_controllers(false, Some("1@127.0.0.1:9093:not-an-id"))
            .is_err());
        c.set_initial_controllers(false, Some("2@127.0.0.1:9094"))
            .expect("parses");
        let e = c.validate().expect_err("not among them").to_string();
        assert!(e.contains("node.id 1"), "{e}");
        // A broker-only node joins; it takes no initial controllers.
        let mut c = bootstrap_node("127.0.0.1:9094");
        c.set("process.roles", "broker").expect("parses");
        c.validate().expect("a joining broker");
        c.set_initial_controllers(true, None).expect("parses");
        assert!(c.validate().is_err(), "a broker is no initial voter");
        // Beside configured voters, the bootstrap servers are not used, and the initial
        // controllers are refused.
        let mut c = bootstrap_node("127.0.0.1:9093");
        c.set("controller.quorum.voters", "1@127.0.0.1:9093")
            .expect("parses");
        assert!(!c.cluster.bootstrap_mode());
        c.validate().expect("voters and bootstrap servers");
        c.set_initial_controllers(true, None).expect("parses");
        assert!(c.validate().is_err(), "voters and --standalone");
        // A controller that is not a voter: an observer until AddRaftVoter (KIP-853).
        let mut c = BrokerConfig::default();
        c.set("controller.quorum.voters", "2@127.0.0.1:9093")
            .expect("parses");
        c.cluster.controller_listen = Some("127.0.0.1:9094".parse().expect("addr"));
        c.validate().expect("a controller to be added as a voter");
        // A broker-only node joins by the voters; without them it has nothing to join.
        c.set("process.roles", "broker").expect("parses");
        c.validate().expect("broker-only node with voters");
        c.cluster.voters.clear();
        assert!(c.validate().is_err());
        // A voter without the controller role.
        let mut c = BrokerConfig::default();
        c.apply([
            ("process.roles", "broker"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ])
        .expect("parses");
        c.cluster.controller_listen = Some("127.0.0.1:9093".parse().expect("addr"));
        assert!(c.validate().is_err());
        // Voters but no controller listener.
        let mut c = BrokerConfig::default();
        c.set("controller.quorum.voters", "1@127.0.0.1:9093")
            .expect("parses");
        assert!(c.validate().is_err());
        // A controller-only node: a voter with a controller listener, and nothing alone.
        let mut c = BrokerConfig::default();
        c.set("process.roles", "controller").expect("parses");
        let e = c.validate().expect_err("no voters").to_string();
        assert!(e.contains("controller-only"), "{e}");
        c.set("controller.quorum.voters", "1@127.0.0.1:9093")
            .expect("parses");
        c.cluster.controller_listen = Some("127.0.0.1:9093".parse().expect("addr"));
        c.validate().expect("a controller-only voter");
        // Heartbeats must come more often than the session expires.
        let mut c = BrokerConfig::default();
        c.set("broker.heartbeat.interval.ms", "5000")
            .expect("parses");
        assert!(c.validate().is_err());
        // The quorum heartbeat must come well within the election timeout's low end.
        let mut c = BrokerConfig::default();
        c.set("controller.quorum.election.timeout.ms", "600")
            .expect("parses");
        let err = c.validate().expect_err("500 ms heartbeat, 480 ms floor");
        assert!(
            err.to_string()
                .contains("controller.quorum.heartbeat.interval.ms"),
            "{err}"
        );
        c.set("controller.quorum.heartbeat.interval.ms", "200")
            .expect("parses");
        assert!(c.validate().is_ok());
        assert_eq!(election_timeout_floor_ms(1_000), 800);
    }

    /// KIP-368's session lifetime: the broker key, a listener's own, and a listener's
    /// mechanism's, most specific first, as Kafka reads them.
    #[test]
    fn connections_max_reauth_ms_takes_kafka_s_listener_and_mechanism_forms() {
        let mut c = BrokerConfig::default();
        c.apply([
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,A:SASL_PLAINTEXT,B:SASL_PLAINTEXT",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:1,A://127.0.0.1:2,B://127.0.0.1:3",
            ),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
            ("connections.max.reauth.ms", "60000"),
            ("listener.name.b.connections.max.reauth.ms", "30000"),
            (
                "listener.name.b.scram-sha-512.connections.max.reauth.ms",
                "5000",
            ),
        ])
        .expect("keys parse");
        assert_eq!(c.net.connections_max_reauth_ms, 60_000);
        let listeners = c.extra_listeners().expect("listeners");
        let sasl = |name: &str| {
            listeners
                .iter()
                .find(|l| l.name == name)
                .and_then(|l| l.sasl.clone())
                .expect("a SASL listener")
        };
        assert_eq!(sasl("A").max_reauth_ms("SCRAM-SHA-512"), Some(60_000));
        assert_eq!(sasl("B").max_reauth_ms("SCRAM-SHA-256"), Some(30_000));
        assert_eq!(sasl("B").max_reauth_ms("SCRAM-SHA-512"), Some(5_000));
        assert!(BrokerConfig::default()
            .set("connections.max.reauth.ms", "soon")
            .is_err());
    }
}
