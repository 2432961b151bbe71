//! A member of a consumer group (Kafka's `ConsumerGroupMember`) and its reconciliation state.
//!
//! ```text
//!            new target, revocations needed         member stops reporting them
//!  STABLE ────────────────────────────────► UNREVOKED_PARTITIONS ──────────────► (next epoch)
//!    ▲  │ new target, partitions still owned                                        │
//!    │  ▼ by others                                                                 │
//!  UNRELEASED_PARTITIONS ─── they are released ─────────────────────────────────────┘
//! ```
//! The member epoch is the target assignment epoch the member has reached; the previous
//! epoch is kept so a member whose last response was lost may come back with it.

use std::collections::BTreeSet;

use super::records::ClassicMemberMetadata;
use super::topics::TopicPartitions;

/// Member epoch of a heartbeat that joins (or rejoins) the group.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member that leaves for now and will rejoin with its instance id.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's `MemberState`, with its record values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MemberState {
    /// The member has its whole target assignment (or is reconciled to its epoch).
    #[default]
    Stable,
    /// The member must first stop consuming some partitions (revoke them).
    UnrevokedPartitions,
    /// Some of the member's target partitions are still owned by other members.
    UnreleasedPartitions,
    /// A state this version does not know (read from a newer record): the member is fenced
    /// on its next heartbeat.
    Unknown,
}

impl MemberState {
    pub fn value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_value(v: i8) -> MemberState {
        match v {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }

    /// Kafka's names, as logs and tools show them.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedPartitions => "UNREVOKED_PARTITIONS",
            MemberState::UnreleasedPartitions => "UNRELEASED_PARTITIONS",
            MemberState::Unknown => "UNKNOWN",
        }
    }
}

/// One member of a consumer group, everything the records persist about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupMember {
    pub member_id: String,
    /// KIP-345 static membership: the member's `group.instance.id`.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    /// A regex (RE2 syntax) over whole topic names, besides the names.
    pub subscribed_topic_regex: Option<String>,
    /// How long the member may take to revoke partitions before it is fenced.
    pub rebalance_timeout_ms: i32,
    /// The server-side assignor the member asked for, if any.
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions the member owns (or may start consuming) now.
    pub assigned_partitions: TopicPartitions,
    /// Partitions the member must revoke before it gets anything new.
    pub partitions_pending_revocation: TopicPartitions,
    /// Set for a member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat)
    /// inside this consumer group: its session timeout and JoinGroup protocols.
    pub classic: Option<ClassicMemberMetadata>,
}

impl ConsumerGroupMember {
    /// A member that has just been created for `member_id`: epoch 0, nothing assigned.
    pub fn new(member_id: &str) -> ConsumerGroupMember {
        ConsumerGroupMember {
            member_id: member_id.to_string(),
            rebalance_timeout_ms: -1,
            ..ConsumerGroupMember::default()
        }
    }

    /// Kafka's `isReconciledTo`: stable at the target assignment epoch.
    pub fn is_reconciled_to(&self, target_assignment_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_assignment_epoch
    }

    /// Kafka's `useClassicProtocol`.
    pub fn uses_classic_protocol(&self) -> bool {
        self.classic.is_some()
    }

    /// Kafka's `Builder.updateMemberEpoch`: the current epoch becomes the previous one.
    pub(crate) fn update_member_epoch(&mut self, epoch: i32) {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
    }
}
