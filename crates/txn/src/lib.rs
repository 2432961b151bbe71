//! Transaction coordinator core (I/O-free): Kafka's `TransactionMetadata`, `TransactionState`
//! and the decisions of `TransactionCoordinator` / `TransactionStateManager`, plus the records
//! of `__transaction_state`.
//!
//! The broker owns sockets, the `__transaction_state` log, the markers' delivery and timers;
//! this crate owns the decisions. Every entry point takes plain values and `now_ms` and returns
//! a [`Decision`]: the error code to answer, the metadata to append first (then install with
//! [`TransactionCoordinator::write_completed`]), and the [`TxnMarkers`] to write afterwards.
//!
//! ```text
//!  InitProducerId(txn id) ─┐
//!  AddPartitionsToTxn ─────┤                      ┌─► append record_for(write) to
//!  AddOffsetsToTxn ────────┼─► decide(now) ─► Decision   __transaction_state[partition_for]
//!  EndTxn ─────────────────┤                      ├─► answer `error`
//!  timer (abort_timed_out) ┘                      └─► TxnMarkers ─► every partition
//!                                                         └─► markers_written ─► Complete*
//! ```
//!
//! The states and their transitions are in [`state`] (with a diagram); the record format and
//! the transactional-id → partition mapping in [`records`]; loading a partition by replaying it
//! in [`coordinator::load`]. New producer ids come through [`ProducerIdSource`] (the broker's
//! `ProducerIdManager`).

pub mod coordinator;
pub mod decisions;
pub mod error;
pub mod metadata;
pub mod records;
pub mod state;

#[cfg(test)]
mod tests;

pub use coordinator::{load, LoadSummary, TransactionCoordinator};
pub use decisions::{
    abort_timed_out, add_offsets, add_partitions, complete_transaction, end_txn, end_txn_v2,
    expire, init_producer_id, verify_partitions, Decision, InitProducerIdRequest, ProducerIdSource,
    TransactionResult, TxnConfig, TxnMarkers, CONSUMER_OFFSETS_TOPIC,
};
pub use error::{code, error_for_version, DecodeError, IllegalTransition, TxnApi};
pub use metadata::{
    is_epoch_exhausted, ProducerIdAndEpoch, TopicPartition, TransactionMetadata, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, TRANSACTION_VERSION_2,
};
pub use records::{
    decode_key, decode_value, encode_key, encode_value, java_string_hash_code,
    partition_for_transactional_id, record_for, TransactionLogValue,
    DEFAULT_TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
pub use state::TransactionState;
