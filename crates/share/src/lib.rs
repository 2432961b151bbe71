//! Share groups (KIP-932, "queues for Kafka"), free of I/O: the share-partition a partition
//! leader keeps for each share group reading it (records acquired, acknowledged, released,
//! their locks and delivery counts), and the share coordinator's state of every
//! share-partition with its `__share_group_state` records. The broker drives both
//! (`share_partitions.rs`, `share_coordinator.rs`).

pub mod coordinator;
pub mod partition;
pub mod records;
pub mod state;
pub mod wire;

pub use partition::Archived;

pub use state::{
    AcknowledgeType, AutoOffsetReset, DeliveryState, PersistError, PersistedState,
    ShareGroupSettings, ShareKey, StateBatch, StateSummary,
};
