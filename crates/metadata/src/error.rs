//! Errors of the metadata crate, and the Kafka error codes they map to.
//!
//! Three kinds, kept apart because their callers differ:
//! * [`DecodeError`]: bytes from the metadata log, a snapshot or a peer are not a record. The
//!   runtime treats it as corruption.
//! * [`ReplayError`]: a well-formed record does not fit the image it is replayed on (a change to
//!   an unknown partition, a second topic with one name, ...). A committed log never contains
//!   one if the controller is right, so on a broker it is fatal; the controller checks the
//!   records it is about to propose with the same delta.
//! * [`ControllerError`]: a request the controller must refuse (a replication factor above the
//!   live brokers, an existing topic, ...). It becomes a Kafka error code in the response
//!   ([`ControllerError::code`]).

use uuid::Uuid;

use crate::records::{BrokerId, TopicIdPartition};

/// Kafka error codes (`org.apache.kafka.common.protocol.Errors`) the controller answers with;
/// the same numbers as `gregor_protocol::ErrorCode`.
pub mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const STALE_BROKER_EPOCH: i16 = 77;
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    pub const RESOURCE_NOT_FOUND: i16 = 91;
    pub const DUPLICATE_RESOURCE: i16 = 92;
    pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
    pub const INVALID_UPDATE_VERSION: i16 = 95;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
    pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
    pub const INELIGIBLE_REPLICA: i16 = 107;
    pub const DELEGATION_TOKEN_AUTH_DISABLED: i16 = 61;
    pub const DELEGATION_TOKEN_NOT_FOUND: i16 = 62;
    pub const DELEGATION_TOKEN_OWNER_MISMATCH: i16 = 63;
    pub const DELEGATION_TOKEN_EXPIRED: i16 = 66;
    pub const INVALID_PRINCIPAL_TYPE: i16 = 67;
}

/// Bytes that are not a record (or a snapshot). Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input while reading {0}")]
    Truncated(&'static str),
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    #[error("null where a value is required: {0}")]
    UnexpectedNull(&'static str),
    #[error("{0} is neither 0 nor 1")]
    InvalidBool(&'static str),
    #[error("unknown metadata record type {0}")]
    UnknownRecordType(i16),
    #[error("unsupported version {version} of metadata record type {record_type}")]
    UnsupportedVersion { record_type: i16, version: i16 },
    #[error("unknown config resource type {0}")]
    UnknownConfigResource(i8),
    #[error("invalid client quota record: {0}")]
    InvalidClientQuota(&'static str),
    #[error("unknown SCRAM mechanism {0}")]
    UnknownScramMechanism(i8),
    #[error("unknown ACL {what} {code}")]
    UnknownAclCode { what: &'static str, code: i8 },
    #[error("{0} bytes after the end of the record")]
    TrailingBytes(usize),
    #[error("not a gregor metadata snapshot (magic {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported snapshot format version {0}")]
    UnsupportedSnapshotVersion(i16),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
}

/// A record that does not apply to the image it is replayed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid broker id {0}")]
    InvalidBrokerId(BrokerId),
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error(
        "broker {broker_id}: record has epoch {record_epoch}, registration has {current_epoch}"
    )]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        record_epoch: i64,
        current_epoch: i64,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("the nil uuid is not a topic id")]
    InvalidTopicId,
    #[error("a topic named {0:?} already exists")]
    DuplicateTopicName(String),
    #[error("topic id {0} already exists")]
    DuplicateTopicId(Uuid),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("unknown topic {0:?}")]
    UnknownTopicName(String),
    #[error("partition {0:?} already exists")]
    DuplicatePartition(TopicIdPartition),
    #[error("unknown partition {0:?}")]
    UnknownPartition(TopicIdPartition),
    #[error("partition {partition:?}: {reason}")]
    InvalidPartition {
        partition: TopicIdPartition,
        reason: &'static str,
    },
    #[error("empty config name")]
    InvalidConfigName,
    #[error("a group config of the empty group id")]
    EmptyGroupId,
    #[error("a client metrics config of the empty subscription name")]
    EmptyClientMetricsName,
    #[error("invalid client quota: {0}")]
    InvalidClientQuota(&'static str),
    #[error("invalid SCRAM credential: {0}")]
    InvalidScramCredential(&'static str),
    #[error("no SCRAM credential of mechanism {mechanism} for user {name:?} to delete")]
    UnknownScramCredential { name: String, mechanism: i8 },
    #[error("invalid delegation token: {0}")]
    InvalidDelegationToken(&'static str),
    #[error("no delegation token {0:?} to remove")]
    UnknownDelegationToken(String),
    #[error("ACL id {0} is nil or already exists")]
    DuplicateAcl(Uuid),
    #[error("no ACL with id {0} to remove")]
    UnknownAcl(Uuid),
    #[error("invalid ACL: {0}")]
    InvalidAcl(String),
    #[error("producer ids up to {record} are already handed out up to {current}")]
    StaleProducerIds { record: i64, current: i64 },
}

/// A controller request refused, with the Kafka error code for the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("replication factor {replication_factor} is invalid with {usable_brokers} usable (registered, unfenced, not cordoned) brokers")]
    InvalidReplicationFactor {
        replication_factor: i16,
        usable_brokers: usize,
    },
    #[error("invalid number of partitions {0}")]
    InvalidPartitions(i32),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid config {name:?}: {reason}")]
    InvalidConfig { name: String, reason: &'static str },
    #[error("broker {0} is not registered")]
    BrokerNotRegistered(BrokerId),
    #[error("the preferred leader is not available")]
    PreferredLeaderNotAvailable,
    #[error("no eligible leader is available")]
    EligibleLeadersNotAvailable,
    #[error("the leader is already the one the election would choose")]
    ElectionNotNeeded,
    #[error("broker {0} is not the partition's leader")]
    NotLeaderOrFollower(BrokerId),
    #[error("leader epoch {request} does not match the partition's {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    #[error("partition epoch {request} does not match the partition's {current}")]
    InvalidUpdateVersion { request: i32, current: i32 },
    #[error("the new ISR holds broker {0}, which is fenced or unknown")]
    IneligibleReplica(BrokerId),
    #[error(
        "broker {broker_id}: epoch {broker_epoch} is not above the registered {current_epoch}"
    )]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        broker_epoch: i64,
        current_epoch: i64,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("policy violation: {0}")]
    PolicyViolation(&'static str),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(&'static str),
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
    #[error("broker {0} is fenced")]
    BrokerFenced(BrokerId),
    #[error("every producer id has been handed out")]
    ProducerIdsExhausted,
    #[error("{0}")]
    InvalidClientQuota(String),
    /// A SCRAM mechanism Kafka does not know (UNSUPPORTED_SASL_MECHANISM).
    #[error("{0}")]
    UnsupportedSaslMechanism(&'static str),
    /// A SCRAM credential Kafka would not accept: an empty user name, too few or too many
    /// iterations (UNACCEPTABLE_CREDENTIAL).
    #[error("{0}")]
    UnacceptableCredential(&'static str),
    /// RESOURCE_NOT_FOUND, e.g. deleting a SCRAM credential that does not exist.
    #[error("{0}")]
    ResourceNotFound(&'static str),
    /// DUPLICATE_RESOURCE, e.g. one user's credentials altered twice in one request.
    #[error("{0}")]
    DuplicateResource(&'static str),
    /// An ACL or ACL filter Kafka would refuse (INVALID_REQUEST).
    #[error("{0}")]
    InvalidAcl(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("unknown partition {0:?}")]
    UnknownPartition(TopicIdPartition),
    #[error("the broker holds no replica of {0:?}")]
    NotReplica(TopicIdPartition),
    #[error("{0}")]
    UnsupportedVersion(&'static str),
}

impl ControllerError {
    /// The Kafka error code a response carries for this error.
    pub fn code(&self) -> i16 {
        match self {
            ControllerError::InvalidReplicationFactor { .. } => code::INVALID_REPLICATION_FACTOR,
            ControllerError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
            ControllerError::InvalidTopic { .. } => code::INVALID_TOPIC_EXCEPTION,
            ControllerError::TopicAlreadyExists(_) => code::TOPIC_ALREADY_EXISTS,
            ControllerError::UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
            ControllerError::InvalidConfig { .. } => code::INVALID_CONFIG,
            ControllerError::BrokerNotRegistered(_) => code::BROKER_ID_NOT_REGISTERED,
            ControllerError::PreferredLeaderNotAvailable => code::PREFERRED_LEADER_NOT_AVAILABLE,
            ControllerError::EligibleLeadersNotAvailable => code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            ControllerError::ElectionNotNeeded => code::ELECTION_NOT_NEEDED,
            ControllerError::NotLeaderOrFollower(_) => code::NOT_LEADER_OR_FOLLOWER,
            ControllerError::FencedLeaderEpoch { .. } => code::FENCED_LEADER_EPOCH,
            ControllerError::InvalidUpdateVersion { .. } => code::INVALID_UPDATE_VERSION,
            ControllerError::IneligibleReplica(_) => code::INELIGIBLE_REPLICA,
            ControllerError::StaleBrokerEpoch { .. } => code::STALE_BROKER_EPOCH,
            ControllerError::InvalidRequest(_) => code::INVALID_REQUEST,
            ControllerError::PolicyViolation(_) => code::POLICY_VIOLATION,
            ControllerError::InvalidReplicaAssignment(_) => code::INVALID_REPLICA_ASSIGNMENT,
            ControllerError::NoReassignmentInProgress => code::NO_REASSIGNMENT_IN_PROGRESS,
            ControllerError::BrokerFenced(_) => code::BROKER_NOT_AVAILABLE,
            ControllerError::ProducerIdsExhausted => code::UNKNOWN_SERVER_ERROR,
            ControllerError::InvalidClientQuota(_) => code::INVALID_REQUEST,
            ControllerError::UnsupportedSaslMechanism(_) => code::UNSUPPORTED_SASL_MECHANISM,
            ControllerError::UnacceptableCredential(_) => code::UNACCEPTABLE_CREDENTIAL,
            ControllerError::ResourceNotFound(_) => code::RESOURCE_NOT_FOUND,
            ControllerError::DuplicateResource(_) => code::DUPLICATE_RESOURCE,
            ControllerError::InvalidAcl(_) => code::INVALID_REQUEST,
            ControllerError::UnknownTopicId(_) => code::UNKNOWN_TOPIC_ID,
            ControllerError::UnknownPartition(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
            ControllerError::NotReplica(_) => code::NOT_LEADER_OR_FOLLOWER,
            ControllerError::UnsupportedVersion(_) => code::UNSUPPORTED_VERSION,
        }
    }
}
