//! Partition replication core (I/O-free): what a partition leader decides about its
//! followers, and how a follower finds where its log diverges from the leader's.
//!
//! * [`Partition`] — one replica of one partition, Kafka's `cluster.Partition` without the
//!   log: leader epoch, partition epoch, replicas, the ISR (committed, or with an
//!   AlterPartition in flight, see [`IsrState`]), each follower's state ([`ReplicaState`]),
//!   log start/end offsets and the high watermark. Inputs (appends, follower fetches, ticks,
//!   controller answers, registrations) come in with the caller's `now_ms`; [`Output`]s (high
//!   watermark moves, AlterPartition proposals, epoch starts) go out.
//! * [`epoch`] — leader-epoch arithmetic: `endOffsetFor`, the diverging-epoch check on a
//!   follower Fetch and the follower's truncation offset.
//!
//! Where it sits: the broker's partition (gregor-broker `partition.rs`) owns a [`Partition`]
//! and feeds it appends, follower fetches and ticks; the replica manager's purgatory asks it
//! [`Partition::produce_status`]. The replica fetcher (which will use [`epoch`]) and the
//! controller that answers AlterPartition do not exist yet.
//!
//! The runtime's duties: carry out outputs in order, call [`Partition::tick`] at
//! [`Partition::next_deadline`], write [`Output::AssignEpochStartOffset`] to the leader-epoch
//! cache, and have the controller process AlterPartition copies in the order they were sent
//! (see [`Partition::alter_partition_response`]).
//!
//! Tests: `tests.rs` (each rule, manual clock), `epoch.rs` (Kafka's cases and properties over
//! random leadership histories), `sim.rs` (seeded: one leader, lossy and delayed controller
//! traffic, pauses, fencing) and `failover_sim.rs` (seeded: crashes, zombie leaders,
//! elections, restarts and truncation across three cores).

pub mod epoch;
pub mod error;
pub mod isr;
pub mod partition;
pub mod replica;

#[cfg(test)]
mod failover_sim;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_rng;
#[cfg(test)]
mod tests;

/// A broker's node id.
pub type BrokerId = i32;

pub use error::{code, ReplicationError, StateError};
pub use isr::{
    AlterPartitionRequest, AlterPartitionResponse, InflightAlter, IsrMember, IsrState, ProposalId,
};
pub use partition::{
    BrokerStatus, FollowerFetch, LeaderAndIsr, LogOffsets, Output, Partition, ProduceStatus,
    ReplicationConfig, NO_EPOCH,
};
pub use replica::{ReplicaState, UNKNOWN_OFFSET};
