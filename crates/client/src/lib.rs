//! A small async Kafka client over `kafka-protocol`, used by the `gregor` tools and tests.
//!
//! * [`Connection`]: one broker connection; framing, headers, ApiVersions negotiation, timeouts.
//! * [`Cluster`]: bootstrap + metadata cache + one connection per partition leader.
//! * [`Admin`]: create / delete / list / describe topics, describe topic configs.
//! * [`Producer`]: partitioner (Java-compatible murmur2), RecordBatch v2 with compression, acks.
//! * [`Consumer`]: assigned partitions (no group), ListOffsets, Fetch loop, batch decoding.
//! * [`group`]: FindCoordinator, offsets, list/describe/delete groups (also on [`Admin`]).
//! * [`GroupConsumer`]: a consumer-group member with the `range` / `roundrobin` assignors.
//! * [`transactions`]: list and describe transactional ids (also on [`Admin`]).
//! * [`quotas`]: describe and alter client quotas (also on [`Admin`]).
//! * [`acls`]: create, describe and delete ACLs (also on [`Admin`]).

pub mod acls;
pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod cluster_admin;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod features;
pub mod group;
pub mod group_consumer;
pub mod keystore;
pub mod log_admin;
pub mod partitioner;
pub mod producer;
pub mod quotas;
pub mod records;
pub mod security;
pub mod share_group;
pub mod socket;
pub mod streams_group;
pub mod transactions;

pub use acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};
pub use admin::{config_source_name, Admin, ConfigEntry, ConfigOp, ConfigResource, NewTopic};
pub use assignor::Assignor;
pub use cluster::{BrokerInfo, Cluster, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use cluster_admin::{
    ClusterBroker, ClusterDescription, ElectionType, PartitionOutcome, PartitionReassignment,
    QuorumDescription, QuorumReplica,
};
pub use connection::{ClientConfig, Connection};
pub use consumer::{Consumer, ConsumerConfig, OffsetSpec};
pub use error::{ClientError, Result};
pub use group::{GroupDescription, GroupListing, GroupMember, TopicOffsets};
pub use group_consumer::{GroupConsumer, GroupConsumerConfig};
pub use log_admin::{ActiveProducer, LogDir, LogDirPartition};
pub use producer::{parse_acks, Producer, ProducerConfig, RecordMetadata};
pub use quotas::{ClientQuotaEntry, QuotaEntity, QuotaFilter, QuotaMatch, QuotaOp};
pub use records::{
    compression_level_key, parse_compression, Compression, ConsumerRecord, ProducerRecord,
};
pub use security::{SaslLogin, SaslMechanism, Security};
pub use share_group::{
    ShareGroupDescription, ShareGroupMember, ShareOffsets, ShareOffsetsAndLag, SharePartitionOffset,
};
pub use streams_group::{
    CoordinatorNode, StreamsAssignment, StreamsGroupDescription, StreamsGroupMember,
    StreamsSubtopology, StreamsTasks, StreamsTopicInfo, StreamsTopology,
};
pub use transactions::{TransactionDescription, TransactionListing};
