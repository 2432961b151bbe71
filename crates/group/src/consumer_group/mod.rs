//! KIP-848, the consumer group protocol ("group.protocol=consumer"), as an I/O-free core.
//!
//! The group coordinator decides the assignment on the server: members send
//! ConsumerGroupHeartbeat with their subscription and owned partitions, the coordinator
//! bumps the group epoch when membership or metadata change, runs a server-side assignor
//! (`uniform` by default, or `range`) into a target assignment, and moves each member
//! towards its target one heartbeat at a time, revoking before assigning so that no
//! partition is ever owned by two members.
//!
//! ```text
//!  broker handler ──(request, topics view, now)──► ConsumerGroupCoordinator::heartbeat
//!                 ◄── HeartbeatResult { response, append: records for __consumer_offsets }
//!  broker timer   ──(now = next_deadline())─────► tick ──► appends (fenced members)
//!  partition led  ──(records of the partition)───► load_partition / unload_partition
//! ```
//! # How the broker drives it (its group runtime, `group_coordinator.rs`)
//! 1. Hold a [`ConsumerGroupCoordinator`] beside the classic `GroupCoordinator` (configs
//!    `group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`,
//!    `group.consumer.max.size`, `group.consumer.assignors`, `offsets.topic.num.partitions`).
//!    One group id names one group: before a heartbeat, a classic group with that id and
//!    members is upgraded (KIP-848 online migration: [`ConsumerGroupCoordinator::can_upgrade`],
//!    [`ConsumerGroupCoordinator::convert_from_classic`]) or, refused, answers
//!    GROUP_ID_NOT_FOUND ("Group {id} is not a consumer group."); classic JoinGroup, SyncGroup,
//!    Heartbeat and LeaveGroup for a consumer group with members go to `classic_join`,
//!    `classic_sync`, `classic_heartbeat`, `classic_leave`, and
//!    [`ConsumerGroupCoordinator::take_downgrades`] hands groups back to the classic core.
//! 2. Implement [`TopicsView`] over the metadata image (name → id, partition count, id → name).
//! 3. Loading a `__consumer_offsets` partition: give every record to
//!    [`ConsumerGroupCoordinator::load_partition`], and only those for which
//!    [`is_consumer_group_key`] is false to the classic loader (it refuses keys 3–8).
//!    Unload both on emigration.
//! 4. ConsumerGroupHeartbeat (68, v0–1) and ConsumerGroupDescribe (69, v0–1): NOT_COORDINATOR by
//!    [`ConsumerGroupCoordinator::partition_for`]; append a [`HeartbeatResult::append`]
//!    acks=all before answering; if it fails answer COORDINATOR_NOT_AVAILABLE and reload the
//!    partition (the state already moved on). Advertise both in ApiVersions.
//! 5. The ticker wakes at the earlier of both cores' `next_deadline` and appends what
//!    [`ConsumerGroupCoordinator::tick`] returns.
//! 6. Offsets stay in the classic coordinator: OffsetCommit (v9 sends the member epoch as the
//!    generation) and TxnOffsetCommit first ask [`ConsumerGroupCoordinator::validate_offset_commit`],
//!    OffsetFetch v9+ asks [`ConsumerGroupCoordinator::validate_offset_fetch`]; `Accepted`
//!    stores or reads the offsets as a simple (generation -1) commit would, `Rejected` answers
//!    every partition with its code, `NotConsumerGroup` is the classic path. OffsetDelete
//!    answers GROUP_SUBSCRIBED_TO_TOPIC where
//!    [`ConsumerGroupCoordinator::is_subscribed_to_topic`] says so.
//! 7. ListGroups adds [`ConsumerGroupCoordinator::list_groups`] (type "consumer"; classic ones
//!    are "classic") and drops the classic offsets-only entry of the same id; DescribeGroups
//!    answers [`ConsumerGroupCoordinator::classic_describe`] for consumer groups; DeleteGroups
//!    calls [`ConsumerGroupCoordinator::delete_group`] and deletes the offsets as for a classic
//!    group. An Empty consumer group whose offsets have all expired should be deleted too
//!    (Kafka's `cleanupGroupMetadata`).
//!
//! Regex subscriptions (`SubscribedTopicRegex`, RE2 syntax over whole names, internal topics
//! excluded) are resolved at each heartbeat against the [`TopicsView`], and the resolved
//! topics persist in the subscription metadata record; Kafka resolves them in the background
//! and writes ConsumerGroupRegularExpression records (key 16) instead, which this version
//! neither writes nor reads. Not done: rack-aware assignment.
//!
//! The modules, each named after the Kafka class it follows: [`coordinator`]
//! (GroupMetadataManager), [`group`] (ConsumerGroup), [`member`] (ConsumerGroupMember),
//! `reconcile` (CurrentAssignmentBuilder), [`assignor`] (UniformAssignor, RangeAssignor,
//! TargetAssignmentBuilder), [`records`] (the ConsumerGroup* records), [`topics`] (the
//! metadata image view) and [`api`] (requests and answers).

pub mod api;
pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod member;
mod migration;
pub(crate) mod reconcile;
pub mod records;
pub mod topics;

#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;

pub use api::*;
pub use assignor::AssignorName;
pub use coordinator::{
    ConsumerGroupConfig, ConsumerGroupCoordinator, ConsumerGroupOverrides, MigrationPolicy,
};
pub use group::{ConsumerGroup, ConsumerGroupState};
pub use member::{ConsumerGroupMember, MemberState};
pub use records::{is_consumer_group_key, ConsumerGroupRecord};
pub use topics::{TopicId, TopicMetadata, TopicPartitions, TopicsImage, TopicsView};
