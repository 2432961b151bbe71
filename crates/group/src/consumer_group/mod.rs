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
//! The modules, each named after the Kafka class it follows: [`coordinator`]
//! (GroupMetadataManager), [`group`] (ConsumerGroup), [`member`] (ConsumerGroupMember),
//! [`reconcile`] (CurrentAssignmentBuilder), [`assignor`] (UniformAssignor, RangeAssignor,
//! TargetAssignmentBuilder), [`records`] (the ConsumerGroup* records), [`topics`] (the
//! metadata image view) and [`api`] (requests and answers).

pub mod api;
pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod member;
pub(crate) mod reconcile;
pub mod records;
pub mod topics;

#[cfg(test)]
mod tests;

pub use api::*;
pub use assignor::AssignorName;
pub use coordinator::{ConsumerGroupConfig, ConsumerGroupCoordinator};
pub use group::{ConsumerGroup, ConsumerGroupState};
pub use member::{ConsumerGroupMember, MemberState};
pub use records::{is_consumer_group_key, ConsumerGroupRecord};
pub use topics::{TopicId, TopicMetadata, TopicPartitions, TopicsImage, TopicsView};
