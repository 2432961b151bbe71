//! Typed requests and responses of the group APIs, and the [`Output`]s the coordinator returns.
//!
//! These mirror the Kafka wire fields the broker needs, without depending on a protocol crate:
//! the broker's handlers decode the wire request, fill one of these, call the
//! [`GroupCoordinator`](crate::GroupCoordinator), and encode what comes back. Requests that the
//! coordinator may park (JoinGroup, SyncGroup) carry a [`RequestId`] chosen by the broker; their
//! answers arrive later as [`Output`]s from other calls or from `tick`.

use bytes::Bytes;

use crate::records::Record;

/// Token the broker attaches to a request so a parked request can be answered later.
/// The coordinator never invents these; it only hands back the ones it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What the broker must do after a call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `response` to `request` now (it may be an earlier, parked request).
    Respond {
        request: RequestId,
        response: Response,
    },
    /// Append `records` to `__consumer_offsets` partition `partition`, and only once that append
    /// is acknowledged send the `then` responses. If the append fails, send each of them with
    /// [`Response::with_error`] (Kafka maps storage errors to e.g. COORDINATOR_NOT_AVAILABLE or
    /// NOT_COORDINATOR). The in-memory state has already moved on; see the crate docs.
    Append {
        partition: i32,
        records: Vec<Record>,
        then: Vec<(RequestId, Response)>,
        /// `Some` for TxnOffsetCommit: write the records as one transactional batch of this
        /// producer (attributes bit 4, the producer id and epoch in the batch header), so the
        /// transaction's COMMIT or ABORT marker in the same partition decides them.
        transaction: Option<TxnProducer>,
    },
}

/// The producer of a transaction, as a transactional batch carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A response to one of the mutating group APIs.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    TxnOffsetCommit(OffsetCommitResponse),
    OffsetDelete(OffsetDeleteResponse),
    DeleteGroups(DeleteGroupsResponse),
}

impl Response {
    /// The same response with every error code set to `error` (used when an append failed).
    pub fn with_error(mut self, error: i16) -> Response {
        match &mut self {
            Response::JoinGroup(r) => r.error_code = error,
            Response::SyncGroup(r) => {
                r.error_code = error;
                r.assignment = Bytes::new();
            }
            Response::Heartbeat(r) => r.error_code = error,
            Response::LeaveGroup(r) => r.error_code = error,
            Response::OffsetCommit(r) | Response::TxnOffsetCommit(r) => {
                for p in r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                    p.error_code = error;
                }
            }
            Response::OffsetDelete(r) => r.error_code = error,
            Response::DeleteGroups(r) => {
                for g in &mut r.results {
                    g.error_code = error;
                }
            }
        }
        self
    }

    /// The response's top-level error code (first partition's for OffsetCommit), for logs/tests.
    pub fn error_code(&self) -> i16 {
        match self {
            Response::JoinGroup(r) => r.error_code,
            Response::SyncGroup(r) => r.error_code,
            Response::Heartbeat(r) => r.error_code,
            Response::LeaveGroup(r) => r.error_code,
            Response::OffsetCommit(r) | Response::TxnOffsetCommit(r) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0),
            Response::OffsetDelete(r) => r.error_code,
            Response::DeleteGroups(r) => r
                .results
                .iter()
                .map(|g| g.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0),
        }
    }
}

/// One protocol a member supports (e.g. "range" with its consumer subscription bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// JoinGroup (API key 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// v0 has no rebalance timeout: pass the session timeout (as Kafka does) or -1.
    pub rebalance_timeout_ms: i32,
    /// Empty for a new member.
    pub member_id: String,
    /// KIP-345 static membership (v5+).
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// From the request header; the prefix of generated member ids.
    pub client_id: String,
    /// The client's address as the broker saw it (Kafka formats it as "/1.2.3.4").
    pub client_host: String,
    /// True for JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    pub error_code: i16,
    pub generation_id: i32,
    /// v7+ field; `None` is written as null.
    pub protocol_type: Option<String>,
    /// `None` is written as null (v7+) or "" (older versions).
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// All members with their metadata for the chosen protocol, for the leader only.
    pub members: Vec<JoinGroupMember>,
}

impl JoinGroupResponse {
    pub fn error(member_id: &str, error_code: i16) -> JoinGroupResponse {
        JoinGroupResponse {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup (API key 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+; checked against the group's when present.
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments: (member id, assignment bytes).
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    pub(crate) fn error(error_code: i16) -> SyncGroupResponse {
        SyncGroupResponse {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Heartbeat (API key 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub error_code: i16,
}

/// A member named in LeaveGroup v3+ (v0–2 carry one `member_id`: pass one identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    /// May be empty when `group_instance_id` names the member (administrative removal).
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// LeaveGroup (API key 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    pub group_id: String,
    pub members: Vec<MemberIdentity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMemberResponse {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error_code: i16,
}

/// For v0–2 the broker answers with `error_code` if non-zero, else the only member's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    pub error_code: i16,
    pub members: Vec<LeaveMemberResponse>,
}

/// OffsetCommit (API key 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    /// -1 for a simple (standalone) commit.
    pub generation_id: i32,
    /// Empty for a simple commit.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<OffsetCommitTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitTopic {
    pub name: String,
    pub partitions: Vec<OffsetCommitPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitPartition {
    pub partition_index: i32,
    pub committed_offset: i64,
    /// -1 when unknown (v6+ field).
    pub committed_leader_epoch: i32,
    pub committed_metadata: Option<String>,
}

/// TxnOffsetCommit (API key 28): offsets sent inside a transaction. They stay pending until
/// the transaction's marker is written to the group's `__consumer_offsets` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    pub transactional_id: String,
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// v3+; -1 for older versions and for producers outside the group's membership.
    pub generation_id: i32,
    /// v3+; empty for older versions.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<OffsetCommitTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    pub topics: Vec<TopicPartitionErrors>,
}

/// Per-partition error codes for one topic (OffsetCommit, OffsetDelete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitionErrors {
    pub name: String,
    pub partitions: Vec<PartitionError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionError {
    pub partition_index: i32,
    pub error_code: i16,
}

/// A topic and some of its partitions (OffsetFetch, OffsetDelete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub name: String,
    pub partitions: Vec<i32>,
}

/// OffsetFetch (API key 9), one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    pub group_id: String,
    /// `None` (null on the wire) fetches every partition the group has committed.
    pub topics: Option<Vec<TopicPartitions>>,
    /// KIP-447 (v7+): a partition with offsets of an open transaction answers
    /// UNSTABLE_OFFSET_COMMIT instead of its committed offset, and the client retries.
    pub require_stable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    pub error_code: i16,
    pub topics: Vec<OffsetFetchTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchTopic {
    pub name: String,
    pub partitions: Vec<OffsetFetchPartition>,
}

/// `committed_offset` is -1 (and metadata empty) when nothing was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchPartition {
    pub partition_index: i32,
    pub committed_offset: i64,
    pub committed_leader_epoch: i32,
    pub metadata: String,
    pub error_code: i16,
}

/// OffsetDelete (API key 47).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    pub group_id: String,
    pub topics: Vec<TopicPartitions>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    pub error_code: i16,
    pub topics: Vec<TopicPartitionErrors>,
}

/// DeleteGroups (API key 42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    pub results: Vec<DeletedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedGroup {
    pub group_id: String,
    pub error_code: i16,
}

/// ListGroups (API key 16) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// "" for a group that only stores offsets.
    pub protocol_type: String,
    pub group_state: String,
}

/// DescribeGroups (API key 15) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error_code: i16,
    pub group_id: String,
    pub group_state: String,
    pub protocol_type: String,
    /// The chosen protocol; "" unless Stable (as Kafka).
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

/// Metadata and assignment are only filled when the group is Stable (as Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_metadata: Bytes,
    pub member_assignment: Bytes,
}

/// A group's committed offsets, as [`GroupCoordinator::committed_offsets`](crate::GroupCoordinator::committed_offsets)
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group_id: String,
    /// Members of a classic group (0 for a group that only stores offsets).
    pub members: usize,
    /// `(topic, partition, committed offset)`, sorted.
    pub offsets: Vec<(String, i32, i64)>,
}

/// A classic group's membership as it moves between the two cores in a KIP-848 online
/// migration (upgrade: classic → consumer group; downgrade: back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicGroupSnapshot {
    pub group_id: String,
    /// The classic generation; the consumer group's epoch in a downgrade.
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub members: Vec<ClassicMemberSnapshot>,
}

/// One member of a [`ClassicGroupSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// Its `ConsumerProtocolAssignment` bytes (empty: nothing assigned yet).
    pub assignment: Bytes,
}
