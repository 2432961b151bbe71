//! The openraft type configuration of the metadata quorum: node ids, the node (its controller
//! address), the log entry's application data (one encoded batch of metadata records) and the
//! state machine's answer to it.

use std::fmt;
use std::io::Cursor;

use gregor_metadata::{encode_batch, MetadataRecord};
use serde::{Deserialize, Serialize};

/// A node of the quorum as the membership records it: its controller address (`host:port`,
/// the one its [`crate::QuorumConfig::advertised`] names) and, when it told the leader, its
/// data directory's id (Kafka's `directory.id`, KIP-853's replica key), which DescribeQuorum
/// reports and RemoveRaftVoter checks. Stored as JSON: `{"addr": ...}` as openraft's
/// `BasicNode` was, with `directory_id` only when known, so logs of either shape read alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
}

impl ControllerNode {
    /// A node at `addr`, directory id unknown.
    pub fn new(addr: impl Into<String>) -> ControllerNode {
        ControllerNode {
            addr: addr.into(),
            directory_id: None,
        }
    }

    /// A node at `addr` whose directory id is `directory_id`.
    pub fn with_directory(addr: impl Into<String>, directory_id: Option<String>) -> ControllerNode {
        ControllerNode {
            addr: addr.into(),
            directory_id,
        }
    }
}

impl fmt::Display for ControllerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.directory_id {
            Some(d) => write!(f, "{} (directory {d})", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_node_reads_as_openraft_basic_node_did_and_back() {
        let old: ControllerNode =
            serde_json::from_str(r#"{"addr":"127.0.0.1:9093"}"#).expect("reads");
        assert_eq!(old, ControllerNode::new("127.0.0.1:9093"));
        assert_eq!(
            serde_json::to_string(&old).expect("writes"),
            r#"{"addr":"127.0.0.1:9093"}"#
        );
        let with = ControllerNode::with_directory("h:1", Some("AAAAAAAAAAAAAAAAAAAAAQ".into()));
        let json = serde_json::to_string(&with).expect("writes");
        assert_eq!(
            json,
            r#"{"addr":"h:1","directory_id":"AAAAAAAAAAAAAAAAAAAAAQ"}"#
        );
        // What an older node makes of it: openraft's BasicNode, the directory id ignored.
        let basic: openraft::BasicNode = serde_json::from_str(&json).expect("reads");
        assert_eq!(basic.addr, "h:1");
    }
}
