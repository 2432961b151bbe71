//! The openraft type configuration of the metadata quorum: node ids, the node (its controller
//! address), the log entry's application data (one encoded batch of metadata records) and the
//! state machine's answer to it.

use std::fmt;
use std::io::Cursor;

use gregor_metadata::{encode_batch, MetadataRecord};
use serde::{Deserialize, Serialize};

/// A node of the quorum: `BasicNode { addr }` with `addr` the node's controller address
/// (`host:port`), the one its [`crate::QuorumConfig::advertised`] names.
pub type ControllerNode = openraft::BasicNode;

/// The id of a node of the quorum (Kafka's `node.id`).
pub type NodeId = u64;

/// One batch of metadata records as a Raft log entry's payload, in the metadata crate's
/// versioned binary encoding (`encode_batch`). The state machine applies a batch whole or not
/// at all.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<u8>);

impl MetadataBatch {
    /// Encodes `records` as one batch.
    pub fn encode(records: &[MetadataRecord]) -> MetadataBatch {
        MetadataBatch(encode_batch(records).to_vec())
    }
}

impl fmt::Debug for MetadataBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetadataBatch({} bytes)", self.0.len())
    }
}

impl fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metadata batch of {} bytes", self.0.len())
    }
}

/// What applying one log entry did: `rejected` says why a batch was skipped (it did not decode
/// or did not replay on the image), `None` when it was applied or carried no records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub rejected: Option<String>,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of gregor's metadata quorum.
    pub TypeConfig:
        D = MetadataBatch,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = ControllerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of this crate's type configuration.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A log entry of the metadata log.
pub type Entry = openraft::Entry<TypeConfig>;
/// Membership as stored in the log or a snapshot.
pub type StoredMembership = openraft::StoredMembership<NodeId, ControllerNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, ControllerNode>;
/// A storage error as openraft wants it.
pub type StorageError = openraft::StorageError<NodeId>;
