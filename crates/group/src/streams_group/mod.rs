//! KIP-1071, the streams group protocol ("group.protocol=streams"), as an I/O-free core.
//!
//! A Kafka Streams application's members (one per stream thread) send
//! StreamsGroupHeartbeat with their topology (on joining), their process id and the tasks
//! they hold; the coordinator keeps one topology per group, configures it against the
//! cluster's topics (partition counts of repartition and changelog topics, the internal
//! topics still to create), bumps the group epoch when membership, topics or configs change,
//! runs the sticky task assignor into a target assignment of active and standby tasks, and
//! moves each member towards its target one heartbeat at a time, revoking before assigning
//! so that no task runs twice.
//!
//! ```text
//!  broker handler ──(request, topics view, now)──► StreamsGroupCoordinator::heartbeat
//!                 ◄── StreamsHeartbeatResult { response, append: records for
//!                     __consumer_offsets, create_topics: missing internal topics }
//!  broker timer   ──(now = next_deadline())─────► tick ──► appends (fenced members,
//!                                                          delayed assignments)
//!  partition led  ──(records of the partition)───► load_partition / unload_partition
//! ```
//!
//! The modules, each named after the Kafka class it follows: [`coordinator`]
//! (GroupMetadataManager), [`group`] (StreamsGroup), [`member`] (StreamsGroupMember),
//! `reconcile` (CurrentAssignmentBuilder), [`assignor`] (StickyTaskAssignor), [`topology`]
//! (InternalTopicManager and its helpers), [`records`] (the StreamsGroup* records), [`tasks`]
//! (TaskId, TasksTuple) and [`api`] (requests and answers).

pub mod api;
pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod member;
pub(crate) mod reconcile;
pub mod records;
pub mod tasks;
pub mod topology;

#[cfg(test)]
mod tests;

pub use api::*;
pub use coordinator::{StreamsGroupConfig, StreamsGroupCoordinator, StreamsGroupOverrides};
pub use group::{StreamsGroup, StreamsGroupState};
pub use member::{MemberState, StreamsGroupMember};
pub use records::{is_streams_group_key, StreamsGroupRecord};
pub use tasks::{TaskMap, Tasks};
