//! Consumer group coordinator core (I/O-free): Kafka's classic group protocol and committed
//! offsets, as a state machine the broker drives.
//!
//! The broker owns sockets, the `__consumer_offsets` log and timers; this crate owns the
//! decisions. Every entry point takes plain Rust values and `now_ms`, and returns [`Output`]s:
//!
//! * [`Output::Respond`] — send a response now, possibly to a request parked earlier
//!   (JoinGroup/SyncGroup are parked under the broker's [`RequestId`]).
//! * [`Output::Append`] — append records to a `__consumer_offsets` partition, then send the
//!   responses in `then` (a commit is acknowledged only once it is in the log).
//!
//! Execute the outputs of one call in order. Call [`GroupCoordinator::tick`] at
//! [`GroupCoordinator::next_deadline`] (and after a call that may have changed it) to expire
//! sessions, pending members, join/sync phases and old offsets. Replay `__consumer_offsets`
//! with [`GroupCoordinator::load_partition_entries`] when becoming coordinator of a
//! partition; the partition of a group is [`partition_for_group`].
//!
//! Offsets sent in a transaction (TxnOffsetCommit) are written as one transactional batch
//! ([`Output::Append`] with `transaction`) and stay pending until the broker reports the
//! transaction's marker with [`GroupCoordinator::complete_txn_offsets`].
//!
//! State is updated in memory when the call returns, before the broker's append completes
//! (Kafka instead keeps offset commits pending until the append succeeds). If an append
//! fails the broker sends the `then` responses with an error; if the log is unusable it
//! should [`unload`](GroupCoordinator::unload_partition) the partition and reload it.

pub mod api;
pub mod consumer_group;
pub mod consumer_protocol;
pub mod coordinator;
pub mod error;
mod group;
pub mod loader;
mod migration;
pub mod offsets;
pub mod records;
pub mod share_group;
pub mod state;
pub mod streams_group;
pub mod txn_offsets;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_offsets_tests;

pub use api::*;
pub use coordinator::{GroupConfig, GroupCoordinator};
pub use error::{code, DecodeError};
pub use loader::{LoadSummary, LogEntry, NOT_COORDINATOR};
pub use offsets::errors_for_all;
pub use records::{
    java_string_hash_code, partition_for_group, GroupMetadataValue, MemberMetadataValue,
    OffsetCommitValue, Record, RecordKey,
};
pub use state::GroupState;
