//! Cluster metadata, free of I/O: the records of the metadata log, the immutable image they
//! build, and the controller's placement and election decisions.
//!
//! ```text
//!             controller                                   every broker (and controller)
//!  request/event ─► controller::{create_topic,           committed records
//!                   fence_broker, …}(image)                    │
//!                    │ uses placement, election                ▼
//!                    ▼                                   MetadataDelta::replay … apply
//!               Vec<MetadataRecord> ─► (Raft log: encode)      │
//!                                                             ▼
//!                                     Arc<MetadataImage> ─► handlers; local_changes ─►
//!                                     to_records / snapshot    replica manager
//! ```
//!
//! * [`records`]: typed records (broker registration, fence/unfence, topic, partition,
//!   partition change, config, topic removal, producer id blocks, client quotas, SCRAM
//!   credentials, ACLs) and their versioned binary encoding.
//! * [`acl`]: ACLs, their filters and Kafka's `StandardAuthorizer` decision over them.
//! * [`image`] / [`delta`]: Kafka's `MetadataImage` and `MetadataDelta`.
//! * [`snapshot`]: an image as bytes, for compacting the metadata log.
//! * [`placement`]: replicas and preferred leaders spread over the unfenced brokers.
//! * [`election`]: Kafka's `PartitionChangeBuilder` — a new leader from the ISR, unclean only
//!   when allowed.
//! * [`controller`]: the records the controller proposes for CreateTopics, DeleteTopics,
//!   CreatePartitions, ElectLeaders, AlterPartition, AlterPartitionReassignments, broker
//!   registration and fencing, client quotas, SCRAM credentials and ACLs.
//! * [`scram`]: SCRAM mechanisms and the stored and server keys derived from a salted
//!   password (RFC 5802, KIP-554).
//! * [`heartbeat`]: broker sessions on the active controller (manual clock): when to fence a
//!   silent broker and when to unfence one that caught up.
//!
//! Not wired into the broker yet: today's broker still keeps its topic list in its own JSON
//! file and has no controller, quorum or replication. This crate is the shared piece the
//! controller (on openraft) and the broker's metadata cache and replica manager will both use;
//! nothing in it reads a clock, a socket or a file.

pub mod acl;
mod acl_index;
pub mod controller;
pub mod delegation_token;
pub mod delta;
pub mod election;
pub mod error;
pub mod features;
pub mod heartbeat;
pub mod image;
pub mod placement;
pub mod random_id;
pub mod records;
pub mod scram;
pub mod snapshot;

#[cfg(test)]
mod tests;

pub use acl::{
    AclBindingFilter, AclOperation, AclPermissionType, AclsImage, MatchingRule, PatternType,
    ResourceType, StandardAcl, StandardAuthorizer, CLUSTER_NAME,
};
pub use delegation_token::{
    token_hmac, DelegationTokenConfig, DelegationTokenImage, DelegationTokenRecord,
    RemoveDelegationTokenRecord, TokenError,
};
pub use delta::{LocalReplicaChanges, MetadataDelta};
pub use election::{unclean_elections, Election, ElectionResult, PartitionChangeBuilder};
pub use error::{code, ControllerError, DecodeError, ReplayError};
pub use features::{update_features, FeatureUpdate, UpgradeType, SUPPORTED_FEATURES};
pub use heartbeat::{BrokerHeartbeat, BrokerHeartbeatManager, HeartbeatAction};
pub use image::{
    BrokerRegistration, ClientQuotasImage, ClusterImage, ConfigurationsImage, MetadataImage,
    MetadataProvenance, PartitionRegistration, ScramCredential, ScramImage, TopicImage,
    TopicsImage,
};
pub use random_id::random_uuid;
pub use records::{
    decode_batch, encode_batch, metadata_version_level, metadata_version_name,
    AccessControlEntryRecord, BrokerId, BrokerRegistrationChangeRecord, ClientQuotaEntity,
    ClientQuotaRecord, ConfigRecord, ConfigResource, Endpoint, FeatureLevelRecord,
    FenceBrokerRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord,
    QuotaEntityName, RegisterBrokerRecord, RemoveAccessControlEntryRecord, RemoveTopicRecord,
    RemoveUserScramCredentialRecord, ReplicaDirectory, TopicIdPartition, TopicRecord,
    UnfenceBrokerRecord, UnregisterBrokerRecord, UserScramCredentialRecord,
    ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE, ELIGIBLE_LEADER_REPLICAS_VERSION_LATEST,
    GROUP_VERSION_FEATURE, GROUP_VERSION_LATEST, KRAFT_VERSION_FEATURE, METADATA_VERSIONS,
    METADATA_VERSION_FEATURE, METADATA_VERSION_LATEST, METADATA_VERSION_MINIMUM, NO_LEADER,
    PRODUCER_ID_BLOCK_SIZE, QUOTA_ENTITY_CLIENT_ID, QUOTA_ENTITY_IP, QUOTA_ENTITY_USER,
    SHARE_VERSION_FEATURE, SHARE_VERSION_LATEST, STREAMS_VERSION_FEATURE, STREAMS_VERSION_LATEST,
    TRANSACTION_VERSION_FEATURE,
};
pub use scram::{ScramKeys, ScramMechanism, SCRAM_MAX_ITERATIONS};
pub use snapshot::{decode_snapshot, encode_snapshot, SnapshotError};
