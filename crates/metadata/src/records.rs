//! The typed records of the metadata log, and their binary encoding.
//!
//! The controller appends these records to the replicated metadata log (one record per Raft
//! entry or several); every broker replays them in log order into a
//! [`MetadataDelta`](crate::MetadataDelta) to get the next [`MetadataImage`](crate::MetadataImage).
//! A snapshot is the same records again, describing a whole image (see
//! [`snapshot`](crate::snapshot)).
//!
//! The record types and their numbers are Kafka's (`org.apache.kafka.common.metadata`:
//! `RegisterBrokerRecord` = 0, `TopicRecord` = 2, ...), the layouts are gregor's own: fixed-width
//! big-endian fields, no tagged fields. Every encoded record is framed as
//!
//! ```text
//! type: int16 | version: int16 | body (layout fixed by type and version)
//! strings: int16 length + UTF-8 (-1 = null where nullable)
//! arrays:  int32 count + items         uuids: 16 bytes
//! ```
//!
//! so a later gregor can add a field by writing a new version while still reading the old ones.
//! Decoding rejects unknown types and versions, truncated input and trailing bytes; it never
//! panics and never allocates more than the input could hold, because these bytes come from
//! disk and from peers. Decoding checks structure only: whether a record makes sense against
//! the current image is the delta's job ([`ReplayError`](crate::ReplayError)).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::acl::{AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl};
pub use crate::delegation_token::{DelegationTokenRecord, RemoveDelegationTokenRecord};
use crate::error::DecodeError;
use crate::scram::ScramMechanism;

/// A broker's node id (`node.id`).
pub type BrokerId = i32;

/// `leader` of a partition that has none (Kafka's `LeaderConstants.NO_LEADER`).
pub const NO_LEADER: BrokerId = -1;

/// How many producer ids one [`ProducerIdsRecord`] hands out (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The longest string a record holds (int16 length). The controller refuses longer ones
/// before it makes records; the encoder cuts them rather than write a corrupt length.
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

/// On the wire, the `leader` of a [`PartitionChangeRecord`] that leaves the leader alone
/// (Kafka's `NO_LEADER_CHANGE`).
const NO_LEADER_CHANGE: i32 = -2;

/// One partition of one topic, named by topic id (Kafka's `TopicIdPartition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicIdPartition {
    pub topic_id: Uuid,
    pub partition: i32,
}

/// One listener a broker serves clients or replicas on, as it advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

/// A broker joined the cluster, or came back as a new process (`RegisterBrokerRecord`).
///
/// `incarnation_id` is fresh for every process start, so a controller can tell a restarted
/// broker from a retried registration; `broker_epoch` grows with every registration and is what
/// fencing and heartbeats quote, so a stale one is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A broker registers fenced and is unfenced once it has caught up with the metadata log;
    /// snapshots write the current state here.
    pub fenced: bool,
    /// KIP-858: the ids of the broker's online log directories (empty from a broker or a
    /// `metadata.version` without directory assignment: every directory counts as online).
    /// Snapshots write the current ones.
    pub log_dirs: Vec<Uuid>,
}

/// A broker left the cluster for good (`UnregisterBrokerRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnregisterBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// A broker missed its session (or is shutting down): it may no longer lead or be in an ISR
/// (`FenceBrokerRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// A registered broker caught up and may lead and follow again (`UnfenceBrokerRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnfenceBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// A registered broker's state changed (`BrokerRegistrationChangeRecord`): today whether every
/// one of its log directories is cordoned (KIP-1066), which keeps new replicas off it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    /// Every log directory of the broker is in its `cordoned.log.dirs`.
    pub cordoned: bool,
    /// KIP-858: the broker's online log directories now (some went offline); `None` leaves
    /// them.
    pub log_dirs: Option<Vec<Uuid>>,
}

/// One replica's log directory (KIP-858): which directory of its broker holds it. A replica
/// with none is unassigned (Kafka's `DirectoryId.UNASSIGNED`): new, or from a log written
/// before directory assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaDirectory {
    pub broker: BrokerId,
    pub directory: Uuid,
}

/// A topic was created (`TopicRecord`); its partitions follow as [`PartitionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// A partition's full state: created with its topic (or by CreatePartitions), or written whole
/// in a snapshot (`PartitionRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition_id: i32,
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas, a subset of `replicas`.
    pub isr: Vec<BrokerId>,
    /// [`NO_LEADER`] or a member of `isr`.
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// During a reassignment: replicas being added (catching up) and being removed (once the
    /// added ones are in the ISR). Both are subsets of `replicas`; empty otherwise.
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
    /// KIP-966: replicas that left the ISR while it was below `min.insync.replicas` and still
    /// hold every committed record (`eligible.leader.replicas.version` 1); empty otherwise.
    pub eligible_leader_replicas: Vec<BrokerId>,
    /// KIP-966: the last known leader once the ISR and the ELR are both empty; empty otherwise.
    pub last_known_elr: Vec<BrokerId>,
    /// KIP-858: the log directory of each replica that has one, by broker (a replica left out
    /// is unassigned).
    pub directories: Vec<ReplicaDirectory>,
}

/// A change to an existing partition (`PartitionChangeRecord`): `None` fields are unchanged.
///
/// Epochs are not written: as in Kafka, replaying the record bumps the partition epoch, and the
/// leader epoch too when `leader` is set, so every replica computes the same epochs from the
/// same log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub topic_id: Uuid,
    pub partition_id: i32,
    /// `Some(NO_LEADER)` takes leadership away; `Some(b)` makes `b` leader in a new epoch.
    /// (`Some(-2)` cannot be written: -2 is the wire's "no change".)
    pub leader: Option<BrokerId>,
    pub isr: Option<Vec<BrokerId>>,
    pub replicas: Option<Vec<BrokerId>>,
    pub adding_replicas: Option<Vec<BrokerId>>,
    pub removing_replicas: Option<Vec<BrokerId>>,
    /// KIP-966's ELR and last known ELR (see [`PartitionRecord`]).
    pub eligible_leader_replicas: Option<Vec<BrokerId>>,
    pub last_known_elr: Option<Vec<BrokerId>>,
    /// KIP-858: replicas whose log directory this sets (the others keep theirs; a replica the
    /// change removes loses its own). Unlike the other fields, a change of directories alone
    /// bumps no epoch: where a replica's files are is none of its leader's or followers' concern.
    pub directories: Option<Vec<ReplicaDirectory>>,
}

impl PartitionChangeRecord {
    /// A change of replicas' directories and nothing else: it bumps no epoch.
    pub fn only_directories(&self) -> bool {
        self.directories.is_some()
            && self.leader.is_none()
            && self.isr.is_none()
            && self.replicas.is_none()
            && self.adding_replicas.is_none()
            && self.removing_replicas.is_none()
            && self.eligible_leader_replicas.is_none()
            && self.last_known_elr.is_none()
    }
}

/// What a [`ConfigRecord`] configures, with Kafka's resource type numbers in the encoding
/// (topic = 2, broker = 4, client metrics = 16, group = 32).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    /// A dynamic broker config: of one broker (its id as text), or the cluster-wide default of
    /// every broker (the empty name), as Kafka's `ConfigRecord` for `BROKER` resources.
    Broker(String),
    /// A group config (KIP-848, KIP-932: `share.auto.offset.reset`, ...), by group id, as
    /// Kafka's `ConfigRecord` for `GROUP` resources. The group need not exist.
    Group(String),
    /// A client metrics subscription (KIP-714: `metrics`, `interval.ms`, `match`), by
    /// subscription name, as Kafka's `ConfigRecord` for `CLIENT_METRICS` resources. A
    /// subscription exists while it has a config.
    ClientMetrics(String),
}

/// A config override was set (`value: Some`) or removed (`value: None`) (`ConfigRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource: ConfigResource,
    pub name: String,
    pub value: Option<String>,
}

/// A topic was deleted, with its partitions and configs (`RemoveTopicRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// The name of the transactions feature (KIP-890): level 2 is transactions version 2.
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";

/// The name of the share groups feature (KIP-932, Kafka's `ShareVersion`): level 1 enables
/// share groups (preview), level 2 (Kafka 4.4's latest and a new cluster's default) is
/// share groups generally available.
pub const SHARE_VERSION_FEATURE: &str = "share.version";

/// The `share.version` level a new cluster finalizes, as Kafka 4.4's `kafka-storage format`.
pub const SHARE_VERSION_LATEST: i16 = 2;

/// The name of the group coordinator's feature (Kafka's `GroupVersion`): level 1 enables the
/// consumer group protocol (KIP-848, ConsumerGroupHeartbeat); at 0 only classic groups work.
pub const GROUP_VERSION_FEATURE: &str = "group.version";

/// The `group.version` level a new cluster finalizes, as Kafka 4.4's `kafka-storage format`.
pub const GROUP_VERSION_LATEST: i16 = 1;

/// The name of the streams groups feature (KIP-1071, Kafka's `StreamsVersion`): level 1 (Kafka
/// 4.4's latest and a new cluster's default) enables streams groups; at 0 they are disabled.
pub const STREAMS_VERSION_FEATURE: &str = "streams.version";

/// The `streams.version` level a new cluster finalizes, as Kafka 4.4's `kafka-storage format`.
pub const STREAMS_VERSION_LATEST: i16 = 1;

/// The name of the metadata quorum's feature (KIP-853, Kafka's `KRaftVersion`): at 0 the
/// voters are the configured ones (`controller.quorum.voters`) for good; at 1 they are the
/// ones the metadata log records, changed by AddRaftVoter and RemoveRaftVoter
/// (`kafka-metadata-quorum add-controller | remove-controller`). Upgraded by an operator
/// (`kafka-features upgrade --feature kraft.version=1` or `--release-version 4.4`), never
/// downgraded. Kafka keeps it in the Raft log's control records; gregor keeps it as a feature
/// level record, in the same log.
pub const KRAFT_VERSION_FEATURE: &str = "kraft.version";

/// The name of the eligible leader replicas feature (KIP-966, Kafka's
/// `EligibleLeaderReplicasVersion`): at 1 (Kafka 4.4's default for a new cluster) the
/// controller keeps each partition's ELR and may leave its ISR empty.
pub const ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE: &str = "eligible.leader.replicas.version";

/// The `eligible.leader.replicas.version` level a new cluster finalizes, as Kafka 4.4's
/// `kafka-storage format`.
pub const ELIGIBLE_LEADER_REPLICAS_VERSION_LATEST: i16 = 1;

/// The name of the metadata version (Kafka's `MetadataVersion`, KIP-778): the Kafka release
/// whose metadata and broker behaviour the cluster follows. gregor has one behaviour, Kafka
/// 4.4's: a cluster is finalized at [`METADATA_VERSION_LATEST`], may be upgraded to the same
/// level again, and is never downgraded (Kafka 4.4 refuses every downgrade from 4.4-IV2 too).
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";

/// The lowest `metadata.version` level (3.3-IV3, Kafka's `MetadataVersion.MINIMUM_VERSION`).
pub const METADATA_VERSION_MINIMUM: i16 = 7;

/// The `metadata.version` level a new cluster finalizes: 4.4-IV2, Kafka 4.4's latest
/// production version and what its `kafka-storage format` writes.
pub const METADATA_VERSION_LATEST: i16 = 33;

/// Kafka's metadata versions from [`METADATA_VERSION_MINIMUM`] to [`METADATA_VERSION_LATEST`],
/// by level: `(level, name)`.
pub const METADATA_VERSIONS: &[(i16, &str)] = &[
    (7, "3.3-IV3"),
    (8, "3.4-IV0"),
    (9, "3.5-IV0"),
    (10, "3.5-IV1"),
    (11, "3.5-IV2"),
    (12, "3.6-IV0"),
    (13, "3.6-IV1"),
    (14, "3.6-IV2"),
    (15, "3.7-IV0"),
    (16, "3.7-IV1"),
    (17, "3.7-IV2"),
    (18, "3.7-IV3"),
    (19, "3.7-IV4"),
    (20, "3.8-IV0"),
    (21, "3.9-IV0"),
    (22, "4.0-IV0"),
    (23, "4.0-IV1"),
    (24, "4.0-IV2"),
    (25, "4.0-IV3"),
    (26, "4.1-IV0"),
    (27, "4.1-IV1"),
    (28, "4.2-IV0"),
    (29, "4.2-IV1"),
    (30, "4.3-IV0"),
    (31, "4.4-IV0"),
    (32, "4.4-IV1"),
    (33, "4.4-IV2"),
];

/// The name of `metadata.version` level `level` ("4.4-IV2"), `None` outside Kafka's range.
pub fn metadata_version_name(level: i16) -> Option<&'static str> {
    METADATA_VERSIONS
        .iter()
        .find(|(l, _)| *l == level)
        .map(|&(_, name)| name)
}

/// The `metadata.version` level a version string names (Kafka's
/// `MetadataVersion.fromVersionString`): "4.4-IV2", or a release alone ("4.4"), which means
/// its latest version.
pub fn metadata_version_level(version: &str) -> Option<i16> {
    let version = version.trim();
    METADATA_VERSIONS
        .iter()
        .rev()
        .find(|(_, name)| {
            *name == version
                || name
                    .split_once('-')
                    .is_some_and(|(release, _)| release == version)
        })
        .map(|&(level, _)| level)
}

/// A cluster feature finalized at a level (Kafka's `FeatureLevelRecord`): every broker
/// advertises it in ApiVersions. Level 0 removes the feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// The controller handed a block of producer ids to a broker (`ProducerIdsRecord`, KIP-730):
/// ids below `next_producer_id` are taken, for good. The block itself is
/// `[next_producer_id - PRODUCER_ID_BLOCK_SIZE, next_producer_id)`, owned by `broker_id`; the
/// log keeps only the high-water mark, so ids are never reused after any restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    /// The broker the block went to (`-1` in a snapshot, which keeps only the mark).
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    /// The first id not yet handed out.
    pub next_producer_id: i64,
}

/// The name of one part of a client quota entity: a named user or client id, or the default
/// (Kafka writes the default as a null entity name: `/config/users/<default>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaEntityName {
    Default,
    Named(String),
}

impl QuotaEntityName {
    /// Kafka's wire form: `None` for the default.
    pub fn as_option(&self) -> Option<&str> {
        match self {
            QuotaEntityName::Default => None,
            QuotaEntityName::Named(name) => Some(name),
        }
    }

    /// From Kafka's wire form.
    pub fn from_option(name: Option<&str>) -> QuotaEntityName {
        name.map_or(QuotaEntityName::Default, |n| {
            QuotaEntityName::Named(n.to_string())
        })
    }
}

/// What a client quota applies to (Kafka's `ClientQuotaEntity`): a user, a client id, or a
/// client id of a user, each named or the default; or, alone, a client address (`ip`, KIP-612's
/// connection creation rate), named or the default. At least one part is set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientQuotaEntity {
    pub user: Option<QuotaEntityName>,
    pub client_id: Option<QuotaEntityName>,
    pub ip: Option<QuotaEntityName>,
}

/// Kafka's entity type names.
pub const QUOTA_ENTITY_USER: &str = "user";
pub const QUOTA_ENTITY_CLIENT_ID: &str = "client-id";
pub const QUOTA_ENTITY_IP: &str = "ip";

/// A client quota was set (`remove: false`) or removed (`ClientQuotaRecord`). Values are
/// finite and not negative: decoding and replay refuse others, so the record is `Eq`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientQuotaRecord {
    pub entity: ClientQuotaEntity,
    /// `producer_byte_rate`, `consumer_byte_rate`, `request_percentage`.
    pub key: String,
    /// Ignored when `remove` (written as 0).
    pub value: f64,
    pub remove: bool,
}

impl Eq for ClientQuotaRecord {}

/// A user's SCRAM credential for one mechanism was set (Kafka's `UserScramCredentialRecord`,
/// KIP-554): what a server keeps of the password, never the password or the salted password.
/// `Debug` hides the salt and keys.
#[derive(Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    /// Kafka's `ScramMechanism` type: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for UserScramCredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserScramCredentialRecord")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("salt", &"[hidden]")
            .field("stored_key", &"[hidden]")
            .field("server_key", &"[hidden]")
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// A user's SCRAM credential for one mechanism was deleted (Kafka's
/// `RemoveUserScramCredentialRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    /// Kafka's `ScramMechanism` type.
    pub mechanism: i8,
}

/// An ACL was created (Kafka's `AccessControlEntryRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlEntryRecord {
    /// The ACL's id, which RemoveAccessControlEntryRecord names.
    pub id: Uuid,
    pub acl: StandardAcl,
}

/// An ACL was deleted (Kafka's `RemoveAccessControlEntryRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveAccessControlEntryRecord {
    pub id: Uuid,
}

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    ProducerIds(ProducerIdsRecord),
    ClientQuota(ClientQuotaRecord),
    FeatureLevel(FeatureLevelRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
    DelegationToken(DelegationTokenRecord),
    RemoveDelegationToken(RemoveDelegationTokenRecord),
}

/// Record type numbers (Kafka's `MetadataRecordType` ids).
mod record_type {
    pub const REGISTER_BROKER: i16 = 0;
    pub const UNREGISTER_BROKER: i16 = 1;
    pub const TOPIC: i16 = 2;
    pub const PARTITION: i16 = 3;
    pub const CONFIG: i16 = 4;
    pub const PARTITION_CHANGE: i16 = 5;
    pub const FENCE_BROKER: i16 = 7;
    pub const UNFENCE_BROKER: i16 = 8;
    pub const REMOVE_TOPIC: i16 = 9;
    pub const BROKER_REGISTRATION_CHANGE: i16 = 17;
    pub const USER_SCRAM_CREDENTIAL: i16 = 11;
    pub const ACCESS_CONTROL_ENTRY: i16 = 18;
    pub const REMOVE_ACCESS_CONTROL_ENTRY: i16 = 19;
    pub const FEATURE_LEVEL: i16 = 12;
    pub const CLIENT_QUOTA: i16 = 14;
    pub const PRODUCER_IDS: i16 = 15;
    pub const REMOVE_USER_SCRAM_CREDENTIAL: i16 = 22;
    pub const DELEGATION_TOKEN: i16 = 10;
    pub const REMOVE_DELEGATION_TOKEN: i16 = 26;
}

/// Kafka's `ConfigResource.Type.TOPIC`.
const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type.BROKER`.
const CONFIG_RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigResource.Type.GROUP`.
const CONFIG_RESOURCE_GROUP: i8 = 32;
/// Kafka's `ConfigResource.Type.CLIENT_METRICS`.
const CONFIG_RESOURCE_CLIENT_METRICS: i8 = 16;

/// The version every record type is written at today.
const RECORD_VERSION: i16 = 0;

/// The version of a partition record or change with KIP-966's ELR fields appended.
const ELR_RECORD_VERSION: i16 = 1;

/// The version of a partition record or change with KIP-966's ELR fields and KIP-858's
/// directories appended, of a broker registration with its log directories, and of a
/// registration change with its log directories.
const DIRECTORIES_RECORD_VERSION: i16 = 2;

/// The version of a broker registration or a registration change with log directories.
const BROKER_DIRS_RECORD_VERSION: i16 = 1;

impl MetadataRecord {
    /// Kafka's type number of this record.
    pub fn record_type(&self) -> i16 {
        use record_type::*;
        match self {
            MetadataRecord::RegisterBroker(_) => REGISTER_BROKER,
            MetadataRecord::UnregisterBroker(_) => UNREGISTER_BROKER,
            MetadataRecord::Topic(_) => TOPIC,
            MetadataRecord::Partition(_) => PARTITION,
            MetadataRecord::Config(_) => CONFIG,
            MetadataRecord::PartitionChange(_) => PARTITION_CHANGE,
            MetadataRecord::FenceBroker(_) => FENCE_BROKER,
            MetadataRecord::UnfenceBroker(_) => UNFENCE_BROKER,
            MetadataRecord::BrokerRegistrationChange(_) => BROKER_REGISTRATION_CHANGE,
            MetadataRecord::RemoveTopic(_) => REMOVE_TOPIC,
            MetadataRecord::ProducerIds(_) => PRODUCER_IDS,
            MetadataRecord::ClientQuota(_) => CLIENT_QUOTA,
            MetadataRecord::FeatureLevel(_) => FEATURE_LEVEL,
            MetadataRecord::UserScramCredential(_) => USER_SCRAM_CREDENTIAL,
            MetadataRecord::RemoveUserScramCredential(_) => REMOVE_USER_SCRAM_CREDENTIAL,
            MetadataRecord::AccessControlEntry(_) => ACCESS_CONTROL_ENTRY,
            MetadataRecord::RemoveAccessControlEntry(_) => REMOVE_ACCESS_CONTROL_ENTRY,
            MetadataRecord::DelegationToken(_) => DELEGATION_TOKEN,
            MetadataRecord::RemoveDelegationToken(_) => REMOVE_DELEGATION_TOKEN,
        }
    }

    /// Encodes the record, framed with its type and version.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode_into(&mut b);
        b.freeze()
    }

    /// The version this record is written in: 1 for a partition record or change that carries
    /// KIP-966's ELR fields, 0 otherwise (so a log without them reads as before).
    fn version(&self) -> i16 {
        match self {
            MetadataRecord::Partition(r) if !r.directories.is_empty() => DIRECTORIES_RECORD_VERSION,
            MetadataRecord::Partition(r)
                if !r.eligible_leader_replicas.is_empty() || !r.last_known_elr.is_empty() =>
            {
                ELR_RECORD_VERSION
            }
            MetadataRecord::PartitionChange(r) if r.directories.is_some() => {
                DIRECTORIES_RECORD_VERSION
            }
            MetadataRecord::PartitionChange(r)
                if r.eligible_leader_replicas.is_some() || r.last_known_elr.is_some() =>
            {
                ELR_RECORD_VERSION
            }
            MetadataRecord::RegisterBroker(r) if !r.log_dirs.is_empty() => {
                BROKER_DIRS_RECORD_VERSION
            }
            MetadataRecord::BrokerRegistrationChange(r) if r.log_dirs.is_some() => {
                BROKER_DIRS_RECORD_VERSION
            }
            _ => RECORD_VERSION,
        }
    }

    /// Appends the framed record to `b`.
    pub fn encode_into(&self, b: &mut BytesMut) {
        let version = self.version();
        b.put_i16(self.record_type());
        b.put_i16(version);
        match self {
            MetadataRecord::RegisterBroker(r) => {
                b.put_i32(r.broker_id);
                put_uuid(b, r.incarnation_id);
                b.put_i64(r.broker_epoch);
                put_len(b, r.endpoints.len());
                for e in &r.endpoints {
                    put_string(b, &e.name);
                    put_string(b, &e.host);
                    b.put_u16(e.port);
                    b.put_i16(e.security_protocol);
                }
                put_nullable_string(b, r.rack.as_deref());
                b.put_u8(u8::from(r.fenced));
                if version >= BROKER_DIRS_RECORD_VERSION {
                    put_uuids(b, &r.log_dirs);
                }
            }
            MetadataRecord::UnregisterBroker(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
            }
            MetadataRecord::Topic(r) => {
                put_string(b, &r.name);
                put_uuid(b, r.topic_id);
            }
            MetadataRecord::Partition(r) => {
                put_uuid(b, r.topic_id);
                b.put_i32(r.partition_id);
                put_ids(b, &r.replicas);
                put_ids(b, &r.isr);
                b.put_i32(r.leader);
                b.put_i32(r.leader_epoch);
                b.put_i32(r.partition_epoch);
                put_ids(b, &r.adding_replicas);
                put_ids(b, &r.removing_replicas);
                if version >= ELR_RECORD_VERSION {
                    put_ids(b, &r.eligible_leader_replicas);
                    put_ids(b, &r.last_known_elr);
                }
                if version >= DIRECTORIES_RECORD_VERSION {
                    put_directories(b, &r.directories);
                }
            }
            MetadataRecord::Config(r) => {
                match &r.resource {
                    ConfigResource::Topic(topic) => {
                        b.put_i8(CONFIG_RESOURCE_TOPIC);
                        put_string(b, topic);
                    }
                    ConfigResource::Broker(name) => {
                        b.put_i8(CONFIG_RESOURCE_BROKER);
                        put_string(b, name);
                    }
                    ConfigResource::Group(group) => {
                        b.put_i8(CONFIG_RESOURCE_GROUP);
                        put_string(b, group);
                    }
                    ConfigResource::ClientMetrics(name) => {
                        b.put_i8(CONFIG_RESOURCE_CLIENT_METRICS);
                        put_string(b, name);
                    }
                }
                put_string(b, &r.name);
                put_nullable_string(b, r.value.as_deref());
            }
            MetadataRecord::PartitionChange(r) => {
                put_uuid(b, r.topic_id);
                b.put_i32(r.partition_id);
                b.put_i32(r.leader.unwrap_or(NO_LEADER_CHANGE));
                put_optional_ids(b, r.isr.as_deref());
                put_optional_ids(b, r.replicas.as_deref());
                put_optional_ids(b, r.adding_replicas.as_deref());
                put_optional_ids(b, r.removing_replicas.as_deref());
                if version >= ELR_RECORD_VERSION {
                    put_optional_ids(b, r.eligible_leader_replicas.as_deref());
                    put_optional_ids(b, r.last_known_elr.as_deref());
                }
                if version >= DIRECTORIES_RECORD_VERSION {
                    match &r.directories {
                        Some(d) => put_directories(b, d),
                        None => b.put_i32(-1),
                    }
                }
            }
            MetadataRecord::FenceBroker(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
            }
            MetadataRecord::UnfenceBroker(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
                b.put_u8(u8::from(r.cordoned));
                if version >= BROKER_DIRS_RECORD_VERSION {
                    match &r.log_dirs {
                        Some(dirs) => put_uuids(b, dirs),
                        None => b.put_i32(-1),
                    }
                }
            }
            MetadataRecord::RemoveTopic(r) => put_uuid(b, r.topic_id),
            MetadataRecord::ProducerIds(r) => {
                b.put_i32(r.broker_id);
                b.put_i64(r.broker_epoch);
                b.put_i64(r.next_producer_id);
            }
            MetadataRecord::ClientQuota(r) => {
                // Kafka's entity array: (entity type, nullable name) pairs, user first.
                let parts = [
                    (QUOTA_ENTITY_USER, &r.entity.user),
                    (QUOTA_ENTITY_CLIENT_ID, &r.entity.client_id),
                    (QUOTA_ENTITY_IP, &r.entity.ip),
                ];
                put_len(b, parts.iter().filter(|(_, n)| n.is_some()).count());
                for (entity_type, name) in parts {
                    if let Some(name) = name {
                        put_string(b, entity_type);
                        put_nullable_string(b, name.as_option());
                    }
                }
                put_string(b, &r.key);
                b.put_u64(if r.remove { 0 } else { r.value.to_bits() });
                b.put_u8(u8::from(r.remove));
            }
            MetadataRecord::FeatureLevel(r) => {
                put_string(b, &r.name);
                b.put_i16(r.feature_level);
            }
            MetadataRecord::UserScramCredential(r) => {
                put_string(b, &r.name);
                b.put_i8(r.mechanism);
                put_bytes(b, &r.salt);
                put_bytes(b, &r.stored_key);
                put_bytes(b, &r.server_key);
                b.put_i32(r.iterations);
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                put_string(b, &r.name);
                b.put_i8(r.mechanism);
            }
            MetadataRecord::AccessControlEntry(r) => {
                put_uuid(b, r.id);
                b.put_i8(r.acl.resource_type.code());
                put_string(b, &r.acl.resource_name);
                b.put_i8(r.acl.pattern_type.code());
                put_string(b, &r.acl.principal);
                put_string(b, &r.acl.host);
                b.put_i8(r.acl.operation.code());
                b.put_i8(r.acl.permission_type.code());
            }
            MetadataRecord::RemoveAccessControlEntry(r) => put_uuid(b, r.id),
            MetadataRecord::DelegationToken(r) => {
                put_string(b, &r.owner);
                put_string(b, &r.requester);
                put_len(b, r.renewers.len());
                for renewer in &r.renewers {
                    put_string(b, renewer);
                }
                b.put_i64(r.issue_timestamp_ms);
                b.put_i64(r.max_timestamp_ms);
                b.put_i64(r.expiration_timestamp_ms);
                put_string(b, &r.token_id);
            }
            MetadataRecord::RemoveDelegationToken(r) => put_string(b, &r.token_id),
        }
    }

    /// Decodes one framed record that fills `buf` exactly.
    pub fn decode(buf: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let mut r = Reader::new(buf);
        let record = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(record)
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
        use record_type::*;
        let record_type = r.i16("record type")?;
        let version = r.i16("record version")?;
        let known = matches!(
            record_type,
            REGISTER_BROKER
                | UNREGISTER_BROKER
                | TOPIC
                | PARTITION
                | CONFIG
                | PARTITION_CHANGE
                | FENCE_BROKER
                | UNFENCE_BROKER
                | BROKER_REGISTRATION_CHANGE
                | REMOVE_TOPIC
                | PRODUCER_IDS
                | CLIENT_QUOTA
                | FEATURE_LEVEL
                | USER_SCRAM_CREDENTIAL
                | REMOVE_USER_SCRAM_CREDENTIAL
                | ACCESS_CONTROL_ENTRY
                | REMOVE_ACCESS_CONTROL_ENTRY
                | DELEGATION_TOKEN
                | REMOVE_DELEGATION_TOKEN
        );
        if !known {
            return Err(DecodeError::UnknownRecordType(record_type));
        }
        let partition_type = matches!(record_type, PARTITION | PARTITION_CHANGE);
        let elr_version = partition_type && version >= ELR_RECORD_VERSION;
        let dirs_version = (partition_type && version == DIRECTORIES_RECORD_VERSION)
            || (matches!(record_type, REGISTER_BROKER | BROKER_REGISTRATION_CHANGE)
                && version == BROKER_DIRS_RECORD_VERSION);
        let known_version = version == RECORD_VERSION
            || (partition_type && version == ELR_RECORD_VERSION)
            || dirs_version;
        if !known_version {
            return Err(DecodeError::UnsupportedVersion {
                record_type,
                version,
            });
        }
        Ok(match record_type {
            REGISTER_BROKER => {
                let broker_id = r.i32("broker id")?;
                let incarnation_id = r.uuid("incarnation id")?;
                let broker_epoch = r.i64("broker epoch")?;
                // Each endpoint takes at least 8 bytes (two empty strings, port, protocol).
                let count = r.count("endpoints", 8)?;
                let mut endpoints = Vec::with_capacity(count);
                for _ in 0..count {
                    endpoints.push(Endpoint {
                        name: r.string("listener name")?,
                        host: r.string("host")?,
                        port: r.u16("port")?,
                        security_protocol: r.i16("security protocol")?,
                    });
                }
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    endpoints,
                    rack: r.nullable_string("rack")?,
                    fenced: r.bool("fenced")?,
                    log_dirs: if dirs_version {
                        r.uuids("log dirs")?
                    } else {
                        Vec::new()
                    },
                })
            }
            UNREGISTER_BROKER => MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: r.i32("broker id")?,
                broker_epoch: r.i64("broker epoch")?,
            }),
            TOPIC => MetadataRecord::Topic(TopicRecord {
                name: r.string("topic name")?,
                topic_id: r.uuid("topic id")?,
            }),
            PARTITION => MetadataRecord::Partition(PartitionRecord {
                topic_id: r.uuid("topic id")?,
                partition_id: r.i32("partition id")?,
                replicas: r.ids("replicas")?,
                isr: r.ids("isr")?,
                leader: r.i32("leader")?,
                leader_epoch: r.i32("leader epoch")?,
                partition_epoch: r.i32("partition epoch")?,
                adding_replicas: r.ids("adding replicas")?,
                removing_replicas: r.ids("removing replicas")?,
                eligible_leader_replicas: if elr_version {
                    r.ids("eligible leader replicas")?
                } else {
                    Vec::new()
                },
                last_known_elr: if elr_version {
                    r.ids("last known ELR")?
                } else {
                    Vec::new()
                },
                directories: if dirs_version {
                    r.directories("directories")?
                } else {
                    Vec::new()
                },
            }),
            CONFIG => {
                let resource_type = r.i8("config resource type")?;
                let name = r.string("config resource name")?;
                let resource = match resource_type {
                    CONFIG_RESOURCE_TOPIC => ConfigResource::Topic(name),
                    CONFIG_RESOURCE_BROKER => ConfigResource::Broker(name),
                    CONFIG_RESOURCE_GROUP => ConfigResource::Group(name),
                    CONFIG_RESOURCE_CLIENT_METRICS => ConfigResource::ClientMetrics(name),
                    other => return Err(DecodeError::UnknownConfigResource(other)),
                };
                MetadataRecord::Config(ConfigRecord {
                    resource,
                    name: r.string("config name")?,
                    value: r.nullable_string("config value")?,
                })
            }
            PARTITION_CHANGE => {
                let topic_id = r.uuid("topic id")?;
                let partition_id = r.i32("partition id")?;
                let leader = match r.i32("leader")? {
                    NO_LEADER_CHANGE => None,
                    leader => Some(leader),
                };
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id,
                    partition_id,
                    leader,
                    isr: r.optional_ids("isr")?,
                    replicas: r.optional_ids("replicas")?,
                    adding_replicas: r.optional_ids("adding replicas")?,
                    removing_replicas: r.optional_ids("removing replicas")?,
                    eligible_leader_replicas: if elr_version {
                        r.optional_ids("eligible leader replicas")?
                    } else {
                        None
                    },
                    last_known_elr: if elr_version {
                        r.optional_ids("last known ELR")?
                    } else {
                        None
                    },
                    directories: if dirs_version && !r.null_array("directories")? {
                        Some(r.directories("directories")?)
                    } else {
                        None
                    },
                })
            }
            FENCE_BROKER => MetadataRecord::FenceBroker(FenceBrokerRecord {
                broker_id: r.i32("broker id")?,
                broker_epoch: r.i64("broker epoch")?,
            }),
            UNFENCE_BROKER => MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                broker_id: r.i32("broker id")?,
                broker_epoch: r.i64("broker epoch")?,
            }),
            BROKER_REGISTRATION_CHANGE => {
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                    broker_id: r.i32("broker id")?,
                    broker_epoch: r.i64("broker epoch")?,
                    cordoned: r.bool("cordoned")?,
                    log_dirs: if dirs_version && !r.null_array("log dirs")? {
                        Some(r.uuids("log dirs")?)
                    } else {
                        None
                    },
                })
            }
            PRODUCER_IDS => MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: r.i32("broker id")?,
                broker_epoch: r.i64("broker epoch")?,
                next_producer_id: r.i64("next producer id")?,
            }),
            CLIENT_QUOTA => MetadataRecord::ClientQuota(decode_client_quota(r)?),
            FEATURE_LEVEL => MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: r.string("feature name")?,
                feature_level: r.i16("feature level")?,
            }),
            USER_SCRAM_CREDENTIAL => {
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name: r.string("scram user name")?,
                    mechanism: r.scram_mechanism()?,
                    salt: r.bytes("scram salt")?,
                    stored_key: r.bytes("scram stored key")?,
                    server_key: r.bytes("scram server key")?,
                    iterations: r.i32("scram iterations")?,
                })
            }
            REMOVE_USER_SCRAM_CREDENTIAL => {
                MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                    name: r.string("scram user name")?,
                    mechanism: r.scram_mechanism()?,
                })
            }
            ACCESS_CONTROL_ENTRY => {
                // A code Kafka does not define is refused, not read as UNKNOWN: such a record
                // could not be written back as it was.
                fn known<T>(
                    code: i8,
                    what: &'static str,
                    from: fn(i8) -> T,
                    to: fn(T) -> i8,
                ) -> Result<T, DecodeError>
                where
                    T: Copy,
                {
                    let value = from(code);
                    if to(value) == code && code != 0 {
                        Ok(value)
                    } else {
                        Err(DecodeError::UnknownAclCode { what, code })
                    }
                }
                let id = r.uuid("acl id")?;
                let resource_type = r.i8("acl resource type")?;
                let resource_type = known(
                    resource_type,
                    "resource type",
                    ResourceType::from_code,
                    ResourceType::code,
                )?;
                let resource_name = r.string("acl resource name")?;
                let pattern_type = r.i8("acl pattern type")?;
                let pattern_type = known(
                    pattern_type,
                    "pattern type",
                    PatternType::from_code,
                    PatternType::code,
                )?;
                let principal = r.string("acl principal")?;
                let host = r.string("acl host")?;
                let operation = r.i8("acl operation")?;
                let operation = known(
                    operation,
                    "operation",
                    AclOperation::from_code,
                    AclOperation::code,
                )?;
                let permission_type = r.i8("acl permission type")?;
                let permission_type = known(
                    permission_type,
                    "permission type",
                    AclPermissionType::from_code,
                    AclPermissionType::code,
                )?;
                MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                    id,
                    acl: StandardAcl {
                        resource_type,
                        resource_name,
                        pattern_type,
                        principal,
                        host,
                        operation,
                        permission_type,
                    },
                })
            }
            REMOVE_ACCESS_CONTROL_ENTRY => {
                MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                    id: r.uuid("acl id")?,
                })
            }
            DELEGATION_TOKEN => {
                let owner = r.string("token owner")?;
                let requester = r.string("token requester")?;
                // Each renewer takes at least its 2-byte length.
                let count = r.count("token renewers", 2)?;
                let mut renewers = Vec::with_capacity(count);
                for _ in 0..count {
                    renewers.push(r.string("token renewer")?);
                }
                MetadataRecord::DelegationToken(DelegationTokenRecord {
                    owner,
                    requester,
                    renewers,
                    issue_timestamp_ms: r.i64("token issue timestamp")?,
                    max_timestamp_ms: r.i64("token max timestamp")?,
                    expiration_timestamp_ms: r.i64("token expiration timestamp")?,
                    token_id: r.string("token id")?,
                })
            }
            REMOVE_DELEGATION_TOKEN => {
                MetadataRecord::RemoveDelegationToken(RemoveDelegationTokenRecord {
                    token_id: r.string("token id")?,
                })
            }
            _ => MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: r.uuid("topic id")?,
            }),
        })
    }
}

fn decode_client_quota(r: &mut Reader<'_>) -> Result<ClientQuotaRecord, DecodeError> {
    // Each part is at least 4 bytes (an empty type and a null name).
    let count = r.count("quota entity", 4)?;
    let mut entity = ClientQuotaEntity {
        user: None,
        client_id: None,
        ip: None,
    };
    for _ in 0..count {
        let entity_type = r.string("quota entity type")?;
        let name = QuotaEntityName::from_option(r.nullable_string("quota entity name")?.as_deref());
        let slot = match entity_type.as_str() {
            QUOTA_ENTITY_USER => &mut entity.user,
            QUOTA_ENTITY_CLIENT_ID => &mut entity.client_id,
            QUOTA_ENTITY_IP => &mut entity.ip,
            _ => return Err(DecodeError::InvalidClientQuota("unknown entity type")),
        };
        if slot.replace(name).is_some() {
            return Err(DecodeError::InvalidClientQuota("entity type given twice"));
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() && entity.ip.is_none() {
        return Err(DecodeError::InvalidClientQuota("empty entity"));
    }
    let key = r.string("quota key")?;
    let value = f64::from_bits(r.u64("quota value")?);
    let remove = r.bool("quota remove")?;
    if !value.is_finite() || value < 0.0 || (remove && value != 0.0) {
        return Err(DecodeError::InvalidClientQuota("value"));
    }
    Ok(ClientQuotaRecord {
        entity,
        key,
        value,
        remove,
    })
}

/// Encodes a batch of records as one blob (for one Raft entry): int32 count, then each record
/// as int32 length + framed record.
pub fn encode_batch(records: &[MetadataRecord]) -> Bytes {
    let mut b = BytesMut::new();
    put_len(&mut b, records.len());
    for record in records {
        put_framed(&mut b, record);
    }
    b.freeze()
}

/// Decodes a blob written by [`encode_batch`].
pub fn decode_batch(buf: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    let mut r = Reader::new(buf);
    // A record is at least 8 bytes: its length, type and version.
    let count = r.count("record count", 8)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(r.framed_record()?);
    }
    r.finish()?;
    Ok(records)
}

/// int32 length + framed record.
pub(crate) fn put_framed(b: &mut BytesMut, record: &MetadataRecord) {
    let encoded = record.encode();
    put_len(b, encoded.len());
    b.put_slice(&encoded);
}

/// Writes a length or count. Nothing the metadata holds comes near `i32::MAX` items.
pub(crate) fn put_len(b: &mut BytesMut, len: usize) {
    b.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

fn put_uuid(b: &mut BytesMut, id: Uuid) {
    b.put_slice(id.as_bytes());
}

fn put_string(b: &mut BytesMut, s: &str) {
    // int16-length strings: longer ones are cut at a char boundary rather than written with a
    // corrupt length. Topic names (≤ 249), hosts and config values stay far below.
    let mut end = s.len().min(MAX_STRING_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_i16(end as i16);
    b.put_slice(&s.as_bytes()[..end]);
}

/// int32 length + bytes.
fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    put_len(b, bytes.len());
    b.put_slice(bytes);
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

fn put_ids(b: &mut BytesMut, ids: &[BrokerId]) {
    put_len(b, ids.len());
    for id in ids {
        b.put_i32(*id);
    }
}

fn put_uuids(b: &mut BytesMut, ids: &[Uuid]) {
    put_len(b, ids.len());
    for id in ids {
        put_uuid(b, *id);
    }
}

fn put_directories(b: &mut BytesMut, dirs: &[ReplicaDirectory]) {
    put_len(b, dirs.len());
    for d in dirs {
        b.put_i32(d.broker);
        put_uuid(b, d.directory);
    }
}

fn put_optional_ids(b: &mut BytesMut, ids: Option<&[BrokerId]>) {
    match ids {
        Some(ids) => put_ids(b, ids),
        None => b.put_i32(-1),
    }
}

/// A bounds-checked big-endian reader.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidBool(what)),
        }
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn uuid(&mut self, what: &'static str) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array(what)?))
    }

    /// A non-negative count of items that take at least `min_item_bytes` each: a count the
    /// remaining input cannot hold is an error before anything is allocated for it.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| DecodeError::NegativeLength { what, len: n })?;
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        let len = self.i16(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength {
            what,
            len: i32::from(len),
        })?;
        let raw = self.take(len, what)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_string()))
            .map_err(|_| DecodeError::InvalidUtf8(what))
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.nullable_string(what)?
            .ok_or(DecodeError::UnexpectedNull(what))
    }

    /// int32 length + bytes, as written by `put_bytes`.
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.count(what, 1)?;
        Ok(self.take(len, what)?.to_vec())
    }

    /// A SCRAM mechanism type that Kafka knows (1 or 2).
    fn scram_mechanism(&mut self) -> Result<i8, DecodeError> {
        let mechanism = self.i8("scram mechanism")?;
        match ScramMechanism::from_type(mechanism) {
            Some(_) => Ok(mechanism),
            None => Err(DecodeError::UnknownScramMechanism(mechanism)),
        }
    }

    fn ids(&mut self, what: &'static str) -> Result<Vec<BrokerId>, DecodeError> {
        let count = self.count(what, 4)?;
        (0..count).map(|_| self.i32(what)).collect()
    }

    fn uuids(&mut self, what: &'static str) -> Result<Vec<Uuid>, DecodeError> {
        let count = self.count(what, 16)?;
        (0..count).map(|_| self.uuid(what)).collect()
    }

    fn directories(&mut self, what: &'static str) -> Result<Vec<ReplicaDirectory>, DecodeError> {
        let count = self.count(what, 20)?;
        (0..count)
            .map(|_| {
                Ok(ReplicaDirectory {
                    broker: self.i32(what)?,
                    directory: self.uuid(what)?,
                })
            })
            .collect()
    }

    /// Whether the next array is null (count -1), which is then consumed; otherwise nothing is.
    fn null_array(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let mut peek = Reader { buf: self.buf };
        if peek.i32(what)? == -1 {
            *self = peek;
            return Ok(true);
        }
        Ok(false)
    }

    fn optional_ids(&mut self, what: &'static str) -> Result<Option<Vec<BrokerId>>, DecodeError> {
        // Peek at the count: -1 is "unchanged".
        let mut peek = Reader { buf: self.buf };
        if peek.i32(what)? == -1 {
            *self = peek;
            return Ok(None);
        }
        self.ids(what).map(Some)
    }

    /// int32 length + framed record, as written by `put_framed`.
    pub(crate) fn framed_record(&mut self) -> Result<MetadataRecord, DecodeError> {
        let len = self.count("record length", 1)?;
        MetadataRecord::decode(self.take(len, "record")?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uuid_strategy() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn ids_strategy() -> impl Strategy<Value = Vec<BrokerId>> {
        proptest::collection::vec(any::<i32>(), 0..6)
    }

    fn directories_strategy() -> impl Strategy<Value = Vec<ReplicaDirectory>> {
        proptest::collection::vec(
            (any::<i32>(), uuid_strategy())
                .prop_map(|(broker, directory)| ReplicaDirectory { broker, directory }),
            0..4,
        )
    }

    fn endpoint_strategy() -> impl Strategy<Value = Endpoint> {
        ("\\PC{0,12}", "\\PC{0,20}", any::<u16>(), any::<i16>()).prop_map(
            |(name, host, port, security_protocol)| Endpoint {
                name,
                host,
                port,
                security_protocol,
            },
        )
    }

    /// Any record, including ones that make no sense against an image: the codec must carry
    /// them all.
    pub(crate) fn record_strategy() -> impl Strategy<Value = MetadataRecord> {
        prop_oneof![
            (
                any::<i32>(),
                uuid_strategy(),
                any::<i64>(),
                proptest::collection::vec(endpoint_strategy(), 0..4),
                proptest::option::of("\\PC{0,10}"),
                any::<bool>(),
                proptest::collection::vec(uuid_strategy(), 0..3),
            )
                .prop_map(
                    |(
                        broker_id,
                        incarnation_id,
                        broker_epoch,
                        endpoints,
                        rack,
                        fenced,
                        log_dirs,
                    )| {
                        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                            broker_id,
                            incarnation_id,
                            broker_epoch,
                            endpoints,
                            rack,
                            fenced,
                            log_dirs,
                        })
                    }
                ),
            (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
                MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                    broker_id,
                    broker_epoch,
                })
            }),
            ("\\PC{0,30}", uuid_strategy())
                .prop_map(|(name, topic_id)| MetadataRecord::Topic(TopicRecord { name, topic_id })),
            (
                uuid_strategy(),
                any::<i32>(),
                ids_strategy(),
                ids_strategy(),
                any::<i32>(),
                any::<i32>(),
                any::<i32>(),
                (
                    ids_strategy(),
                    ids_strategy(),
                    ids_strategy(),
                    ids_strategy(),
                    directories_strategy(),
                ),
            )
                .prop_map(
                    |(
                        topic_id,
                        partition_id,
                        replicas,
                        isr,
                        leader,
                        leader_epoch,
                        pe,
                        (adding, removing, elr, last_known_elr, directories),
                    )| {
                        MetadataRecord::Partition(PartitionRecord {
                            topic_id,
                            partition_id,
                            replicas,
                            isr,
                            leader,
                            leader_epoch,
                            partition_epoch: pe,
                            adding_replicas: adding,
                            removing_replicas: removing,
                            eligible_leader_replicas: elr,
                            last_known_elr,
                            directories,
                        })
                    }
                ),
            (
                "\\PC{0,20}",
                "\\PC{0,20}",
                proptest::option::of("\\PC{0,20}"),
                0..4u8
            )
                .prop_map(|(resource, name, value, kind)| MetadataRecord::Config(
                    ConfigRecord {
                        resource: match kind {
                            0 => ConfigResource::Topic(resource),
                            1 => ConfigResource::Broker(resource),
                            2 => ConfigResource::ClientMetrics(resource),
                            _ => ConfigResource::Group(resource),
                        },
                        name,
                        value,
                    }
                )),
            (
                uuid_strategy(),
                any::<i32>(),
                proptest::option::of(-1..i32::MAX),
                proptest::option::of(ids_strategy()),
                proptest::option::of(ids_strategy()),
                proptest::option::of(ids_strategy()),
                (
                    proptest::option::of(ids_strategy()),
                    proptest::option::of(ids_strategy()),
                    proptest::option::of(ids_strategy()),
                    proptest::option::of(directories_strategy()),
                ),
            )
                .prop_map(
                    |(
                        topic_id,
                        partition_id,
                        leader,
                        isr,
                        replicas,
                        adding,
                        (removing, elr, last_known_elr, directories),
                    )| {
                        MetadataRecord::PartitionChange(PartitionChangeRecord {
                            topic_id,
                            partition_id,
                            leader,
                            isr,
                            replicas,
                            adding_replicas: adding,
                            removing_replicas: removing,
                            eligible_leader_replicas: elr,
                            last_known_elr,
                            directories,
                        })
                    }
                ),
            (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
                MetadataRecord::FenceBroker(FenceBrokerRecord {
                    broker_id,
                    broker_epoch,
                })
            }),
            (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
                MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                    broker_id,
                    broker_epoch,
                })
            }),
            (
                any::<i32>(),
                any::<i64>(),
                any::<bool>(),
                proptest::option::of(proptest::collection::vec(uuid_strategy(), 0..3))
            )
                .prop_map(|(broker_id, broker_epoch, cordoned, log_dirs)| {
                    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                        broker_id,
                        broker_epoch,
                        cordoned,
                        log_dirs,
                    })
                }),
            uuid_strategy()
                .prop_map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
            (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
                |(broker_id, broker_epoch, next_producer_id)| {
                    MetadataRecord::ProducerIds(ProducerIdsRecord {
                        broker_id,
                        broker_epoch,
                        next_producer_id,
                    })
                }
            ),
            client_quota_strategy().prop_map(MetadataRecord::ClientQuota),
            scram_credential_strategy().prop_map(MetadataRecord::UserScramCredential),
            ("\\PC{0,12}", 1..=2i8).prop_map(|(name, mechanism)| {
                MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                    name,
                    mechanism,
                })
            }),
            (uuid_strategy(), crate::acl::tests::acl_strategy()).prop_map(|(id, acl)| {
                MetadataRecord::AccessControlEntry(AccessControlEntryRecord { id, acl })
            }),
            uuid_strategy().prop_map(|id| {
                MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id })
            }),
            (
                ("\\PC{0,12}", "\\PC{0,12}"),
                proptest::collection::vec("\\PC{0,12}", 0..3),
                (any::<i64>(), any::<i64>(), any::<i64>()),
                "\\PC{0,36}",
            )
                .prop_map(
                    |((owner, requester), renewers, (issue, max, expiry), token_id)| {
                        MetadataRecord::DelegationToken(DelegationTokenRecord {
                            owner,
                            requester,
                            renewers,
                            issue_timestamp_ms: issue,
                            max_timestamp_ms: max,
                            expiration_timestamp_ms: expiry,
                            token_id,
                        })
                    }
                ),
            "\\PC{0,36}".prop_map(|token_id| {
                MetadataRecord::RemoveDelegationToken(RemoveDelegationTokenRecord { token_id })
            }),
            ("[a-z._]{0,20}", any::<i16>()).prop_map(|(name, feature_level)| {
                MetadataRecord::FeatureLevel(FeatureLevelRecord {
                    name,
                    feature_level,
                })
            }),
        ]
    }

    fn quota_name_strategy() -> impl Strategy<Value = Option<QuotaEntityName>> {
        prop_oneof![
            Just(None),
            Just(Some(QuotaEntityName::Default)),
            "\\PC{0,12}".prop_map(|n| Some(QuotaEntityName::Named(n))),
        ]
    }

    pub(crate) fn client_quota_strategy() -> impl Strategy<Value = ClientQuotaRecord> {
        (
            quota_name_strategy(),
            quota_name_strategy(),
            "[a-z_]{0,20}",
            0.0..1e12f64,
            any::<bool>(),
        )
            .prop_filter("an entity has a part", |(u, c, ..)| {
                u.is_some() || c.is_some()
            })
            .prop_map(|(user, client_id, key, value, remove)| ClientQuotaRecord {
                entity: ClientQuotaEntity {
                    user,
                    client_id,
                    ip: None,
                },
                key,
                value: if remove { 0.0 } else { value },
                remove,
            })
    }

    /// Any credential the codec must carry (the mechanism is one Kafka knows; the rest need
    /// not make sense).
    pub(crate) fn scram_credential_strategy() -> impl Strategy<Value = UserScramCredentialRecord> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..70);
        (
            "\\PC{0,12}",
            1..=2i8,
            bytes(),
            bytes(),
            bytes(),
            any::<i32>(),
        )
            .prop_map(
                |(name, mechanism, salt, stored_key, server_key, iterations)| {
                    UserScramCredentialRecord {
                        name,
                        mechanism,
                        salt,
                        stored_key,
                        server_key,
                        iterations,
                    }
                },
            )
    }

    #[test]
    fn scram_credential_record_layout_is_pinned() {
        let enc = MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: "al".into(),
            mechanism: 2,
            salt: vec![7, 8],
            stored_key: vec![1],
            server_key: vec![],
            iterations: 4096,
        })
        .encode();
        let mut expected = vec![0, 11, 0, 0, 0, 2, b'a', b'l', 2];
        expected.extend_from_slice(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
        expected.extend_from_slice(&4096i32.to_be_bytes());
        assert_eq!(&enc[..], &expected[..]);
        let enc = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: "al".into(),
            mechanism: 1,
        })
        .encode();
        assert_eq!(&enc[..], &[0, 22, 0, 0, 0, 2, b'a', b'l', 1]);
    }

    #[test]
    fn bad_scram_credential_records_are_refused() {
        let good = UserScramCredentialRecord {
            name: "alice".into(),
            mechanism: 1,
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations: 8192,
        };
        let enc = MetadataRecord::UserScramCredential(good.clone())
            .encode()
            .to_vec();
        assert_eq!(
            MetadataRecord::decode(&enc),
            Ok(MetadataRecord::UserScramCredential(good.clone()))
        );
        // Kafka's UNKNOWN (0) and types it does not have.
        let mechanism_at = 4 + 2 + "alice".len();
        for bad in [0, 3, -1] {
            let mut e = enc.clone();
            e[mechanism_at] = bad as u8;
            assert_eq!(
                MetadataRecord::decode(&e),
                Err(DecodeError::UnknownScramMechanism(bad))
            );
        }
        let remove = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: "alice".into(),
            mechanism: 9,
        });
        assert_eq!(
            MetadataRecord::decode(&remove.encode()),
            Err(DecodeError::UnknownScramMechanism(9))
        );
        // A salt that claims more bytes than there are, or a negative length.
        let salt_at = mechanism_at + 1;
        let mut e = enc.clone();
        e[salt_at..salt_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            MetadataRecord::decode(&e),
            Err(DecodeError::Truncated("scram salt"))
        );
        e[salt_at..salt_at + 4].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(matches!(
            MetadataRecord::decode(&e),
            Err(DecodeError::NegativeLength { .. })
        ));
        // No iterations.
        assert_eq!(
            MetadataRecord::decode(&enc[..enc.len() - 1]),
            Err(DecodeError::Truncated("scram iterations"))
        );
        // The secrets stay out of logs.
        let shown = format!("{good:?}");
        assert!(shown.contains("alice") && shown.contains("8192"), "{shown}");
        assert!(
            !shown.contains("[2, 2") && !shown.contains("[1, 1"),
            "{shown}"
        );
    }

    #[test]
    fn client_quota_record_layout_is_pinned() {
        let enc = MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: ClientQuotaEntity {
                user: Some(QuotaEntityName::Default),
                client_id: Some(QuotaEntityName::Named("c".into())),
                ip: None,
            },
            key: "k".into(),
            value: 2.0,
            remove: false,
        })
        .encode();
        let mut expected = vec![0, 14, 0, 0, 0, 0, 0, 2];
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(b"user");
        expected.extend_from_slice(&[0xff, 0xff, 0, 9]);
        expected.extend_from_slice(b"client-id");
        expected.extend_from_slice(&[0, 1, b'c', 0, 1, b'k']);
        expected.extend_from_slice(&2.0f64.to_bits().to_be_bytes());
        expected.push(0);
        assert_eq!(&enc[..], &expected[..]);
    }

    #[test]
    fn bad_client_quota_records_are_refused() {
        let good = ClientQuotaRecord {
            entity: ClientQuotaEntity {
                user: None,
                client_id: Some(QuotaEntityName::Named("c".into())),
                ip: None,
            },
            key: "producer_byte_rate".into(),
            value: 1024.0,
            remove: false,
        };
        let enc = MetadataRecord::ClientQuota(good.clone()).encode().to_vec();
        assert_eq!(
            MetadataRecord::decode(&enc),
            Ok(MetadataRecord::ClientQuota(good.clone()))
        );
        // A NaN, an infinite and a negative value never decode.
        let value_at = enc.len() - 9;
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            let mut e = enc.clone();
            e[value_at..value_at + 8].copy_from_slice(&bad.to_bits().to_be_bytes());
            assert_eq!(
                MetadataRecord::decode(&e),
                Err(DecodeError::InvalidClientQuota("value"))
            );
        }
        // An unknown entity type ("ip" is Kafka's, not served here).
        let mut e = enc.clone();
        let at = 4 + 4 + 2;
        e[at..at + 9].copy_from_slice(b"client-ip");
        assert_eq!(
            MetadataRecord::decode(&e),
            Err(DecodeError::InvalidClientQuota("unknown entity type"))
        );
        // No parts at all.
        let empty = ClientQuotaRecord {
            entity: ClientQuotaEntity {
                user: None,
                client_id: None,
                ip: None,
            },
            ..good
        };
        assert_eq!(
            MetadataRecord::decode(&MetadataRecord::ClientQuota(empty).encode()),
            Err(DecodeError::InvalidClientQuota("empty entity"))
        );
    }

    #[test]
    fn broker_registration_change_record_layout_is_pinned() {
        let enc = MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            log_dirs: None,
            broker_id: 3,
            broker_epoch: 7,
            cordoned: true,
        })
        .encode();
        assert_eq!(
            &enc[..],
            &[0, 17, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 7, 1]
        );
        let mut bad = enc.to_vec();
        bad[16] = 2;
        assert!(MetadataRecord::decode(&bad).is_err());
        // KIP-858's online directories: version 1, a uuid array appended (-1: unchanged).
        let dir = Uuid::from_u128(0x0102);
        let with_dirs = MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 3,
            broker_epoch: 7,
            cordoned: false,
            log_dirs: Some(vec![dir]),
        });
        let enc = with_dirs.encode();
        assert_eq!(&enc[..4], &[0, 17, 0, 1]);
        assert_eq!(&enc[17..21], &[0, 0, 0, 1]);
        assert_eq!(&enc[21..], dir.as_bytes());
        assert_eq!(MetadataRecord::decode(&enc), Ok(with_dirs));
        // A registration: version 1 with its directories, version 0 without any.
        let register = |log_dirs| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                incarnation_id: Uuid::nil(),
                broker_epoch: 2,
                endpoints: vec![],
                rack: None,
                fenced: true,
                log_dirs,
            })
        };
        let v0 = register(vec![]).encode();
        assert_eq!(&v0[..4], &[0, 0, 0, 0]);
        let v1 = register(vec![dir]).encode();
        assert_eq!(&v1[..4], &[0, 0, 0, 1]);
        assert_eq!(&v1[4..v0.len()], &v0[4..]);
        assert_eq!(MetadataRecord::decode(&v1), Ok(register(vec![dir])));
    }

    #[test]
    fn feature_level_record_layout_is_pinned() {
        let enc = MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "tv".into(),
            feature_level: 2,
        })
        .encode();
        assert_eq!(&enc[..], &[0, 12, 0, 0, 0, 2, b't', b'v', 0, 2]);
    }

    #[test]
    fn topic_record_layout_is_pinned() {
        let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let enc = MetadataRecord::Topic(TopicRecord {
            name: "t1".into(),
            topic_id: id,
        })
        .encode();
        let mut expected = vec![0, 2, 0, 0, 0, 2, b't', b'1'];
        expected.extend_from_slice(id.as_bytes());
        assert_eq!(&enc[..], &expected[..]);
    }

    #[test]
    fn partition_record_layout_is_pinned() {
        let enc = MetadataRecord::Partition(PartitionRecord {
            directories: Vec::new(),
            topic_id: Uuid::from_u128(0),
            partition_id: 1,
            replicas: vec![2, 3],
            isr: vec![3],
            leader: 3,
            leader_epoch: 4,
            partition_epoch: 5,
            adding_replicas: vec![],
            removing_replicas: vec![2],
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
        })
        .encode();
        let mut expected = vec![0, 3, 0, 0];
        expected.extend_from_slice(&[0; 16]);
        for v in [1, 2, 2, 3, 1, 3, 3, 4, 5, 0, 1, 2] {
            expected.extend_from_slice(&i32::to_be_bytes(v));
        }
        assert_eq!(&enc[..], &expected[..]);
        // With KIP-966's ELR fields: version 1, the two lists appended; the version 0 bytes
        // (a log written before them) still read, with empty ones.
        let with_elr = MetadataRecord::Partition(PartitionRecord {
            directories: Vec::new(),
            topic_id: Uuid::nil(),
            partition_id: 1,
            replicas: vec![2, 3],
            isr: vec![],
            leader: -1,
            leader_epoch: 4,
            partition_epoch: 5,
            adding_replicas: vec![],
            removing_replicas: vec![],
            eligible_leader_replicas: vec![3],
            last_known_elr: vec![2],
        });
        let v1 = with_elr.encode();
        assert_eq!(&v1[..4], &[0, 3, 0, 1]);
        assert_eq!(
            &v1[v1.len() - 16..],
            &[0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        assert_eq!(MetadataRecord::decode(&v1), Ok(with_elr));
        let MetadataRecord::Partition(old) = MetadataRecord::decode(&enc).expect("v0") else {
            panic!("a partition record");
        };
        assert!(old.eligible_leader_replicas.is_empty() && old.last_known_elr.is_empty());
        // A version 1 record of another type is refused.
        let mut fenced = MetadataRecord::FenceBroker(FenceBrokerRecord {
            broker_id: 1,
            broker_epoch: 2,
        })
        .encode()
        .to_vec();
        fenced[3] = 1;
        assert!(MetadataRecord::decode(&fenced).is_err());
    }

    #[test]
    fn partition_change_leader_sentinels() {
        let change = |leader| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                directories: None,
                topic_id: Uuid::from_u128(1),
                partition_id: 0,
                leader,
                isr: None,
                replicas: Some(vec![]),
                adding_replicas: None,
                removing_replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            })
        };
        for leader in [None, Some(NO_LEADER), Some(0), Some(7)] {
            let rec = change(leader);
            assert_eq!(MetadataRecord::decode(&rec.encode()), Ok(rec));
        }
        // `None` and an empty list are different things.
        let enc = change(None).encode();
        assert_eq!(&enc[4 + 16 + 4..4 + 16 + 4 + 4], &(-2i32).to_be_bytes());
    }

    #[test]
    fn unknown_type_version_and_trailing_bytes_are_errors() {
        let rec = MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: Uuid::from_u128(9),
        });
        let mut enc = rec.encode().to_vec();
        enc.push(0);
        assert_eq!(
            MetadataRecord::decode(&enc),
            Err(DecodeError::TrailingBytes(1))
        );
        enc.pop();
        enc[3] = 1;
        assert!(matches!(
            MetadataRecord::decode(&enc),
            Err(DecodeError::UnsupportedVersion { version: 1, .. })
        ));
        enc[1] = 6;
        enc[3] = 0;
        assert_eq!(
            MetadataRecord::decode(&enc),
            Err(DecodeError::UnknownRecordType(6))
        );
        assert!(MetadataRecord::decode(&[]).is_err());
    }

    #[test]
    fn huge_counts_fail_without_allocating() {
        // A Partition record announcing 2^31-1 replicas in a few bytes.
        let mut enc = vec![0, 3, 0, 0];
        enc.extend_from_slice(&[0u8; 16]);
        enc.extend_from_slice(&0i32.to_be_bytes());
        enc.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            MetadataRecord::decode(&enc),
            Err(DecodeError::Truncated("replicas"))
        );
        assert!(decode_batch(&i32::MAX.to_be_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn records_round_trip(record in record_strategy()) {
            let enc = record.encode();
            prop_assert_eq!(MetadataRecord::decode(&enc), Ok(record.clone()));
            // Any strict prefix is truncated, never a different valid record.
            for cut in 0..enc.len() {
                prop_assert!(MetadataRecord::decode(&enc[..cut]).is_err());
            }
        }

        #[test]
        fn batches_round_trip(records in proptest::collection::vec(record_strategy(), 0..8)) {
            prop_assert_eq!(decode_batch(&encode_batch(&records)), Ok(records));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MetadataRecord::decode(&bytes);
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn decoding_flipped_records_never_panics(record in record_strategy(),
                                                 at in any::<prop::sample::Index>(),
                                                 byte in any::<u8>()) {
            let mut enc = record.encode().to_vec();
            let i = at.index(enc.len());
            enc[i] = byte;
            if let Ok(decoded) = MetadataRecord::decode(&enc) {
                // Whatever decodes must encode back to the same bytes.
                prop_assert_eq!(&decoded.encode()[..], &enc[..]);
            }
        }
    }
}
