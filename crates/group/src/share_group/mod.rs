//! KIP-932 share groups ("queues for Kafka") in the group coordinator, as an I/O-free core.
//!
//! A share group's members fetch from share-partitions that several of them may read at
//! once; the group coordinator only decides who reads which partition. Members send
//! ShareGroupHeartbeat with their subscription, the coordinator bumps the group epoch when
//! membership or metadata change, runs Kafka's `SimpleAssignor` over the share-partitions
//! whose state is initialized, and a member takes its target at once (no revocation phase).
//!
//! ```text
//!  broker handler ──(request, settings, topics view, now)──► ShareGroupCoordinator::heartbeat
//!                 ◄── ShareHeartbeatResult { response, append, initialize }
//!  broker, after the append ──► persister.initialize(key, state epoch, -1) per partition
//!                 ──(ok / failed)──► initialize_completed ──► append
//!  broker timer   ──(now = next_deadline())────► tick ──► appends (expired members),
//!                                                  initializations to retry
//!  partition led  ──(records of the partition)───► load_partition / unload_partition
//! ```
//! # How the broker drives it (its group runtime, `group_coordinator.rs`)
//! 1. Hold a [`ShareGroupCoordinator`] beside the classic and consumer cores. One group id
//!    names one group: ShareGroupHeartbeat for a classic or consumer group answers
//!    GROUP_ID_NOT_FOUND ("Group {id} is not a share group."), and the other protocols'
//!    requests for a share group answer as Kafka does for a group of another type.
//! 2. Loading a `__consumer_offsets` partition: give the records with
//!    [`is_share_group_key`] to [`ShareGroupCoordinator::load_partition`]; unload on
//!    emigration.
//! 3. ShareGroupHeartbeat (76, v1) and ShareGroupDescribe (77, v1): append a heartbeat's
//!    records acks=all before answering; then initialize its [`InitializeRequest`]'s
//!    share-partitions with the persister and report with
//!    [`ShareGroupCoordinator::initialize_completed`].
//! 4. The ticker wakes at [`ShareGroupCoordinator::next_deadline`] too.
//! 5. ListGroups adds [`ShareGroupCoordinator::list_groups`] (type "share"), DescribeGroups
//!    answers [`ShareGroupCoordinator::classic_describe`], DeleteGroups deletes the
//!    share-partitions' state ([`ShareGroupCoordinator::state_partitions`],
//!    [`ShareGroupCoordinator::begin_state_deletion`]) and then the group
//!    ([`ShareGroupCoordinator::delete_group`]).
//!
//! The modules, each named after the Kafka class it follows: [`coordinator`]
//! (GroupMetadataManager), [`group`] (ShareGroup, ShareGroupMember), [`assignor`]
//! (SimpleAssignor), [`records`] (the ShareGroup* records) and [`api`] (requests and
//! answers). Deleted topics leave every group's state partition metadata
//! ([`ShareGroupCoordinator::forget_topics`]). The group metadata record's hash of the
//! subscribed topics is gregor's own (FNV-1a over names, ids and partition counts; Kafka
//! hashes them with racks too): it is only compared with itself, so a Kafka coordinator
//! reading these records would bump the epoch once. Not done: rack-aware assignment (Kafka's
//! simple assignor ignores racks too).

pub mod api;
pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod records;

#[cfg(test)]
mod tests;

pub use api::*;
pub use coordinator::{ShareGroupConfig, ShareGroupCoordinator};
pub use group::{ShareGroup, ShareGroupMember, ShareGroupState};
pub use records::{is_share_group_key, ShareGroupRecord, StatePartitionMetadata};
