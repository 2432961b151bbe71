//! The share-partition leaders' client of the share coordinators (Kafka's `Persister`): it
//! reads and writes each share-partition's durable state in `__share_group_state`, through
//! the coordinator that leads the state's partition (this broker or another one).

use std::future::Future;
use std::pin::Pin;

use gregor_share::{PersistError, PersistedState, ShareKey, StateSummary};

/// A persister call's future.
pub type PersistFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PersistError>> + Send + 'a>>;

/// What a share-partition leader (and the group coordinator's share admin APIs) ask of the
/// share coordinators. Each call names one share-partition; the implementation finds the
/// coordinator of its key and retries while that one is loading or moving, within its own
/// time limit.
pub trait Persister: Send + Sync + 'static {
    /// The share-partition's state (ReadShareGroupState), as the leader in `leader_epoch`
    /// loads it; `Err(NotInitialized)` when it has none.
    fn read(&self, key: &ShareKey, leader_epoch: i32) -> PersistFuture<'_, PersistedState>;

    /// Replace the share-partition's state (WriteShareGroupState) with `state`, written by
    /// the leader in `leader_epoch`. Fenced when a newer leader epoch wrote it, or when its
    /// state epoch is no longer `state.state_epoch`.
    fn write(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
        state: &PersistedState,
    ) -> PersistFuture<'_, ()>;

    /// Create or reset the share-partition's state (InitializeShareGroupState) at
    /// `start_offset` (-1: the leader decides it from `share.auto.offset.reset`), with no
    /// batches, in `state_epoch`.
    fn initialize(
        &self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> PersistFuture<'_, ()>;

    /// What DescribeShareGroupOffsets shows (ReadShareGroupStateSummary);
    /// `Err(NotInitialized)` when it has no state.
    fn read_summary(&self, key: &ShareKey) -> PersistFuture<'_, StateSummary>;

    /// Delete the share-partition's state (DeleteShareGroupState); no error when it has none.
    fn delete(&self, key: &ShareKey) -> PersistFuture<'_, ()>;
}

/// Scaffolding while the share coordinator is being written: every call is Unavailable.
/// Replaced by the real persister before share groups are served.
#[derive(Debug, Default)]
pub struct NoPersister;

impl Persister for NoPersister {
    fn read(&self, _: &ShareKey, _: i32) -> PersistFuture<'_, PersistedState> {
        Box::pin(async { Err(PersistError::Unavailable("no share coordinator yet".into())) })
    }
    fn write(&self, _: &ShareKey, _: i32, _: &PersistedState) -> PersistFuture<'_, ()> {
        Box::pin(async { Err(PersistError::Unavailable("no share coordinator yet".into())) })
    }
    fn initialize(&self, _: &ShareKey, _: i32, _: i64) -> PersistFuture<'_, ()> {
        Box::pin(async { Err(PersistError::Unavailable("no share coordinator yet".into())) })
    }
    fn read_summary(&self, _: &ShareKey) -> PersistFuture<'_, StateSummary> {
        Box::pin(async { Err(PersistError::Unavailable("no share coordinator yet".into())) })
    }
    fn delete(&self, _: &ShareKey) -> PersistFuture<'_, ()> {
        Box::pin(async { Err(PersistError::Unavailable("no share coordinator yet".into())) })
    }
}
